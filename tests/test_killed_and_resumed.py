"""A real `nlpapps lm train`, killed with SIGKILL at seeded random moments after its first
checkpoint and restarted with the same command: each restart resumes at the last committed
checkpoint (epoch, step, optimizer iteration), the finished run's weights and dev record equal
an uninterrupted run's (dropout on: the seed states are restored too), and no kill leaves a model
folder that is partly written. Then `nlpapps export`, killed while it replaces a SavedModel:
the folder always loads whole, the old model or the new one."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nlpapps import checkpoint

SHAKESPEARE = Path(__file__).parent / "fixtures" / "shakespeare"
EPOCHS, STEPS = 2, 4
TRAIN = ["lm", "train", "--text", str(SHAKESPEARE / "train.txt"), "--dev",
         str(SHAKESPEARE / "dev.txt"), "--model-type", "char", "--vocab-size", "100",
         "--embedding-dim", "8", "--units", "8", "--layers", "2", "--seq-len", "16",
         "--batch-size", "8", "--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS),
         "--dropout", "0.3", "--recurrent-dropout", "0.2", "--patience", "0",
         "--learning-rate", "0.01", "--seed", "5"]
TIMEOUT_S = 300  # per process


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from nlpapps.cli import main; sys.exit(main())",
         "-v", *args], stdout=subprocess.DEVNULL, stderr=log.open("w"))


def wait_until(process: subprocess.Popen, condition, log: Path) -> bool:
    """Polls `condition()` while `process` runs; False if it ended first."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no progress in {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return True


def finish(process: subprocess.Popen, log: Path) -> None:
    try:
        process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"did not finish in {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
    assert process.returncode == 0, log.read_text()[-3000:]


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_whole(folder: Path, reference: Path | None = None) -> None:
    """Every model file in `folder` reads back whole: the SavedModel loads (all its variables),
    the weights file has every weight of the reference's."""
    from nlpapps.apps.model_folder_reader import load_saved_model

    if (folder / "saved_model.pb").exists():
        load_saved_model(folder, "language_model")  # ModelError on a partial folder
    for name in ("model.weights.h5", "best.weights.h5"):
        if (folder / name).exists() and reference is not None:
            assert h5_arrays(folder / name).keys() == h5_arrays(reference / name).keys()
    for name in ("dev_loss.json", "checkpoint/training_metadata.json", "config.json"):
        if (folder / name).exists():
            json.loads((folder / name).read_text())


def swapping(parent: Path):
    """Whether a SavedModel is being written into a temporary folder in `parent`."""
    return lambda: any(".savedmodel-swap." in path.name for path in parent.iterdir())


def kill_after(process: subprocess.Popen, seconds: float) -> bool:
    """SIGKILLs `process` after `seconds`; whether it was still running to be killed."""
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_training_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    # The uninterrupted run: when it commits its first checkpoint, starts writing its
    # SavedModel, ends.
    reference, log = tmp_path / "reference", tmp_path / "reference.log"
    process = start([*TRAIN, "--out", str(reference)], log)
    assert wait_until(process, lambda: checkpoint.resumed_epoch(reference) > 0, log)
    first_checkpoint = time.monotonic()
    assert wait_until(process, lambda: checkpoint.resumed_epoch(reference) > 1, log)
    training_span = time.monotonic() - first_checkpoint  # the second epoch
    assert wait_until(process, swapping(tmp_path), log)
    export_start = time.monotonic()
    finish(process, log)
    export_span = time.monotonic() - export_start

    # Killed at a seeded random moment of its second epoch (after its first checkpoint), then of
    # its export, then left to finish; each restart resumes at the committed checkpoint, and the
    # first repeats the second epoch's batches and dropout masks.
    out, rng, kills, resumed = tmp_path / "run", random.Random(23), 0, []
    for attempt in range(3):
        log = tmp_path / f"run-{attempt}.log"
        committed = checkpoint.resumed_epoch(out)
        process = start([*TRAIN, "--out", str(out)], log)
        if attempt == 0 and wait_until(process, lambda: checkpoint.resumed_epoch(out) > 0, log):
            kills += kill_after(process, rng.uniform(0, 0.8) * training_span)
        elif attempt == 1 and wait_until(process, swapping(tmp_path), log):
            kills += kill_after(process, rng.uniform(0, 0.8) * export_span)
        else:
            finish(process, log)
        if committed:
            step = committed * STEPS
            assert f"resuming at epoch {committed}, step {step} (optimizer iteration {step})" \
                in log.read_text(), log.read_text()[-3000:]
            resumed.append(committed)
        assert_whole(out, reference)
    assert process.returncode == 0 and kills == 2 and len(resumed) == 2, (kills, resumed)

    # Bit for bit the uninterrupted run: weights, optimizer state, dropout seeds, dev record.
    finished, expected = (h5_arrays(folder / "model.weights.h5") for folder in (out, reference))
    assert finished.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(finished[name], expected[name], err_msg=name)
    assert json.loads((out / "dev_loss.json").read_text()) == \
        json.loads((reference / "dev_loss.json").read_text())
    last = json.loads((out / "checkpoint" / checkpoint.METADATA_FILE).read_text())
    assert last["epoch"] == EPOCHS and last["step"] == EPOCHS * STEPS
    # Nothing a killed write left behind survives the next run.
    assert not swapping(tmp_path)()
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob(f".*{checkpoint.STAGED}*"))

    # An export replacing a complete model folder, killed at a seeded moment while it writes
    # (the same swap as the training run's final save above, here over a SavedModel): the
    # folder still loads whole, the old model or the new one. (That the next write removes a
    # killed one's temporary folder, the training runs above showed.)
    exported = tmp_path / "exported"
    shutil.copytree(out, exported)
    export = ["export", "--format", "savedmodel", "--model", str(out), "--output", str(exported)]
    log = tmp_path / "export.log"
    process = start(export, log)
    assert wait_until(process, swapping(tmp_path), log)
    kill_after(process, rng.uniform(0, 0.8) * export_span)
    assert_whole(exported)
    assert (exported / "saved_model.pb").exists()
