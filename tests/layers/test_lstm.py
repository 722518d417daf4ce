import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.layers import LSTM, LSTMCell

from helpers import assert_all_close, check_layer_contract, flat, make_sequences, tflite_outputs

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)  # real tokens per row; the rest is right padding


def make_batch():
    """`(BATCH, TIME, FEATURES)` sequences and their right-padding mask."""
    return make_sequences(BATCH, TIME, FEATURES, LENGTHS)


def make_pair(**kwargs):
    """Our LSTM and `keras.layers.LSTM` with the same arguments, holding the same weights."""
    keras.utils.set_random_seed(1)
    reference = keras.layers.LSTM(UNITS, **kwargs)
    reference.build((None, TIME, FEATURES))
    ours = LSTM(UNITS, **kwargs)
    ours.build((None, TIME, FEATURES))
    ours.set_weights(reference.get_weights())
    return ours, reference


def make_initial_state(seed=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(2)]


@pytest.mark.parametrize(
    "return_sequences, go_backwards, masked, initial_state",
    list(itertools.product([False, True], repeat=4)))
def test_matches_keras(return_sequences, go_backwards, masked, initial_state):
    ours, reference = make_pair(
        return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    sequences, mask = make_batch()
    kwargs = {"mask": mask if masked else None,
              "initial_state": make_initial_state() if initial_state else None}
    outputs = ours(sequences, **kwargs)
    assert len(outputs) == 3  # output, h, c
    assert_all_close(outputs, reference(sequences, **kwargs))


@pytest.mark.parametrize("kwargs", [
    {"use_bias": False, "return_sequences": True},
    {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    {"zero_output_for_mask": True, "return_sequences": True},
    {"unit_forget_bias": False, "bias_initializer": "random_normal"},
])
def test_options_match_keras(kwargs):
    ours, reference = make_pair(**kwargs)
    sequences, mask = make_batch()
    assert [w.shape for w in ours.weights] == [w.shape for w in reference.weights]
    assert_all_close(ours(sequences, mask=mask), reference(sequences, mask=mask))


@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_keras(masked):
    ours, reference = make_pair(return_sequences=True, return_state=True)
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
def test_padded_batch_matches_each_sequence_alone(go_backwards):
    layer, _ = make_pair(return_sequences=True, return_state=True, go_backwards=go_backwards)
    sequences, mask = make_batch()
    outputs, h, c = layer(sequences, mask=mask)
    for row, length in enumerate(LENGTHS):
        alone, alone_h, alone_c = layer(sequences[row:row + 1, :length])
        np.testing.assert_allclose(h[row:row + 1], alone_h, atol=1e-6)
        np.testing.assert_allclose(c[row:row + 1], alone_c, atol=1e-6)
        # Outputs are in processing order: backwards, the padding is read (and skipped) first.
        real = slice(TIME - length, None) if go_backwards else slice(None, length)
        np.testing.assert_allclose(outputs[row:row + 1, real], alone, atol=1e-6)


def test_cell_step_matches_keras_cell():
    keras.utils.set_random_seed(1)
    reference = keras.layers.LSTMCell(UNITS)
    reference.build((None, FEATURES))
    cell = LSTMCell(UNITS)
    cell.build((None, FEATURES))
    cell.set_weights(reference.get_weights())
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(2)]
    output, new_states = cell(inputs, states)
    reference_output, reference_states = reference(inputs, states)
    assert cell.state_size == [UNITS, UNITS] and cell.output_size == UNITS
    assert_all_close([output, new_states], [reference_output, reference_states])


@pytest.mark.parametrize("rates", [{"dropout": 0.5}, {"recurrent_dropout": 0.5}])
def test_dropout_only_in_training(rates):
    layer = LSTM(UNITS, return_sequences=True, seed=7, **rates)
    plain = LSTM(UNITS, return_sequences=True)
    sequences, mask = make_batch()
    layer.build(sequences.shape)
    plain.build(sequences.shape)
    plain.set_weights(layer.get_weights())
    trained = np.asarray(layer(sequences, mask=mask, training=True))
    inferred = layer(sequences, mask=mask, training=False)
    assert np.all(np.isfinite(trained))
    assert np.abs(trained - np.asarray(inferred)).max() > 1e-3
    assert_all_close(inferred, plain(sequences, mask=mask), atol=1e-7)


def test_unit_forget_bias():
    layer = LSTM(UNITS)
    layer.build((None, TIME, FEATURES))
    expected = np.concatenate([np.zeros(UNITS), np.ones(UNITS), np.zeros(2 * UNITS)])
    np.testing.assert_array_equal(layer.cell.bias, expected)
    layer = LSTM(UNITS, unit_forget_bias=False)
    layer.build((None, TIME, FEATURES))
    np.testing.assert_array_equal(layer.cell.bias, np.zeros(4 * UNITS))


def test_recurrent_kernel_has_orthonormal_rows():
    # Keras's orthogonal initializer on a wide (units, 4 units) matrix makes its rows
    # orthonormal; the (units, units) gate blocks are not orthogonal one by one.
    keras.utils.set_random_seed(6)
    layer = LSTM(UNITS)
    layer.build((None, TIME, FEATURES))
    cell = LSTMCell(UNITS)
    cell.build((None, FEATURES))
    for recurrent in (layer.cell.recurrent_kernel, cell.recurrent_kernel):
        recurrent = np.asarray(recurrent)
        assert recurrent.shape == (UNITS, 4 * UNITS)
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(UNITS), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, "units=0"),
    ({"units": -2}, "units=-2"),
    ({"units": 2.5}, "units=2.5"),
    ({"units": 4, "dropout": 1.5}, "dropout=1.5"),
    ({"units": 4, "dropout": 1.0}, "dropout=1.0"),
    ({"units": 4, "recurrent_dropout": -0.1}, "recurrent_dropout=-0.1"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LSTM(**kwargs)


def test_layer_contract(tmp_path):
    sequences, mask = make_batch()
    kwargs = {"return_sequences": True, "return_state": True}
    check_layer_contract(lambda: LSTM(UNITS, **kwargs), sequences, mask, tmp_path,
                         make_reference=lambda: keras.layers.LSTM(UNITS, **kwargs))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_tflite_matches_layer(return_sequences):
    layer, _ = make_pair(return_sequences=return_sequences, return_state=True)
    sequences, mask = make_batch()
    sequences, mask = sequences[1:2], mask[1:2]  # batch 1, padded after LENGTHS[1]
    results = tflite_outputs(lambda sequences, mask: layer(sequences, mask=mask),
                             {"sequences": sequences, "mask": mask}, layer)
    assert_all_close(results, layer(sequences, mask=mask))
