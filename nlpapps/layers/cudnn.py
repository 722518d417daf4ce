"""The cuDNN path of the LSTM and GRU layers on a GPU.

Where TensorFlow sees a GPU, a layer whose configuration cuDNN computes the same way (tanh and
sigmoid activations, a bias, no recurrent dropout while training) runs its whole sequence in the
fused kernel that `keras.layers.LSTM` and `keras.layers.GRU` call there (`CudnnRNNV3`, through
Keras's TensorFlow backend), instead of the step loop of `rnn.py`. The results are the loop's:

- cuDNN skips padding only at the end of a sequence, and not a sequence that is all padding, so
  a batch whose mask is anything else runs the loop (decided in the graph, batch by batch);
- cuDNN writes zeros at padded steps where the loop repeats the last real output (unless
  `zero_output_for_mask`), so the fused outputs are filled in as the loop fills them.

A graph traced with the fused kernel runs only where cuDNN does, and TFLite has no such op:
SavedModels and TFLite files are traced under `loop_only`, so that they run anywhere.
"""

import contextlib
import functools

import tensorflow as tf
from keras import activations
from keras.src import backend as keras_backend

# Keras's wrappers of `CudnnRNNV3`, by the `fused_kernel` a cell names. Each raises
# NotImplementedError where cuDNN cannot run (no GPU, an unsupported configuration).
KERNELS = {"lstm": keras_backend.lstm, "gru": keras_backend.gru}

USE_CUDNN = ("auto", True, False)


@functools.cache
def gpu_available() -> bool:
    # Asked once: TensorFlow's devices are fixed once it has started.
    return bool(tf.config.list_logical_devices("GPU"))


def check_use_cudnn(use_cudnn):
    """`use_cudnn` if it is one of `USE_CUDNN`, else a ValueError."""
    if not (use_cudnn == "auto" or use_cudnn is True or use_cudnn is False):
        raise ValueError(
            f"`use_cudnn` must be one of {USE_CUDNN}. Received: use_cudnn={use_cudnn}")
    return use_cudnn


def configuration_allows(cell) -> bool:
    """Whether cuDNN computes `cell`'s recurrence (recurrent dropout aside). A cell names its
    kernel in `fused_kernel`; the GRU with `reset_after=False` names none."""
    return (getattr(cell, "fused_kernel", None) in KERNELS and cell.use_bias
            and cell.activation is activations.tanh
            and cell.recurrent_activation is activations.sigmoid)


def may_run(layer) -> bool:
    """Whether `layer` can take the cuDNN path on this machine (at least when not training with
    recurrent dropout); XLA cannot compile such a layer. Only layers with a `use_cudnn`
    attribute (LSTM, GRU) ever do."""
    return (getattr(layer, "use_cudnn", False) is not False
            and configuration_allows(layer.cell) and gpu_available())


def fusable(inputs, mask):
    """Scalar bool tensor: the batch has steps and, with a `(batch, time)` mask, every row is
    right-padded (real steps first) and holds at least one real step."""
    steps = tf.shape(inputs)[1]
    if mask is None:
        return steps > 0
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, steps)))
    return tf.logical_and(right_padded, tf.reduce_all(lengths > 0))


def fill_padding(outputs, mask, last_output):
    """cuDNN's outputs as the loop gives them: at padded steps, which follow a right-padded
    row's real steps, the row's last real output instead of zeros. `(batch, time, units)`."""
    return tf.where(mask[:, :, None], outputs, last_output[:, None, :])


def run(layer, inputs, states, mask):
    """`(last_output, outputs, states)` of `layer` over batch-major `inputs` from cuDNN.

    `outputs` is `(batch, time, units)` with `return_sequences`, else None. Raises
    NotImplementedError where the kernel cannot run here.
    """
    cell = layer.cell
    initial = list(states) if cell.fused_kernel == "lstm" else [states[0]]
    last_output, outputs, new_states = KERNELS[cell.fused_kernel](
        inputs, *initial, mask, kernel=cell.kernel, recurrent_kernel=cell.recurrent_kernel,
        bias=cell.bias, activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
        return_sequences=layer.return_sequences, go_backwards=layer.go_backwards)
    if not layer.return_sequences:
        return last_output, None, list(new_states)
    # Backwards, the padding comes first and both give zeros there.
    if mask is not None and not (layer.go_backwards or layer.zero_output_for_mask):
        outputs = fill_padding(outputs, mask, last_output)
    return last_output, outputs, list(new_states)


@contextlib.contextmanager
def loop_only(model):
    """Within the block, every recurrent layer of `model` (a Keras model, or None for none)
    traces its step loop."""
    layers = [] if model is None else [
        layer for layer in model._flatten_layers() if hasattr(layer, "use_cudnn")]
    before = [layer.use_cudnn for layer in layers]
    for layer in layers:
        layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, use_cudnn in zip(layers, before):
            layer.use_cudnn = use_cudnn
