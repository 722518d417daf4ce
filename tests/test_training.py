"""Tests for nlpapps.training: the masked loss against NumPy and Keras, the strategies (two
logical CPUs in a fresh process for "mirrored"), and the JSON writer."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps import training
from nlpapps.tokenizer import PAD_ID

TESTS = Path(__file__).parent

VOCAB = 11
TARGETS = np.array([[4, 7, 3, 0, 0],
                    [5, 3, 0, 0, 0],
                    [9, 10, 6, 8, 3]], np.int32)


def logits():
    return np.random.default_rng(0).normal(0.0, 2.0, TARGETS.shape + (VOCAB,)).astype("float32")


def numpy_masked_cross_entropy(targets, logits, smoothing):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    per_token = (1 - smoothing) * nll + smoothing * -log_probs.mean(-1)
    real = targets != PAD_ID
    return per_token[real].mean()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_masked_cross_entropy_matches_numpy(smoothing):
    loss = training.masked_cross_entropy(smoothing)(tf.constant(TARGETS), tf.constant(logits()))
    np.testing.assert_allclose(float(loss), numpy_masked_cross_entropy(TARGETS, logits(),
                                                                       smoothing), rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_masked_cross_entropy_matches_keras_on_the_real_tokens(smoothing):
    real = TARGETS != PAD_ID
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)(
        keras.ops.one_hot(TARGETS[real], VOCAB), logits()[real])
    loss = training.masked_cross_entropy(smoothing)(TARGETS, logits())
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)


def test_padding_does_not_count():
    padded_targets = np.pad(TARGETS, ((0, 0), (0, 4)))
    padded_logits = np.concatenate(
        [logits(), np.random.default_rng(1).normal(0, 5, (3, 4, VOCAB)).astype("float32")], 1)
    loss = training.masked_cross_entropy(0.1)
    np.testing.assert_allclose(float(loss(padded_targets, padded_logits)),
                               float(loss(TARGETS, logits())), rtol=1e-6)
    # A batch of padding only has no tokens to average: zero, not NaN.
    assert float(loss(np.zeros_like(TARGETS), logits())) == 0.0


def test_get_strategy():
    assert training.get_strategy("default").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="'tpu'.*default, mirrored"):
        training.get_strategy("tpu")


def test_save_json_writes_the_whole_file(tmp_path):
    path = tmp_path / "state.json"
    training.save_json(path, {"best": 1.5, "text": "Grüße"})
    training.save_json(path, {"best": 2.5})
    assert json.loads(path.read_text()) == {"best": 2.5}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, {tests!r})
import conftest
from nlpapps import training
from nlpapps.apps import translator

strategy = training.get_strategy("mirrored")
train, dev = conftest.train_split(conftest.read_pairs_tsv(conftest.PAIRS_TSV))
result = translator.train(conftest.tiny_config(strategy="mirrored", epochs=2, steps_per_epoch=3,
                                               batch_size=16), train, dev, {out!r})
print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                  "devices": list(strategy.extended.worker_devices),
                  "loss": result.model.history.history["loss"],
                  "iterations": int(result.model.optimizer.iterations.numpy())}}))
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    # Logical devices must be set before TensorFlow starts its runtime: a fresh process.
    script = MIRRORED_SCRIPT.format(tests=str(TESTS), out=str(tmp_path / "model"))
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert [d.split("/")[-1] for d in report["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert report["iterations"] == 6
    # An untrained model's loss is near ln(vocab); a loss summed or divided over the
    # replicas would be twice or half that.
    vocab = 200
    assert all(np.isfinite(report["loss"]))
    assert 0.7 * np.log(vocab) < report["loss"][0] < 1.3 * np.log(vocab)


def test_adam_learning_rate_follows_a_cosine_down_to_a_tenth():
    schedule = training.adam(2.0, 1.0, decay_steps=10)._learning_rate
    rates = [float(schedule(step)) for step in (0, 5, 10, 20)]
    np.testing.assert_allclose(rates, [2.0, 1.1, 0.2, 0.2], rtol=1e-5)
    assert float(training.adam(2.0, 1.0).learning_rate) == pytest.approx(2.0)
