"""What only GRU has: separate input and recurrent biases (Keras's reset_after=True). What it
shares with SimpleRNN and LSTM is tested in test_recurrent.py."""

from nlpapps.layers import GRU

TIME, FEATURES, UNITS = 6, 5, 4


def test_bias_holds_input_and_recurrent_rows():
    layer = GRU(UNITS)
    layer.build((None, TIME, FEATURES))
    assert layer.cell.bias.shape == (2, 3 * UNITS)  # [b_in, b_rec], as with reset_after=True
    assert len(layer.weights) == 3
