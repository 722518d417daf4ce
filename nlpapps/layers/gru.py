"""Gated recurrent unit cell and layer."""

import keras
from keras import activations, ops

from nlpapps.layers.cell import RecurrentCell
from nlpapps.layers.rnn import RNN


@keras.saving.register_keras_serializable(package="nlpapps")
class GRUCell(RecurrentCell):
    """GRU cell, reset gate applied after the recurrent matmul (`reset_after=True`).

    With `x_t W + b_in = [x_z, x_r, x_h]` and `h_{t-1} U + b_rec = [r_z, r_r, r_h]`:

        z_t = recurrent_activation(x_z + r_z)      update gate
        r_t = recurrent_activation(x_r + r_r)      reset gate
        h~_t = activation(x_h + r_t * r_h)         candidate state
        h_t = z_t * h_{t-1} + (1 - z_t) * h~_t

    The last line is Keras's convention. The textbook form (Cho et al. 2014)
    `h_t = (1 - u_t) h_{t-1} + u_t h~_t` is the same function with `u_t = 1 - z_t`, i.e. with
    the update gate's pre-activation negated; the two parameterizations learn the same
    family, and this one keeps the weights interchangeable with `keras.layers.GRU`.

    Weights (the same list, shapes and gate order z, r, h as `keras.layers.GRUCell` with its
    default `reset_after=True`): `kernel` W `(features, 3 units)`, `recurrent_kernel` U
    `(units, 3 units)`, `bias` `(2, 3 units)` holding `[b_in, b_rec]`.

    Args:
        units: size of h.
        activation: default `tanh`.
        recurrent_activation: activation of the gates, default `sigmoid`.
        **kwargs: see `RecurrentCell`.

    Example:
        >>> cell = GRUCell(8)
        >>> h, [h] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))])

    Reference: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation", 2014.
    """

    gates = 3
    fused_kernel = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)

    def bias_shape(self):
        return (2, self.gates * self.units)

    def project_inputs(self, inputs):
        projected = ops.matmul(inputs, self.kernel)
        return projected + self.bias[0] if self.use_bias else projected

    def step(self, projected, states, recurrent_mask=None):
        h_tm1 = states[0]
        h_in = h_tm1 * recurrent_mask if recurrent_mask is not None else h_tm1
        recurrent = ops.matmul(h_in, self.recurrent_kernel)  # (batch, 3 units)
        if self.use_bias:
            recurrent = recurrent + self.bias[1]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        r_z, r_r, r_h = ops.split(recurrent, 3, axis=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        h_candidate = self.activation(x_h + r * r_h)
        h = z * h_tm1 + (1.0 - z) * h_candidate
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
        }


@keras.saving.register_keras_serializable(package="nlpapps")
class GRU(RNN):
    """Sequence layer of `GRUCell`: weights interchangeable with `keras.layers.GRU`
    (`reset_after=True`, its default).

    Args:
        units: size of the output and state.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer: see `GRUCell`.
        **kwargs: the sequence options of `RNN` (return_sequences, return_state,
            go_backwards, dropout, recurrent_dropout, ...).

    Example:
        >>> output, h = GRU(16, return_state=True)(keras.ops.ones((2, 5, 4)))
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.cell = GRUCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            dtype=self.dtype_policy, name="cell")
