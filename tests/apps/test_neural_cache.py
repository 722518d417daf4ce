"""Tests for nlpapps.apps.neural_cache: the cached reading against a direct NumPy computation
over one pass of the model, causality, what it learns from repetition, bad settings, and
`nlpapps lm evaluate --cache`."""

import json
import math

import numpy as np
import pytest

from nlpapps.apps import language_model as lm
from nlpapps.apps.neural_cache import Cache, CacheMemory
from nlpapps.tokenizer import BOS_ID

from tiny_language_model import evaluate_test_text, log_softmax, text, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(model, tokenizer, out_dir)` of a tiny model trained for 20 steps."""
    out_dir = tmp_path_factory.mktemp("lm")
    return (*train_tiny(out_dir, epochs=1), out_dir)


def reference_nll(model, ids, cache):
    """One call over the whole text for the top layer's outputs and the logits, then each
    position's mixture from its own definition, one position at a time."""
    hidden, _ = model.features(np.asarray([[BOS_ID] + ids[:-1]], np.int32))
    logits = np.asarray(model.readout(hidden), np.float64)[0]
    hidden = np.asarray(hidden, np.float64)[0]  # (tokens, units)
    p_model = np.exp(log_softmax(logits))
    nll = []
    for t, target in enumerate(ids):
        p = p_model[t, target]
        before = range(max(0, t - cache.size), t)
        if before:
            scores = np.array([cache.theta * hidden[t] @ hidden[i] for i in before])
            attention = np.exp(scores - scores.max())
            attention /= attention.sum()
            p_cache = sum(a for a, i in zip(attention, before) if ids[i] == target)
            p = (1 - cache.weight) * p + cache.weight * p_cache
        nll.append(-math.log(p))
    return np.array(nll)


@pytest.mark.parametrize("cache, window", [
    (Cache(size=40, theta=1.0, weight=0.25), 64),  # the cache rolls; windows longer than it
    (Cache(size=300, theta=0.5, weight=0.1), 25),  # it reaches back over many windows
])
def test_cached_reading_equals_a_direct_computation(trained, cache, window):
    model, tokenizer, _ = trained
    sample = text("test")[:1500]
    ids, nats = lm.token_nll(model, tokenizer, sample, window=window, cache=cache)
    np.testing.assert_allclose(nats, reference_nll(model, ids, cache), rtol=1e-4, atol=1e-5)
    static = lm.token_nll(model, tokenizer, sample)[1]
    assert nats[0] == pytest.approx(static[0], rel=1e-6)  # nothing remembered yet
    assert np.abs(nats - static).max() > 1e-3


def test_a_position_is_scored_from_the_text_before_it(trained):
    model, tokenizer, _ = trained
    ids = lm.line_start_ids(tokenizer, text("test")[:2000])
    other = ids[:120] + ids[:-120][::-1]  # the same first 120 tokens, other text after them
    cache = Cache(size=100)
    first = lm.stream_nll(lm.caching_window_nll(model, cache), ids, model.initial_states(1), 50)
    second = lm.stream_nll(lm.caching_window_nll(model, cache), other,
                           model.initial_states(1), 50)
    np.testing.assert_allclose(first[:120], second[:120], rtol=1e-6)
    assert np.abs(first[120:] - second[120:]).max() > 1e-3


def test_a_text_that_repeats_is_predicted_from_its_earlier_turn():
    # Each phase of a 7-token period has its own state, so from the second turn on a position
    # matches exactly the positions of its phase, whose next tokens are its own.
    period = 7
    targets = np.array([3, 5, 9, 3, 11, 5, 2] * 4)
    hidden = 10.0 * np.eye(8)[np.arange(len(targets)) % period]  # (28, 8)
    model_nll = np.full(len(targets), math.log(50.0))  # a model that knows nothing: p = 1/50
    memory = CacheMemory(Cache(size=100, theta=1.0, weight=0.5))
    nll = np.concatenate([memory.nll(hidden[i:i + 5], model_nll[i:i + 5], targets[i:i + 5])
                          for i in range(0, len(targets), 5)])  # windows across the turns
    assert nll[0] == pytest.approx(math.log(50.0))  # nothing remembered yet
    np.testing.assert_allclose(nll[period:], -math.log(0.5 / 50 + 0.5), rtol=1e-6)
    # In the first turn nothing matches: the cache spreads over what came before. Position 3
    # (token 3) finds one 3 among the three tokens before it.
    assert nll[3] == pytest.approx(-math.log(0.5 / 50 + 0.5 / 3))


def test_the_shipped_settings_lower_the_bits_of_a_text_that_repeats(trained):
    model, tokenizer, _ = trained
    sample = text("test")[:400] * 8
    static = lm.evaluate(model, tokenizer, sample)["bits_per_character"]
    cached = lm.evaluate(model, tokenizer, sample, cache=Cache(size=1000))
    assert cached["bits_per_character"] < 0.98 * static  # 0.968 when written
    assert cached["cache"] == {"size": 1000, "theta": 1.0, "weight": 0.25}


@pytest.mark.parametrize("changes, message", [
    ({"size": 0}, "at least 1 position"),
    ({"theta": -1.0}, "theta must be 0 or more"),
    ({"theta": float("nan")}, "theta must be 0 or more"),
    ({"weight": 0.0}, r"weight must be in \(0, 1\)"),
    ({"weight": 1.0}, r"weight must be in \(0, 1\)"),
])
def test_bad_caches_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        Cache(**changes)


def test_lm_evaluate_cache_flags(trained, capsys):
    model, tokenizer, out_dir = trained
    assert evaluate_test_text(out_dir, "--cache", "200", "--cache-theta", "0.5",
                              "--cache-weight", "0.2") == 0
    report = json.loads(capsys.readouterr().out)
    expected = lm.evaluate(model, tokenizer, text("test"),
                           cache=Cache(size=200, theta=0.5, weight=0.2))
    assert report.pop("cache") == expected.pop("cache") == {"size": 200, "theta": 0.5,
                                                            "weight": 0.2}
    assert report == pytest.approx(expected)
    for bad in (["--cache", "100", "--adapt", "0.1"], ["--cache", "-5"],
                ["--cache", "100", "--cache-weight", "1"]):
        assert evaluate_test_text(out_dir, *bad) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: give --adapt or --cache, not both",
        "error: the cache size must be at least 1 position, got -5",
        "error: the cache weight must be in (0, 1), got 1.0"]
