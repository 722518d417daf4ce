"""The time loop shared by every recurrent layer: masking, go_backwards, states, dropout.

A cell of nlpapps splits its work in two:

- `project_inputs(x)`: the input part of every gate, `x W + b`, which does not depend on the
  previous state.
- `step(projected_t, states, recurrent_mask)`: the recurrent part, one fused matmul of the
  previous state with the recurrent kernel per time step.

`RNN` runs `step` in one compiled `tf.while_loop`, so a step does no per-step Python; what a
step reads of the weights is read once, outside the loop (`loop_step`). Each step projects its
own input inside the loop, as Keras's loop does: on a CPU the projections of the next steps
then run on another core beside the current step's recurrent matmul instead of all of them
before the loop. Two cases run `project_inputs` once for all time steps instead, one large
matmul before the loop (`projects_inside`): a batch known to be small when the loop is traced
(fewer than `PROJECT_FIRST_BELOW` rows: a batch-1 export, say), and an input kernel too large
to be read again at every step (more than `PROJECT_INSIDE_MAX_KERNEL` weights). The loop writes
into a `TensorArray` of fixed element shape, which TFLite lowers to its built-in ops. In
training, the LSTM and GRU cells run the loop of `bptt.py` instead, under the same choice of
where to project, whose gradient through time is written out (the same values, fewer and
cheaper ops per step). On a GPU the LSTM and GRU layers run cuDNN's fused kernel instead where
their configuration allows it, with the same results (`cudnn.py`).
"""

import math

import keras
import tensorflow as tf
from keras import ops, regularizers
from keras.src.utils.tracking import no_automatic_dependency_tracking

from nlpapps.layers import bptt, cudnn
from nlpapps.layers.cell import check_dropout, project

# The smallest batch whose steps each project their own input inside the inference loop; a
# smaller batch known when traced is projected in one matmul before it (faster below 8 rows:
# `docs/benchmarks.md`, "Inference at a batch").
PROJECT_FIRST_BELOW = 8
# The largest input kernel (in weights) that each step reads again inside the loop: a larger
# one, read from memory at every step, makes the loop slower than one matmul before it (at
# width 1024, 4M weights for an LSTM: 1.4-2.0x slower at 8 rows, 1.1x at 32; at 512, 1M,
# level or faster: `docs/benchmarks.md`, "Wide kernels projected first").
PROJECT_INSIDE_MAX_KERNEL = 2 ** 21


def recurrence(step, projected, initial_states, mask=None, return_sequences=False,
               zero_output_for_mask=False, output_size=None):
    """Runs `step` over time-major inputs.

    Args:
        step: `(projected_t, states) -> (output_t, new_states)`.
        projected: `(time, batch, features)` tensor.
        initial_states: list of `(batch, size)` tensors.
        mask: optional `(time, batch)` bool tensor; at a masked step the states are carried over
            unchanged and the output is the previous one (or zeros, `zero_output_for_mask`).
        return_sequences: whether to collect every step's output.
        output_size: the width of `step`'s output where it is not that of the first state (a
            decoder's features); the first state's (h) by default.

    Returns:
        `(last_output, outputs, final_states)`; `outputs` is `(time, batch, units)` or None.
    """
    steps = tf.shape(projected)[0]
    inputs_ta = tf.TensorArray(projected.dtype, size=steps, element_shape=projected.shape[1:])
    inputs_ta = inputs_ta.unstack(projected)
    if mask is not None:
        mask_ta = tf.TensorArray(tf.bool, size=steps, element_shape=mask.shape[1:])
        mask_ta = mask_ta.unstack(mask)
    # The output has the size of the first state (h) for every cell of nlpapps.
    zero_output = tf.zeros_like(initial_states[0]) if output_size is None else \
        tf.zeros([tf.shape(initial_states[0])[0], output_size], projected.dtype)
    outputs_ta = tf.TensorArray(
        projected.dtype, size=steps if return_sequences else 1,
        element_shape=zero_output.shape)

    def body(t, last_output, states, outputs_ta):
        output, new_states = step(inputs_ta.read(t), states)
        if mask is not None:
            keep = mask_ta.read(t)[:, None]  # (batch, 1)
            new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
            output = tf.where(keep, output, zero_output if zero_output_for_mask else last_output)
            last_output = tf.where(keep, output, last_output)
        else:
            last_output = output
        if return_sequences:
            outputs_ta = outputs_ta.write(t, output)
        return t + 1, last_output, list(new_states), outputs_ta

    _, last_output, states, outputs_ta = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), zero_output, list(initial_states), outputs_ta),
        maximum_iterations=steps,
    )
    outputs = outputs_ta.stack() if return_sequences else None
    return last_output, outputs, states


def projecting_step(cell, recurrent_mask=None):
    """`step(x_t, states)` of one of our cells that projects its own input,
    `cell.step(x_t W + b, states)`, with the `(W, b)` of `cell.input_projection()` (and what
    the cell's `loop_step` reads) read once, outside the loop it is called in."""
    kernel, bias = cell.input_projection()
    cell_step = loop_step(cell, recurrent_mask)

    def step(x, states):
        return cell_step(project(x, kernel, bias), states)

    return step


def loop_step(cell, recurrent_mask=None):
    """`step(projected, states)` of one of our cells for a loop over time: its `loop_step`,
    which reads its weights once outside the loop, or its `step` for a cell without one."""
    if hasattr(cell, "loop_step"):
        return cell.loop_step(recurrent_mask)
    return lambda projected, states: cell.step(projected, states, recurrent_mask)


def projects_inside(cell, inputs) -> bool:
    """Whether each step of `cell`'s loop over time-major `inputs` projects its own input:
    unless the batch is known at tracing to be below `PROJECT_FIRST_BELOW` rows, or the
    input kernel holds more than `PROJECT_INSIDE_MAX_KERNEL` weights."""
    batch = inputs.shape[1]
    kernel = cell.input_projection()[0]
    return (batch is None or batch >= PROJECT_FIRST_BELOW) and \
        math.prod(kernel.shape) <= PROJECT_INSIDE_MAX_KERNEL


class RNN(keras.layers.Layer):
    """Base sequence layer: drives a cell over a `(batch, time, features)` input.

    `RNN(cell, ...)` takes a cell as `keras.layers.RNN` does: one of ours (`LSTMCell`,
    `GRUCell`, `SimpleRNNCell`, `NTMCell`, which split each step into the input projection
    `x W + b` (`input_projection`, `project_inputs`) and `step`), or any Keras cell
    (`call(inputs, states) -> (output, new_states)` and `state_size`, e.g.
    `keras.layers.GRUCell`), which is called step by step
    inside the same loop. Subclasses (`SimpleRNN`, `LSTM`, `GRU`, `NTM`) create `self.cell`
    from their own arguments. Dropout masks are drawn once
    per sequence and reused at every step, as in Keras: `dropout` on the inputs,
    `recurrent_dropout` on the previous output inside the recurrent matmul.

    Args:
        cell: the cell to run (subclasses leave it out); a config dict is deserialized.
        return_sequences: return the output of every step `(batch, time, units)` instead of the
            last one `(batch, units)`.
        return_state: also return the final states (h, and c for LSTM).
        go_backwards: process the sequence from its end; outputs stay in processing order, as in
            Keras. With right-padded masked input the padding comes first and is skipped.
        stateful: carry the final states of a batch over as the initial states of the next
            (row i continues row i), in non-trainable variables made at build time, which needs
            a fixed batch size; `reset_state()` sets them back to zeros. An `initial_state`
            given to a call takes precedence. The variables are not saved with the weights,
            as in Keras.
        unroll: accepted for compatibility with `keras.layers`; it has no effect on results:
            the time loop is always one `tf.while_loop` (Keras's unrolled loop computes the
            same values, trading memory for speed on short sequences).
        zero_output_for_mask: output zeros at masked steps instead of the previous output.
        dropout: fraction of the input units dropped in training.
        recurrent_dropout: fraction of the recurrent units dropped in training.
        seed: seed of the dropout masks.
        activity_regularizer: optional penalty on the layer's outputs, added to its `losses`.

    `LSTM` and `GRU` also take `use_cudnn`, as Keras's do: "auto" (default): on a GPU, run
    cuDNN's fused kernel where the configuration allows it (tanh and sigmoid activations, a
    bias, a GRU's reset_after=True; not while training with recurrent dropout; right-padded
    masks); the results are those of the loop. False: always the loop. True: as "auto", but
    an error where cuDNN cannot run.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: optional `(batch, time)` bool, True at real tokens.
        initial_state: optional list of `(batch, size)` tensors, one per state of the cell
            (h, and c for LSTM); a single tensor where the cell has one state.
        training: whether dropout is active.
    """

    def __init__(self, cell=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, activity_regularizer=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_dropout(dropout=dropout, recurrent_dropout=recurrent_dropout)
        self._given_cell = cell is not None
        if cell is not None:
            if isinstance(cell, dict):
                cell = keras.saving.deserialize_keras_object(cell)
            if isinstance(cell, (list, tuple)) or not hasattr(cell, "state_size"):
                raise ValueError("`cell` must be one cell with a `state_size` (stack layers "
                                 f"with StackedRNN). Received: cell={cell!r}")
            if recurrent_dropout and not hasattr(cell, "step"):
                raise ValueError("recurrent_dropout needs a cell of nlpapps; a Keras cell "
                                 "takes its own recurrent_dropout argument")
            self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self._set_states(None)

    @no_automatic_dependency_tracking
    def _set_states(self, states):
        # Untracked, as Keras's: the carried states are not weights, and a stateful layer's
        # weights stay interchangeable with a stateless one's.
        self.states = states

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(tuple(input_shape[:1]) + tuple(input_shape[2:]))
        if self.stateful:
            if self.states is not None:
                self.reset_state()
            elif input_shape[0] is None:
                raise ValueError(
                    f"{self.name}: stateful=True needs a fixed batch size; received input "
                    f"shape {tuple(input_shape)} (give keras.Input a batch_size)")
            else:
                self._set_states([
                    keras.Variable(state, trainable=False, dtype=self.variable_dtype,
                                   name="rnn_state")
                    for state in self.get_initial_state(input_shape[0])])
        self.built = True

    def reset_state(self):
        """Sets the carried states of a stateful layer to zeros (nothing otherwise)."""
        for state in self.states or []:
            state.assign(ops.zeros_like(state.value))

    def reset_states(self):
        """`reset_state()`, by the name Keras 2 used."""
        self.reset_state()

    @property
    def supports_jit(self):
        # XLA cannot compile cuDNN's kernel.
        return self._supports_jit and not (hasattr(self, "cell") and cudnn.may_run(self))

    @supports_jit.setter
    def supports_jit(self, value):
        self._supports_jit = value

    @property
    def units(self):
        return self.cell.units

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def _state_sizes(self) -> list[int]:
        """The cell's state sizes as a list (a Keras cell may give one int)."""
        sizes = self.cell.state_size
        return [int(size) for size in sizes] if isinstance(sizes, (list, tuple)) \
            else [int(sizes)]

    @property
    def _output_size(self) -> int:
        return int(getattr(self.cell, "output_size", None) or self._state_sizes[0])

    def get_initial_state(self, batch_size):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype)
                for size in self._state_sizes]

    def _initial_states(self, initial_state, batch):
        """The states the loop starts from: a list of `(batch, size)` tensors."""
        sizes = self._state_sizes
        if initial_state is None:
            if self.states is not None:
                return [ops.cast(state, self.compute_dtype) for state in self.states]
            return self.get_initial_state(batch)
        if not isinstance(initial_state, (list, tuple)):
            if len(sizes) != 1:
                raise ValueError(
                    f"{self.name}: `initial_state` must be a list of {len(sizes)} tensors, one "
                    f"per state of the cell, of shapes {[(None, s) for s in sizes]}; received "
                    f"one tensor of shape {tuple(initial_state.shape)}")
            initial_state = [initial_state]
        shapes = [tuple(state.shape) for state in initial_state]
        if len(shapes) != len(sizes) or any(
                len(shape) != 2 or shape[-1] not in (None, size)
                for shape, size in zip(shapes, sizes, strict=True)):
            raise ValueError(
                f"{self.name}: `initial_state` must be {len(sizes)} tensor(s) of shapes "
                f"{[(None, s) for s in sizes]}, one per state of the cell; received shapes "
                f"{shapes}")
        return [ops.cast(state, self.compute_dtype) for state in initial_state]

    def _dropout_mask(self, like, rate):
        return keras.random.dropout(ops.ones_like(like), rate, seed=self.seed_generator)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        inputs = sequences
        if self.stateful and self.states is not None:
            expected, batch = self.states[0].shape[0], inputs.shape[0]
            if batch is not None and batch != expected:
                raise ValueError(
                    f"{self.name}: a stateful layer takes batches of the size it was built "
                    f"with, {expected}; received a batch of {batch}")
        states = self._initial_states(initial_state, ops.shape(inputs)[0])
        if training and self.dropout > 0:
            inputs = inputs * self._dropout_mask(inputs[:, :1, :], self.dropout)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self._dropout_mask(states[0], self.recurrent_dropout)
        if mask is not None:
            mask = ops.cast(mask, "bool")

        result = None
        if recurrent_mask is None and cudnn.may_run(self):
            try:
                result = self._fused_or_loop(inputs, states, mask)
            except NotImplementedError:  # Keras's wrapper found no cuDNN to run
                pass
        if result is None and getattr(self, "use_cudnn", False) is True:
            raise ValueError(
                f"{self.name}: use_cudnn=True, but cuDNN cannot run this layer here (it needs a "
                "GPU, tanh and sigmoid activations, a bias, reset_after=True for a GRU, and no "
                "recurrent dropout while training); pass use_cudnn='auto' to fall back to the "
                "step loop")
        if result is None:
            result = self._loop(inputs, states, mask, recurrent_mask, training)
        last_output, outputs, states = result
        if self.states is not None:
            for variable, state in zip(self.states, states, strict=True):
                variable.assign(state)

        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return [output, *states]
        return output

    def _loop(self, inputs, states, mask, recurrent_mask=None, training=False):
        """`(last_output, outputs or None, states)` of the step loop; batch-major tensors."""
        # Time-major before the projection: the inputs are narrower than the gates.
        inputs = ops.transpose(inputs, (1, 0, 2))  # (time, batch, features)
        if mask is not None:
            mask = ops.transpose(mask, (1, 0))  # (time, batch)
        if self.go_backwards:
            inputs = ops.flip(inputs, axis=0)
            mask = None if mask is None else ops.flip(mask, axis=0)

        if training and bptt.applies(self.cell):  # the same values, a faster gradient
            inside = projects_inside(self.cell, inputs)  # see `bptt.sequence`'s `projection`
            last_output, outputs, states = bptt.sequence(
                self.cell, inputs if inside else self.cell.project_inputs(inputs), states,
                mask=mask, recurrent_mask=recurrent_mask,
                zero_output_for_mask=self.zero_output_for_mask,
                projection=self.cell.input_projection() if inside else None)
            outputs = outputs if self.return_sequences else None
        else:
            if not hasattr(self.cell, "input_projection"):  # a Keras cell: its whole step
                projected = inputs

                def step(x, s):
                    output, new_states = self.cell(x, list(s), training=training)
                    return output, list(new_states) if isinstance(new_states, (list, tuple)) \
                        else [new_states]
            elif not projects_inside(self.cell, inputs):  # every step projected at once
                projected = self.cell.project_inputs(inputs)  # (time, batch, gates * units)
                step = loop_step(self.cell, recurrent_mask)
            else:  # each step projects its own input
                projected, step = inputs, projecting_step(self.cell, recurrent_mask)
            last_output, outputs, states = recurrence(
                step, projected, states, mask=mask, return_sequences=self.return_sequences,
                zero_output_for_mask=self.zero_output_for_mask)
        if outputs is not None:
            outputs = ops.transpose(outputs, (1, 0, 2))  # (batch, time, units)
        return last_output, outputs, states

    def _fused_or_loop(self, inputs, states, mask):
        """cuDNN's result where `cudnn.fusable` holds for this batch, else the loop's."""
        def flat(last_output, outputs, states):
            return [last_output, *([outputs] if self.return_sequences else []), *states]

        result = tf.cond(cudnn.fusable(inputs, mask),
                         lambda: flat(*cudnn.run(self, inputs, states, mask)),
                         lambda: flat(*self._loop(inputs, states, mask)))
        if self.return_sequences:
            return result[0], result[1], result[2:]
        return result[0], None, result[1:]

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self._state_sizes)
        return output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        units = self._output_size
        output = (batch, steps, units) if self.return_sequences else (batch, units)
        if self.return_state:
            return [output] + [(batch, size) for size in self._state_sizes]
        return output

    def get_config(self):
        if self._given_cell:  # RNN(cell): the cell as a nested config, as Keras writes it
            cell_config = {"cell": keras.saving.serialize_keras_object(self.cell)}
        else:  # a subclass made the cell from its own arguments: those, flat
            cell_config = {key: value for key, value in self.cell.get_config().items()
                           if key not in ("name", "trainable", "dtype")}
        return {
            **super().get_config(),
            **cell_config,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
        }
