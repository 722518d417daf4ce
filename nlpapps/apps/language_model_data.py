"""The language model's training data: random windows at line starts (stateless training),
contiguous streams (stateful training, states carried from batch to batch) and dev windows.

Every pipeline reads token ids of one text, line breaks included, and yields int32 batches of
`seq_len` tokens: the targets, and the inputs one token behind them (bos before the text).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nlpapps.tokenizer import BOS_ID


def window_starts(ids: np.ndarray, seq_len: int, newline_id: int | None) -> np.ndarray:
    """Where training windows may start: the beginnings of lines, or every position of a text
    with fewer line breaks than windows."""
    last = len(ids) - seq_len
    if last < 0:
        raise ValueError(f"the training text has {len(ids)} tokens; it needs at least "
                         f"seq_len={seq_len}")
    if newline_id is not None:
        starts = np.concatenate([[0], np.flatnonzero(ids[:-1] == newline_id) + 1])
        starts = starts[starts <= last]
        if len(starts) * seq_len >= len(ids):
            return starts.astype(np.int64)
    return np.arange(last + 1, dtype=np.int64)


def window_dataset(ids: np.ndarray, seq_len: int, batch_size: int, newline_id: int | None,
                   seed: int = 0, first_step: int = 0) -> tf.data.Dataset:
    """Endless batches `(inputs, targets)`, int32 `(batch_size, seq_len)` each.

    Every row is a window of `seq_len` contiguous tokens at a random line start: targets are
    the window, inputs are bos and the window without its last token. Windows are stateless:
    each is read from zero states (the model carries no state from one batch to the next),
    which lets them be drawn at random. Batch `step` is drawn with the stateless seed
    `(seed, step)`, so a run resumed at `first_step` goes on with new windows.
    """
    ids = np.asarray(ids, np.int32)
    starts = window_starts(ids, seq_len, newline_id)
    tokens, starts_t = tf.constant(ids), tf.constant(starts)
    offsets = tf.range(seq_len, dtype=tf.int64)
    seed = tf.constant(seed, tf.int64)

    def batch_at(step):
        picks = tf.random.stateless_uniform([batch_size], seed=tf.stack([seed, step]), minval=0,
                                            maxval=len(starts), dtype=tf.int64)
        targets = tf.gather(tokens, tf.gather(starts_t, picks)[:, None] + offsets)
        inputs = tf.concat([tf.fill([batch_size, 1], BOS_ID), targets[:, :-1]], axis=1)
        return inputs, targets

    return tf.data.Dataset.counter(first_step).map(batch_at).prefetch(2)


def stream_dataset(ids: np.ndarray, seq_len: int, batch_size: int, first_step: int = 0
                   ) -> tf.data.Dataset:
    """Endless batches `((inputs, reset), targets)` that read the text as `batch_size`
    contiguous streams, for training with states carried from one batch to the next
    (truncated backpropagation through time over the whole text).

    bos and the text are cut into `batch_size` equal rows; batch `step` holds tokens
    `[p, p + seq_len)` of every row, `p = (step % steps) * seq_len`, so row r of batch s + 1
    goes on where row r of batch s stopped. `reset` (bool, `(batch_size,)`) is true on the
    first batch of each pass over the text, where the carried states start again from zero.
    A run resumed at `first_step` reads what an uninterrupted run would have read.

        stream  = bos t_1 t_2 ... t_n
        rows    = stream cut into batch_size pieces of L + 1 tokens (L = n // batch_size)
        inputs  = rows[:, p : p + seq_len]        (batch_size, seq_len)
        targets = rows[:, p + 1 : p + seq_len + 1]
    """
    stream = np.concatenate([[BOS_ID], np.asarray(ids, np.int32)]).astype(np.int32)
    length = (len(stream) - 1) // batch_size  # tokens each row predicts
    steps = length // seq_len  # batches in one pass over the text
    if steps < 1:
        raise ValueError(f"the training text has {len(stream) - 1} tokens; stateful training "
                         f"needs at least batch_size * seq_len = {batch_size * seq_len}")
    rows = tf.constant(np.stack([stream[r * length:r * length + steps * seq_len + 1]
                                 for r in range(batch_size)]))  # (batch_size, steps*seq_len+1)

    def batch_at(step):
        position = (step % steps) * seq_len
        window = rows[:, position:position + seq_len + 1]
        reset = tf.fill([batch_size], tf.equal(position, 0))
        return (window[:, :-1], reset), window[:, 1:]

    return tf.data.Dataset.counter(first_step).map(batch_at).prefetch(2)


def dev_dataset(ids: np.ndarray, seq_len: int, batch_size: int, newline_id: int | None
                ) -> tf.data.Dataset | None:
    """Non-overlapping windows of the dev text (each at a line start), as `window_dataset`
    makes them, in order; None for a dev text of fewer than 2 tokens."""
    ids = np.asarray(ids, np.int32)
    if len(ids) < 2:
        return None
    length = min(seq_len, len(ids))
    rows, end = [], 0
    for start in window_starts(ids, length, newline_id):
        if start >= end:
            rows.append(ids[start:start + length])
            end = start + length
    targets = np.stack(rows)
    inputs = np.concatenate([np.full((len(rows), 1), BOS_ID, np.int32), targets[:, :-1]], 1)
    return tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size)
