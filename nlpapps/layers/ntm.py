"""Neural Turing machine: a controller cell of ours with read and write heads on a memory."""

import keras
from keras import initializers, ops

from nlpapps.layers.cell import project
from nlpapps.layers.gru import GRUCell
from nlpapps.layers.lstm import LSTMCell
from nlpapps.layers.rnn import RNN
from nlpapps.layers.simple_rnn import SimpleRNNCell

CONTROLLERS = {"lstm": LSTMCell, "gru": GRUCell, "simple_rnn": SimpleRNNCell}
SHIFTS = 3  # shift weighting over the offsets -1, 0, +1


@keras.saving.register_keras_serializable(package="nlpapps")
class NTMCell(keras.layers.Layer):
    """Neural Turing machine cell: a controller cell reads the input and the previous read
    vectors; from its output every head addresses the memory, the read heads read it, the
    write heads erase and add.

    With memory `M_{t-1}` `(memory_size N, memory_width W)`, controller output `h_t`, and for
    each head (read heads first, then write heads; all address `M_{t-1}`), from
    `p = clip(h_t V + d, -clip_value, clip_value)`:

        k = tanh(p_k)                                   key                 (W,)
        beta = softplus(p_beta)                         key strength        >= 0
        g = sigmoid(p_g)                                interpolation gate  in (0, 1)
        s = softmax(p_s)                                shift weighting over -1, 0, +1
        gamma = 1 + softplus(p_gamma)                   sharpening          >= 1
        K[i] = k . M[i] / (|k| |M[i]| + eps)            cosine similarity
        w_c = softmax(beta K)                           content weighting   (N,)
        w_g = g w_c + (1 - g) w_{t-1}                   interpolation
        w~[i] = sum_{d in -1,0,1} s[d] w_g[(i - d) mod N]     circular shift
        w[i] = (w~[i] + eps)^gamma / sum_j (w~[j] + eps)^gamma   sharpening

    Reading (each read head): `r_t = sum_i w[i] M_{t-1}[i]`. Writing (each write head, with
    `e = sigmoid(p_e)`, `a = tanh(p_a)`):

        M_t = M_{t-1} * prod_heads (1 - w e^T) + sum_heads w a^T

    The controller reads `[x_t, r_{t-1}]`; the cell's output is `[h_t, r_t]` (a readout layer
    on top maps it to the task's outputs). The head parameters are clipped to +-`clip_value`
    and the epsilons keep the cosine and the sharpening finite where a norm or a weight is 0:
    with them (and softplus, 1 + softplus, softmax above) training does not reach NaN
    (Collier & Beel 2018). The initial memory is the constant `memory_init` everywhere; the
    initial read vectors `tanh(r_0)` and weightings `softmax(w_0)` are learned; the
    controller's initial states are zeros.

    States (all `(batch, size)`, so that `RNN` masks them like any cell's): `[h_t, r_t]`, the
    controller's states after `h` (`c` for an LSTM), `M_t` flattened `(N * W)`, and the
    weightings of every head `((read_heads + write_heads) * N)`.

    Args:
        units: size of the controller's output and states.
        memory_size: N, the number of memory locations.
        memory_width: W, the size of each location.
        read_heads: number of read heads.
        write_heads: number of write heads.
        controller: "lstm" (default), "gru" or "simple_rnn": the cell of ours that controls.
        clip_value: bound on the absolute value of every head parameter.
        memory_init: the value of every location of the initial memory.
        epsilon: added in the cosine's denominator and before sharpening.
        kernel_initializer: initializer of the head parameters' kernel V.

    Example:
        >>> layer = NTM(100, memory_size=128, memory_width=20, return_sequences=True)
        >>> outputs = layer(keras.ops.zeros((2, 7, 9)))  # (2, 7, 100 + 20)

    Reference: Graves, Wayne & Danihelka, "Neural Turing Machines", 2014; Collier & Beel,
    "Implementing Neural Turing Machines", ICANN 2018.
    """

    def __init__(self, units=100, memory_size=128, memory_width=20, read_heads=1,
                 write_heads=1, controller="lstm", clip_value=20.0, memory_init=1e-6,
                 epsilon=1e-6, kernel_initializer="glorot_uniform", **kwargs):
        check_no_recurrent_dropout(kwargs.pop("recurrent_dropout", 0.0))
        super().__init__(**kwargs)
        for name, value in (("units", units), ("memory_size", memory_size),
                            ("memory_width", memory_width), ("read_heads", read_heads),
                            ("write_heads", write_heads)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: "
                                 f"{name}={value}")
        if memory_size < SHIFTS:
            raise ValueError(f"`memory_size` must be at least {SHIFTS} for the shifts -1, 0, 1. "
                             f"Received: memory_size={memory_size}")
        if controller not in CONTROLLERS:
            raise ValueError(f"`controller` must be one of {sorted(CONTROLLERS)}. Received: "
                             f"controller={controller!r}")
        if not clip_value > 0 or not epsilon > 0:
            raise ValueError(f"`clip_value` and `epsilon` must be positive. Received: "
                             f"clip_value={clip_value}, epsilon={epsilon}")
        self.units = units
        self.memory_size = memory_size
        self.memory_width = memory_width
        self.read_heads = read_heads
        self.write_heads = write_heads
        self.controller = controller
        self.clip_value = clip_value
        self.memory_init = memory_init
        self.epsilon = epsilon
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.controller_cell = CONTROLLERS[controller](
            units, dtype=self.dtype_policy, name="controller")

    @property
    def heads(self):
        return self.read_heads + self.write_heads

    @property
    def head_size(self):
        """Parameters of one head: key, strength, gate, shifts, sharpening."""
        return self.memory_width + 3 + SHIFTS

    @property
    def output_size(self):
        return self.units + self.read_heads * self.memory_width

    @property
    def state_size(self):
        controller_rest = list(self.controller_cell.state_size[1:])
        return [self.output_size, *controller_rest, self.memory_size * self.memory_width,
                self.heads * self.memory_size]

    def build(self, input_shape):
        self.features = input_shape[-1]
        self.controller_cell.build((None, self.features + self.read_heads * self.memory_width))
        parameters = self.heads * self.head_size + self.write_heads * 2 * self.memory_width
        self.head_kernel = self.add_weight(
            name="head_kernel", shape=(self.units, parameters),
            initializer=self.kernel_initializer)
        self.head_bias = self.add_weight(name="head_bias", shape=(parameters,),
                                         initializer="zeros")
        self.initial_read = self.add_weight(
            name="initial_read", shape=(self.read_heads, self.memory_width),
            initializer=initializers.RandomNormal(stddev=0.5))
        self.initial_weighting = self.add_weight(
            name="initial_weighting", shape=(self.heads, self.memory_size),
            initializer=initializers.RandomNormal(stddev=0.5))
        self.built = True

    def input_projection(self):
        """`(W, b)` of `project_inputs`: the controller's kernel rows of `x`, and its bias (None
        without one)."""
        controller = self.controller_cell
        return controller.kernel[:self.features], controller.bias if controller.use_bias \
            else None

    def project_inputs(self, inputs):
        """The controller's input projection of `x` alone, `(..., features) -> (..., gates
        units)`; the part of the previous read vectors is added at each step."""
        return project(inputs, *self.input_projection())

    def call(self, inputs, states, training=False):
        """One step on `(batch, features)` inputs: `(output, new_states)`."""
        return self.step(self.project_inputs(inputs), list(states))

    def step(self, projected, states, recurrent_mask=None):
        n, width, reads = self.memory_size, self.memory_width, self.read_heads
        previous, controller_rest = states[0], list(states[1:-2])
        h_prev, r_prev = previous[:, :self.units], previous[:, self.units:]
        memory = ops.reshape(states[-2], (-1, n, width))  # (batch, N, W)
        w_prev = ops.reshape(states[-1], (-1, self.heads, n))  # (batch, heads, N)

        projected = projected + ops.matmul(r_prev, self.controller_cell.kernel[self.features:])
        h, controller_states = self.controller_cell.step(
            projected, [h_prev, *controller_rest], recurrent_mask)

        p = ops.clip(ops.matmul(h, self.head_kernel) + self.head_bias,
                     -self.clip_value, self.clip_value)
        head_p = ops.reshape(p[:, :self.heads * self.head_size],
                             (-1, self.heads, self.head_size))  # (batch, heads, head_size)
        w = self.address(head_p, memory, w_prev)  # (batch, heads, N)

        read_w = w[:, :reads]
        r = ops.reshape(ops.matmul(read_w, memory), (-1, reads * width))  # (batch, R W)

        write_w = w[:, reads:]  # (batch, heads_w, N)
        erase_add = ops.reshape(p[:, self.heads * self.head_size:],
                                (-1, self.write_heads, 2, width))
        erase = ops.sigmoid(erase_add[:, :, 0])  # (batch, heads_w, W)
        add = ops.tanh(erase_add[:, :, 1])
        keep = ops.prod(1.0 - write_w[..., None] * erase[:, :, None, :], axis=1)  # (batch, N, W)
        memory = memory * keep + ops.matmul(ops.transpose(write_w, (0, 2, 1)), add)

        output = ops.concatenate([h, r], axis=-1)
        new_states = [output, *controller_states[1:], ops.reshape(memory, (-1, n * width)),
                      ops.reshape(w, (-1, self.heads * n))]
        return output, new_states

    def address(self, head_p, memory, w_prev):
        """Every head's weighting `(batch, heads, N)` from its parameters, `M_{t-1}` and its
        previous weighting (the equations of the class docstring)."""
        width = self.memory_width
        k = ops.tanh(head_p[..., :width])  # (batch, heads, W)
        beta = ops.softplus(head_p[..., width:width + 1])  # (batch, heads, 1)
        g = ops.sigmoid(head_p[..., width + 1:width + 2])
        s = ops.softmax(head_p[..., width + 2:width + 2 + SHIFTS], axis=-1)  # (batch, heads, 3)
        gamma = 1.0 + ops.softplus(head_p[..., width + 2 + SHIFTS:])

        dot = ops.matmul(k, ops.transpose(memory, (0, 2, 1)))  # (batch, heads, N)
        norms = (ops.sqrt(ops.sum(ops.square(k), axis=-1, keepdims=True))
                 * ops.sqrt(ops.sum(ops.square(memory), axis=-1))[:, None, :])
        similarity = dot / (norms + self.epsilon)
        w_c = ops.softmax(beta * similarity, axis=-1)
        w_g = g * w_c + (1.0 - g) * w_prev
        # roll by d: w_g[(i - d) mod N] at position i, for d = -1, 0, +1.
        shifted = (s[..., 0:1] * ops.roll(w_g, -1, axis=-1) + s[..., 1:2] * w_g
                   + s[..., 2:3] * ops.roll(w_g, 1, axis=-1))
        sharp = ops.power(shifted + self.epsilon, gamma)
        return sharp / ops.sum(sharp, axis=-1, keepdims=True)

    def get_initial_state(self, batch_size):
        dtype = self.compute_dtype
        controller = [ops.zeros((batch_size, self.units), dtype=dtype)
                      for _ in self.controller_cell.state_size]
        read = ops.reshape(ops.tanh(self.initial_read), (1, -1))
        weighting = ops.reshape(ops.softmax(self.initial_weighting, axis=-1), (1, -1))
        memory = ops.full((batch_size, self.memory_size * self.memory_width), self.memory_init,
                          dtype=dtype)
        return [ops.concatenate([controller[0], ops.repeat(read, batch_size, axis=0)], axis=-1),
                *controller[1:], memory, ops.repeat(weighting, batch_size, axis=0)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "memory_size": self.memory_size,
            "memory_width": self.memory_width,
            "read_heads": self.read_heads,
            "write_heads": self.write_heads,
            "controller": self.controller,
            "clip_value": self.clip_value,
            "memory_init": self.memory_init,
            "epsilon": self.epsilon,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }


def check_no_recurrent_dropout(rate) -> None:
    """Raises ValueError for a non-zero `recurrent_dropout`: the state the time loop would drop
    is the controller's output joined to the read vectors, not a recurrent matmul's input."""
    if rate:
        raise ValueError("`recurrent_dropout` is not supported by the NTM (its recurrent state "
                         "holds the controller output, the read vectors and the memory); use "
                         f"`dropout` on the inputs. Received: recurrent_dropout={rate}")


@keras.saving.register_keras_serializable(package="nlpapps")
class NTM(RNN):
    """Sequence layer of `NTMCell`, driven by the time loop of `RNN` (one compiled
    `tf.while_loop`); its initial states are the cell's learned ones.

    Args:
        units, memory_size, memory_width, read_heads, write_heads, controller, clip_value,
            memory_init, epsilon, kernel_initializer: see `NTMCell`.
        **kwargs: the sequence options of `RNN` (return_sequences, return_state, dropout,
            ...); a non-zero `recurrent_dropout` is refused.

    Example:
        >>> outputs = NTM(8, memory_size=16, memory_width=4, return_sequences=True)(
        ...     keras.ops.zeros((2, 5, 3)))  # (2, 5, 8 + 4)
    """

    def __init__(self, units=100, memory_size=128, memory_width=20, read_heads=1,
                 write_heads=1, controller="lstm", clip_value=20.0, memory_init=1e-6,
                 epsilon=1e-6, kernel_initializer="glorot_uniform", **kwargs):
        check_no_recurrent_dropout(kwargs.get("recurrent_dropout", 0.0))
        super().__init__(**kwargs)
        self.cell = NTMCell(
            units, memory_size=memory_size, memory_width=memory_width, read_heads=read_heads,
            write_heads=write_heads, controller=controller, clip_value=clip_value,
            memory_init=memory_init, epsilon=epsilon, kernel_initializer=kernel_initializer,
            dtype=self.dtype_policy, name="cell")

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)
