import keras
import numpy as np
import pytest

from nlpapps.layers import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN

from helpers import assert_all_close, check_layer_contract, make_sequences, tflite_outputs

BATCH, TIME, FEATURES = 3, 6, 6
LENGTHS = (6, 4, 2)  # real tokens per row; the rest is right padding
# Widths 6 -> 6 -> 4 -> 4: a residual connection fits around the first and the last layer only.
WIDTHS = (6, 4, 4)
RESIDUAL_AT = (True, False, True)


def make_batch():
    """`(BATCH, TIME, FEATURES)` sequences and their right-padding mask."""
    return make_sequences(BATCH, TIME, FEATURES, LENGTHS)


def make_layers(**kwargs):
    return [LSTM(WIDTHS[0], **kwargs), GRU(WIDTHS[1], **kwargs), SimpleRNN(WIDTHS[2], **kwargs)]


def make_stack(seed=1, **kwargs):
    keras.utils.set_random_seed(seed)
    stack = StackedRNN(make_layers(), **kwargs)
    stack.build((None, TIME, FEATURES))
    return stack


def run_by_hand(stack, sequences, mask=None, residual=False, initial_state=None):
    """Runs copies of the stack's layers one after another: `(last_output, states)`."""
    x, states = sequences, []
    copies = make_layers(return_sequences=True, return_state=True)
    for index, (copy, layer) in enumerate(zip(copies, stack.layers)):
        copy.build(x.shape)
        copy.set_weights(layer.get_weights())
        state = None if initial_state is None else initial_state[index]
        output, *layer_states = copy(x, mask=mask, initial_state=state)
        x = output + x if residual and RESIDUAL_AT[index] else output
        states.append(layer_states)
    return x, states


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_layers_run_one_after_another(residual, masked):
    stack = make_stack(residual=residual, return_state=True)
    sequences, mask = make_batch()
    mask = mask if masked else None
    output, states = stack(sequences, mask=mask)
    assert output.shape == (BATCH, TIME, WIDTHS[-1])
    assert [len(s) for s in states] == [2, 1, 1]  # LSTM [h, c], GRU [h], SimpleRNN [h]
    assert_all_close([output, states], run_by_hand(stack, sequences, mask, residual=residual))


def test_initial_state_goes_to_its_layer():
    stack = make_stack(return_state=True)
    sequences, mask = make_batch()
    h0 = np.random.default_rng(3).normal(size=(BATCH, WIDTHS[1])).astype("float32")
    initial_state = [None, [h0], None]
    outputs = stack(sequences, mask=mask, initial_state=initial_state)
    assert_all_close(outputs, run_by_hand(stack, sequences, mask, initial_state=initial_state))
    assert np.abs(np.asarray(outputs[0]) - np.asarray(stack(sequences, mask=mask)[0])).max() > 1e-3


def test_bidirectional_layers_stack():
    def make(**kwargs):
        return [Bidirectional(LSTM(3, **kwargs)), GRU(6, **kwargs)]  # concat: 3 + 3 = 6 wide

    keras.utils.set_random_seed(1)
    stack = StackedRNN(make(), residual=True)
    sequences, mask = make_batch()
    output = stack(sequences, mask=mask)
    first, second = make(return_sequences=True)
    first.build(sequences.shape)
    second.build(sequences.shape)
    first.set_weights(stack.layers[0].get_weights())
    second.set_weights(stack.layers[1].get_weights())
    hidden = first(sequences, mask=mask) + sequences
    expected = second(hidden, mask=mask) + hidden
    # Bidirectional outputs zeros at padding; compare the real steps.
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(output[row, :length], expected[row, :length], atol=1e-5)


@pytest.mark.parametrize("residual", [False, True])
def test_padded_batch_matches_each_sequence_alone(residual):
    stack = make_stack(residual=residual, return_state=True)
    sequences, mask = make_batch()
    output, states = stack(sequences, mask=mask)
    for row, length in enumerate(LENGTHS):
        alone, alone_states = stack(sequences[row:row + 1, :length])
        np.testing.assert_allclose(output[row:row + 1, :length], alone, atol=1e-5)
        assert_all_close([[s[row:row + 1] for s in layer] for layer in states], alone_states)


@pytest.mark.parametrize("make", [
    lambda: [LSTM(FEATURES), GRU(FEATURES)],
    lambda: [LSTM(FEATURES), Bidirectional(GRU(FEATURES // 2))],
])
def test_last_output_is_each_sequences_last_real_step(make):
    # With residual connections the padded steps' outputs differ from the last real one.
    keras.utils.set_random_seed(1)
    stack = StackedRNN(make(), residual=True)
    last = StackedRNN(make(), residual=True, return_sequences=False)
    sequences, mask = make_batch()
    everything = np.asarray(stack(sequences, mask=mask))
    last(sequences, mask=mask)
    last.set_weights(stack.get_weights())
    output = last(sequences, mask=mask)
    assert output.shape == (BATCH, FEATURES)
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(output[row], everything[row, length - 1], atol=1e-6)
        if length < TIME:
            assert np.abs(everything[row, length - 1] - everything[row, -1]).max() > 1e-3
        alone = last(sequences[row:row + 1, :length])
        np.testing.assert_allclose(output[row:row + 1], alone, atol=1e-5)
    np.testing.assert_allclose(last(sequences), np.asarray(stack(sequences))[:, -1], atol=1e-6)


def test_dropout_only_in_training_and_only_between_layers():
    sequences, mask = make_batch()
    stack = make_stack(dropout=0.5, seed=1)
    plain = make_stack()
    plain.set_weights(stack.get_weights())
    trained = np.asarray(stack(sequences, mask=mask, training=True))
    inferred = stack(sequences, mask=mask)
    assert np.all(np.isfinite(trained))
    assert np.abs(trained - np.asarray(inferred)).max() > 1e-3
    assert_all_close(inferred, plain(sequences, mask=mask), atol=1e-7)

    # Nothing is dropped below the first layer.
    single = StackedRNN([LSTM(4)], dropout=0.5)
    assert_all_close(single(sequences, mask=mask, training=True), single(sequences, mask=mask),
                     atol=1e-7)


def test_residual_adds_the_input_before_dropout():
    # The top layer outputs tanh(0) = 0, so the stack's output is its residual input alone:
    # x^(2) = f(drop(x^(1))) + x^(1) = x^(1), whatever the dropout mask.
    keras.utils.set_random_seed(1)
    stack = StackedRNN(
        [SimpleRNN(FEATURES),
         SimpleRNN(FEATURES, kernel_initializer="zeros", recurrent_initializer="zeros")],
        residual=True, dropout=0.5, seed=2)
    sequences, mask = make_batch()
    trained = stack(sequences, mask=mask, training=True)
    assert_all_close(trained, stack(sequences, mask=mask), atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: StackedRNN(make_layers(), residual=True, dropout=0.2, return_sequences=False),
    lambda: StackedRNN([Bidirectional(LSTM(3)), GRU(6), SimpleRNN(4)], residual=True,
                       return_state=True),
])
def test_layer_contract(make, tmp_path):
    sequences, mask = make_batch()
    check_layer_contract(make, sequences, mask, tmp_path)


def test_tflite_matches_layer():
    stack = StackedRNN([Bidirectional(LSTM(3)), GRU(6)], residual=True, return_sequences=False)
    sequences, mask = make_batch()
    sequences, mask = sequences[1:2], mask[1:2]  # batch 1, padded after LENGTHS[1]
    results = tflite_outputs(lambda sequences, mask: stack(sequences, mask=mask),
                             {"sequences": sequences, "mask": mask}, stack)
    assert_all_close(results, stack(sequences, mask=mask))


@pytest.mark.parametrize("make, message", [
    (lambda: StackedRNN([]), "layers"),
    (lambda: StackedRNN(make_layers(), dropout=1.0), "dropout=1.0"),
    (lambda: StackedRNN(make_layers(), dropout=-0.5), "dropout=-0.5"),
])
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("cells", [(LSTM, LSTM, LSTM), (GRU, SimpleRNN, GRU)])
def test_step_by_step_equals_the_whole_sequence(cells):
    """`step`, the function decoders call, is `call` on sequences of length one, residual
    connections included (first layer 5 -> 4 wide: no residual; above it: residual)."""
    stack = StackedRNN([cls(4) for cls in cells], residual=True, dropout=0.3,
                       return_state=True)
    x = np.random.default_rng(1).normal(size=(3, 6, 5)).astype("float32")
    outputs, final_states = stack(x)
    states = [layer.get_initial_state(3) for layer in stack.layers]
    for t in range(6):
        output, states = stack.step(x[:, t], states)
        assert_all_close(output, outputs[:, t])
    assert_all_close(states, final_states)


def test_a_bidirectional_stack_cannot_step():
    stack = StackedRNN([Bidirectional(LSTM(2)), LSTM(4)])
    stack(np.ones((1, 2, 3), "float32"))
    with pytest.raises(ValueError, match="cannot run one step at a time"):
        stack.step(np.ones((1, 3), "float32"), [[], []])
