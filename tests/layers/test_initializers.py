"""Tests for nlpapps.layers.initializers and the identity recurrent initialisation (IRNN) of
our SimpleRNN."""

import keras
import numpy as np
import pytest

from nlpapps.layers import SimpleRNN
from nlpapps.layers.initializers import Identity


@pytest.mark.parametrize("initializer, gain", [
    (keras.initializers.Identity(gain=1.5), 1.5),
    ("identity", 1.0),
    (Identity(1.5), 1.5),
])
def test_simple_rnn_starts_its_recurrent_kernel_at_gain_times_identity(initializer, gain):
    layer = SimpleRNN(5, activation="relu", recurrent_initializer=initializer)
    layer.build((None, 3, 2))
    np.testing.assert_array_equal(layer.cell.recurrent_kernel.numpy(), gain * np.eye(5))


def test_an_irnn_with_zero_input_weights_carries_its_state_unchanged():
    # h_t = relu(x_t W + b + h_{t-1} I) with W = 0, b = 0: the initial state, as it was.
    layer = SimpleRNN(4, activation="relu", recurrent_initializer=Identity(1.0),
                      kernel_initializer="zeros")
    state = np.array([[0.5, 1.0, 0.0, 2.0]], dtype=np.float32)
    output = layer(np.ones((1, 7, 3), np.float32), initial_state=[state])
    np.testing.assert_allclose(output.numpy(), state, rtol=1e-6)


def test_the_gain_survives_a_config_round_trip_and_a_saved_file(tmp_path):
    layer = SimpleRNN(3, activation="relu", recurrent_initializer=Identity(1.5))
    rebuilt = SimpleRNN.from_config(layer.get_config())
    rebuilt.build((None, 2, 2))
    np.testing.assert_array_equal(rebuilt.cell.recurrent_kernel.numpy(), 1.5 * np.eye(3))
    model = keras.Sequential([keras.Input((None, 2)), layer])
    model.save(tmp_path / "irnn.keras")
    loaded = keras.saving.load_model(tmp_path / "irnn.keras")
    assert loaded.layers[0].cell.recurrent_initializer.gain == 1.5
