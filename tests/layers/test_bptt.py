"""The written-out gradient through time (`bptt.sequence`) against TensorFlow's own
differentiation of the step loop (`rnn.recurrence`), and the layers that use it against Keras's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps import layers
from nlpapps.layers import bptt
from nlpapps.layers.rnn import recurrence

CELLS = {
    "lstm": lambda: layers.LSTMCell(5),
    "gru": lambda: layers.GRUCell(5),
    "gru without bias": lambda: layers.GRUCell(5, use_bias=False),
    "gru reset before": lambda: layers.GRUCell(5, reset_after=False),
}


@pytest.fixture(params=["in the loop", "after the loop"])
def sums(request, monkeypatch):
    """Where the backward loop adds up the recurrent kernel's gradient: each step's term in
    the loop (the default at these widths), or one matmul over every step after it."""
    if request.param == "after the loop":
        monkeypatch.setattr(bptt, "SUMS_IN_LOOP_MAX_KERNEL", 0)
    return request.param


def _built(name, features=3):
    cell = CELLS[name]()
    cell.build((None, features))
    rng = np.random.default_rng(1)
    # Larger than the initializers' weights, so that the gates leave their linear range.
    cell.set_weights([rng.normal(scale=0.8, size=w.shape).astype("float32")
                      for w in cell.get_weights()])
    return cell


def _gradients(cell, run, projected, states, cotangents):
    """Gradients of <outputs, cotangents> w.r.t. the projected inputs, states and weights."""
    # A GRU's recurrent bias b' is inside the loop; the other biases are in `projected`.
    inside = cell.use_bias and getattr(cell, "reset_after", False)
    weights = [cell.recurrent_kernel] + ([cell.bias] if inside else [])
    with tf.GradientTape() as tape:
        tape.watch([projected, *states])
        last_output, outputs, final_states = run(projected, states)
        loss = sum(tf.reduce_sum(value * weight) for value, weight in zip(
            [last_output, outputs, *final_states], cotangents))
    values = [last_output, outputs, *final_states]
    return values, tape.gradient(loss, [projected, *states, *weights])


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("masked, zero_output_for_mask",
                         [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("dropped", [False, True])
def test_gradients_equal_the_differentiated_loop(name, masked, zero_output_for_mask, dropped,
                                                 sums):
    cell = _built(name)
    assert bptt.sums_in_loop(cell.recurrent_kernel) == (sums == "in the loop")
    rng = np.random.default_rng(2)
    time, batch = 6, 4
    projected = tf.constant(rng.normal(size=(time, batch, cell.gates * 5)), tf.float32)
    states = [tf.constant(rng.normal(size=(batch, 5)), tf.float32) for _ in cell.state_size]
    # Row 0 all real, row 1 masked at its start (its first outputs are the zero output, not
    # h_0), row 2 right-padded, row 3 masked in the middle.
    mask = tf.constant(np.array([[1] * 6, [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0],
                                 [1, 1, 0, 0, 1, 1]], bool).T) if masked else None
    recurrent_mask = tf.constant(
        (rng.random((batch, 5)) > 0.3) / 0.7, tf.float32) if dropped else None
    cotangents = [tf.constant(rng.normal(size=shape), tf.float32)
                  for shape in [(batch, 5), (time, batch, 5)] + [(batch, 5)] * len(states)]

    def loop(projected, states):
        return recurrence(lambda x, s: cell.step(x, s, recurrent_mask), projected, states,
                          mask=mask, return_sequences=True,
                          zero_output_for_mask=zero_output_for_mask)

    def written(projected, states):
        return bptt.sequence(cell, projected, states, mask=mask,
                             recurrent_mask=recurrent_mask,
                             zero_output_for_mask=zero_output_for_mask)

    assert bptt.applies(cell)
    expected_values, expected = _gradients(cell, loop, projected, states, cotangents)
    values, got = _gradients(cell, written, projected, states, cotangents)
    for value, expected_value in zip(values, expected_values, strict=True):
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-6)
    for gradient, expected_gradient in zip(got, expected, strict=True):
        assert gradient is not None
        # Not trivially zero: every input has a gradient to compare.
        assert float(tf.reduce_max(tf.abs(expected_gradient))) > 1e-3
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("masked", [False, True])
def test_steps_that_project_their_own_inputs_give_the_same_gradients(name, masked, sums):
    """With `projection`, each step computes `x_t W + b` inside the loop: the values and the
    gradients of the inputs, the states and every weight (W, U, the biases) are those of
    TensorFlow differentiating `project_inputs` and the step loop."""
    cell = _built(name)
    rng = np.random.default_rng(5)
    time, batch = 6, 4
    inputs = tf.constant(rng.normal(size=(time, batch, 3)), tf.float32)
    states = [tf.constant(rng.normal(size=(batch, 5)), tf.float32) for _ in cell.state_size]
    mask = tf.constant(np.array([[1] * 6, [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0],
                                 [1, 1, 0, 0, 1, 1]], bool).T) if masked else None

    def gradients(run):
        with tf.GradientTape() as tape:
            tape.watch([inputs, *states])
            last_output, outputs, final_states = run()
            loss = tf.reduce_sum(tf.sin(outputs)) + sum(
                tf.reduce_sum(s * s) for s in [last_output, *final_states])
        return [outputs, *final_states], tape.gradient(loss, [inputs, *states,
                                                              *cell.trainable_weights])

    expected_values, expected = gradients(lambda: recurrence(
        lambda x, s: cell.step(x, s), cell.project_inputs(inputs), states, mask=mask,
        return_sequences=True))
    values, got = gradients(lambda: bptt.sequence(
        cell, inputs, states, mask=mask, projection=cell.input_projection()))
    for value, expected_value in zip(values, expected_values, strict=True):
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-6)
    assert len(got) == 1 + len(states) + len(cell.trainable_weights)
    for gradient, expected_gradient in zip(got, expected, strict=True):
        assert float(tf.reduce_max(tf.abs(expected_gradient))) > 1e-3
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-5)


def test_gradients_equal_finite_differences():
    """An independent check of the equations: central differences of a scalar loss."""
    cell = _built("lstm", features=2)
    rng = np.random.default_rng(3)
    projected = rng.normal(size=(4, 2, 20))
    states = [rng.normal(size=(2, 5)) for _ in range(2)]
    weights = rng.normal(scale=0.8, size=(5, 20))

    def loss(projected, kernel):
        cell.recurrent_kernel.assign(kernel.astype("float32"))
        _, outputs, (h, c) = bptt.sequence(
            cell, tf.cast(projected, tf.float32), [tf.constant(s, tf.float32) for s in states])
        return tf.reduce_sum(tf.sin(outputs)) + tf.reduce_sum(c * c)

    projected_t = tf.constant(projected, tf.float32)
    cell.recurrent_kernel.assign(weights.astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(projected_t)
        value = loss(projected_t, weights)
    d_projected, d_kernel = tape.gradient(value, [projected_t, cell.recurrent_kernel])
    epsilon = 1e-2
    for index in [(0, 0, 0), (1, 1, 7), (3, 0, 19), (2, 1, 12)]:
        step = np.zeros_like(projected)
        step[index] = epsilon
        numeric = (float(loss(projected + step, weights))
                   - float(loss(projected - step, weights))) / (2 * epsilon)
        np.testing.assert_allclose(d_projected[index], numeric, rtol=2e-2, atol=2e-3)
    for index in [(0, 0), (4, 19), (2, 9)]:
        step = np.zeros_like(weights)
        step[index] = epsilon
        numeric = (float(loss(projected, weights + step))
                   - float(loss(projected, weights - step))) / (2 * epsilon)
        np.testing.assert_allclose(d_kernel[index], numeric, rtol=2e-2, atol=2e-3)


def test_the_gradients_of_small_kernels_are_added_up_in_the_loop():
    """Recurrent kernels up to LSTM 256's (2^18 weights) in the loop; a wider one after it."""
    def kernel(units, gates=4):
        return tf.zeros((units, gates * units))

    assert bptt.sums_in_loop(kernel(256))
    assert not bptt.sums_in_loop(kernel(257))
    assert bptt.sums_in_loop(kernel(295, gates=3))  # GRU: 261,075 weights
    assert not bptt.sums_in_loop(kernel(296, gates=3))


def test_other_activations_and_subclasses_keep_the_differentiated_loop():
    assert not bptt.applies(layers.LSTMCell(4, activation="relu"))
    assert not bptt.applies(layers.GRUCell(4, recurrent_activation="hard_sigmoid"))
    assert not bptt.applies(layers.SimpleRNNCell(4))

    class Peephole(layers.LSTMCell):
        pass

    assert not bptt.applies(Peephole(4))


@pytest.mark.parametrize("ours_cls, keras_cls, options", [
    (layers.LSTM, keras.layers.LSTM, {}),
    (layers.GRU, keras.layers.GRU, {}),
    (layers.GRU, keras.layers.GRU, {"reset_after": False}),
    (layers.LSTM, keras.layers.LSTM, {"go_backwards": True, "return_sequences": False}),
])
def test_a_training_step_equals_keras(ours_cls, keras_cls, options, sums):
    """One Adam step of each layer in a model, from the same weights, on masked input: the
    weights after it agree (the layer takes the written gradient in training)."""
    options = {"return_sequences": True, **options}
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 7, 4)).astype("float32")
    x[1, 5:] = 0.0  # padding, masked by the Masking layer
    y = rng.normal(size=(3, 7, 6) if options["return_sequences"] else (3, 6)).astype("float32")

    def model(layer):
        inputs = keras.Input((7, 4))
        result = keras.Model(inputs, layer(keras.layers.Masking()(inputs)))
        result.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        return result

    builtin, ours = model(keras_cls(6, **options)), model(ours_cls(6, **options))
    ours.set_weights(builtin.get_weights())
    for _ in range(3):
        np.testing.assert_allclose(ours.train_on_batch(x, y), builtin.train_on_batch(x, y),
                                   rtol=1e-5)
    for got, expected in zip(ours.get_weights(), builtin.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
