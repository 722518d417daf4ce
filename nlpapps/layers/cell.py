"""The contract every recurrent cell of nlpapps follows (see `rnn.py` for the time loop)."""

import keras
from keras import activations, constraints, initializers, ops, regularizers


def project(inputs, kernel, bias=None):
    """A cell's input projection `inputs W (+ b)`, for any leading shape."""
    projected = ops.matmul(inputs, kernel)
    return projected if bias is None else projected + bias


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
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional penalties on
            those weights, added to the layer's `losses`.
        kernel_constraint, recurrent_constraint, bias_constraint: optional projections applied
            to those weights after each optimizer update.
        dropout: fraction of the input units dropped when the cell is called on its own in
            training (a sequence layer applies its own `dropout`, one mask per sequence; the
            cell it creates has 0).
        recurrent_dropout: the same for the previous output inside the recurrent matmul.
        seed: seed of those dropout masks.

    Called on its own, `cell(x_t, states, training=True)` draws new dropout masks at every
    call; a sequence layer draws them once per sequence.
    """

    gates = 1
    # The cuDNN kernel (`cudnn.KERNELS`) that computes this recurrence on a GPU, if any.
    fused_kernel = None

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        check_dropout(dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        # Only a cell that drops anything holds a seed generator (one more variable).
        self.seed_generator = (keras.random.SeedGenerator(seed)
                               if dropout or recurrent_dropout else None)

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
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, self.gates * self.units),
            initializer=self.recurrent_initializer, regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint)
        self.bias = self.add_weight(
            name="bias", shape=self.bias_shape(), initializer=self.bias_initializer_fn(),
            regularizer=self.bias_regularizer, constraint=self.bias_constraint,
        ) if self.use_bias else None
        self.built = True

    def bias_shape(self):
        return (self.gates * self.units,)

    def bias_initializer_fn(self):
        return self.bias_initializer

    def input_projection(self):
        """`(W, b)` of `project_inputs`, b None without a bias."""
        return self.kernel, self.bias if self.use_bias else None

    def project_inputs(self, inputs):
        """`inputs W (+ b)` for any leading shape: `(..., features) -> (..., gates * units)`."""
        return project(inputs, *self.input_projection())

    def loop_step(self, recurrent_mask=None):
        """`step(projected, states)` for a loop over time steps: `self.step`, with what it
        reads of the weights taken once, outside the loop it is called in (a cell whose step
        slices its weights overrides it)."""
        return lambda projected, states: self.step(projected, states, recurrent_mask)

    def call(self, inputs, states, training=False):
        """One step on `(batch, features)` inputs: `(output, new_states)`."""
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        recurrent_mask = None
        if training and self.dropout > 0:
            inputs = inputs * keras.random.dropout(
                ops.ones_like(inputs), self.dropout, seed=self.seed_generator)
        if training and self.recurrent_dropout > 0:
            recurrent_mask = keras.random.dropout(
                ops.ones_like(states[0]), self.recurrent_dropout, seed=self.seed_generator)
        return self.step(self.project_inputs(inputs), states, recurrent_mask)

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
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


def check_dropout(**rates):
    """Raises unless every rate is in [0, 1)."""
    for name, value in rates.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
