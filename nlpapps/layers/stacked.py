"""Several recurrent layers run as one, with residual connections and dropout between them."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nlpapps")
class StackedRNN(keras.layers.Layer):
    """A stack of recurrent layers: `x^(l+1) = f_l(drop(x^(l))) (+ x^(l) if residual)`.

    Every layer but the top one returns its whole sequence to the next. A residual connection
    adds a layer's input to its output where both have the same width (Wu et al. 2016);
    `dropout` is applied to the input of every layer above the first (Zaremba et al. 2014).

    Args:
        layers: list of nlpapps recurrent layers (`LSTM`, `GRU`, `SimpleRNN` or
            `Bidirectional` of them with merge mode concat/sum/ave/mul).
        residual: add residual connections between layers of equal width.
        dropout: fraction of units dropped between layers in training.
        return_sequences: return the top layer's whole sequence (else its last output).
        return_state: also return the final states of every layer, bottom to top.
        seed: seed of the dropout between layers.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: optional `(batch, time)` bool.
        initial_state: optional list with one list of states per layer (or None for a layer).
        training: whether dropout is active.

    Example:
        >>> stack = StackedRNN([LSTM(64), LSTM(64), LSTM(64)], residual=True, dropout=0.2)
        >>> stack(keras.ops.ones((2, 7, 64))).shape
        (2, 7, 64)
    """

    def __init__(self, layers, residual=False, dropout=0.0, return_sequences=True,
                 return_state=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not layers:
            raise ValueError(f"`layers` must hold at least one layer. Received: layers={layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.layers = [keras.saving.deserialize_keras_object(layer)
                       if isinstance(layer, dict) else layer for layer in layers]
        for layer in self.layers:
            for direction in _directions(layer):
                direction.return_sequences = True
                direction.return_state = True
            if hasattr(layer, "forward_layer"):
                layer.return_sequences = layer.return_state = True
                for direction in _directions(layer):
                    direction.zero_output_for_mask = True
        self.residual = residual
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.seed = seed
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed)
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        shape = sequences_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            output_shape = layer.compute_output_shape(shape)[0]
            shape = tuple(shape[:-1]) + (output_shape[-1],)
        self.built = True

    def call(self, sequences, initial_state=None, mask=None, training=False):
        x = sequences
        all_states = []
        for index, layer in enumerate(self.layers):
            layer_inputs = x
            if index > 0 and self.dropout > 0:
                x = self.dropout_layer(x, training=training)
            state = initial_state[index] if initial_state is not None else None
            output, *states = layer(x, initial_state=state, mask=mask, training=training)
            # The residual path carries the layer's input as it was, not its dropped copy.
            if self.residual and output.shape[-1] == layer_inputs.shape[-1]:
                output = output + layer_inputs
            x = output  # (batch, time, units)
            all_states.append(states)
        if not self.return_sequences:
            x = _last_real_output(x, mask)
        return [x, all_states] if self.return_state else x

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask, None] if self.return_state else output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = tuple(sequences_shape)
        all_states = []
        for layer in self.layers:
            output_shape, *state_shapes = layer.compute_output_shape(shape)
            shape = shape[:-1] + (output_shape[-1],)
            all_states.append(state_shapes)
        output = shape if self.return_sequences else (shape[0], shape[-1])
        return [output, all_states] if self.return_state else output

    def get_config(self):
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(layer) for layer in self.layers],
            "residual": self.residual,
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "seed": self.seed,
        }


def _directions(layer):
    if hasattr(layer, "forward_layer"):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def _last_real_output(sequence, mask):
    """The output at each sequence's last real step: `(batch, time, units) -> (batch, units)`."""
    if mask is None:
        return sequence[:, -1]
    last = ops.sum(ops.cast(mask, "int32"), axis=1) - 1  # (batch,)
    last = ops.maximum(last, 0)
    return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
