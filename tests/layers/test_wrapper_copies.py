"""The wrappers (`Bidirectional`, `StackedRNN`) run their own copies of the layers they are
given, made from the layers' configs, and leave the given layers as they were."""

import keras
import numpy as np

from nlpapps.layers import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN

from helpers import assert_all_close


def test_bidirectional_leaves_its_layer_unchanged():
    layer = LSTM(4, return_sequences=True, name="encoder")
    backward = LSTM(4, return_sequences=True, go_backwards=True, name="reader")
    before = (layer.get_config(), backward.get_config())
    wrapper = Bidirectional(layer, backward_layer=backward)
    wrapper(np.ones((2, 3, 5), "float32"), mask=np.array([[1, 1, 0], [1, 1, 1]], bool))
    assert (layer.get_config(), backward.get_config()) == before
    assert not layer.built and not backward.built
    assert wrapper.forward_layer is not layer and wrapper.backward_layer is not backward
    assert wrapper.forward_layer.name == "forward_encoder"
    assert wrapper.backward_layer.name == "backward_reader"
    assert wrapper.forward_layer.zero_output_for_mask and not layer.zero_output_for_mask


def test_bidirectional_names_do_not_grow_through_config_round_trips():
    wrapper = Bidirectional(GRU(3, return_sequences=True, name="gru"))
    again = Bidirectional.from_config(Bidirectional.from_config(wrapper.get_config()).get_config())
    assert (again.forward_layer.name, again.backward_layer.name) == ("forward_gru", "backward_gru")
    assert again.backward_layer.go_backwards and not again.forward_layer.go_backwards


def test_stacked_rnn_leaves_its_layers_unchanged():
    layers = [SimpleRNN(4, name="bottom"), Bidirectional(GRU(2), name="middle"),
              LSTM(4, return_state=False, name="top")]
    before = [layer.get_config() for layer in layers]
    stack = StackedRNN(layers, residual=True)
    outputs = stack(np.ones((2, 3, 4), "float32"))
    assert outputs.shape == (2, 3, 4)
    assert [layer.get_config() for layer in layers] == before
    assert not any(layer.built for layer in layers)
    assert [layer.name for layer in stack.layers] == ["bottom", "middle", "top"]
    assert all(copy is not given for copy, given in zip(stack.layers, layers))
    assert all(layer.return_sequences and layer.return_state for layer in stack.layers)


def test_stacked_rnn_of_copies_computes_what_its_copies_compute():
    """The stack's output is its copies run one after the other (no residual: widths differ)."""
    stack = StackedRNN([LSTM(3), Bidirectional(GRU(2))])
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    stacked = stack(x)
    first, *_ = stack.layers[0](x)
    second, *_ = stack.layers[1](first)
    assert_all_close(keras.ops.convert_to_numpy(stacked), keras.ops.convert_to_numpy(second))
