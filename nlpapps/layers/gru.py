"""Gated recurrent unit cell and layer."""

import keras
from keras import activations, ops

from nlpapps.layers import cudnn
from nlpapps.layers.cell import RecurrentCell
from nlpapps.layers.rnn import RNN


@keras.saving.register_keras_serializable(package="nlpapps")
class GRUCell(RecurrentCell):
    """GRU cell, with the reset gate applied after the recurrent matmul (`reset_after=True`,
    the default, the form cuDNN computes) or before it (`reset_after=False`, the textbook's).

    With the kernels split in three blocks of `units` for the gates z, r and the candidate h,
    `W = [W_z, W_r, W_h]`, `U = [U_z, U_r, U_h]`:

        z_t = recurrent_activation(x_t W_z + b_z + h_{t-1} U_z + b'_z)     update gate
        r_t = recurrent_activation(x_t W_r + b_r + h_{t-1} U_r + b'_r)     reset gate
        reset_after=True:
            h~_t = activation(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))  candidate state
        reset_after=False (Cho et al. 2014):
            h~_t = activation(x_t W_h + b_h + (r_t * h_{t-1}) U_h)          candidate state
        h_t = z_t * h_{t-1} + (1 - z_t) * h~_t

    With `reset_after=True` the bias is `(2, 3 units)`, `[b, b']`: an input and a recurrent
    bias, both needed since r_t scales the recurrent one. With `reset_after=False` it is one
    `(3 units,)` bias b, and b' = 0 in the gates above.

    The last line is Keras's convention. The textbook form (Cho et al. 2014)
    `h_t = (1 - u_t) h_{t-1} + u_t h~_t` is the same function with `u_t = 1 - z_t`, i.e. with
    the update gate's pre-activation negated; the two parameterizations learn the same
    family, and this one keeps the weights interchangeable with `keras.layers.GRU`.

    Weights (the same list, shapes and gate order z, r, h as `keras.layers.GRUCell` with the
    same `reset_after`): `kernel` W `(features, 3 units)`, `recurrent_kernel` U
    `(units, 3 units)`, `bias` `(2, 3 units)` or `(3 units,)`.

    Args:
        units: size of h.
        activation: default `tanh`.
        recurrent_activation: activation of the gates, default `sigmoid`.
        reset_after: where the reset gate applies (see above); only True runs on cuDNN.
        implementation: accepted for compatibility with `keras.layers.GRUCell`; no effect
            (see `LSTMCell`).
        **kwargs: see `RecurrentCell` (initializers, regularizers, constraints, dropout).

    Example:
        >>> cell = GRUCell(8, reset_after=False)
        >>> h, [h] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))])

    Reference: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation", 2014.
    """

    gates = 3
    # Its gradient through time is written out in `bptt.py` (tanh and sigmoid only).
    written_gradient = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, implementation=2, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after
        self.implementation = implementation

    @property
    def fused_kernel(self):
        # cuDNN's GRU applies the reset gate after the recurrent matmul only.
        return "gru" if self.reset_after else None

    def bias_shape(self):
        return (2, self.gates * self.units) if self.reset_after else (self.gates * self.units,)

    def input_projection(self):
        """`(W, b)` of `project_inputs`: the input bias is the first row of a reset-after
        cell's two."""
        if not self.use_bias:
            return self.kernel, None
        return self.kernel, self.bias[0] if self.reset_after else self.bias

    def step(self, projected, states, recurrent_mask=None):
        return self._step(projected, states, recurrent_mask, self._recurrent_weights())

    def loop_step(self, recurrent_mask=None):
        """`step(projected, states)` with the recurrent weights' parts sliced once, outside
        the loop: a slice inside copies it at every step (the reset-before cell's two parts
        of the recurrent kernel, 12 MB a step at width 1024). A subclass's own `step` is
        kept."""
        if type(self).step is not GRUCell.step:
            return super().loop_step(recurrent_mask)
        weights = self._recurrent_weights()
        return lambda projected, states: self._step(projected, states, recurrent_mask, weights)

    def _recurrent_weights(self):
        """Reset after: `(U, recurrent bias or None)`; reset before: `(U_zr, U_h)`, the
        recurrent kernel's columns of the update and reset gates and of the candidate."""
        if self.reset_after:
            return self.recurrent_kernel, self.bias[1] if self.use_bias else None
        units = self.units
        return self.recurrent_kernel[:, :2 * units], self.recurrent_kernel[:, 2 * units:]

    def _step(self, projected, states, recurrent_mask, weights):
        h_tm1 = states[0]
        h_in = h_tm1 * recurrent_mask if recurrent_mask is not None else h_tm1
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if self.reset_after:
            kernel, bias = weights
            recurrent = ops.matmul(h_in, kernel)  # (batch, 3 units)
            if bias is not None:
                recurrent = recurrent + bias
            r_z, r_r, r_h = ops.split(recurrent, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            h_candidate = self.activation(x_h + r * r_h)
        else:
            gate_kernel, candidate_kernel = weights
            gates = ops.matmul(h_in, gate_kernel)  # (batch, 2 units)
            r_z, r_r = ops.split(gates, 2, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            h_candidate = self.activation(x_h + ops.matmul(r * h_in, candidate_kernel))
        h = z * h_tm1 + (1.0 - z) * h_candidate
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
            "implementation": self.implementation,
        }


@keras.saving.register_keras_serializable(package="nlpapps")
class GRU(RNN):
    """Sequence layer of `GRUCell`: a drop-in for `keras.layers.GRU`, whose arguments it
    takes (a config Keras wrote loads) and whose weights it can hold, for either
    `reset_after`.

    Args:
        units: size of the output and state.
        activation, recurrent_activation, use_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, kernel_constraint, recurrent_constraint,
            bias_constraint, reset_after, implementation: see `GRUCell` and `RecurrentCell`.
        use_cudnn: "auto", True or False: whether to run cuDNN's kernel on a GPU (see `RNN`
            and `cudnn.py`); never with `reset_after=False`, which cuDNN does not compute.
        **kwargs: the sequence options of `RNN` (return_sequences, return_state,
            go_backwards, stateful, unroll, dropout, recurrent_dropout, seed,
            activity_regularizer, ...).

    Example:
        >>> output, h = GRU(16, return_state=True)(keras.ops.ones((2, 5, 4)))
        >>> textbook = GRU(16, reset_after=False)
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 reset_after=True, implementation=2, use_cudnn="auto", **kwargs):
        super().__init__(**kwargs)
        self.use_cudnn = cudnn.check_use_cudnn(use_cudnn)
        self.cell = GRUCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            reset_after=reset_after, implementation=implementation,
            dtype=self.dtype_policy, name="cell")

    def get_config(self):
        return {**super().get_config(), "use_cudnn": self.use_cudnn}
