"""What SimpleRNN, LSTM and GRU (both its forms, reset_after=True and False) share: each
against its `keras.layers` twin holding the same weights (outputs, states, gradients, options,
one cell step), masking, dropout, argument checks, the layer contract and LiteRT. What one kind
alone has is in its own test file."""

import dataclasses
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

from helpers import assert_all_close, check_layer_contract, flat, make_sequences, tflite_outputs

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)  # real tokens per row; the rest is right padding


@dataclasses.dataclass(frozen=True)
class Kind:
    layer: type
    cell: type
    reference: type  # the keras.layers twin of `layer`
    reference_cell: type
    states: int  # state tensors the cell carries: h (and c)
    gates: int  # the recurrent kernel is (units, gates * units)
    options: dict  # options only this kind has, compared with Keras
    kwargs: dict = dataclasses.field(default_factory=dict)  # what makes the kind, both sides

    def __str__(self):
        return self.layer.__name__ + "".join(f"-{k}={v}" for k, v in self.kwargs.items())

    def make_layer(self, *args, **kwargs):
        return self.layer(*args, **self.kwargs, **kwargs)

    def make_reference(self, *args, **kwargs):
        return self.reference(*args, **self.kwargs, **kwargs)


KINDS = [
    Kind(SimpleRNN, SimpleRNNCell, keras.layers.SimpleRNN, keras.layers.SimpleRNNCell,
         states=1, gates=1, options={"activation": "relu"}),
    Kind(LSTM, LSTMCell, keras.layers.LSTM, keras.layers.LSTMCell, states=2, gates=4,
         options={"activation": "relu", "recurrent_activation": "hard_sigmoid",
                  "unit_forget_bias": False}),
    # keras.layers.GRU with reset_after=True, its default.
    Kind(GRU, GRUCell, keras.layers.GRU, keras.layers.GRUCell, states=1, gates=3,
         options={"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    # The textbook GRU: the reset gate scales h_{t-1} before the recurrent matmul.
    Kind(GRU, GRUCell, keras.layers.GRU, keras.layers.GRUCell, states=1, gates=3,
         options={"activation": "relu", "recurrent_activation": "hard_sigmoid"},
         kwargs={"reset_after": False}),
]


@pytest.fixture(params=KINDS, ids=str)
def kind(request):
    return request.param


def make_batch():
    """`(BATCH, TIME, FEATURES)` sequences and their right-padding mask."""
    return make_sequences(BATCH, TIME, FEATURES, LENGTHS)


def make_pair(kind, **kwargs):
    """Our layer and its Keras twin with the same arguments, holding the same weights."""
    keras.utils.set_random_seed(1)
    reference = kind.make_reference(UNITS, **kwargs)
    reference.build((None, TIME, FEATURES))
    ours = kind.make_layer(UNITS, **kwargs)
    ours.build((None, TIME, FEATURES))
    ours.set_weights(reference.get_weights())
    return ours, reference


def make_states(kind, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(kind.states)]


@pytest.mark.parametrize(
    "return_sequences, go_backwards, masked, initial_state",
    list(itertools.product([False, True], repeat=4)))
def test_matches_keras(kind, return_sequences, go_backwards, masked, initial_state):
    ours, reference = make_pair(
        kind, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    sequences, mask = make_batch()
    kwargs = {"mask": mask if masked else None,
              "initial_state": make_states(kind) if initial_state else None}
    outputs = ours(sequences, **kwargs)
    assert len(outputs) == 1 + kind.states  # output, h (, c)
    assert_all_close(outputs, reference(sequences, **kwargs))


@pytest.mark.parametrize("option", ["no_bias", "kind", "zero_output_for_mask", "random_bias"])
def test_options_match_keras(kind, option):
    kwargs = {
        "no_bias": {"use_bias": False, "return_sequences": True},
        "kind": kind.options,
        "zero_output_for_mask": {"zero_output_for_mask": True, "return_sequences": True},
        "random_bias": {"bias_initializer": "random_normal",
                        **({"unit_forget_bias": False} if kind.layer is LSTM else {})},
    }[option]
    ours, reference = make_pair(kind, **kwargs)
    sequences, mask = make_batch()
    assert [w.shape for w in ours.weights] == [w.shape for w in reference.weights]
    assert_all_close(ours(sequences, mask=mask), reference(sequences, mask=mask))


@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_keras(kind, masked):
    ours, reference = make_pair(kind, return_sequences=True, return_state=True)
    sequences, mask = make_batch()
    mask = mask if masked else None

    def gradients(layer):
        rng = np.random.default_rng(4)  # the same random loss for both layers
        inputs = tf.constant(sequences)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, mask=mask)
            loss = sum(tf.reduce_sum(x * rng.normal(size=x.shape).astype("float32"))
                       for x in outputs)
        return tape.gradient(loss, [inputs, *layer.trainable_weights])

    ours_grads = gradients(ours)
    reference_grads = gradients(reference)
    assert len(ours_grads) == 4  # inputs, kernel, recurrent kernel, bias
    assert_all_close(ours_grads, reference_grads, atol=1e-4)
    assert all(np.any(g != 0) for g in flat(ours_grads))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_padded_batch_matches_each_sequence_alone(kind, go_backwards):
    layer, _ = make_pair(kind, return_sequences=True, return_state=True,
                         go_backwards=go_backwards)
    sequences, mask = make_batch()
    outputs, *states = layer(sequences, mask=mask)
    for row, length in enumerate(LENGTHS):
        alone, *alone_states = layer(sequences[row:row + 1, :length])
        for state, alone_state in zip(states, alone_states, strict=True):
            np.testing.assert_allclose(state[row:row + 1], alone_state, atol=1e-6)
        # Outputs are in processing order: backwards, the padding is read (and skipped) first.
        real = slice(TIME - length, None) if go_backwards else slice(None, length)
        np.testing.assert_allclose(outputs[row:row + 1, real], alone, atol=1e-6)


def test_cell_step_matches_keras_cell(kind):
    keras.utils.set_random_seed(1)
    reference = kind.reference_cell(UNITS, **kind.kwargs)
    reference.build((None, FEATURES))
    cell = kind.cell(UNITS, **kind.kwargs)
    cell.build((None, FEATURES))
    cell.set_weights(reference.get_weights())
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(kind.states)]
    output, new_states = cell(inputs, states)
    reference_output, reference_states = reference(inputs, states)
    assert cell.state_size == [UNITS] * kind.states and cell.output_size == UNITS
    assert_all_close([output, new_states], [reference_output, reference_states])


@pytest.mark.parametrize("rates", [{"dropout": 0.5}, {"recurrent_dropout": 0.5}])
def test_dropout_only_in_training(kind, rates):
    layer = kind.make_layer(UNITS, return_sequences=True, seed=7, **rates)
    plain = kind.make_layer(UNITS, return_sequences=True)
    sequences, mask = make_batch()
    layer.build(sequences.shape)
    plain.build(sequences.shape)
    plain.set_weights(layer.get_weights())
    trained = np.asarray(layer(sequences, mask=mask, training=True))
    inferred = layer(sequences, mask=mask, training=False)
    assert np.all(np.isfinite(trained))
    assert np.abs(trained - np.asarray(inferred)).max() > 1e-3
    assert_all_close(inferred, plain(sequences, mask=mask), atol=1e-7)


def test_recurrent_kernel_has_orthonormal_rows(kind):
    # Keras's orthogonal initializer on a (units, gates * units) matrix makes its rows
    # orthonormal; with several gates, the (units, units) blocks are not orthogonal one by one.
    keras.utils.set_random_seed(6)
    layer = kind.make_layer(UNITS)
    layer.build((None, TIME, FEATURES))
    cell = kind.cell(UNITS, **kind.kwargs)
    cell.build((None, FEATURES))
    for recurrent in (layer.cell.recurrent_kernel, cell.recurrent_kernel):
        recurrent = np.asarray(recurrent)
        assert recurrent.shape == (UNITS, kind.gates * UNITS)
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(UNITS), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, "units=0"),
    ({"units": -2}, "units=-2"),
    ({"units": 2.5}, "units=2.5"),
    ({"units": 4, "dropout": 1.5}, "dropout=1.5"),
    ({"units": 4, "dropout": 1.0}, "dropout=1.0"),
    ({"units": 4, "recurrent_dropout": -0.1}, "recurrent_dropout=-0.1"),
])
def test_bad_arguments_raise(kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kind.make_layer(**kwargs)


def test_layer_contract(kind, tmp_path):
    sequences, mask = make_batch()
    kwargs = {"return_sequences": True, "return_state": True}
    check_layer_contract(lambda: kind.make_layer(UNITS, **kwargs), sequences, mask, tmp_path,
                         make_reference=lambda: kind.make_reference(UNITS, **kwargs))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_tflite_matches_layer(kind, return_sequences):
    layer, _ = make_pair(kind, return_sequences=return_sequences, return_state=True)
    sequences, mask = make_batch()
    sequences, mask = sequences[1:2], mask[1:2]  # batch 1, padded after LENGTHS[1]
    results = tflite_outputs(lambda sequences, mask: layer(sequences, mask=mask),
                             {"sequences": sequences, "mask": mask}, layer)
    assert_all_close(results, layer(sequences, mask=mask))


def test_zero_output_for_mask_keeps_the_last_real_output(kind):
    # Padded steps of the sequence are zeros, but the last output (return_sequences=False)
    # is each sequence's last real one, the final state h. (The Keras layers return zeros
    # there for a padded sequence.)
    everything, _ = make_pair(kind, return_sequences=True, zero_output_for_mask=True)
    last, _ = make_pair(kind, return_state=True, zero_output_for_mask=True)
    sequences, mask = make_batch()
    outputs = np.asarray(everything(sequences, mask=mask))
    output, h, *_ = last(sequences, mask=mask)
    np.testing.assert_allclose(output, h, atol=1e-7)
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(output[row], outputs[row, length - 1], atol=1e-6)
        assert np.all(outputs[row, length:] == 0.0)
