"""Tests for nlpapps.gradients.norms: the tape's dL_T/dh_t against finite differences, on the
real layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.gradients import norms
from nlpapps.gradients.adding import adding_batch
from nlpapps.gradients.cells import CELLS, adding_model


def _model(cell, units=4):
    keras.utils.set_random_seed(0)
    return adding_model(cell, units, dtype="float64")


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_step_by_step_loss_is_the_layers_own(cell):
    model = _model(cell)
    inputs, targets = adding_batch(np.random.default_rng(0), 3, 6)
    offsets = tf.zeros((6, 3, 4), dtype="float64")
    loss = norms.loss_with_offsets(model, inputs, targets, offsets).numpy()
    expected = ((model(inputs.astype(np.float64)).numpy() - targets) ** 2).sum(axis=-1)
    np.testing.assert_allclose(loss, expected, rtol=1e-10)


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_tapes_gradient_equals_central_finite_differences(cell):
    model = _model(cell)
    inputs, targets = adding_batch(np.random.default_rng(1), 2, 6)
    gradients = norms.state_gradients(model, inputs, targets)  # (T, batch, units)
    assert gradients.shape == (6, 2, 4)
    # Examples do not interact, so every perturbed copy of an example is one row of a single
    # batch: for each entry (t, b, u), the example b with h_t[u] moved by +epsilon and by
    # -epsilon.
    epsilon = 1e-6
    entries = list(np.ndindex(*gradients.shape))
    offsets = np.zeros((6, 2 * len(entries), 4))
    rows = []
    for i, (t, b, u) in enumerate(entries):
        offsets[t, 2 * i, u], offsets[t, 2 * i + 1, u] = epsilon, -epsilon
        rows += [b, b]
    losses = norms.loss_with_offsets(model, inputs[rows], targets[rows],
                                     tf.constant(offsets)).numpy()
    estimate = ((losses[0::2] - losses[1::2]) / (2 * epsilon)).reshape(gradients.shape)
    np.testing.assert_allclose(gradients, estimate, rtol=1e-5, atol=1e-8)
    # The last step's state reaches the loss only through the read-out.
    readout = model.get_layer("readout").kernel.numpy()[:, 0]
    prediction = model(inputs.astype(np.float64)).numpy()[:, 0]
    np.testing.assert_allclose(gradients[-1], 2 * (prediction - targets[:, 0])[:, None]
                               * readout[None, :], rtol=1e-10)


def test_the_norms_run_from_the_last_step_back_and_average_the_examples():
    model = _model("tanh")
    inputs, targets = adding_batch(np.random.default_rng(2), 3, 7)
    gradients = norms.state_gradients(model, inputs, targets)
    values = norms.gradient_norms(model, inputs, targets)
    assert values.shape == (7,)
    for k in (0, 3, 6):
        assert values[k] == pytest.approx(np.linalg.norm(gradients[6 - k], axis=-1).mean())


def test_a_float32_model_is_measured_in_float64_with_its_weights():
    keras.utils.set_random_seed(0)
    model = adding_model("gru", 4)
    copy = norms.in_float64(model, "gru")
    assert copy.get_layer(index=1).compute_dtype == "float64"
    inputs, _ = adding_batch(np.random.default_rng(3), 2, 5)
    np.testing.assert_allclose(copy(inputs.astype(np.float64)).numpy(), model(inputs).numpy(),
                               rtol=1e-5)


def test_the_tanh_rnns_gradient_vanishes_and_the_15_irnns_explodes():
    # Untrained, 40 steps: what the demonstration shows, in small.
    inputs, targets = adding_batch(np.random.default_rng(4), 4, 40)
    tanh = norms.gradient_norms(_model("tanh", 8), inputs, targets)
    irnn = norms.gradient_norms(_model("irnn1.5", 8), inputs, targets)
    assert tanh[39] < tanh[0] / 100
    assert irnn[39] > irnn[0] * 100
