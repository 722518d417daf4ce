"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

Each example is a sequence of `length` steps with two channels: a value drawn from U(0, 1),
and a marker that is 1 at exactly two steps (one in the first half, one in the second) and 0
elsewhere. The target is the sum of the two marked values. Predicting the mean, 1, gives the
variance of a sum of two U(0, 1) values as the mean squared error: 2/12 = 0.1667.
"""

from __future__ import annotations

import numpy as np

BASELINE_MSE = 1.0 / 6.0  # MSE of always predicting the mean target, 1


def adding_batch(rng: np.random.Generator, batch: int, length: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`(inputs, targets)`: inputs `(batch, length, 2)` float32 (value, marker), targets
    `(batch, 1)` float32, drawn from `rng`."""
    if length < 2:
        raise ValueError(f"the adding problem needs a length of at least 2, got {length}")
    values = rng.uniform(0.0, 1.0, size=(batch, length))
    half = length // 2
    first = rng.integers(0, half, size=batch)  # in [0, half)
    second = rng.integers(half, length, size=batch)  # in [half, length)
    markers = np.zeros((batch, length))
    rows = np.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    inputs = np.stack([values, markers], axis=-1)  # (batch, length, 2)
    return inputs.astype(np.float32), targets[:, None].astype(np.float32)
