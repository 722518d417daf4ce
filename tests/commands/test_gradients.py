"""Tests for `nlpapps gradients`: a tiny run of each subcommand writes its table and figure,
the same seed gives the same numbers, and bad arguments are one line of error."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nlpapps import cli

TINY = ["--units", "4", "--batch-size", "8", "--eval-every", "2", "--test-size", "16"]


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_adding_writes_its_table_figure_and_records_and_is_reproducible(tmp_path, capsys):
    flags = ["gradients", "adding", "--length", "6", "--cell", "tanh", "--steps", "3", *TINY]
    assert cli.main(["-v", *flags, "--seeds", "2", "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr()
    assert "| tanh | 6 | 3 | 0: " in printed.out and "| 0 of 2 | 0.167 |" in printed.out
    assert "baseline (always predict the mean, 1): test MSE 0.167" in printed.out
    assert "tanh T=6 seed 1 (adam, clip 1) step 2/3" in printed.err  # the per-step log
    for name in ("adding.md", "adding.png", "adding.jsonl"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    first = _records(tmp_path / "a" / "adding.jsonl")
    assert [(r["config"]["cell"], r["config"]["seed"]) for r in first] == [("tanh", 0),
                                                                             ("tanh", 1)]
    assert all(len(r["losses"]) == 3 and r["test_steps"] == [0, 2, 3] for r in first)
    assert first[0]["losses"] != first[1]["losses"]

    # The same seed in another folder: the same run, number for number.
    assert cli.main(["-v", *flags, "--seeds", "1", "--out", str(tmp_path / "b")]) == 0
    again = _records(tmp_path / "b" / "adding.jsonl")[0]
    assert again["losses"] == first[0]["losses"] and again["test_mse"] == first[0]["test_mse"]
    # A second call into the same folder reuses the recorded runs instead of training again.
    capsys.readouterr()
    assert cli.main(["-v", *flags, "--seeds", "2", "--out", str(tmp_path / "a")]) == 0
    assert "recorded in" in capsys.readouterr().err
    assert len(_records(tmp_path / "a" / "adding.jsonl")) == 2
    # --recorded-only tabulates what is there and trains nothing.
    assert cli.main(["-v", *flags, "--seeds", "3", "--recorded-only",
                     "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr()
    assert "| 0 of 1 |" in printed.out and "seed 2: not recorded, left out" in printed.err
    assert len(_records(tmp_path / "b" / "adding.jsonl")) == 1


def test_norms_prints_untrained_and_trained_norms(tmp_path, capsys):
    assert cli.main(["-v", "gradients", "norms", "--cell", "gru", "--length", "12",
                     "--examples", "3", "--train-length", "5", "--steps", "2", *TINY,
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| gru | untrained |" in out and "| gru | trained |" in out
    assert "k=10" in out and "k=50" not in out  # k runs to T - 1 = 11
    assert (tmp_path / "norms.png").stat().st_size > 0


def test_clipping_counts_diverged_runs_per_optimizer_and_clipping(tmp_path, capsys):
    assert cli.main(["-v", "gradients", "clipping", "--length", "8", "--seeds", "1", "--steps", "3",
                     *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| adam | 0.001 | global_clipnorm=1 |" in out and "| sgd | 0.001 | none |" in out
    assert out.count(" of 1 |") == 4
    records = _records(tmp_path / "clipping.jsonl")
    assert len(records) == 4 and all(r["config"]["cell"] == "irnn1.5" for r in records)
    assert (tmp_path / "clipping.png").stat().st_size > 0


@pytest.mark.parametrize("flags, message", [
    (["adding", "--length", "1"], "error: --length must be at least 2, got 1"),
    (["adding", "--length", "50,x"], "error: --length takes whole numbers"),
    (["adding", "--cell", "lstm,rnn"], "error: unknown cell 'rnn'; use one of"),
    (["adding", "--seeds", "0"], "error: --seeds must be at least 1, got 0"),
    (["adding", "--steps", "0"], "error: --steps must be at least 1, got 0"),
    (["adding", "--learning-rate", "0"], "error: --learning-rate must be positive"),
    (["adding", "--eval-every", "0"], "error: --eval-every must be at least 1, got 0"),
    (["adding", "--recorded-only"], "error: "),
    (["norms", "--length", "1"], "error: --length must be at least 2, got 1"),
    (["norms", "--cell", "transformer"], "error: unknown cell 'transformer'"),
    (["norms", "--examples", "0"], "error: --examples must be at least 1, got 0"),
    (["clipping", "--seeds", "0"], "error: --seeds must be at least 1, got 0"),
    (["clipping", "--global-clipnorm", "0"], "error: --global-clipnorm must be positive"),
])
def test_bad_arguments_are_one_line_of_error(flags, message, tmp_path, capsys):
    assert cli.main(["-v", "gradients", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_the_command_knows_every_cell_without_importing_keras():
    from nlpapps.commands.gradients_commands import CELL_NAMES
    from nlpapps.gradients.cells import CELLS

    assert CELL_NAMES == tuple(CELLS)


def test_the_script_runs_the_command():
    script = Path(__file__).resolve().parents[2] / "scripts" / "gradients.py"
    result = subprocess.run([sys.executable, str(script), "adding", "--seeds", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --seeds must be at least 1, got 0"
