"""AttentionPooling: the weights, the pooled states and the penalty against a NumPy
transcription of Lin et al. 2017, masking, the loss it adds, and the layer contract."""

import keras
import numpy as np
import pytest

from nlpapps.layers import AttentionPooling
from tests.layers.helpers import (assert_all_close, check_layer_contract, make_sequences,
                                  tflite_outputs)

D, UNITS, HOPS = 5, 4, 3


def numpy_pooling(H, real, W1, W2):
    """`A = softmax(W2 tanh(W1 H^T))` over the real positions, `M = A H`,
    `P = ||A A^T - I||_F^2`, row by row."""
    pooled, weights, penalties = [], [], []
    for h, r in zip(H, real):
        h = h[r]  # the real positions only
        scores = W2.T @ np.tanh(W1.T @ h.T)  # (hops, n)
        a = np.exp(scores - scores.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        full = np.zeros((HOPS, len(r)))
        full[:, r] = a
        pooled.append(a @ h)
        weights.append(full)
        penalties.append(np.sum((a @ a.T - np.eye(HOPS)) ** 2))
    return np.stack(pooled), np.stack(weights), np.mean(penalties)


def make_layer(**kwargs):
    keras.utils.set_random_seed(0)
    layer = AttentionPooling(UNITS, hops=HOPS, **kwargs)
    layer.build((None, None, D))
    return layer


def test_weights_pooled_states_and_penalty_match_numpy():
    layer = make_layer(penalty=0.5)
    H, real = make_sequences(batch=3, time=6, features=D, lengths=(6, 4, 2))
    H[~real] = 50.0  # padding never shows
    pooled, weights = layer(H, mask=real)
    expected = numpy_pooling(H, real, layer.w1.numpy(), layer.w2.numpy())
    np.testing.assert_allclose(pooled, expected[0], atol=1e-5)
    np.testing.assert_allclose(weights, expected[1], atol=1e-6)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * expected[2], rtol=1e-5)


def test_the_penalty_is_part_of_a_model_s_training_loss():
    layer = make_layer(penalty=2.0, flatten=True)
    inputs = keras.Input((6, D))
    pooled, _ = layer(inputs)
    model = keras.Model(inputs, pooled)
    model.compile("sgd", "mse")
    H, _ = make_sequences(batch=3, time=6, features=D, lengths=(6, 6, 6))
    target = np.asarray(model(H))  # the mse part is then zero
    loss = model.evaluate(H, target, verbose=0)
    expected = numpy_pooling(H, np.ones((3, 6), bool), layer.w1.numpy(), layer.w2.numpy())[2]
    np.testing.assert_allclose(loss, 2.0 * expected, rtol=1e-5)
    assert target.shape == (3, HOPS * D)


def test_no_penalty_adds_no_loss():
    layer = make_layer(penalty=0.0)
    layer(np.ones((2, 4, D), "float32"))
    assert layer.losses == []


def test_a_row_with_no_real_position_gives_zeros():
    layer = make_layer()
    H, _ = make_sequences(batch=2, time=4, features=D)
    real = np.array([[True, True, False, False], [False] * 4])
    pooled, weights = layer(H, mask=real)
    np.testing.assert_array_equal(pooled[1], 0.0)
    np.testing.assert_array_equal(weights[1], 0.0)
    assert np.all(np.isfinite(pooled))


def test_config_round_trip_and_the_layer_contract(tmp_path):
    layer = AttentionPooling(7, hops=2, penalty=0.3, flatten=True, name="pooling")
    clone = AttentionPooling.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    sequences, mask = make_sequences(features=D)
    check_layer_contract(lambda: AttentionPooling(UNITS, hops=HOPS), sequences, mask, tmp_path)


@pytest.mark.parametrize("kwargs,name", [({"attention_units": 0}, "attention_units"),
                                         ({"attention_units": 3, "hops": 0}, "hops"),
                                         ({"attention_units": 3, "penalty": -1.0}, "penalty")])
def test_bad_arguments_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AttentionPooling(**kwargs)


def test_tflite_builtins_give_the_same_pooling():
    layer = make_layer()
    H, _ = make_sequences(batch=1, time=6, features=D, lengths=(6,))
    got = tflite_outputs(lambda x: layer(x), dict(x=H), layer)
    assert_all_close(got, layer(H), atol=1e-5)
