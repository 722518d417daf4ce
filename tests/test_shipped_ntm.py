"""The shipped neural Turing machine (saved_models/ntm-copy) copies sequences it never saw,
written here by hand rather than by the task generator it was trained on."""

from pathlib import Path

import numpy as np

from nlpapps import cli
from nlpapps.apps import turing_machine

SHIPPED = Path(__file__).resolve().parent.parent / "saved_models" / "ntm-copy"


def copy_sequences(rng, sequences, length, bits=8):
    """Inputs `(sequences, 2 length + 1, bits + 1)`: the vectors, then the delimiter alone."""
    vectors = rng.integers(0, 2, size=(sequences, length, bits))
    inputs = np.zeros((sequences, 2 * length + 1, bits + 1), np.float32)
    inputs[:, :length, :bits] = vectors
    inputs[:, length, bits] = 1
    return inputs, vectors.astype(bool)


def test_the_shipped_ntm_copies_sequences_of_length_20():
    model, config = turing_machine.load(SHIPPED)
    assert (config.model, config.task) == ("ntm", "copy")
    inputs, vectors = copy_sequences(np.random.default_rng(2026), 200, 20)
    logits = model.predict_on_batch(inputs)  # (200, 41, 8)
    answer = logits[:, 21:] > 0
    errors = np.sum(answer != vectors, axis=(1, 2))
    assert errors.mean() <= 0.5, errors.mean()
    assert np.mean(errors == 0) >= 0.9


def test_the_evaluate_command_reports_the_shipped_ntm(capsys):
    assert cli.main(["ntm", "evaluate", "--model", str(SHIPPED), "--length", "20",
                     "--sequences", "100", "--seed", "5"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("bit errors per sequence: ")
    assert float(line.split(": ")[1]) <= 0.5
