"""Checkpoint averaging: a model whose weights are the mean of a run's last epochs' weights.

Averaging the weights of the last few checkpoints of a run smooths out the noise of the last
updates and usually scores better than any one of them (Vaswani et al. 2017, Junczys-Dowmunt
et al. 2016). The training callbacks keep the last epochs' weights in `RUN/epochs/`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from nlpapps import training
from nlpapps.apps.registry import app_of
from nlpapps.apps.model_folder_reader import ModelError, read_kind
from nlpapps.export.model_folder import export_model_folder


def epoch_files(run_dir: Path, last: int) -> list[Path]:
    """The weights files of the last `last` epochs kept in `run_dir`, oldest first."""
    files = sorted((Path(run_dir) / training.EPOCHS_DIR).glob("epoch-*.weights.h5"))
    if not files:
        raise ModelError(f"{run_dir} keeps no epoch weights ({training.EPOCHS_DIR}/); pass a "
                         "training folder")
    return files[-last:]


def average_weights(model, paths: list[Path]) -> None:
    """Sets the built `model`'s weights to the element-wise mean of the weights files `paths`."""
    total = None
    for path in paths:
        try:
            model.load_weights(path)
        except (ValueError, OSError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ModelError(f"{path} could not be loaded: {first_line}") from None
        values = [np.asarray(variable.numpy(), np.float64) for variable in model.weights]
        total = values if total is None else [t + v for t, v in zip(total, values)]
    for variable, summed in zip(model.weights, total):
        variable.assign((summed / len(paths)).astype(variable.dtype))


def average_run(run_dir: Path, out_dir: Path, last: int) -> list[Path]:
    """Writes a model folder at `out_dir` (as `nlpapps export --format savedmodel` does) whose
    weights average the last `last` epochs of the run in `run_dir`; returns the files used."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    kind, _ = read_kind(run_dir)
    app = app_of(kind)
    if not (app.has("export_folder") and app.has("fresh_model")):
        raise ModelError(f"{run_dir} holds a {app.name}, which cannot be averaged")
    if last < 1:
        raise ModelError(f"--last must be at least 1, got {last}")
    paths = epoch_files(run_dir, last)
    model = app.hook("fresh_model")(run_dir)  # fresh weights, from its config
    average_weights(model, paths)
    with tempfile.TemporaryDirectory() as staging:
        staging = Path(staging)
        for name in app.model_files:
            shutil.copy(run_dir / name, staging / name)
        (staging / training.WEIGHTS_FILE).write_bytes(training.weights_bytes(model))
        export_model_folder(kind, staging, out_dir)
    return paths
