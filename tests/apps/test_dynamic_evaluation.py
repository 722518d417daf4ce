"""Tests for nlpapps.apps.dynamic_evaluation: the adapting evaluation against an independent
score-then-step loop (Keras's SGD optimizer, NumPy log-softmax), causality, restored weights,
and `nlpapps lm evaluate --adapt`."""

import dataclasses
import json
import math

import keras
import numpy as np
import pytest

from nlpapps.apps import language_model as lm
from nlpapps.apps.dynamic_evaluation import Adaptation, adapting_window_nll, restored_weights
from nlpapps.tokenizer import BOS_ID

from tiny_language_model import evaluate_test_text, log_softmax, text, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(model, tokenizer, out_dir)` of a tiny model trained for 20 steps."""
    out_dir = tmp_path_factory.mktemp("lm")
    return (*train_tiny(out_dir, epochs=1), out_dir)


def weights_of(model):
    return [weight.numpy() for weight in model.trainable_variables]


def reference_nll(model, ids, adaptation):
    """Score a window in NumPy, then one step of Keras's SGD (with its global-norm clipping)
    on the window's mean cross-entropy, then the pull back to the trained weights; eager,
    window by window."""
    import tensorflow as tf

    trained_weights = weights_of(model)
    optimizer = keras.optimizers.SGD(learning_rate=adaptation.learning_rate,
                                     global_clipnorm=adaptation.clipnorm)
    window, decay = adaptation.window, adaptation.decay
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    inputs = [BOS_ID] + ids[:-1]
    states, nats = model.initial_states(1), 0.0
    for start in range(0, len(ids), window):
        x = np.asarray([inputs[start:start + window]], np.int32)
        y = np.asarray([ids[start:start + window]], np.int32)
        with tf.GradientTape() as tape:
            logits, next_states = model(x, initial_state=states, return_state=True)
            mean_loss = loss(y, logits)
        nats -= log_softmax(logits[0])[np.arange(y.shape[1]), y[0]].sum()
        optimizer.apply(tape.gradient(mean_loss, model.trainable_variables),
                        model.trainable_variables)
        for weight, start_value in zip(model.trainable_variables, trained_weights):
            weight.assign(weight.numpy() + decay * (start_value - weight.numpy()))
        states = next_states
    return nats


@pytest.mark.parametrize("adaptation", [
    Adaptation(learning_rate=0.5, window=16),
    Adaptation(learning_rate=0.2, window=7, decay=0.1),
    Adaptation(learning_rate=2.0, window=20, clipnorm=0.3),  # every step clipped
])
def test_adapting_evaluation_equals_a_score_then_step_loop(trained, adaptation):
    model, tokenizer, _ = trained
    sample = text("test")[:1500]
    report = lm.evaluate(model, tokenizer, sample, adaptation=adaptation)
    assert report["adaptation"] == dataclasses.asdict(adaptation)
    ids = lm.line_start_ids(tokenizer, sample)
    with restored_weights(model):
        expected_nats = reference_nll(model, ids, adaptation)
    assert report["nll_bits"] == pytest.approx(expected_nats / math.log(2), rel=1e-4)
    static = lm.evaluate(model, tokenizer, sample)["nll_bits"]
    assert abs(report["nll_bits"] - static) > 1e-3 * static  # the steps did change the scores


def test_a_window_is_scored_before_the_model_learns_from_it(trained):
    model, tokenizer, _ = trained
    ids = lm.line_start_ids(tokenizer, text("test")[:2000])
    window = 10
    other = ids[:40] + ids[:-40][::-1]  # same first 4 windows, different text after them

    def window_scores(token_ids):
        inputs = np.asarray([[BOS_ID] + token_ids[:-1]], np.int32)
        targets = np.asarray([token_ids], np.int32)
        step = adapting_window_nll(model, Adaptation(learning_rate=1.0, window=window))
        states, scores = model.initial_states(1), []
        with restored_weights(model):
            for start in range(0, len(token_ids), window):
                nll, states = step(inputs[:, start:start + window],
                                   targets[:, start:start + window], states)
                scores.append(float(np.sum(nll)))
        return scores

    first, second = window_scores(ids), window_scores(other)
    assert first[:4] == pytest.approx(second[:4], rel=1e-6)
    assert first[4] != pytest.approx(second[4], rel=1e-3)


def test_adapting_learns_what_recurs_in_the_text(trained):
    model, tokenizer, _ = trained
    sample = text("test")[:400] * 8
    static = lm.evaluate(model, tokenizer, sample)["bits_per_character"]
    adapted = lm.evaluate(model, tokenizer, sample, adaptation=Adaptation(learning_rate=0.1))
    assert adapted["bits_per_character"] < 0.98 * static  # 0.958 when written


def test_a_diverging_adaptation_is_an_error_not_a_number(trained):
    model, tokenizer, _ = trained
    with pytest.raises(ValueError, match="smaller learning rate"):
        lm.evaluate(model, tokenizer, text("test")[:800],
                    adaptation=Adaptation(learning_rate=1e12, clipnorm=1e12))


def test_the_weights_are_restored_even_when_the_reading_fails(trained):
    model, tokenizer, _ = trained
    before = weights_of(model)
    lm.evaluate(model, tokenizer, text("test")[:800], adaptation=Adaptation(learning_rate=1.0))
    for restored, original in zip(weights_of(model), before):
        np.testing.assert_array_equal(restored, original)
    with pytest.raises(RuntimeError), restored_weights(model):
        model.trainable_variables[0].assign(np.zeros_like(before[0]))
        raise RuntimeError("stopped halfway")
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), before[0])


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": 0.0}, "learning rate must be positive"),
    ({"learning_rate": float("nan")}, "learning rate must be positive"),
    ({"window": 0}, "at least 1 token"),
    ({"decay": 1.0}, r"decay must be in \[0, 1\)"),
    ({"clipnorm": 0.0}, "clipnorm must be positive"),
])
def test_bad_adaptations_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        Adaptation(**changes)


def test_lm_evaluate_adapt_flags(trained, capsys):
    model, tokenizer, out_dir = trained
    assert evaluate_test_text(out_dir, "--adapt", "0.3", "--adapt-window", "20") == 0
    report = json.loads(capsys.readouterr().out)
    expected = lm.evaluate(model, tokenizer, text("test"),
                           adaptation=Adaptation(learning_rate=0.3, window=20))
    assert report.pop("adaptation") == expected.pop("adaptation") == {
        "learning_rate": 0.3, "window": 20, "decay": 0.0, "clipnorm": 10.0}
    assert report == pytest.approx(expected)
    assert evaluate_test_text(out_dir, "--adapt", "-1") == 2
    assert evaluate_test_text(out_dir, "--adapt", "0.1", "--adapt-decay", "2") == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["error: the adaptation learning rate must be positive, got -1.0",
                      "error: the adaptation decay must be in [0, 1), got 2.0"]
