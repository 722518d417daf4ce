"""`RNN(cell)` takes a cell as `keras.layers.RNN` does: one of ours or any Keras cell."""

import keras
import numpy as np
import pytest

from nlpapps.layers import GRU, LSTM, RNN, GRUCell, LSTMCell


def _inputs(seed=0, batch=3, steps=6, features=5):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype("float32")


def test_rnn_of_our_cell_equals_the_layer_of_that_cell():
    x = _inputs()
    layer = LSTM(7, return_sequences=True)
    expected = layer(x)
    wrapped = RNN(LSTMCell(7), return_sequences=True)
    wrapped.build(x.shape)
    wrapped.set_weights(layer.get_weights())
    np.testing.assert_allclose(wrapped(x), expected, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: keras.layers.GRUCell(6),
                                  lambda: keras.layers.LSTMCell(6),
                                  lambda: keras.layers.SimpleRNNCell(6)],
                         ids=["gru", "lstm", "simple"])
def test_rnn_of_a_keras_cell_equals_keras_rnn(make):
    """The same Keras cell driven by our loop and by Keras's, with a mask and states."""
    x = _inputs(1)
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    keras_rnn = keras.layers.RNN(make(), return_sequences=True, return_state=True)
    expected = keras_rnn(x, mask=mask)
    ours = RNN(make(), return_sequences=True, return_state=True)
    ours.build(x.shape)
    ours.set_weights(keras_rnn.get_weights())
    got = ours(x, mask=mask)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_rnn_with_a_cell_round_trips_its_config():
    layer = RNN(GRUCell(4, reset_after=False), return_sequences=True, go_backwards=True,
                name="wrapped")
    x = _inputs(2)
    y = layer(x)
    config = layer.get_config()
    assert config["cell"]["class_name"] == "GRUCell"
    copy = RNN.from_config(config)
    copy.build(x.shape)
    copy.set_weights(layer.get_weights())
    np.testing.assert_allclose(copy(x), y, atol=1e-6)
    assert copy.get_config() == config
    # a subclass keeps its flat config (Keras's LSTM/GRU configs, no nested cell)
    assert "cell" not in GRU(3).get_config()


def test_a_cell_list_or_recurrent_dropout_on_a_keras_cell_is_refused():
    with pytest.raises(ValueError, match="one cell"):
        RNN([LSTMCell(3), LSTMCell(3)])
    with pytest.raises(ValueError, match="recurrent_dropout needs a cell of nlpapps"):
        RNN(keras.layers.GRUCell(3), recurrent_dropout=0.2)
