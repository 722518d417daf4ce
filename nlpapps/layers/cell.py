"""The contract every recurrent cell of nlpapps follows (see `rnn.py` for the time loop)."""

import keras
from keras import activations, initializers, ops


class RecurrentCell(keras.layers.Layer):
    """Base of the cells: one time step of a recurrence, split into an input projection that
    the sequence layer computes once for all steps and a recurrent step.

    Subclasses set `gates` (how many blocks of `units` the kernels hold) and implement
    `step(projected, states, recurrent_mask=None) -> (output, new_states)`.

    Args:
        units: size of the output and of each state.
        activation: activation of the candidate (and of the cell state for LSTM).
        use_bias: whether the input projection adds a bias.
        kernel_initializer: initializer of the input kernel `(features, gates * units)`.
        recurrent_initializer: initializer of the recurrent kernel `(units, gates * units)`.
        bias_initializer: initializer of the bias.
    """

    gates = 1
    # The cuDNN kernel (`cudnn.KERNELS`) that computes this recurrence on a GPU, if any.
    fused_kernel = None

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    @property
    def state_size(self):
        return [self.units]

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        features = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(features, self.gates * self.units),
            initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, self.gates * self.units),
            initializer=self.recurrent_initializer)
        self.bias = self.add_weight(
            name="bias", shape=self.bias_shape(), initializer=self.bias_initializer_fn()
        ) if self.use_bias else None
        self.built = True

    def bias_shape(self):
        return (self.gates * self.units,)

    def bias_initializer_fn(self):
        return self.bias_initializer

    def project_inputs(self, inputs):
        """`inputs W (+ b)` for any leading shape: `(..., features) -> (..., gates * units)`."""
        projected = ops.matmul(inputs, self.kernel)
        return projected + self.bias if self.use_bias else projected

    def call(self, inputs, states, training=False):
        """One step on `(batch, features)` inputs: `(output, new_states)`."""
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        return self.step(self.project_inputs(inputs), states)

    def get_initial_state(self, batch_size):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype)
                for size in self.state_size]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }
