"""What the SimpleRNN's linear form shows plainly: one input dropout mask per sequence. What it
shares with LSTM and GRU is tested in test_recurrent.py."""

import numpy as np

from nlpapps.layers import SimpleRNN

from helpers import make_sequences

BATCH, TIME, FEATURES = 3, 6, 5
LENGTHS = (6, 4, 2)  # real tokens per row; the rest is right padding


def test_input_dropout_mask_is_drawn_once_per_sequence():
    # With W = I, U = 0, b = 0 and a linear activation, h_t = x_t * mask: the ratio h_t / x_t
    # shows the mask, which must be the same at every step (as in Keras).
    layer = SimpleRNN(FEATURES, activation="linear", return_sequences=True, dropout=0.5,
                      seed=3, kernel_initializer="identity", recurrent_initializer="zeros")
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    ratio = np.asarray(layer(sequences, training=True)) / sequences  # (batch, time, features)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), atol=1e-5)
    assert set(np.round(np.unique(ratio), 5)) == {0.0, 2.0}
