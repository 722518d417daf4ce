"""What only LSTM has: the forget gate's bias of one. What it shares with SimpleRNN and GRU
is tested in test_recurrent.py."""

import numpy as np

from nlpapps.layers import LSTM

TIME, FEATURES, UNITS = 6, 5, 4


def test_unit_forget_bias():
    layer = LSTM(UNITS)
    layer.build((None, TIME, FEATURES))
    expected = np.concatenate([np.zeros(UNITS), np.ones(UNITS), np.zeros(2 * UNITS)])
    np.testing.assert_array_equal(layer.cell.bias, expected)
    layer = LSTM(UNITS, unit_forget_bias=False)
    layer.build((None, TIME, FEATURES))
    np.testing.assert_array_equal(layer.cell.bias, np.zeros(4 * UNITS))
