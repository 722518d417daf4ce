"""The sequence options of `rnn.py` that Keras's recurrent layers have, against Keras or the
layer itself: states carried by a stateful layer, `initial_state` as Keras takes it, mixed
precision, `unroll` and `implementation` (accepted, without effect on results), and the inputs
projected before the loop or inside it, by the batch's size."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.layers import GRU, LSTM, SimpleRNN, rnn

from helpers import assert_all_close, make_sequences

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)
CLASSES = [SimpleRNN, LSTM, GRU]


def built(layer_class, shape=(BATCH, TIME, FEATURES), weights=None, **kwargs):
    layer = layer_class(UNITS, **kwargs)
    layer.build(shape)
    if weights is not None:
        layer.set_weights(weights)
    return layer


@pytest.mark.parametrize("layer_class", CLASSES, ids=lambda c: c.__name__)
def test_stateful_layer_reads_a_sequence_in_pieces_as_a_whole(layer_class):
    # (Zeros at padded steps: a call's padded output repeats its own last real one, none for
    # a row whose piece is all padding.)
    keras.utils.set_random_seed(1)
    kwargs = {"return_sequences": True, "return_state": True, "zero_output_for_mask": True}
    whole = built(layer_class, **kwargs)
    pieces = built(layer_class, weights=whole.get_weights(), stateful=True, **kwargs)
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    expected = whole(sequences, mask=mask)
    first = pieces(sequences[:, :4], mask=mask[:, :4])
    second = pieces(sequences[:, 4:], mask=mask[:, 4:])
    assert_all_close(np.concatenate([first[0], second[0]], axis=1), expected[0])
    assert_all_close(second[1:], expected[1:])
    assert_all_close(pieces.states, expected[1:])
    # The states are not weights: the layer's weights are a stateless one's.
    assert len(pieces.weights) == 3
    pieces.reset_states()
    assert_all_close(pieces(sequences[:, :4], mask=mask[:, :4]), first)


def test_stateful_lstm_matches_keras():
    keras.utils.set_random_seed(2)
    reference = keras.layers.LSTM(UNITS, stateful=True, return_state=True)
    reference.build((BATCH, TIME, FEATURES))
    ours = built(LSTM, weights=reference.get_weights(), stateful=True, return_state=True)
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    for _ in range(2):
        assert_all_close(ours(sequences), reference(sequences))
    ours.reset_state()
    reference.reset_state()
    assert_all_close(ours(sequences), reference(sequences))


def test_stateful_layer_needs_its_batch_size():
    with pytest.raises(ValueError, match="stateful=True needs a fixed batch size"):
        LSTM(UNITS, stateful=True).build((None, TIME, FEATURES))
    layer = built(GRU, stateful=True)
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    with pytest.raises(ValueError, match="batches of the size it was built with, 3"):
        layer(sequences[:2])


@pytest.mark.parametrize("layer_class", [SimpleRNN, GRU], ids=lambda c: c.__name__)
def test_one_state_may_be_given_as_one_tensor(layer_class):
    layer = built(layer_class, return_state=True)
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    h0 = np.random.default_rng(3).normal(size=(BATCH, UNITS)).astype("float32")
    as_tensor = layer(sequences, mask=mask, initial_state=h0)
    assert_all_close(as_tensor, layer(sequences, mask=mask, initial_state=[h0]))
    assert np.abs(np.asarray(as_tensor[0]) - np.asarray(layer(sequences)[0])).max() > 1e-3


@pytest.mark.parametrize("initial_state, message", [
    ("one", r"must be a list of 2 tensors, one per state of the cell"),
    ("list of one", r"must be 2 tensor\(s\) of shapes \[\(None, 4\), \(None, 4\)\]"),
    ("too wide", r"received shapes \[\(3, 5\), \(3, 5\)\]"),
])
def test_lstm_rejects_initial_states_that_are_not_h_and_c(initial_state, message):
    # A single tensor used to be split along the batch: row 0 became h and row 1 c.
    state = np.ones((BATCH, UNITS), "float32")
    wide = np.ones((BATCH, UNITS + 1), "float32")
    given = {"one": state, "list of one": [state], "too wide": [wide, wide]}[initial_state]
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    with pytest.raises(ValueError, match=message):
        LSTM(UNITS)(sequences, initial_state=given)


@pytest.mark.parametrize("lengths", [LENGTHS, LENGTHS * 3], ids=["projected-first",
                                                                "projected-inside"])
@pytest.mark.parametrize("layer_class", CLASSES, ids=lambda c: c.__name__)
def test_mixed_precision_computes_in_float16(layer_class, lengths):
    keras.utils.set_random_seed(4)
    full = built(layer_class, return_sequences=True, return_state=True)
    mixed = built(layer_class, weights=full.get_weights(), return_sequences=True,
                  return_state=True, dtype="mixed_float16")
    sequences, mask = make_sequences(len(lengths), TIME, FEATURES, lengths)
    states = [np.full((len(lengths), UNITS), 0.5, "float32")] * len(full.state_size)
    outputs = mixed(sequences, mask=mask, initial_state=states)
    assert [x.dtype for x in outputs] == ["float16"] * len(outputs)
    assert [w.dtype for w in mixed.weights] == ["float32"] * 3
    assert_all_close(outputs, full(sequences, mask=mask, initial_state=states), atol=1e-2)


@pytest.mark.parametrize("layer_class", [LSTM, GRU], ids=lambda c: c.__name__)
def test_unroll_and_implementation_do_not_change_results(layer_class):
    keras.utils.set_random_seed(5)
    plain = built(layer_class, return_sequences=True)
    other = built(layer_class, weights=plain.get_weights(), return_sequences=True,
                  unroll=True, implementation=1)
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    assert_all_close(other(sequences, mask=mask), plain(sequences, mask=mask), atol=0)
    assert other.get_config()["unroll"] is True
    assert other.get_config()["implementation"] == 1


BUILTINS = [(SimpleRNN, keras.layers.SimpleRNN, {}), (LSTM, keras.layers.LSTM, {}),
            (GRU, keras.layers.GRU, {}), (GRU, keras.layers.GRU, {"reset_after": False})]


def test_a_wide_input_kernel_is_projected_before_the_loop():
    """Each step projects its own input only where the batch is unknown or at least 8 rows and
    the input kernel holds at most `PROJECT_INSIDE_MAX_KERNEL` weights (an LSTM at width 1024
    holds twice that)."""
    limit = rnn.PROJECT_INSIDE_MAX_KERNEL
    assert limit == 2 ** 21
    for features, units, inside in ((limit // 512, 128, True), (limit // 512 + 1, 128, False),
                                    (1024, 1024, False), (512, 512, True)):
        cell = LSTM(units).cell
        cell.build((None, features))
        assert math.prod(cell.kernel.shape) == features * 4 * units
        for batch, expected in ((10, inside), (None, inside), (3, False)):
            assert rnn.projects_inside(cell, tf.TensorSpec((TIME, batch, features))) is expected


@pytest.mark.parametrize("ours_class, builtin_class, options", BUILTINS[1:],
                         ids=["LSTM", "GRU", "GRU-reset-before"])
def test_kernels_above_the_limit_give_keras_results_in_inference_and_training(
        ours_class, builtin_class, options, monkeypatch):
    """With the limit at 0 every kernel is above it: a batch of 10 is projected before the
    loop, in inference and in training (the written gradient's loop over projected inputs),
    and both still give Keras's results."""
    monkeypatch.setattr(rnn, "PROJECT_INSIDE_MAX_KERNEL", 0)
    lengths = (6, 4, 2, 6, 1, 5, 3, 6, 2, 4)
    sequences, mask = make_sequences(len(lengths), TIME, FEATURES, lengths)
    rng = np.random.default_rng(8)

    def model(layer):
        inputs = keras.Input((TIME, FEATURES))
        result = keras.Model(inputs, layer(keras.layers.Masking()(inputs)))
        result.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        return result

    builtin = model(builtin_class(UNITS, return_sequences=True, **options))
    builtin.set_weights([rng.normal(scale=0.5, size=w.shape) for w in builtin.get_weights()])
    ours = model(ours_class(UNITS, return_sequences=True, **options))
    ours.set_weights(builtin.get_weights())
    x = np.where(mask[..., None], sequences, 0.0).astype("float32")
    y = rng.normal(size=(len(lengths), TIME, UNITS)).astype("float32")
    assert_all_close(ours.predict_on_batch(x), builtin.predict_on_batch(x))
    for _ in range(3):
        np.testing.assert_allclose(ours.train_on_batch(x, y), builtin.train_on_batch(x, y),
                                   rtol=1e-5)
    for got, expected in zip(ours.get_weights(), builtin.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("ours_class, builtin_class, options", BUILTINS,
                         ids=["SimpleRNN", "LSTM", "GRU", "GRU-reset-before"])
def test_inputs_projected_before_or_inside_the_loop_give_keras_results(
        ours_class, builtin_class, options, go_backwards):
    # A batch known to be small when traced is projected before the loop; a larger one, or
    # one unknown (None), inside it, one step at a time.
    assert rnn.PROJECT_FIRST_BELOW == 8
    keras.utils.set_random_seed(6)
    kwargs = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards,
              **options}
    lengths = (6, 4, 2, 6, 1, 5, 3, 6, 2, 4)
    sequences, mask = make_sequences(len(lengths), TIME, FEATURES, lengths)
    reference = builtin_class(UNITS, **kwargs)
    reference.build(sequences.shape)
    rng = np.random.default_rng(6)  # biases too, which Keras starts at zero
    reference.set_weights([rng.normal(scale=0.5, size=w.shape) for w in reference.weights])
    ours = built(ours_class, weights=reference.get_weights(), **kwargs)
    expected = reference(sequences, mask=mask)

    unknown_batch = tf.function(lambda x, m: ours(x, mask=m), input_signature=[
        tf.TensorSpec((None, TIME, FEATURES)), tf.TensorSpec((None, TIME), tf.bool)])
    assert_all_close(ours(sequences[:3], mask=mask[:3]), [e[:3] for e in expected])
    assert_all_close(ours(sequences, mask=mask), expected)
    assert_all_close(unknown_batch(sequences, mask), expected)
    assert_all_close(unknown_batch(sequences[:3], mask[:3]), [e[:3] for e in expected])
