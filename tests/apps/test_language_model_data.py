"""Tests for nlpapps.apps.language_model_data: stateless windows, contiguous streams."""

import numpy as np
import pytest

from nlpapps.apps import language_model_data as lmd
from nlpapps.tokenizer import BOS_ID


def test_training_windows_start_at_line_starts_and_resume_with_new_draws():
    ids = np.array([7, 4, 9, 9, 4, 5, 4, 6, 7, 4, 8, 5], np.int32)  # 4 is the line break
    dataset = lmd.window_dataset(ids, 3, 5, newline_id=4, seed=1)
    (inputs, targets), = dataset.take(1).as_numpy_iterator()
    assert inputs.shape == targets.shape == (5, 3)
    assert (inputs[:, 0] == BOS_ID).all()
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    line_starts = {0, 2, 5, 7}  # those that leave room for a whole window
    for row in targets:
        assert any((ids[s:s + 3] == row).all() for s in line_starts)
    batches = [b[1] for b in lmd.window_dataset(ids, 3, 5, 4, seed=1).take(3)]
    resumed = next(iter(lmd.window_dataset(ids, 3, 5, 4, seed=1, first_step=2)))[1]
    np.testing.assert_array_equal(resumed, batches[2])


def test_a_text_with_few_line_breaks_has_windows_everywhere():
    ids = np.array([7, 8, 4, 9, 9, 9, 5, 6, 7, 8, 4, 5], np.int32)
    np.testing.assert_array_equal(lmd.window_starts(ids, 3, newline_id=4), np.arange(10))
    np.testing.assert_array_equal(lmd.window_starts(ids, 3, newline_id=None), np.arange(10))


def test_a_text_shorter_than_a_window_is_an_error():
    with pytest.raises(ValueError, match="seq_len"):
        lmd.window_dataset(np.arange(5, 10), 8, 2, newline_id=None)


def test_streams_continue_from_batch_to_batch_and_restart_each_pass():
    ids = np.arange(10, 36, dtype=np.int32)  # 26 tokens, 27 with bos
    batches = list(lmd.stream_dataset(ids, 3, 3).take(5).as_numpy_iterator())
    stream = np.concatenate([[BOS_ID], ids])
    length = 26 // 3  # tokens each row predicts; 2 batches of 3 per pass
    for step, ((inputs, reset), targets) in enumerate(batches):
        assert inputs.shape == targets.shape == (3, 3) and reset.shape == (3,)
        assert reset.all() == (step % 2 == 0) and reset.any() == reset.all()
        position = (step % 2) * 3
        for row in range(3):
            start = row * length + position
            np.testing.assert_array_equal(inputs[row], stream[start:start + 3])
            np.testing.assert_array_equal(targets[row], stream[start + 1:start + 4])
    assert batches[0][0][0][0, 0] == BOS_ID


def test_a_resumed_stream_reads_what_an_uninterrupted_one_reads():
    ids = np.arange(10, 60, dtype=np.int32)
    uninterrupted = list(lmd.stream_dataset(ids, 4, 2).take(9).as_numpy_iterator())
    resumed = list(lmd.stream_dataset(ids, 4, 2, first_step=6).take(3).as_numpy_iterator())
    for got, want in zip(resumed, uninterrupted[6:]):
        np.testing.assert_array_equal(got[0][0], want[0][0])
        np.testing.assert_array_equal(got[0][1], want[0][1])
        np.testing.assert_array_equal(got[1], want[1])


def test_a_text_shorter_than_one_batch_of_streams_is_an_error():
    with pytest.raises(ValueError, match="batch_size \\* seq_len = 32"):
        lmd.stream_dataset(np.arange(5, 30, dtype=np.int32), 8, 4)
