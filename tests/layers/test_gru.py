"""What only GRU has: separate input and recurrent biases (Keras's reset_after=True), and the
textbook form (reset_after=False). What it shares with SimpleRNN and LSTM, in both forms, is
tested in test_recurrent.py."""

import numpy as np

from nlpapps.layers import GRU, GRUCell

TIME, FEATURES, UNITS = 6, 5, 4


def test_bias_holds_input_and_recurrent_rows():
    layer = GRU(UNITS)
    layer.build((None, TIME, FEATURES))
    assert layer.cell.bias.shape == (2, 3 * UNITS)  # [b_in, b_rec], as with reset_after=True
    assert len(layer.weights) == 3


def test_textbook_form_has_one_bias_and_resets_before_the_matmul():
    # reset_after=False: h~ = tanh(x W_h + b_h + (r * h) U_h), one (3 units,) bias, against a
    # NumPy transcription of the step.
    cell = GRUCell(UNITS, reset_after=False, bias_initializer="random_normal")
    cell.build((None, FEATURES))
    assert [tuple(w.shape) for w in cell.weights] == [
        (FEATURES, 3 * UNITS), (UNITS, 3 * UNITS), (3 * UNITS,)]
    W, U, b = (np.asarray(w, dtype="float64") for w in cell.weights)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, FEATURES))
    h = rng.normal(size=(2, UNITS))
    W_z, W_r, W_h = np.split(W, 3, axis=1)
    U_z, U_r, U_h = np.split(U, 3, axis=1)
    b_z, b_r, b_h = np.split(b, 3)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = sigmoid(x @ W_z + b_z + h @ U_z)
    r = sigmoid(x @ W_r + b_r + h @ U_r)
    candidate = np.tanh(x @ W_h + b_h + (r * h) @ U_h)
    expected = z * h + (1 - z) * candidate
    output, [state] = cell(x.astype("float32"), [h.astype("float32")])
    np.testing.assert_allclose(output, expected, atol=1e-5)
    np.testing.assert_allclose(state, expected, atol=1e-5)
    # The default form computes another function of the same kernels.
    default = GRUCell(UNITS)
    default.build((None, FEATURES))
    default.set_weights([W, U, np.stack([b, np.zeros_like(b)])])
    assert np.abs(np.asarray(default(x.astype("float32"), [h.astype("float32")])[0])
                  - expected).max() > 1e-3


def test_reset_after_is_in_the_config():
    layer = GRU(UNITS, reset_after=False)
    clone = GRU.from_config(layer.get_config())
    clone.build((None, TIME, FEATURES))
    assert clone.cell.reset_after is False and clone.cell.bias.shape == (3 * UNITS,)


def test_the_loop_reads_the_kernel_parts_once_and_keeps_a_subclass_step():
    """A loop's step (`loop_step`) takes the recurrent kernel's parts once and gives `step`'s
    values, in both forms; a subclass that overrides `step` has its own step run by the
    layer's loop."""
    from nlpapps.layers.rnn import RNN

    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, TIME, FEATURES)).astype("float32")
    for reset_after in (True, False):
        cell = GRUCell(UNITS, reset_after=reset_after, bias_initializer="random_normal")
        cell.build((None, FEATURES))
        projected = cell.project_inputs(x[:, 0])
        h = rng.normal(size=(10, UNITS)).astype("float32")
        np.testing.assert_allclose(cell.loop_step()(projected, [h])[0],
                                   cell.step(projected, [h])[0], rtol=1e-6)

    class Halved(GRUCell):
        def step(self, projected, states, recurrent_mask=None):
            h, _ = super().step(projected, states, recurrent_mask)
            return h * 0.5, [h * 0.5]

    for batch in (3, 10):  # projected before the loop, and inside it
        layer = RNN(Halved(UNITS, reset_after=False), return_sequences=True)
        outputs = np.asarray(layer(x[:batch]))
        h = np.zeros((batch, UNITS), "float32")
        for t in range(TIME):
            h = np.asarray(layer.cell.step(layer.cell.project_inputs(x[:batch, t]), [h])[0])
            np.testing.assert_allclose(outputs[:, t], h, rtol=1e-5, atol=1e-6)
