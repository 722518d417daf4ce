import functools
import itertools

import keras
import numpy as np
import pytest

from nlpapps.layers import GRU, LSTM, Bidirectional

from helpers import assert_all_close, check_layer_contract, flat, make_sequences, tflite_outputs

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)  # real tokens per row; the rest is right padding
MERGE_MODES = ["concat", "sum", "ave", "mul", None]
KINDS = {
    "lstm": (LSTM, keras.layers.LSTM),
    "gru": (GRU, keras.layers.GRU),
    # The textbook GRU: the reset gate scales h_{t-1} before the recurrent matmul.
    "gru-textbook": (functools.partial(GRU, reset_after=False),
                     functools.partial(keras.layers.GRU, reset_after=False)),
}


def make_batch():
    """`(BATCH, TIME, FEATURES)` sequences and their right-padding mask."""
    return make_sequences(BATCH, TIME, FEATURES, LENGTHS)


def make_pair(kind, merge_mode="concat", **kwargs):
    """Our Bidirectional and `keras.layers.Bidirectional` around the same kind of layer,
    ours holding the Keras one's weights."""
    ours_class, keras_class = KINDS[kind]
    keras.utils.set_random_seed(1)
    reference = keras.layers.Bidirectional(keras_class(UNITS, **kwargs), merge_mode=merge_mode)
    reference.build((None, TIME, FEATURES))
    ours = Bidirectional(ours_class(UNITS, **kwargs), merge_mode=merge_mode)
    ours.build((None, TIME, FEATURES))
    ours.set_weights(reference.get_weights())
    return ours, reference


@pytest.mark.parametrize(
    "kind, merge_mode, return_sequences",
    list(itertools.product(["lstm"], MERGE_MODES, [False, True]))
    + list(itertools.product(["gru", "gru-textbook"], ["concat", None], [False, True])))
def test_masked_batch_matches_keras(kind, merge_mode, return_sequences):
    ours, reference = make_pair(
        kind, merge_mode, return_sequences=return_sequences, return_state=True)
    sequences, mask = make_batch()
    outputs = ours(sequences, mask=mask)
    states = 4 if kind == "lstm" else 2
    assert len(outputs) == (2 if merge_mode is None else 1) + states
    assert_all_close(outputs, reference(sequences, mask=mask))


@pytest.mark.parametrize("kind, merge_mode, return_sequences", [
    ("lstm", "concat", True), ("gru", "sum", False), ("lstm", None, False), ("gru", None, True),
])
def test_unmasked_outputs_without_state_match_keras(kind, merge_mode, return_sequences):
    ours, reference = make_pair(kind, merge_mode, return_sequences=return_sequences)
    sequences, _ = make_batch()
    outputs = ours(sequences)
    width = 2 * UNITS if merge_mode == "concat" else UNITS
    shape = (BATCH, TIME, width) if return_sequences else (BATCH, width)
    assert [x.shape for x in flat(outputs)] == [shape] * (2 if merge_mode is None else 1)
    assert_all_close(outputs, reference(sequences))


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_matches_keras(kind):
    ours, reference = make_pair(kind, return_sequences=True, return_state=True)
    sequences, mask = make_batch()
    rng = np.random.default_rng(3)
    initial_state = [rng.normal(size=(BATCH, UNITS)).astype("float32")
                     for _ in range(4 if kind == "lstm" else 2)]  # forward's, then backward's
    outputs = ours(sequences, mask=mask, initial_state=initial_state)
    assert_all_close(outputs, reference(sequences, mask=mask, initial_state=initial_state))
    assert np.abs(np.asarray(outputs[0]) - np.asarray(ours(sequences, mask=mask)[0])).max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_each_direction_of_a_padded_sequence_matches_it_alone(kind):
    layer, _ = make_pair(kind, merge_mode=None, return_sequences=True, return_state=True)
    sequences, mask = make_batch()
    forward, backward, *states = layer(sequences, mask=mask)
    half = len(states) // 2
    forward_states, backward_states = states[:half], states[half:]
    for row, length in enumerate(LENGTHS):
        alone = sequences[row:row + 1, :length]
        # The backward direction starts at the last real token, not at the padding.
        alone_backward, *alone_backward_states = layer.backward_layer(alone)
        assert_all_close([s[row:row + 1] for s in backward_states], alone_backward_states)
        np.testing.assert_allclose(backward[row:row + 1, :length],
                                   np.flip(alone_backward, axis=1), atol=1e-5)
        alone_forward, *alone_forward_states = layer.forward_layer(alone)
        assert_all_close([s[row:row + 1] for s in forward_states], alone_forward_states)
        np.testing.assert_allclose(forward[row:row + 1, :length], alone_forward, atol=1e-5)
        assert np.all(np.asarray(forward)[row, length:] == 0.0)
        assert np.all(np.asarray(backward)[row, length:] == 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_keras_takes_our_weights_forward_then_backward(kind):
    keras.utils.set_random_seed(2)
    ours_class, keras_class = KINDS[kind]
    ours = Bidirectional(ours_class(UNITS, return_sequences=True))
    reference = keras.layers.Bidirectional(keras_class(UNITS, return_sequences=True))
    sequences, mask = make_batch()
    ours.build(sequences.shape)
    reference.build(sequences.shape)
    weights = ours.get_weights()
    assert [id(w) for w in ours.weights] == \
        [id(w) for w in ours.forward_layer.weights + ours.backward_layer.weights]
    reference.set_weights(weights)
    assert_all_close(ours(sequences, mask=mask), reference(sequences, mask=mask))


def test_backward_layer_of_another_kind_matches_keras():
    keras.utils.set_random_seed(1)
    reference = keras.layers.Bidirectional(
        keras.layers.LSTM(UNITS, return_sequences=True),
        backward_layer=keras.layers.GRU(UNITS + 1, return_sequences=True, go_backwards=True))
    ours = Bidirectional(
        LSTM(UNITS, return_sequences=True),
        backward_layer=GRU(UNITS + 1, return_sequences=True, go_backwards=True))
    sequences, mask = make_batch()
    reference.build(sequences.shape)
    ours.build(sequences.shape)
    ours.set_weights(reference.get_weights())
    outputs = ours(sequences, mask=mask)
    assert outputs.shape == (BATCH, TIME, 2 * UNITS + 1)
    assert_all_close(outputs, reference(sequences, mask=mask))


@pytest.mark.parametrize("kind, merge_mode, kwargs", [
    ("lstm", "concat", {"return_sequences": True}),
    ("gru", None, {"return_state": True}),
])
def test_layer_contract(kind, merge_mode, kwargs, tmp_path):
    ours_class, keras_class = KINDS[kind]
    sequences, mask = make_batch()
    check_layer_contract(
        lambda: Bidirectional(ours_class(UNITS, **kwargs), merge_mode=merge_mode),
        sequences, mask, tmp_path,
        make_reference=lambda: keras.layers.Bidirectional(
            keras_class(UNITS, **kwargs), merge_mode=merge_mode))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_tflite_matches_layer(return_sequences):
    layer, _ = make_pair("lstm", return_sequences=return_sequences, return_state=True)
    sequences, mask = make_batch()
    sequences, mask = sequences[1:2], mask[1:2]  # batch 1, padded after LENGTHS[1]
    results = tflite_outputs(lambda sequences, mask: layer(sequences, mask=mask),
                             {"sequences": sequences, "mask": mask}, layer)
    assert_all_close(results, layer(sequences, mask=mask))


def test_stateful_directions_carry_their_states_as_keras():
    keras.utils.set_random_seed(1)
    kwargs = {"stateful": True, "return_sequences": True}
    reference = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, **kwargs), merge_mode="sum")
    ours = Bidirectional(LSTM(UNITS, **kwargs), merge_mode="sum")
    sequences, _ = make_batch()
    reference.build(sequences.shape)  # a stateful layer needs its batch size
    ours.build(sequences.shape)
    ours.set_weights(reference.get_weights())
    first = ours(sequences)
    second = ours(sequences)  # from the states the first call left
    assert_all_close([first, second], [reference(sequences), reference(sequences)])
    assert np.abs(np.asarray(second) - np.asarray(first)).max() > 1e-3
    assert len(ours.states) == 4 and not ours.weights[6:]  # the states are not weights
    ours.reset_state()
    assert_all_close(ours(sequences), first)


def test_weights_argument_sets_the_weights_of_both_directions():
    _, reference = make_pair("gru", return_sequences=True)
    ours = Bidirectional(GRU(UNITS, return_sequences=True), weights=reference.get_weights())
    sequences, mask = make_batch()
    assert_all_close(ours(sequences, mask=mask), reference(sequences, mask=mask))


@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_mixed_precision_output_is_float16(merge_mode):
    ours, _ = make_pair("lstm", merge_mode, return_sequences=True)
    mixed = Bidirectional(LSTM(UNITS, return_sequences=True), merge_mode=merge_mode,
                          dtype="mixed_float16")
    sequences, mask = make_batch()
    mixed.build(sequences.shape)
    mixed.set_weights(ours.get_weights())
    outputs = flat(mixed(sequences, mask=mask))
    assert [x.dtype for x in outputs] == ["float16"] * len(outputs)
    assert_all_close(outputs, ours(sequences, mask=mask), atol=1e-3)


@pytest.mark.parametrize("make, message", [
    (lambda: Bidirectional(LSTM(UNITS), merge_mode="max"), "merge_mode=max"),
    (lambda: Bidirectional(LSTM(UNITS), backward_layer=LSTM(UNITS)), "backward_layer"),
    (lambda: Bidirectional(LSTM(UNITS, stateful=True),
                           backward_layer=LSTM(UNITS, go_backwards=True)), "stateful"),
])
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()
