"""The cuDNN path of LSTM and GRU (`nlpapps.layers.cudnn`), on a machine without a GPU.

cuDNN's kernel cannot run here, so the tests stand in for Keras's wrapper of it
(`cudnn.KERNELS`) and make TensorFlow "see" a GPU (`cudnn.gpu_available`). The stand-in
computes what the wrapper returns with the Keras built-in layer's step loop and cuDNN's
convention of zeros at padded steps; our layer on that path must give what its own loop gives.
The real wrapper is only traced: a graph that holds the kernel can be built here, not run.
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.trainers.trainer import model_supports_jit

from nlpapps.export.saved_model_writer import write_savedmodel
from nlpapps.layers import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN, cudnn

from helpers import assert_all_close, make_sequences

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)
BUILTINS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


class EmulatedKernel:
    """Keras's cuDNN wrapper as a machine without cuDNN can compute it; records its calls."""

    def __init__(self, name):
        self.name = name
        self.calls = []

    def __call__(self, inputs, *initial_and_mask, kernel, recurrent_kernel, bias, activation,
                 recurrent_activation, return_sequences, go_backwards):
        *initial, mask = initial_and_mask
        self.calls.append({"go_backwards": go_backwards, "masked": mask is not None})
        builtin = BUILTINS[self.name](
            kernel.shape[1] // (4 if self.name == "lstm" else 3), return_sequences=True,
            return_state=True, go_backwards=go_backwards, zero_output_for_mask=True,
            use_cudnn=False)
        builtin.build(inputs.shape)
        builtin.set_weights([np.asarray(w) for w in (kernel, recurrent_kernel, bias)])
        outputs, *states = builtin(inputs, mask=mask, initial_state=initial)
        # As the wrapper returns them: the last output is the final h.
        return states[0], outputs if return_sequences else outputs[:, -1:], states


@pytest.fixture(params=[LSTM, GRU], ids=lambda layer: layer.__name__)
def layer_class(request):
    return request.param


@pytest.fixture
def gpu(monkeypatch):
    """A machine that has a GPU as far as the layers can tell, with emulated kernels."""
    kernels = {name: EmulatedKernel(name) for name in cudnn.KERNELS}
    monkeypatch.setattr(cudnn, "KERNELS", kernels)
    monkeypatch.setattr(cudnn, "gpu_available", lambda: True)
    return kernels


def pair(layer_class, **kwargs):
    """Our layer on the cuDNN path and a copy with the same weights on its step loop."""
    fused = layer_class(UNITS, **kwargs)
    fused.build((None, TIME, FEATURES))
    loop = layer_class(UNITS, use_cudnn=False, **kwargs)
    loop.build((None, TIME, FEATURES))
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in fused.weights]
    fused.set_weights(weights)
    loop.set_weights(weights)
    return fused, loop


def kernel_of(gpu, layer):
    return gpu[layer.cell.fused_kernel]


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_fused_path_equals_the_loop(gpu, layer_class, return_sequences, go_backwards, masked,
                                    zero_output_for_mask):
    fused, loop = pair(layer_class, return_sequences=return_sequences, return_state=True,
                       go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    rng = np.random.default_rng(2)
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in fused.state_size]
    kwargs = {"mask": mask if masked else None, "initial_state": states}
    assert_all_close(fused(sequences, **kwargs), loop(sequences, **kwargs))
    assert kernel_of(gpu, fused).calls == [{"go_backwards": go_backwards, "masked": masked}]


@pytest.mark.parametrize("mask", [
    [[True] * 6, [False, False, True, True, True, True], [True] * 6],  # left padding
    [[True] * 6, [True, False, True, True, False, False], [True] * 6],  # a hole
    [[True] * 6, [False] * 6, [True, True, False, False, False, False]],  # an empty row
], ids=["left-padded", "hole", "empty-row"])
def test_masks_cudnn_cannot_skip_take_the_loop(gpu, layer_class, mask):
    fused, loop = pair(layer_class, return_sequences=True, return_state=True)
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    mask = np.array(mask)
    assert_all_close(fused(sequences, mask=mask), loop(sequences, mask=mask))
    assert kernel_of(gpu, fused).calls == []


def test_each_batch_is_routed_in_the_graph(monkeypatch, layer_class):
    """Traced once, the layer sends a right-padded batch to the kernel and any other to the
    loop; the kernel here answers with a marker value."""
    def marker_kernel(inputs, *initial_and_mask, return_sequences, **_):
        marker = tf.fill([tf.shape(inputs)[0], UNITS], 7.0)
        outputs = tf.fill([tf.shape(inputs)[0], tf.shape(inputs)[1], UNITS], 7.0)
        return marker, outputs, [marker] * (len(initial_and_mask) - 1)

    monkeypatch.setattr(cudnn, "KERNELS", {"lstm": marker_kernel, "gru": marker_kernel})
    monkeypatch.setattr(cudnn, "gpu_available", lambda: True)
    fused, loop = pair(layer_class, return_sequences=True)
    call = tf.function(lambda x, m: fused(x, mask=m))
    sequences, right_padded = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    left_padded = right_padded[:, ::-1].copy()
    np.testing.assert_array_equal(call(sequences, right_padded), 7.0)
    assert_all_close(call(sequences, left_padded), loop(sequences, mask=left_padded))
    assert call.experimental_get_tracing_count() == 1


def test_configurations_cudnn_does_not_compute_take_the_loop(gpu):
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    for layer in (LSTM(UNITS, activation="relu"), LSTM(UNITS, use_bias=False),
                  GRU(UNITS, recurrent_activation="hard_sigmoid"), LSTM(UNITS, use_cudnn=False),
                  GRU(UNITS, reset_after=False), SimpleRNN(UNITS)):
        layer(sequences, mask=mask)
        assert not cudnn.may_run(layer)
        assert layer.supports_jit
    assert all(kernel.calls == [] for kernel in gpu.values())


def test_textbook_gru_never_takes_the_kernel(gpu):
    # cuDNN's GRU applies the reset gate after the recurrent matmul only: reset_after=False
    # runs the loop even where the kernel could run, and use_cudnn=True says it cannot.
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    GRU(UNITS)(sequences, mask=mask)
    assert len(gpu["gru"].calls) == 1  # the same GRU with reset_after=True does
    textbook = GRU(UNITS, reset_after=False, return_sequences=True)
    loop = GRU(UNITS, reset_after=False, return_sequences=True, use_cudnn=False)
    textbook.build(sequences.shape)
    loop.build(sequences.shape)
    loop.set_weights(textbook.get_weights())
    assert_all_close(textbook(sequences, mask=mask), loop(sequences, mask=mask), atol=0)
    assert len(gpu["gru"].calls) == 1
    with pytest.raises(ValueError, match="use_cudnn=True, but cuDNN cannot run"):
        GRU(UNITS, reset_after=False, use_cudnn=True)(sequences, mask=mask)
    assert len(gpu["gru"].calls) == 1


def test_recurrent_dropout_takes_the_loop_only_while_training(gpu):
    layer = LSTM(UNITS, recurrent_dropout=0.3)
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    layer(sequences, training=True)
    assert gpu["lstm"].calls == []
    layer(sequences, training=False)
    assert len(gpu["lstm"].calls) == 1


def test_input_dropout_is_applied_before_the_kernel(gpu):
    layer = GRU(UNITS, dropout=0.5, seed=3)
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    trained = np.asarray(layer(sequences, training=True))
    assert not np.allclose(trained, np.asarray(layer(sequences)))
    assert len(gpu["gru"].calls) == 2


def test_wrappers_reach_the_kernel(gpu):
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    Bidirectional(LSTM(UNITS, return_sequences=True))(sequences, mask=mask)
    assert [call["go_backwards"] for call in gpu["lstm"].calls] == [False, True]
    StackedRNN([GRU(UNITS, return_sequences=True), GRU(UNITS, return_sequences=True)])(sequences)
    assert len(gpu["gru"].calls) == 2


def test_xla_is_off_where_the_kernel_may_run(monkeypatch):
    layer = LSTM(UNITS)
    assert layer.supports_jit  # no GPU here
    monkeypatch.setattr(cudnn, "gpu_available", lambda: True)
    assert not layer.supports_jit
    model = keras.Sequential([keras.Input((TIME, FEATURES)), layer])
    assert not model_supports_jit(model)  # what `compile(jit_compile="auto")` asks on a GPU


def test_use_cudnn_true_without_a_gpu_is_an_error():
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    with pytest.raises(ValueError, match="use_cudnn=True, but cuDNN cannot run"):
        LSTM(UNITS, use_cudnn=True)(sequences)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_use_cudnn_takes_auto_true_or_false(value):
    with pytest.raises(ValueError, match="`use_cudnn` must be one of"):
        GRU(UNITS, use_cudnn=value)


def test_use_cudnn_is_in_the_config():
    layer = LSTM(UNITS, use_cudnn=False)
    assert LSTM.from_config(layer.get_config()).use_cudnn is False
    assert GRU.from_config(GRU(UNITS).get_config()).use_cudnn == "auto"


def test_loop_only_holds_within_its_block(gpu):
    inputs = keras.Input((TIME, FEATURES))
    model = keras.Model(inputs, Bidirectional(LSTM(UNITS, use_cudnn=True))(inputs))
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    with cudnn.loop_only(model):
        model(sequences)
    assert gpu["lstm"].calls == []
    model(sequences)
    assert len(gpu["lstm"].calls) == 2  # the use_cudnn=True of both directions is back


def test_savedmodel_is_traced_with_the_loop(monkeypatch, tmp_path):
    """Written on a GPU, a SavedModel still runs on any machine: no cuDNN kernel in it."""
    def no_kernel(*args, **kwargs):
        raise AssertionError("a SavedModel was traced with cuDNN's kernel")

    monkeypatch.setattr(cudnn, "KERNELS", {"lstm": no_kernel, "gru": no_kernel})
    monkeypatch.setattr(cudnn, "gpu_available", lambda: True)
    inputs = keras.Input((TIME, FEATURES))
    module = tf.Module()
    module.model = keras.Model(inputs, LSTM(UNITS)(inputs))
    module.serving_default = tf.function(
        lambda x: {"outputs": module.model(x)},
        input_signature=[tf.TensorSpec([None, TIME, FEATURES], tf.float32)])
    write_savedmodel(module, tmp_path / "model", {})
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    with cudnn.loop_only(module.model):
        expected = module.model(sequences)
    assert_all_close(
        loaded.signatures["serving_default"](tf.constant(sequences))["outputs"], expected)


def graph_ops(concrete_function) -> set[str]:
    """Every op type of a traced function, its nested functions (cond branches, loops,
    gradients) included."""
    graph = concrete_function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


@pytest.fixture
def traced_gpu(monkeypatch):
    """A GPU as far as the layers and Keras's real cuDNN wrapper can tell (graphs only)."""
    # Imported by name: `keras.src.backend.tensorflow.rnn` is also a function of that package.
    keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
    monkeypatch.setattr(cudnn, "gpu_available", lambda: True)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_the_real_kernel_call_traces_with_its_gradient(traced_gpu, layer_class, return_sequences,
                                                       go_backwards):
    fused, loop = pair(layer_class, return_sequences=return_sequences, return_state=True,
                       go_backwards=go_backwards)

    def train_step(layer):
        @tf.function
        def step(sequences, mask, h):
            initial = [h] * len(layer.cell.state_size)
            with tf.GradientTape() as tape:
                output, *states = layer(sequences, mask=mask, initial_state=initial,
                                        training=True)
                loss = tf.reduce_sum(output) + sum(tf.reduce_sum(s) for s in states)
            return output, states, tape.gradient(loss, layer.trainable_variables)
        return step.get_concrete_function(tf.TensorSpec([None, None, FEATURES]),
                                          tf.TensorSpec([None, None], tf.bool),
                                          tf.TensorSpec([None, UNITS]))

    traced = train_step(fused)
    assert {"CudnnRNNV3", "CudnnRNNBackpropV3"} <= graph_ops(traced)
    with cudnn.loop_only(fused):
        assert not {op for op in graph_ops(train_step(fused)) if op.startswith("Cudnn")}
    # Its outputs and states have the loop's shapes, and every weight gets a gradient.
    output, states, gradients = traced.structured_outputs
    loop_output, loop_states, _ = train_step(loop).structured_outputs
    for got, want in zip([output, *states], [loop_output, *loop_states]):
        assert got.shape.as_list() == want.shape.as_list()
    assert [g.shape.as_list() for g in gradients] == [list(w.shape) for w in fused.weights]


def test_the_kernel_is_given_every_weight_in_its_place(traced_gpu, layer_class):
    fused, _ = pair(layer_class, return_sequences=True)
    states = [tf.zeros([BATCH, UNITS])] * len(fused.cell.state_size)
    function = tf.function(lambda x, mask: cudnn.run(fused, x, states, mask)[1])
    graph = function.get_concrete_function(tf.TensorSpec([BATCH, TIME, FEATURES]),
                                           tf.TensorSpec([BATCH, TIME], tf.bool)).graph
    (kernel,) = [op for op in graph.get_operations() if op.type == "CudnnRNNV3"]
    assert kernel.get_attr("rnn_mode") == layer_class.__name__.lower().encode()
    # cuDNN's flat parameters: each gate's input and recurrent matrices, then an input and a
    # recurrent bias per gate (Keras's LSTM has one bias, so cuDNN's input biases are zeros).
    gates = fused.cell.gates
    expected = gates * UNITS * (FEATURES + UNITS) + 2 * gates * UNITS
    assert kernel.inputs[3].shape.as_list() == [expected]
    assert kernel.inputs[0].shape.as_list() == [BATCH, TIME, FEATURES]
    assert kernel.get_attr("time_major") is False and len(kernel.inputs) == 5  # + lengths


def test_bidirectional_traces_both_directions_into_the_kernel(traced_gpu):
    layer = Bidirectional(GRU(UNITS, return_sequences=True))
    function = tf.function(lambda x, mask: layer(x, mask=mask)).get_concrete_function(
        tf.TensorSpec([None, None, FEATURES]), tf.TensorSpec([None, None], tf.bool))
    graph = function.graph.as_graph_def()
    kernels = [node for f in graph.library.function for node in f.node_def
               if node.op == "CudnnRNNV3"]
    assert len(kernels) == 2


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_apps_training_steps_hold_the_kernel(traced_gpu, cell):
    """Keras's `train_step` of a translator and of a language model takes the fused kernel in
    the recurrent layers, and `compile` would leave XLA off for them on a GPU."""
    from nlpapps import training
    from nlpapps.models.language_model_network import LanguageModel
    from nlpapps.models.seq2seq import Seq2Seq

    translator = Seq2Seq(vocab_size=20, embedding_dim=8, units=UNITS, cell=cell,
                         attention_units=4)
    translator.build()
    language_model = LanguageModel(vocab_size=20, embedding_dim=8, units=UNITS, cell=cell)
    language_model.build((None, None))
    ids = tf.TensorSpec([None, None], tf.int32)
    steps = {translator: ((ids, ids), ids), language_model: (ids, ids)}
    for model, spec in steps.items():
        assert not model_supports_jit(model)
        model.compile(optimizer="adam", loss=training.masked_cross_entropy(0.0))
        step = tf.function(model.train_step).get_concrete_function(spec)
        assert {"CudnnRNNV3", "CudnnRNNBackpropV3"} <= graph_ops(step), type(model).__name__
