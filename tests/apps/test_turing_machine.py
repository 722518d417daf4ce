"""The neural Turing machine app: the baseline's size, a tiny run that resumes where it was
stopped, loading, and `nlpapps ntm` with its one-line errors."""

import json

import numpy as np
import pytest

from nlpapps import cli
from nlpapps.apps import turing_machine as tm

TINY = dict(units=8, memory_size=8, memory_width=4, max_length=3, batch_size=4,
            steps_per_epoch=3, validation_sequences=4)


def test_the_lstm_baseline_has_about_the_ntms_parameter_count():
    config = tm.TuringMachineConfig()
    ntm = tm.create_model(config).count_params()
    lstm = tm.create_model(tm.TuringMachineConfig(model="lstm")).count_params()
    assert abs(lstm - ntm) / ntm < 0.01, (lstm, ntm)


def test_training_batches_depend_on_seed_and_step_only():
    config = tm.TuringMachineConfig(**TINY)
    first, again = tm.training_batch(config, 5), tm.training_batch(config, 5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape[0] == 4 and first[0].shape[1] in (3, 5, 7)  # 2 L + 1, L in 1..3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny copy NTM trained for one epoch, then resumed for a second."""
    out = tmp_path_factory.mktemp("ntm")
    tm.train(tm.TuringMachineConfig(epochs=1, **TINY), out)
    first = json.loads((out / tm.VALIDATION_FILE).read_text())
    tm.train(tm.TuringMachineConfig(epochs=2, **TINY), out)
    return out, first


def test_a_stopped_run_resumes_where_it_stopped(trained):
    out, first = trained
    history = json.loads((out / tm.VALIDATION_FILE).read_text())["history"]
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert history[0] == first["history"][0]
    metrics = json.loads((out / tm.METRICS_FILE).read_text())
    assert metrics["steps"] == 6 and metrics["nan"] is False
    assert np.isfinite(history[1]["loss"])


def test_stop_below_ends_training_once_validation_reaches_it(tmp_path):
    # Every validation has at most 8 bits x 3 steps = 24 errors per sequence: 24 stops at once.
    tm.train(tm.TuringMachineConfig(epochs=3, stop_below=24, **TINY), tmp_path / "stops")
    history = json.loads((tmp_path / "stops" / tm.VALIDATION_FILE).read_text())["history"]
    assert [entry["epoch"] for entry in history] == [1]
    tm.train(tm.TuringMachineConfig(epochs=2, stop_below=0.001, **TINY), tmp_path / "runs")
    history = json.loads((tmp_path / "runs" / tm.VALIDATION_FILE).read_text())["history"]
    assert [entry["epoch"] for entry in history] == [1, 2]


def test_another_model_in_the_same_folder_is_refused(trained):
    out, _ = trained
    with pytest.raises(ValueError, match="memory_size 8 -> 16"):
        tm.train(tm.TuringMachineConfig(epochs=3, **{**TINY, "memory_size": 16}), out)


def test_exported_folder_loads_and_evaluates_as_trained(trained, tmp_path):
    out, _ = trained
    tm.export(out, tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == \
        ["config.json", "metrics.json", "model.weights.h5"]
    model, config = tm.load(out)
    loaded, _ = tm.load(tmp_path / "export")
    inputs = config.get_task().batch(np.random.default_rng(0), 4, 2)[0]
    np.testing.assert_allclose(loaded.predict_on_batch(inputs), model.predict_on_batch(inputs),
                               atol=1e-6)
    errors = tm.evaluate(model, config.get_task(), 4, 5, seed=3)
    assert 0 <= errors <= 8 * 4
    assert errors == tm.evaluate(loaded, config.get_task(), 4, 5, seed=3)


def run(*argv):
    return cli.main(["-v", "ntm", *map(str, argv)])


def test_evaluate_prints_bit_errors_per_sequence(trained, capfd):
    out, _ = trained
    assert run("evaluate", "--model", out, "--length", 3, "--sequences", 6, "--seed", 2) == 0
    line = capfd.readouterr().out.strip()
    assert line.startswith("bit errors per sequence: ")
    model, config = tm.load(out)
    expected = tm.evaluate(model, config.get_task(), 3, 6, 2)
    assert float(line.split(": ")[1]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("flags,message", [
    (["--length", "0"], "--length must be positive"),
    (["--sequences", "0"], "--sequences must be positive"),
    (["--task", "sort"], "unknown task 'sort'"),
    (["--task", "repeat_copy"], "trained on copy, not repeat_copy"),
])
def test_bad_evaluation_arguments_are_one_line(trained, capfd, flags, message):
    out, _ = trained
    assert run("evaluate", "--model", out, *flags) != 0
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_missing_or_wrong_kind_model_is_one_line(tmp_path, capfd):
    assert run("evaluate", "--model", tmp_path / "nothing") != 0
    assert "does not exist" in capfd.readouterr().err.strip().splitlines()[-1]
    (tmp_path / "config.json").write_text(json.dumps({"kind": "language_model", "config": {}}))
    assert run("evaluate", "--model", tmp_path) != 0
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "not a neural Turing machine" in err[-1]


def test_bad_training_arguments_are_one_line(tmp_path, capfd):
    assert run("train", "--task", "sort", "--out", tmp_path) != 0
    assert "unknown task 'sort'" in capfd.readouterr().err.strip().splitlines()[-1]
    assert run("train", "--max-length", "3", "--min-length", "5", "--out", tmp_path) != 0
    assert "not a range" in capfd.readouterr().err.strip().splitlines()[-1]
    assert run("train", "--stop-below", "-1", "--out", tmp_path) != 0
    assert "stop_below must be 0 or more" in capfd.readouterr().err.strip().splitlines()[-1]
