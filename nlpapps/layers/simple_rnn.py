"""Vanilla (Elman) recurrent cell and layer."""

import keras
from keras import ops

from nlpapps.layers.cell import RecurrentCell
from nlpapps.layers.rnn import RNN


@keras.saving.register_keras_serializable(package="nlpapps")
class SimpleRNNCell(RecurrentCell):
    """Elman cell: `h_t = activation(x_t W + b + h_{t-1} U)`.

    Weights (the same list and shapes as `keras.layers.SimpleRNNCell`): `kernel` W
    `(features, units)`, `recurrent_kernel` U `(units, units)`, `bias` b `(units,)`.

    Args:
        units: size of h.
        activation: default `tanh`.
        **kwargs: see `RecurrentCell` (initializers, regularizers, constraints, dropout).

    Example:
        >>> cell = SimpleRNNCell(8)
        >>> h, [h] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))])

    Reference: Elman, "Finding Structure in Time", Cognitive Science 1990.
    """

    gates = 1

    def step(self, projected, states, recurrent_mask=None):
        h_tm1 = states[0]
        h_in = h_tm1 * recurrent_mask if recurrent_mask is not None else h_tm1
        h = self.activation(projected + ops.matmul(h_in, self.recurrent_kernel))
        return h, [h]


@keras.saving.register_keras_serializable(package="nlpapps")
class SimpleRNN(RNN):
    """Sequence layer of `SimpleRNNCell`: a drop-in for `keras.layers.SimpleRNN`, whose
    arguments it takes and whose weights it can hold.

    Args:
        units: size of the output and state.
        activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
            recurrent_constraint, bias_constraint: see `SimpleRNNCell` and `RecurrentCell`.
        **kwargs: the sequence options of `RNN` (return_sequences, return_state,
            go_backwards, stateful, unroll, dropout, recurrent_dropout, seed,
            activity_regularizer, ...).

    Example:
        >>> layer = SimpleRNN(16, return_sequences=True)
        >>> layer(keras.ops.ones((2, 5, 4))).shape
        (2, 5, 16)
    """

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.cell = SimpleRNNCell(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dtype=self.dtype_policy, name="cell")
