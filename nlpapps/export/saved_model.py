"""Writing a SavedModel folder: the graph with its signatures and the files beside it, swapped
in whole; and re-exporting a model folder from the Keras weights of a training folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from nlpapps.layers import cudnn


def write_savedmodel(module: tf.Module, out_dir: Path, extra_files: dict[str, bytes]) -> None:
    """Writes a SavedModel (with its signatures) and extra files to a temporary folder beside
    `out_dir`, then swaps it in, so a failure never leaves a half-written model.

    The signatures are the module's functions named in its `SIGNATURES` (default
    `serving_default` and `translate`, those it has). They are traced with the step loops of
    the module's `model`, if it has one (`cudnn.loop_only`), so that the SavedModel runs on
    any machine and converts to TFLite, also when it is written on a GPU.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        names = getattr(module, "SIGNATURES", ("serving_default", "translate"))
        signatures = {name: getattr(module, name) for name in names if hasattr(module, name)}
        with cudnn.loop_only(getattr(module, "model", None)):
            tf.saved_model.save(module, str(tmp), signatures=signatures)
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_savedmodel_into(module: tf.Module, out_dir: Path,
                         extra_files: dict[str, bytes]) -> None:
    """Writes the SavedModel and `extra_files` into `out_dir`, keeping the rest of what is
    there (a training run's checkpoints, epoch weights, logs and weights file); an existing
    SavedModel is replaced whole, once the new one is written."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        write_savedmodel(module, out_dir, extra_files)
        return
    staging = out_dir / ".savedmodel"
    write_savedmodel(module, staging, extra_files)
    for item in staging.iterdir():
        target = out_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()


def check_output_folder(model_dir: Path, out_dir: Path) -> None:
    """ModelError unless `out_dir` may receive a model folder exported from `model_dir`: it is
    another folder, and absent, empty or a model folder already."""
    from nlpapps.apps.saved_model import ModelError

    if Path(out_dir).resolve() == Path(model_dir).resolve():
        raise ModelError("the output folder must differ from the model folder")
    if out_dir.exists() and (not out_dir.is_dir() or (
            any(out_dir.iterdir()) and not (out_dir / "saved_model.pb").exists())):
        raise ModelError(f"{out_dir} exists and is not a model folder; not replacing it")

