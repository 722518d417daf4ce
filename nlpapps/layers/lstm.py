"""Long short-term memory cell and layer."""

import keras
from keras import activations, initializers, ops

from nlpapps.layers import cudnn
from nlpapps.layers.cell import RecurrentCell
from nlpapps.layers.rnn import RNN


@keras.saving.register_keras_serializable(package="nlpapps")
class LSTMCell(RecurrentCell):
    """LSTM cell with a forget gate.

    With `z = x_t W + b + h_{t-1} U` split in four blocks of `units` `[z_i, z_f, z_c, z_o]`:

        i_t = recurrent_activation(z_i)            input gate
        f_t = recurrent_activation(z_f)            forget gate
        c~_t = activation(z_c)                     candidate
        c_t = f_t * c_{t-1} + i_t * c~_t           cell state
        o_t = recurrent_activation(z_o)            output gate
        h_t = o_t * activation(c_t)

    Weights (the same list, shapes and gate order i, f, c, o as `keras.layers.LSTMCell`):
    `kernel` W `(features, 4 units)`, `recurrent_kernel` U `(units, 4 units)`, `bias` b
    `(4 units,)`. States: `[h, c]`.

    Args:
        units: size of h and c.
        activation: default `tanh`.
        recurrent_activation: activation of the gates, default `sigmoid`.
        unit_forget_bias: initialize the forget-gate bias to 1 (Jozefowicz et al. 2015).
        implementation: accepted for compatibility with `keras.layers.LSTMCell` (1: many
            small matmuls, 2: a few large ones); no effect here: the input matmul runs once for
            all steps and the recurrent one is one fused matmul per step.
        **kwargs: see `RecurrentCell` (initializers, regularizers, constraints, dropout).

    Example:
        >>> cell = LSTMCell(8)
        >>> h, [h, c] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 8))] * 2)

    Reference: Hochreiter & Schmidhuber, "Long Short-Term Memory", 1997; Gers et al.,
    "Learning to Forget", 2000.
    """

    gates = 4
    fused_kernel = "lstm"
    # Its gradient through time is written out in `bptt.py` (tanh and sigmoid only).
    written_gradient = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, implementation=2, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.implementation = implementation

    @property
    def state_size(self):
        return [self.units, self.units]

    def bias_initializer_fn(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def initializer(shape, dtype=None):
            return ops.concatenate([
                base((units,), dtype=dtype),
                initializers.get("ones")((units,), dtype=dtype),
                base((units * 2,), dtype=dtype),
            ])

        return initializer

    def step(self, projected, states, recurrent_mask=None):
        h_tm1, c_tm1 = states
        h_in = h_tm1 * recurrent_mask if recurrent_mask is not None else h_tm1
        z = projected + ops.matmul(h_in, self.recurrent_kernel)  # (batch, 4 units)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        c = (self.recurrent_activation(z_f) * c_tm1
             + self.recurrent_activation(z_i) * self.activation(z_c))
        h = self.recurrent_activation(z_o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
            "implementation": self.implementation,
        }


@keras.saving.register_keras_serializable(package="nlpapps")
class LSTM(RNN):
    """Sequence layer of `LSTMCell`: a drop-in for `keras.layers.LSTM`, whose arguments it
    takes (a config Keras wrote loads) and whose weights it can hold:
    `ours.set_weights(keras_lstm.get_weights())` gives the same outputs and states.

    Args:
        units: size of the output and states.
        activation, recurrent_activation, use_bias, unit_forget_bias, kernel_initializer,
            recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, kernel_constraint, recurrent_constraint,
            bias_constraint, implementation: see `LSTMCell` and `RecurrentCell`.
        use_cudnn: "auto", True or False: whether to run cuDNN's kernel on a GPU (see `RNN`
            and `cudnn.py`).
        **kwargs: the sequence options of `RNN` (return_sequences, return_state,
            go_backwards, stateful, unroll, dropout, recurrent_dropout, seed,
            activity_regularizer, ...).

    Example:
        >>> output, h, c = LSTM(16, return_state=True)(keras.ops.ones((2, 5, 4)))
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, unit_forget_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 implementation=2, use_cudnn="auto", **kwargs):
        super().__init__(**kwargs)
        self.use_cudnn = cudnn.check_use_cudnn(use_cudnn)
        self.cell = LSTMCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, unit_forget_bias=unit_forget_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, implementation=implementation,
            dtype=self.dtype_policy, name="cell")

    def get_config(self):
        return {**super().get_config(), "use_cudnn": self.use_cudnn}
