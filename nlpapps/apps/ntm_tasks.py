"""The algorithmic tasks of Graves et al. 2014 ("Neural Turing Machines", section 4), as seeded
batch generators, and their metric: bit errors per sequence.

Every generator returns `(inputs, targets, weights)` for a batch of sequences of one length:
`inputs` `(batch, time, input channels)`, `targets` `(batch, time, output channels)`, and
`weights` `(batch, time)`, 1 at the steps where the model must answer and 0 elsewhere (its
outputs there are not scored). All values are 0 or 1 except the repeat count of repeat copy.

- copy: `length` random `bits`-bit vectors, then a delimiter on its own channel; the model then
  sees blank inputs for `length` steps and must output the vectors in order.
- repeat copy: `length` random vectors, then on its own channel the number of repeats `n`
  (1 to 10, normalized as in the paper to mean 0 and variance 1 over that range); the model
  must output the sequence `n` times and then raise an end marker on an extra output channel.
- associative recall: `length` items of 3 random vectors each, each item preceded by a
  delimiter on one channel; then a query item (one of the first `length - 1`) between
  delimiters on a second channel; the model must output the item that followed the query.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TASKS = ("copy", "repeat_copy", "associative_recall")
MAX_REPEATS = 10  # repeat copy draws the number of repeats from 1 to this
ITEM_VECTORS = 3  # vectors in one item of associative recall


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its generator and its sizes for vectors of `bits` bits."""

    name: str
    bits: int = 8

    def __post_init__(self):
        if self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; use one of {', '.join(TASKS)}")
        if self.bits < 1:
            raise ValueError(f"bits must be positive, got {self.bits}")

    @property
    def input_channels(self) -> int:
        return self.bits + (1 if self.name == "copy" else 2)

    @property
    def output_channels(self) -> int:
        return self.bits + (1 if self.name == "repeat_copy" else 0)

    @property
    def training_lengths(self) -> tuple[int, int]:
        """The lengths of Graves 2014's training sequences (items for associative recall)."""
        return {"copy": (1, 20), "repeat_copy": (1, 10), "associative_recall": (2, 6)}[self.name]

    @property
    def min_length(self) -> int:
        return 2 if self.name == "associative_recall" else 1

    def batch(self, rng: np.random.Generator, length: int, batch_size: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(inputs, targets, weights)` of `batch_size` sequences of `length`, float32."""
        if length < self.min_length:
            raise ValueError(f"length must be at least {self.min_length} for {self.name}, "
                             f"got {length}")
        make = {"copy": self._copy, "repeat_copy": self._repeat_copy,
                "associative_recall": self._associative_recall}[self.name]
        inputs, targets, weights = make(rng, length, batch_size)
        return inputs.astype(np.float32), targets.astype(np.float32), weights.astype(np.float32)

    def _vectors(self, rng, batch_size, length):
        return rng.integers(0, 2, size=(batch_size, length, self.bits))

    def _copy(self, rng, length, batch_size):
        time = 2 * length + 1
        seq = self._vectors(rng, batch_size, length)
        inputs = np.zeros((batch_size, time, self.bits + 1))
        inputs[:, :length, :self.bits] = seq
        inputs[:, length, self.bits] = 1  # delimiter
        targets = np.zeros((batch_size, time, self.bits))
        targets[:, length + 1:] = seq
        weights = np.zeros((batch_size, time))
        weights[:, length + 1:] = 1
        return inputs, targets, weights

    def _repeat_copy(self, rng, length, batch_size):
        # Every sequence of the batch has the same number of repeats, so the same length.
        repeats = int(rng.integers(1, MAX_REPEATS + 1))
        answer = length * repeats + 1  # the repeats, then the end marker
        time = length + 1 + answer
        seq = self._vectors(rng, batch_size, length)
        levels = np.arange(1, MAX_REPEATS + 1)
        inputs = np.zeros((batch_size, time, self.bits + 2))
        inputs[:, :length, :self.bits] = seq
        inputs[:, length, self.bits + 1] = (repeats - levels.mean()) / levels.std()
        inputs[:, length, self.bits] = 1  # delimiter
        targets = np.zeros((batch_size, time, self.bits + 1))
        targets[:, length + 1:time - 1, :self.bits] = np.tile(seq, (1, repeats, 1))
        targets[:, time - 1, self.bits] = 1  # end marker
        weights = np.zeros((batch_size, time))
        weights[:, length + 1:] = 1
        return inputs, targets, weights

    def _associative_recall(self, rng, length, batch_size):
        item = ITEM_VECTORS + 1  # a delimiter step, then the item's vectors
        items = self._vectors(rng, batch_size, length * ITEM_VECTORS).reshape(
            batch_size, length, ITEM_VECTORS, self.bits)
        query = rng.integers(0, length - 1, size=batch_size)
        time = length * item + item + 1 + ITEM_VECTORS  # items, query, its end, the answer
        inputs = np.zeros((batch_size, time, self.bits + 2))
        for i in range(length):
            inputs[:, i * item, self.bits] = 1
            inputs[:, i * item + 1:(i + 1) * item, :self.bits] = items[:, i]
        start = length * item
        rows = np.arange(batch_size)
        inputs[:, start, self.bits + 1] = 1
        inputs[:, start + 1:start + item, :self.bits] = items[rows, query]
        inputs[:, start + item, self.bits + 1] = 1
        targets = np.zeros((batch_size, time, self.bits))
        targets[:, time - ITEM_VECTORS:] = items[rows, query + 1]
        weights = np.zeros((batch_size, time))
        weights[:, time - ITEM_VECTORS:] = 1
        return inputs, targets, weights


def bit_errors(outputs: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bit errors of each sequence `(batch,)`: the output probabilities thresholded at 0.5
    against the targets, counted over the steps of nonzero weight."""
    wrong = (outputs > 0.5) != (targets > 0.5)  # (batch, time, channels)
    return np.sum(wrong * (weights[..., None] > 0), axis=(1, 2))
