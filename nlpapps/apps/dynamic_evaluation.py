"""Dynamic evaluation: a language model that goes on learning from the text it reads.

The text is read in windows of `window` tokens with the states carried from one to the next,
as `evaluate` reads it. Each window is first scored with the current weights; then the weights
take one gradient-descent step on that window's mean loss and are pulled back towards the
trained weights by a fraction `decay` (Krause et al., 2018, "Dynamic Evaluation of Neural
Sequence Models", with SGD and their decay to the trained weights; the gradient is clipped by
its global norm, so that too large a learning rate cannot blow the weights up). A token is
therefore always scored by weights that have learned only from the tokens before it: the total
is a proper log-likelihood of the text, of a model that adapts to it as it goes. Speaker names,
words and turns of phrase that recur through one text are what it learns.

The model's weights are restored when the reading ends.
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """How the weights follow the text: one step of `learning_rate` per `window` tokens."""

    learning_rate: float = 0.1  # SGD on the mean loss per token of a window
    window: int = 32  # tokens scored between two steps
    decay: float = 0.0  # after each step, move this fraction of the way back to the trained weights
    clipnorm: float = 10.0  # the step's gradient is clipped to this global norm

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"the adaptation learning rate must be positive, "
                             f"got {self.learning_rate}")
        if self.window < 1:
            raise ValueError(f"the adaptation window must be at least 1 token, got {self.window}")
        if not 0 <= self.decay < 1:
            raise ValueError(f"the adaptation decay must be in [0, 1), got {self.decay}")
        if not self.clipnorm > 0:
            raise ValueError(f"the adaptation clipnorm must be positive, got {self.clipnorm}")


def adapting_window_nll(model: keras.Model, adaptation: Adaptation):
    """A compiled `(inputs, targets, states) -> (nll in nats of each target, states)` for
    batch 1 that scores the window and then updates the model's trainable weights from it."""
    weights = model.trainable_variables
    learning_rate, decay, clipnorm = adaptation.learning_rate, adaptation.decay, adaptation.clipnorm
    # Only a decay needs the trained weights kept beside the moving ones.
    trained = [tf.constant(weight) for weight in weights] if decay else [None] * len(weights)

    @tf.function(reduce_retracing=True)
    def window_nll(inputs, targets, states):
        with tf.GradientTape() as tape:
            logits, states = model(inputs, initial_state=states, return_state=True)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                targets, tf.cast(logits, tf.float32))
            loss = tf.reduce_mean(nll)
        found = [(weight, start, tf.convert_to_tensor(gradient)) for weight, start, gradient
                 in zip(weights, trained, tape.gradient(loss, weights)) if gradient is not None]
        gradients, _ = tf.clip_by_global_norm([gradient for *_, gradient in found], clipnorm)
        for (weight, start, _), gradient in zip(found, gradients):
            stepped = weight - learning_rate * gradient
            weight.assign(stepped + decay * (start - stepped) if decay else stepped)
        return nll, states

    return window_nll


@contextlib.contextmanager
def restored_weights(model: keras.Model):
    """Gives the model back its weights as they were on entry, however the block ends."""
    saved = [weight.numpy() for weight in model.trainable_variables]
    try:
        yield model
    finally:
        for weight, value in zip(model.trainable_variables, saved):
            weight.assign(value)
