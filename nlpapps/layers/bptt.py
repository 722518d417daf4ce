"""Backpropagation through time written out for the LSTM and GRU recurrences.

TensorFlow differentiates the step loop of `rnn.recurrence` op by op. Its backward loop pops
every intermediate of every step from a stack; it multiplies the gradient by `U^T` as
`matmul(dz, U, transpose_b=True)`, which on a CPU transposes U at every call; and it adds each
step's share of the recurrent kernel's gradient, `h_{t-1}^T dz_t`, into a `(units, gates *
units)` accumulator: a second matmul per step and a pass over the whole kernel.

`sequence` runs the same recurrence with its gradient written by hand (`tf.custom_gradient`):

- the forward loop writes, per step, what the backward step needs (the gates, or for the LSTM
  the factors its gradients are multiplied by) and the states into `TensorArray`s, which the
  backward loop reads in place (stacking them and splitting them again would copy them twice);
- the backward loop, from the last step to the first, computes the gradient of the step's
  pre-activations `dz_t` from them and passes `dz_t U^T` back to `h_{t-1}`: one matmul per
  step, by a `U^T` transposed once before the loop;
- the recurrent kernel's gradient is a sum over the steps,

      dU = sum_t h_in_{t-1}^T dz_t = H_in^T dZ      (H_in, dZ flattened to (time * batch, .)).

  For a kernel of up to 2^18 weights (`sums_in_loop`: LSTM and GRU 256 and narrower), the
  backward loop adds each step's term as it goes: those small matmuls run on another core
  beside the next steps' gradients. A wider kernel takes one matmul over every step after the
  loop; a step's term would be as large as the kernel, and adding them up the slower part.

`dZ` is the gradient of the input projection `z_x = x W + b`. The layers let each step project
its own input inside the loop (`projection`): the projections of the next steps then run
beside the current step's recurrence on a multi-core CPU, as in Keras's loop, and their
gradients are one op over every step each, after the loop (adding `dW` up in the loop as well
left the other core too little time for `dU`):

    dX = dZ W^T,   dW = X^T dZ,   db = sum_t dZ_t.

Per step, with `a' = a (1 - a)` for a sigmoid `a` and `1 - a^2` for a tanh:

    LSTM, a = [i, f, g, o], tau = tanh(c_t):
        dc  = dc_{t+1 -> t} + dh o (1 - tau^2)
        dz  = [dc g i', dc c_{t-1} f', dc i g', dh tau o'] = [dc, dc, dc, dh] k
        dh_{t-1} = dz U^T,   dc_{t-1} = dc f
      (the forward step computes `k` and `o (1 - tau^2)`, beside its recurrence: the
      backward step is then three ops and the matmul)

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
        forward = _forward(math, weights, inputs, states0, mask, recurrent_mask,
                           zero_output_for_mask, project)
        outputs, last_output, states = forward[:3]

        def gradient(d_outputs, d_last, *d_states):
            d_projected, *rest = _backward(
                math, weights, states0, *forward[3:], mask, recurrent_mask,
                zero_output_for_mask, d_outputs, d_last, list(d_states))
            if projection is None:
                return (d_projected, *rest)
            d_kernel = tf.matmul(_flat(inputs), _flat(d_projected), transpose_a=True)
            d_bias = [tf.reduce_sum(_flat(d_projected), axis=0)] if bias else []
            return (tf.matmul(d_projected, kernel, transpose_b=True), *rest, d_kernel, *d_bias)

        return (outputs, last_output, *states), gradient

    outputs, last_output, *states = run(projected, *initial_states, *weights, *projections)
    return last_output, outputs, states


def _forward(math, weights, projected, states0, mask, recurrent_mask, zero_output_for_mask,
             project=None):
    """The step loop. Returns the outputs, the last output, the final states, and the
    `TensorArray`s the backward loop reads: what `math.forward` saves at each step, and the
    states (index 0 the initial states, `t + 1` those after step t). `project` maps each
    step's input to its projection where `projected` holds the inputs."""
    steps = tf.shape(projected)[0]
    dtype = projected.dtype
    inputs_ta = tf.TensorArray(dtype, size=steps, element_shape=projected.shape[1:])
    inputs_ta = inputs_ta.unstack(projected)
    mask_ta = None if mask is None else \
        tf.TensorArray(tf.bool, size=steps, element_shape=mask.shape[1:]).unstack(mask)
    # Read more than once (an eager array forgets what is read, by default).
    saved_tas = [tf.TensorArray(dtype, size=steps, clear_after_read=False,
                                element_shape=(states0[0].shape[0], width))
                 for width in math.saved_widths(states0[0].shape[-1])]
    states_tas = [tf.TensorArray(dtype, size=steps + 1, clear_after_read=False,
                                 element_shape=s.shape).write(0, s) for s in states0]
    outputs_ta = tf.TensorArray(dtype, size=steps, element_shape=states0[0].shape)
    zeros = tf.zeros_like(states0[0])
    kernels = math.forward_kernels(*weights)  # sliced once, outside the loop

    def body(t, states, last_output, saved_tas, states_tas, outputs_ta):
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
        return (t + 1, new_states, last_output,
                [ta.write(t, s) for ta, s in zip(saved_tas, saved)],
                [ta.write(t + 1, s) for ta, s in zip(states_tas, new_states)], outputs_ta)

    _, states, last_output, saved_tas, states_tas, outputs_ta = tf.while_loop(
        lambda t, *_: t < steps, body,
        (tf.constant(0), list(states0), zeros, saved_tas, states_tas, outputs_ta),
        maximum_iterations=steps)
    # The outputs are the h states after each step, unless masked steps repeated an output.
    outputs = states_tas[0].stack()[1:] if mask_ta is None else outputs_ta.stack()
    return outputs, last_output, states, saved_tas, states_tas


def _backward(math, weights, states0, saved_tas, states_tas, mask, recurrent_mask,
              zero_output_for_mask, d_outputs, d_last, d_states):
    """The gradients of `sequence`'s inputs, projected, initial states and weights, from what
    `_forward` returns. The recurrent weights' gradients are added up in the loop where
    `sums_in_loop` holds, else after it (the module's docstring)."""
    steps = saved_tas[0].size()
    dtype = saved_tas[0].dtype
    d_states = [tf.zeros_like(s) if d is None else d for s, d in zip(states0, d_states)]
    d_last = tf.zeros_like(states0[0]) if d_last is None else d_last
    if d_outputs is None:
        d_outputs = tf.zeros(tf.concat([[steps], tf.shape(states0[0])], axis=0), dtype)

    def unstacked(tensor):
        return tf.TensorArray(dtype, size=steps, element_shape=tensor.shape[1:]).unstack(tensor)

    d_outputs_ta = unstacked(d_outputs)
    keep_ta = None if mask is None else unstacked(tf.cast(mask, dtype)[:, :, None])
    d_projected_ta = tf.TensorArray(dtype, size=steps, element_shape=(
        states0[0].shape[0], weights[0].shape[-1]))
    if mask is None:  # the last output is h_T
        d_states[0] += d_last
    # Transposed once, outside the loop: a matmul with `transpose_b` transposes at every call.
    kernels = math.backward_kernels(*weights)

    def h_in(t):  # h_{t-1} as the step's matmul saw it
        h = states_tas[0].read(t)
        return h if recurrent_mask is None else h * recurrent_mask

    in_loop = sums_in_loop(weights[0])
    totals = math.zero_terms(weights) if in_loop else []

    def body(t, d_states, d_last, d_projected_ta, totals):
        d_output = d_outputs_ta.read(t)
        if keep_ta is None:
            d_new = [d_states[0] + d_output, *d_states[1:]]
        else:
            keep = keep_ta.read(t)  # (batch, 1): 1 at a real step, 0 at a masked one
            d_new = [keep * (d_states[0] + d_output + d_last),
                     *[keep * d for d in d_states[1:]]]
            passed = [(1.0 - keep) * d for d in d_states]
            d_last = (1.0 - keep) * (d_last if zero_output_for_mask else d_last + d_output)
        d_projected, d_previous, d_h_in, terms = math.backward(
            [ta.read(t) for ta in saved_tas], d_new, lambda i: states_tas[i].read(t),
            lambda: h_in(t), kernels, terms=in_loop)
        if recurrent_mask is not None:
            d_h_in = d_h_in * recurrent_mask
        d_previous[0] = d_h_in if d_previous[0] is None else d_previous[0] + d_h_in
        if keep_ta is not None:
            d_previous = [d + p for d, p in zip(d_previous, passed)]
        return (t - 1, d_previous, d_last, d_projected_ta.write(t, d_projected),
                [total + term for total, term in zip(totals, terms)])

    _, d_initial, _, d_projected_ta, totals = tf.while_loop(
        lambda t, *_: t >= 0, body, (steps - 1, d_states, d_last, d_projected_ta, totals),
        maximum_iterations=steps)
    d_projected = d_projected_ta.stack()  # (time, batch, gates * units)
    if in_loop:
        return (d_projected, *d_initial, *math.weight_gradients(totals))
    h_states = states_tas[0].stack()[:-1]  # the h states before each step
    h_in_all = h_states if recurrent_mask is None else h_states * recurrent_mask
    d_weights = math.weight_gradients_of_every_step(h_in_all, d_projected, saved_tas, weights)
    return (d_projected, *d_initial, *d_weights)


# The largest recurrent kernel (in weights) whose gradient the backward loop adds up step by
# step; a larger one is one matmul over every step after the loop. LSTM 256 has 2^18 weights,
# GRU 256 three quarters of that: adding up in the loop trains both GRU forms and the LSTM
# 1.05-1.06x faster at 256 and 1.09-1.14x at 128; at 512 (2^20 weights for the LSTM),
# 0.96-1.01x (`python scripts/benchmark.py sums`, batch 32).
SUMS_IN_LOOP_MAX_KERNEL = 2 ** 18


def sums_in_loop(recurrent_kernel) -> bool:
    """Whether the backward loop adds the recurrent kernel's gradient up step by step: a
    `(units, gates * units)` kernel of at most `SUMS_IN_LOOP_MAX_KERNEL` weights."""
    return recurrent_kernel.shape[0] * recurrent_kernel.shape[1] <= SUMS_IN_LOOP_MAX_KERNEL


def _flat(tensor):
    """`(time, batch, n) -> (time * batch, n)`."""
    return tf.reshape(tensor, [-1, tensor.shape[-1]])


def _sigmoid_grad(a, d):
    """`d a (1 - a)`: the gradient of `x` from that of `a = sigmoid(x)`."""
    return tf.raw_ops.SigmoidGrad(y=a, dy=d)


def _tanh_grad(a, d):
    """`d (1 - a^2)`: the gradient of `x` from that of `a = tanh(x)`."""
    return tf.raw_ops.TanhGrad(y=a, dy=d)


class _LSTM:
    """The LSTM cell's step and its gradient (`lstm.LSTMCell`); saves `[i, f, g, o, tanh c]`."""

    def __init__(self, cell):
        self.cell = cell

    def weights(self):
        return [tf.convert_to_tensor(self.cell.recurrent_kernel)]

    def saved_widths(self, units):
        return [4 * units, units, units]

    def forward_kernels(self, kernel):
        return kernel

    def backward_kernels(self, kernel):
        return tf.transpose(kernel)

    def forward(self, projected, h_in, states, kernel):
        """`([h, c], saved)`, saved `[k, o (1 - tanh^2 c), f]` with
        `k = [g i', c_{t-1} f', i g', tanh(c) o']`: what the backward step multiplies its
        gradients by. Computed here, beside the step's recurrence, they leave the backward
        step three ops, `dc += dh o (1 - tanh^2 c)`, `dz = [dc, dc, dc, dh] k` and the
        matmul, before the next step can start."""
        units = kernel.shape[0]
        z = projected + tf.matmul(h_in, kernel)  # (batch, 4 units)
        # One sigmoid over all four blocks (the candidate's is not used): fewer ops per step.
        i, f, _, o = tf.split(tf.sigmoid(z), 4, axis=-1)
        g = tf.tanh(z[:, 2 * units:3 * units])
        c = f * states[1] + i * g
        tanh_c = tf.tanh(c)
        k = tf.concat([_sigmoid_grad(i, g), _sigmoid_grad(f, states[1]), _tanh_grad(g, i),
                       _sigmoid_grad(o, tanh_c)], axis=-1)
        return [o * tanh_c, c], [k, _tanh_grad(tanh_c, o), f]

    def backward(self, saved, d_new, previous, h_in, kernel_t, terms=False):
        """`(dz, [dh_{t-1} but its matmul part, dc_{t-1}], dz U^T, terms)`: with `terms`,
        the step's term of the recurrent kernel's gradient `[h_in^T dz]` (`h_in()` is
        `h_{t-1}` as the matmul saw it)."""
        k, d_c_of_h, f = saved
        d_h, d_c = d_new
        d_c = d_c + d_h * d_c_of_h
        d_z = tf.concat([d_c, d_c, d_c, d_h], axis=-1) * k
        return (d_z, [None, d_c * f], tf.matmul(d_z, kernel_t),
                [tf.matmul(h_in(), d_z, transpose_a=True)] if terms else [])

    def zero_terms(self, weights):
        return [tf.zeros_like(weights[0])]

    def weight_gradients(self, totals):
        """The weights' gradients from the sums of `backward`'s terms."""
        return totals

    def weight_gradients_of_every_step(self, h_in, d_projected, saved_tas, weights):
        """The weights' gradients from every step's `h_in` and `dz` at once."""
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

    def saved_widths(self, units):
        """`[z, r, n]`, and the recurrent part of the candidate's pre-activation `rec_n` with
        the reset after the matmul."""
        return [units] * (4 if self.reset_after else 3)

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
            saved = [z, r, n, r_n]
        else:
            gates_kernel, candidate_kernel = kernels
            gates = tf.matmul(h_in, gates_kernel)  # (batch, 2 units)
            r_z, r_r = tf.split(gates, 2, axis=-1)
            z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
            n = tf.tanh(x_n + tf.matmul(r * h_in, candidate_kernel))
            saved = [z, r, n]
        return [z * states[0] + (1.0 - z) * n], saved

    def backward(self, saved, d_new, previous, h_in, kernels_t, terms=False):
        """As `_LSTM.backward`; the terms are `h_in^T d rec` (and `sum d rec`, the recurrent
        bias's) with the reset after the matmul, `[h_in^T [dz~, dr~], (r h_in)^T dn~]`
        before it."""
        (d_h,) = d_new
        z, r, n = saved[:3]
        d_n = _tanh_grad(n, d_h * (1.0 - z))
        d_z = _sigmoid_grad(z, d_h * (previous(0) - n))
        if self.reset_after:
            d_r = _sigmoid_grad(r, d_n * saved[3])
            d_recurrent = tf.concat([d_z, d_r, d_n * r], axis=-1)
            d_h_in = tf.matmul(d_recurrent, kernels_t[0])
            step_terms = [tf.matmul(h_in(), d_recurrent, transpose_a=True)] if terms else []
            if terms and self.recurrent_bias:
                step_terms.append(tf.reduce_sum(d_recurrent, axis=0))
        else:
            gates_kernel_t, candidate_kernel_t = kernels_t
            d_reset_h = tf.matmul(d_n, candidate_kernel_t)
            h_in = h_in()
            d_r = _sigmoid_grad(r, d_reset_h * h_in)
            d_gates = tf.concat([d_z, d_r], axis=-1)
            d_h_in = d_reset_h * r + tf.matmul(d_gates, gates_kernel_t)
            step_terms = [tf.matmul(h_in, d_gates, transpose_a=True),
                          tf.matmul(r * h_in, d_n, transpose_a=True)] if terms else []
        return tf.concat([d_z, d_r, d_n], axis=-1), [d_h * z], d_h_in, step_terms

    def zero_terms(self, weights):
        units = weights[0].shape[0]
        if self.reset_after:
            return [tf.zeros_like(weights[0])] + (
                [tf.zeros_like(weights[1][1])] if self.recurrent_bias else [])
        return [tf.zeros_like(weights[0][:, :2 * units]),
                tf.zeros_like(weights[0][:, 2 * units:])]

    def weight_gradients(self, totals):
        if not self.reset_after:  # [U_zr, U_n]
            return [tf.concat(totals, axis=-1)]
        if not self.recurrent_bias:
            return totals
        d_kernel, d_bias = totals  # the recurrent row of the bias `(2, 3 units)`
        return [d_kernel, tf.stack([tf.zeros_like(d_bias), d_bias])]

    def weight_gradients_of_every_step(self, h_in, d_projected, saved_tas, weights):
        units = weights[0].shape[0]
        r = saved_tas[1].stack()  # (time, batch, units)
        if self.reset_after:
            d_recurrent = d_projected * tf.concat(
                [tf.ones_like(r), tf.ones_like(r), r], axis=-1)
            totals = [tf.matmul(_flat(h_in), _flat(d_recurrent), transpose_a=True)]
            if self.recurrent_bias:
                totals.append(tf.reduce_sum(_flat(d_recurrent), axis=0))
            return self.weight_gradients(totals)
        return self.weight_gradients([
            tf.matmul(_flat(h_in), _flat(d_projected[:, :, :2 * units]), transpose_a=True),
            tf.matmul(_flat(r * h_in), _flat(d_projected[:, :, 2 * units:]),
                      transpose_a=True)])


# The forms `applies` knows, by the `written_gradient` of the cell classes.
FORMS = {"lstm": _LSTM, "gru": _GRU}
