"""Training a language model with its states carried from one batch to the next."""

import keras
import tensorflow as tf
from keras import ops


class StatefulTrainer(keras.Model):
    """Wraps a `LanguageModel` for `fit` on contiguous streams (`stream_dataset`): row r of
    each batch continues row r of the batch before, so each row starts from the states the
    previous batch ended in, as `evaluate` reads a text, and gradients stop at the batch edge
    (truncated backpropagation through time).

        states_0 = carried * (1 - reset)          zero at the start of a pass
        logits, states_T = model(inputs, states_0)
        carried <- stop_gradient(states_T)

    The carried states are this wrapper's non-trainable weights, so a checkpoint of the
    wrapper holds them and a resumed run continues from them. The wrapped model's own weights
    are unchanged by wrapping: save and load them on `language_model`.

    Args:
        language_model: the `LanguageModel` to train.
        batch_size: rows per batch (fixed: each row has its own states).

    Call arguments (validation and prediction, from zero states):
        token_ids: int `(batch, time)`.

    Example:
        >>> trainer = StatefulTrainer(model, batch_size=16)
        >>> trainer.compile(optimizer="adam", loss=masked_cross_entropy())
        >>> trainer.fit(stream_dataset(ids, seq_len=64, batch_size=16), steps_per_epoch=100)
    """

    def __init__(self, language_model, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.language_model = language_model
        self.batch_size = batch_size
        self.carried = [[self.add_weight(name=f"state_{layer}_{i}", shape=state.shape,
                                         initializer="zeros", trainable=False)
                         for i, state in enumerate(states)]
                        for layer, states in enumerate(language_model.initial_states(batch_size))]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.build()

    @property
    def metrics(self):
        return [self.loss_tracker]

    def build(self, input_shape=None):
        if not self.language_model.built:
            self.language_model.build()
        self.built = True

    def call(self, token_ids, training=False):
        return self.language_model(token_ids, training=training)

    def train_step(self, data):
        (inputs, reset), targets = data
        keep = ops.cast(ops.logical_not(reset), "float32")  # (batch,)
        # Each state is (batch, ...): (batch, units), or an attention memory (batch, M, units).
        states = [[ops.convert_to_tensor(v) * ops.reshape(keep, (-1,) + (1,) * (len(v.shape) - 1))
                   for v in layer] for layer in self.carried]
        with tf.GradientTape() as tape:
            logits, new_states = self.language_model(inputs, initial_state=states, training=True,
                                                     return_state=True)
            loss = self.compute_loss(x=inputs, y=targets, y_pred=logits, training=True)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        for layer_vars, layer_states in zip(self.carried, new_states):
            for var, state in zip(layer_vars, layer_states):
                var.assign(ops.stop_gradient(state))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        inputs, targets = data
        self.loss_tracker.update_state(self.compute_loss(x=inputs, y=targets, y_pred=self(inputs)))
        return {"loss": self.loss_tracker.result()}
