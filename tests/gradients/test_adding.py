"""Tests for nlpapps.gradients.adding: the adding problem's sequences and its baseline."""

import numpy as np
import pytest

from nlpapps.gradients.adding import BASELINE_MSE, adding_batch


def test_each_sequence_has_two_markers_one_per_half_and_the_target_is_their_sum():
    inputs, targets = adding_batch(np.random.default_rng(0), 500, 9)
    assert inputs.shape == (500, 9, 2) and targets.shape == (500, 1)
    assert inputs.dtype == np.float32 and targets.dtype == np.float32
    values, markers = inputs[..., 0], inputs[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :4].sum(axis=1) == 1).all() and (markers[:, 4:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(targets[:, 0], (values * markers).sum(axis=1), rtol=1e-6)
    assert 0.0 <= values.min() and values.max() < 1.0
    # Every position of each half holds a marker in some sequence.
    assert (markers.sum(axis=0) > 0).all()


def test_the_shortest_sequence_marks_both_steps():
    inputs, targets = adding_batch(np.random.default_rng(1), 10, 2)
    assert (inputs[..., 1] == 1).all()
    np.testing.assert_allclose(targets[:, 0], inputs[..., 0].sum(axis=1), rtol=1e-6)


def test_predicting_the_mean_scores_the_baseline():
    # Monte Carlo: the sum of two U(0, 1) has mean 1 and variance 1/6.
    _, targets = adding_batch(np.random.default_rng(2), 200_000, 20)
    assert targets.mean() == pytest.approx(1.0, abs=0.005)
    assert np.mean((targets - 1.0) ** 2) == pytest.approx(BASELINE_MSE, abs=0.002)
    assert BASELINE_MSE == pytest.approx(0.167, abs=0.0005)


def test_the_same_generator_seed_gives_the_same_batch():
    first = adding_batch(np.random.default_rng(3), 4, 6)
    second = adding_batch(np.random.default_rng(3), 4, 6)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_length_below_two_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        adding_batch(np.random.default_rng(0), 1, 1)
