"""A neural cache: a language model that also points back at what it has read.

Grave, Joulin & Usunier, 2017, "Improving Neural Language Models with a Continuous Cache". The
text is read as `evaluate` reads it. The cache remembers, for each of the last `size` positions
i, the top layer's output h_i and the token that came next, y_{i+1}. At position t,

    p_cache(w) = sum over remembered i with y_{i+1} = w of softmax_i(theta * h_t . h_i)
    p(w) = (1 - weight) * p_model(w) + weight * p_cache(w)

(p_model alone where nothing is remembered yet, at the first token). The weights do not change:
the cache is a memory of the text's own states, which lets the model repeat what recurs in a
text, above all the names of its people, at the cost of a matrix product per window.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Cache:
    """How far back the cache looks, how sharply it matches and how much it counts."""

    size: int = 20000  # positions remembered
    theta: float = 1.0  # sharpness of the match between the current and a remembered state
    weight: float = 0.25  # the cache's share of the mixed distribution

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"the cache size must be at least 1 position, got {self.size}")
        if not self.theta >= 0 or self.theta == float("inf"):
            raise ValueError(f"the cache theta must be 0 or more, got {self.theta}")
        if not 0 < self.weight < 1:
            raise ValueError(f"the cache weight must be in (0, 1), got {self.weight}")


class CacheMemory:
    """The last `cache.size` (state, next token) pairs of a text, and the mixing they give."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self.keys = np.zeros((0, 0), np.float64)  # (remembered, units)
        self.values = np.zeros(0, np.int64)  # (remembered,)

    def nll(self, hidden: np.ndarray, model_nll: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The mixed `-ln p(target)` of a window's positions, in order, given their top-layer
        outputs `(n, units)` and the model's own nll `(n,)`; then remembers them."""
        hidden = np.asarray(hidden, np.float64)
        targets = np.asarray(targets, np.int64)
        n, remembered = len(targets), len(self.values)
        keys = np.concatenate([self.keys.reshape(remembered, hidden.shape[1]), hidden])
        values = np.concatenate([self.values, targets])
        # Position t may look at the remembered ones and at the window's positions before it.
        position = remembered + np.arange(n)[:, None]  # (n, 1), each query's own index in keys
        index = np.arange(len(values))[None, :]  # (1, remembered + n)
        allowed = (index < position) & (index >= position - self.cache.size)
        scores = np.where(allowed, self.cache.theta * hidden @ keys.T, -np.inf)
        seen = allowed.any(axis=1)
        scores[~seen] = 0.0  # rows with nothing to look at: their cache share is not used
        weights = np.exp(scores - scores.max(axis=1, keepdims=True)) * allowed
        matches = (weights * (values[None, :] == targets[:, None])).sum(axis=1)
        p_cache = matches / np.maximum(weights.sum(axis=1), 1e-300)
        p_model = np.exp(-np.asarray(model_nll, np.float64))
        mixed = (1 - self.cache.weight) * p_model + self.cache.weight * p_cache
        self.keys, self.values = keys[-self.cache.size:], values[-self.cache.size:]
        return -np.log(np.where(seen, mixed, p_model))


def caching_window_nll(model, cache: Cache):
    """A `(inputs, targets, states) -> (nll in nats of each target, states)` for batch 1, as
    `language_model.stream_nll` takes it, that mixes the model with a cache of the text read
    through it so far (a new cache for each function)."""
    memory = CacheMemory(cache)

    @tf.function(reduce_retracing=True)
    def features_and_nll(inputs, targets, states):
        hidden, states = model.features(inputs, initial_state=states)
        logits = tf.cast(model.readout(hidden), tf.float32)
        return hidden, tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits), states

    def window_nll(inputs, targets, states):
        hidden, nll, states = features_and_nll(inputs, targets, states)
        return memory.nll(hidden.numpy()[0], nll.numpy()[0], np.asarray(targets)[0]), states

    return window_nll
