"""Backpropagation through time written out for the LSTM and GRU recurrences.

TensorFlow differentiates the step loop of `rnn.recurrence` op by op. Its backward loop pops
every intermediate of every step from a stack; it multiplies the gradient by `U^T` as
`matmul(dz, U, transpose_b=True)`, which on a CPU transposes U at every call; and it adds each
step's share of the recurrent kernel's gradient, `h_{t-1}^T dz_t`, into a `(units, gates *
units)` accumulator: a second matmul per step and a pass over the whole kernel.

`sequence` runs the same recurrence with its gradient written by hand (`tf.custom_gradient`):

- the forward loop saves one tensor per step, the gate activations (and `tanh(c_t)` for the
  LSTM), besides the states it returns;
- the backward loop, from the last step to the first, computes the gradient of the step's
  pre-activations `dz_t` from them and passes `dz_t U^T` back to `h_{t-1}`: one matmul per
  step, by a `U^T` transposed once before the loop;
- the recurrent kernel's gradient is then one matmul over every step at once,

      dU = sum_t h_in_{t-1}^T dz_t = H_in^T dZ      (H_in, dZ flattened to (time * batch, .)),

  and `dZ` is the gradient of the input projection `z_x = x W + b`. The layers let each step
  project its own input inside the loop (`projection`): the projections of the next steps
  then run beside the current step's recurrence on a multi-core CPU, as in Keras's loop, and
  their gradients are again one op over every step each,

      dX = dZ W^T,   dW = X^T dZ,   db = sum_t dZ_t.

Per step, with `a' = a (1 - a)` for a sigmoid `a` and `1 - a^2` for a tanh:

    LSTM, a = [i, f, g, o], tau = tanh(c_t):
        dc  = dc_{t+1 -> t} + dh o (1 - tau^2)
        dz  = [dc g i', dc c_{t-1} f', dc i g', dh tau o']
        dh_{t-1} = dz U^T,   dc_{t-1} = dc f

    GRU, a = [z, r, n], reset after the matmul (rec = h_in U + b'):
        dn~ = dh (1 - z) n',   dz~ = dh (h_{t-1} - n) z',   dr~ = dn~ rec_n r'
        d(x W + b) = [dz~, dr~, dn~],   d rec = [dz~, dr~, dn~ r]
        dh_{t-1} = dh z + d rec U^T,   db' = sum_t d rec

    GRU, reset before the matmul (n = tanh(x W_n + b_n + (r h_in) U_n)):
        dn~, dz~ as above,   d(r h_in) = dn~ U_n^T,   dr~ = d(r h_in) h_in r'
        dh_{t-1} = dh z + d(r h_in) r + [dz~, dr~] U_zr^T
        dU = [H_in^T [dz~, dr~],  (R H_in)^T dn~]

A masked step keeps the states and the last output as they were, so its gradient passes them
through unchanged and gives the step's gates none; recurrent dropout multiplies `h_{t-1}` by
its mask inside the matmul, and the gradient by the same mask. The values are those of the
step loop; `tests/layers/test_bptt.py` checks the gradients against TensorFlow's own
differentiation of the loop and against Keras's layers.

Only the cells' default activations (tanh and sigmoid) have their derivatives written here;
`applies` says whether a cell can use it, and the sequence layer differentiates its loop
otherwise.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from nlpapps.layers.cell import project as cell_projection


def applies(cell) -> bool:
    """Whether `sequence` computes this cell: an `LSTMCell` or `GRUCell` of nlpapps (their
    classes name their form in `written_gradient`; a subclass, which may change the step, does
    not inherit it) with tanh and sigmoid activations."""
    return (type(cell).__dict__.get("written_gradient") in FORMS
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid)


def sequence(cell, projected, initial_states, mask=None, recurrent_mask=None,
             zero_output_for_mask=False, projection=None):
    """The recurrence of `cell` over time-major inputs, differentiated as the module says.

    Args:
        cell: a cell for which `applies(cell)` holds, built.
        projected: `(time, batch, gates * units)`, the cell's `project_inputs` of every step;
            with `projection`, the inputs themselves `(time, batch, features)`.
        initial_states: the cell's states, `(batch, units)` each.
        mask: optional `(time, batch)` bool; a masked step keeps the states and repeats the
            last output (or outputs zeros, `zero_output_for_mask`).
        recurrent_mask: optional `(batch, units)` dropout mask on `h_{t-1}` in the matmul.
        projection: optional `(W, b)` (the cell's `input_projection()`): each step then
            projects its own input, `x_t W + b`, inside the loop. On a CPU the projections of
            the next steps then run on another core beside the current step's recurrence, as
            in Keras's loop, instead of all before it; their gradients, `dX = dZ W^T`,
            `dW = X^T dZ` and `db = sum dZ`, are each one matmul or sum over every step.

    Returns:
        `(last_output, outputs, final_states)`: `(batch, units)`, `(time, batch, units)` and
        the list of states, as `rnn.recurrence` returns them.
    """
    math = FORMS[type(cell).written_gradient](cell)
    weights = [tf.cast(w, projected.dtype) for w in math.weights()]
    count, width = len(initial_states), len(weights)
    projections = [] if projection is None else \
        [tf.cast(w, projected.dtype) for w in projection if w is not None]  # W (and b)

    @tf.custom_gradient
    def run(inputs, *tensors):
        states0 = list(tensors[:count])
        weights = list(tensors[count:count + width])
        project = None
        if projection is not None:
            kernel, *bias = tensors[count + width:]
            project = functools.partial(cell_projection, kernel=kernel,
                                        bias=bias[0] if bias else None)
        outputs, last_output, states, saved, history = _forward(
            math, weights, inputs, states0, mask, recurrent_mask, zero_output_for_mask,
            project)

        def gradient(d_outputs, d_last, *d_states):
            d_projected, *rest = _backward(
                math, weights, states0, saved, history, mask, recurrent_mask,
                zero_output_for_mask, d_outputs, d_last, list(d_states))
            if projection is None:
                return (d_projected, *rest)
            d_kernel = tf.matmul(_flat(inputs), _flat(d_projected), transpose_a=True)
            d_bias = [tf.reduce_sum(d_projected, axis=[0, 1])] if bias else []
            return (tf.matmul(d_projected, kernel, transpose_b=True), *rest, d_kernel, *d_bias)

        return (outputs, last_output, *states), gradient

    outputs, last_output, *states = run(projected, *initial_states, *weights, *projections)
    return last_output, outputs, states


def _forward(math, weights, projected, states0, mask, recurrent_mask, zero_output_for_mask,
             project=None):
    """The step loop, keeping every step's saved activations and states; `project` maps each
    step's input to its projection where `projected` holds the inputs."""
    steps = tf.shape(projected)[0]
    dtype = projected.dtype
    inputs_ta = tf.TensorArray(dtype, size=steps, element_shape=projected.shape[1:])
    inputs_ta = inputs_ta.unstack(projected)
    mask_ta = None if mask is None else \
        tf.TensorArray(tf.bool, size=steps, element_shape=mask.shape[1:]).unstack(mask)
    saved_ta = tf.TensorArray(dtype, size=steps, element_shape=(
        states0[0].shape[0], math.saved_width(states0[0].shape[-1])))
    states_tas = [tf.TensorArray(dtype, size=steps, element_shape=s.shape) for s in states0]
    outputs_ta = tf.TensorArray(dtype, size=steps, element_shape=states0[0].shape)
    zeros = tf.zeros_like(states0[0])
    kernels = math.forward_kernels(*weights)  # sliced once, outside the loop

    def body(t, states, last_output, saved_ta, states_tas, outputs_ta):
        h_in = states[0] if recurrent_mask is None else states[0] * recurrent_mask
        step_input = inputs_ta.read(t) if project is None else project(inputs_ta.read(t))
        new_states, saved = math.forward(step_input, h_in, states, kernels)
        if mask_ta is None:  # the outputs are the h states
            last_output = new_states[0]
        else:
            keep = mask_ta.read(t)[:, None]  # (batch, 1)
            outputs_ta = outputs_ta.write(t, tf.where(
                keep, new_states[0], zeros if zero_output_for_mask else last_output))
            last_output = tf.where(keep, new_states[0], last_output)
            new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
        return (t + 1, new_states, last_output, saved_ta.write(t, saved),
                [ta.write(t, s) for ta, s in zip(states_tas, new_states)], outputs_ta)

    _, states, last_output, saved_ta, states_tas, outputs_ta = tf.while_loop(
        lambda t, *_: t < steps, body,
        (tf.constant(0), list(states0), zeros, saved_ta, states_tas, outputs_ta),
        maximum_iterations=steps)
    history = [ta.stack() for ta in states_tas]  # (time, batch, units) each
    outputs = history[0] if mask_ta is None else outputs_ta.stack()
    return outputs, last_output, states, saved_ta.stack(), history


def _backward(math, weights, states0, saved, history, mask, recurrent_mask,
              zero_output_for_mask, d_outputs, d_last, d_states):
    """The gradients of `sequence`'s inputs: projected, initial states, weights."""
    steps = tf.shape(saved)[0]
    dtype = saved.dtype
    d_states = [tf.zeros_like(s) if d is None else d for s, d in zip(states0, d_states)]
    d_last = tf.zeros_like(states0[0]) if d_last is None else d_last
    d_outputs = tf.zeros_like(history[0]) if d_outputs is None else d_outputs
    # The states before each step, (time, batch, units) each.
    previous = [tf.concat([s0[None], h[:-1]], axis=0) for s0, h in zip(states0, history)]
    h_in = previous[0] if recurrent_mask is None else previous[0] * recurrent_mask

    def unstacked(tensor):
        return tf.TensorArray(dtype, size=steps, element_shape=tensor.shape[1:]).unstack(tensor)

    saved_ta, d_outputs_ta, h_in_ta = unstacked(saved), unstacked(d_outputs), unstacked(h_in)
    previous_tas = [unstacked(p) for p in previous]
    keep_ta = None if mask is None else unstacked(tf.cast(mask, dtype)[:, :, None])
    d_projected_ta = tf.TensorArray(dtype, size=steps, element_shape=saved.shape[1:2] + (
        weights[0].shape[-1],))
    if mask is None:  # the last output is h_T
        d_states[0] += d_last
    # Transposed once, outside the loop: a matmul with `transpose_b` transposes at every call.
    kernels = math.backward_kernels(*weights)

    def body(t, d_states, d_last, d_projected_ta):
        d_output = d_outputs_ta.read(t)
        if keep_ta is None:
            d_new = [d_states[0] + d_output, *d_states[1:]]
        else:
            keep = keep_ta.read(t)  # (batch, 1): 1 at a real step, 0 at a masked one
            d_new = [keep * (d_states[0] + d_output + d_last),
                     *[keep * d for d in d_states[1:]]]
            passed = [(1.0 - keep) * d for d in d_states]
            d_last = (1.0 - keep) * (d_last if zero_output_for_mask else d_last + d_output)
        d_projected, d_previous, d_h_in = math.backward(
            saved_ta.read(t), d_new, lambda i: previous_tas[i].read(t),
            lambda: h_in_ta.read(t), kernels)
        if recurrent_mask is not None:
            d_h_in = d_h_in * recurrent_mask
        d_previous[0] = d_h_in if d_previous[0] is None else d_previous[0] + d_h_in
        if keep_ta is not None:
            d_previous = [d + p for d, p in zip(d_previous, passed)]
        return t - 1, d_previous, d_last, d_projected_ta.write(t, d_projected)

    _, d_initial, _, d_projected_ta = tf.while_loop(
        lambda t, *_: t >= 0, body, (steps - 1, d_states, d_last, d_projected_ta),
        maximum_iterations=steps)
    d_projected = d_projected_ta.stack()  # (time, batch, gates * units)
    d_weights = math.weight_gradients(h_in, d_projected, saved, weights)
    return (d_projected, *d_initial, *d_weights)


def _flat(tensor):
    """`(time, batch, n) -> (time * batch, n)`."""
    return tf.reshape(tensor, [-1, tensor.shape[-1]])


def _sigmoid_slope(a):
    return a * (1.0 - a)


def _tanh_slope(a):
    return 1.0 - a * a


class _LSTM:
    """The LSTM cell's step and its gradient (`lstm.LSTMCell`); saves `[i, f, g, o, tanh c]`."""

    def __init__(self, cell):
        self.cell = cell

    def weights(self):
        return [tf.convert_to_tensor(self.cell.recurrent_kernel)]

    def saved_width(self, units):
        return 5 * units

    def forward_kernels(self, kernel):
        return kernel

    def backward_kernels(self, kernel):
        return tf.transpose(kernel)

    def forward(self, projected, h_in, states, kernel):
        units = kernel.shape[0]
        z = projected + tf.matmul(h_in, kernel)  # (batch, 4 units)
        # One sigmoid over all four blocks (the candidate's is replaced by its tanh): fewer,
        # larger ops per step.
        i, f, _, o = tf.split(tf.sigmoid(z), 4, axis=-1)
        g = tf.tanh(z[:, 2 * units:3 * units])
        c = f * states[1] + i * g
        tanh_c = tf.tanh(c)
        return [o * tanh_c, c], tf.concat([i, f, g, o, tanh_c], axis=-1)

    def backward(self, saved, d_new, previous, h_in, kernel_t):
        units = kernel_t.shape[1]
        gates, tanh_c = saved[:, :4 * units], saved[:, 4 * units:]
        i, f, g, o = tf.split(gates, 4, axis=-1)
        d_h, d_c = d_new
        d_c = d_c + d_h * o * _tanh_slope(tanh_c)
        # d(i, f, g, o), then times each block's slope: a (1 - a), or 1 - a^2 for g.
        d_gates = tf.concat([d_c * g, d_c * previous(1), d_c * i, d_h * tanh_c], axis=-1)
        tanh_block = np.repeat([0.0, 0.0, 1.0, 0.0], units)  # 1 over g's block
        d_z = d_gates * (tf.constant(tanh_block, gates.dtype)
                         + gates * (tf.constant(1.0 - tanh_block, gates.dtype) - gates))
        return d_z, [None, d_c * f], tf.matmul(d_z, kernel_t)

    def weight_gradients(self, h_in, d_projected, saved, weights):
        return [tf.matmul(_flat(h_in), _flat(d_projected), transpose_a=True)]


class _GRU:
    """The GRU cell's step and its gradient (`gru.GRUCell`, either `reset_after`); saves
    `[z, r, n]`, and the recurrent part of the candidate's pre-activation when the reset
    gate applies after the matmul."""

    def __init__(self, cell):
        self.cell = cell
        self.reset_after = cell.reset_after
        self.recurrent_bias = cell.reset_after and cell.use_bias

    def weights(self):
        weights = [tf.convert_to_tensor(self.cell.recurrent_kernel)]
        if self.recurrent_bias:
            weights.append(tf.convert_to_tensor(self.cell.bias))
        return weights

    def saved_width(self, units):
        return (4 if self.reset_after else 3) * units

    def forward_kernels(self, kernel, bias=None):
        """`(U, b')` with the reset after the matmul, `(U_zr, U_n)` before it."""
        if self.reset_after:
            return kernel, None if bias is None else bias[1]
        units = kernel.shape[0]
        return kernel[:, :2 * units], kernel[:, 2 * units:]

    def backward_kernels(self, kernel, bias=None):
        """`(U^T,)` with the reset after the matmul, `(U_zr^T, U_n^T)` before it."""
        if self.reset_after:
            return (tf.transpose(kernel),)
        gates_kernel, candidate_kernel = self.forward_kernels(kernel)
        return tf.transpose(gates_kernel), tf.transpose(candidate_kernel)

    def forward(self, projected, h_in, states, kernels):
        x_z, x_r, x_n = tf.split(projected, 3, axis=-1)
        if self.reset_after:
            kernel, bias = kernels
            recurrent = tf.matmul(h_in, kernel)  # (batch, 3 units)
            if bias is not None:
                recurrent = recurrent + bias
            r_z, r_r, r_n = tf.split(recurrent, 3, axis=-1)
            z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
            n = tf.tanh(x_n + r * r_n)
            saved = tf.concat([z, r, n, r_n], axis=-1)
        else:
            gates_kernel, candidate_kernel = kernels
            gates = tf.matmul(h_in, gates_kernel)  # (batch, 2 units)
            r_z, r_r = tf.split(gates, 2, axis=-1)
            z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
            n = tf.tanh(x_n + tf.matmul(r * h_in, candidate_kernel))
            saved = tf.concat([z, r, n], axis=-1)
        return [z * states[0] + (1.0 - z) * n], saved

    def backward(self, saved, d_new, previous, h_in, kernels_t):
        (d_h,) = d_new
        if self.reset_after:
            z, r, n, r_n = tf.split(saved, 4, axis=-1)
        else:
            z, r, n = tf.split(saved, 3, axis=-1)
        d_n = d_h * (1.0 - z) * _tanh_slope(n)
        d_z = d_h * (previous(0) - n) * _sigmoid_slope(z)
        if self.reset_after:
            d_r = d_n * r_n * _sigmoid_slope(r)
            d_recurrent = tf.concat([d_z, d_r, d_n * r], axis=-1)
            d_h_in = tf.matmul(d_recurrent, kernels_t[0])
        else:
            gates_kernel_t, candidate_kernel_t = kernels_t
            d_reset_h = tf.matmul(d_n, candidate_kernel_t)
            h_in = h_in()
            d_r = d_reset_h * h_in * _sigmoid_slope(r)
            d_h_in = d_reset_h * r + tf.matmul(tf.concat([d_z, d_r], axis=-1), gates_kernel_t)
        return tf.concat([d_z, d_r, d_n], axis=-1), [d_h * z], d_h_in

    def weight_gradients(self, h_in, d_projected, saved, weights):
        units = weights[0].shape[0]
        r = saved[:, :, units:2 * units]
        if self.reset_after:
            d_recurrent = d_projected * tf.concat(
                [tf.ones_like(r), tf.ones_like(r), r], axis=-1)
            d_kernel = tf.matmul(_flat(h_in), _flat(d_recurrent), transpose_a=True)
            if not self.recurrent_bias:
                return [d_kernel]
            d_bias = tf.reduce_sum(_flat(d_recurrent), axis=0)
            return [d_kernel, tf.stack([tf.zeros_like(d_bias), d_bias])]
        d_gates = tf.matmul(_flat(h_in), _flat(d_projected[:, :, :2 * units]),
                            transpose_a=True)
        d_candidate = tf.matmul(_flat(r * h_in), _flat(d_projected[:, :, 2 * units:]),
                                transpose_a=True)
        return [tf.concat([d_gates, d_candidate], axis=-1)]


# The forms `applies` knows, by the `written_gradient` of the cell classes.
FORMS = {"lstm": _LSTM, "gru": _GRU}
