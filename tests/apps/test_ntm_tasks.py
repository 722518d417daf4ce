"""The tasks of Graves et al. 2014: what each sequence holds, seeding, and the bit-error count."""

import numpy as np
import pytest

from nlpapps.apps.ntm_tasks import MAX_REPEATS, Task, bit_errors


def test_copy_asks_for_the_sequence_after_the_delimiter():
    inputs, targets, weights = Task("copy").batch(np.random.default_rng(0), 5, 4)
    assert inputs.shape == (4, 11, 9) and targets.shape == (4, 11, 8) and weights.shape == (4, 11)
    np.testing.assert_array_equal(targets[:, 6:], inputs[:, :5, :8])
    np.testing.assert_array_equal(inputs[:, 5, 8], 1)  # the delimiter, on its own channel
    assert inputs[:, :5, 8].sum() == 0 and inputs[:, 6:].sum() == 0  # blank while answering
    np.testing.assert_array_equal(weights, np.repeat([[0] * 6 + [1] * 5], 4, axis=0))


def test_repeat_copy_repeats_and_then_marks_the_end():
    inputs, targets, weights = Task("repeat_copy").batch(np.random.default_rng(1), 3, 2)
    time = inputs.shape[1]
    repeats = (time - 3 - 2) // 3
    assert 1 <= repeats <= MAX_REPEATS
    levels = np.arange(1, MAX_REPEATS + 1)
    np.testing.assert_allclose(inputs[:, 3, 9], (repeats - levels.mean()) / levels.std())
    np.testing.assert_array_equal(targets[:, 4:time - 1, :8],
                                  np.tile(inputs[:, :3, :8], (1, repeats, 1)))
    np.testing.assert_array_equal(targets[:, :, 8], np.eye(time)[time - 1][None].repeat(2, 0))
    assert weights[:, :4].sum() == 0 and weights[:, 4:].min() == 1


def test_associative_recall_answers_the_item_after_the_query():
    length, item = 4, 4  # items, and steps of an item (delimiter + 3 vectors)
    inputs, targets, weights = Task("associative_recall").batch(np.random.default_rng(2),
                                                                length, 8)
    items = np.stack([inputs[:, i * item + 1:(i + 1) * item, :8] for i in range(length)], 1)
    query = inputs[:, length * item + 1:length * item + item, :8]
    answer = targets[:, -3:]
    for row in range(8):
        index = [i for i in range(length - 1) if np.array_equal(items[row, i], query[row])][0]
        np.testing.assert_array_equal(answer[row], items[row, index + 1])
    assert weights[:, :-3].sum() == 0 and weights[:, -3:].min() == 1


def test_batches_are_fixed_by_their_seed():
    task = Task("copy")
    first = task.batch(np.random.default_rng(7), 6, 3)
    again = task.batch(np.random.default_rng(7), 6, 3)
    other = task.batch(np.random.default_rng(8), 6, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_bit_errors_count_wrong_bits_of_scored_steps_only():
    targets = np.zeros((2, 3, 2))
    weights = np.array([[0, 1, 1], [0, 0, 1]], dtype=float)
    outputs = np.full((2, 3, 2), 0.1)
    outputs[0, 0] = 0.9  # wrong, but not scored
    outputs[0, 1, 0] = outputs[0, 2, 1] = 0.7  # two wrong bits
    outputs[1, 2] = 0.6  # two wrong bits
    np.testing.assert_array_equal(bit_errors(outputs, targets, weights), [2, 2])


@pytest.mark.parametrize("name,length", [("copy", 0), ("associative_recall", 1)])
def test_too_short_a_length_is_refused(name, length):
    with pytest.raises(ValueError, match="length must be at least"):
        Task(name).batch(np.random.default_rng(0), length, 1)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'sort'"):
        Task("sort")
