"""Writing a SavedModel folder: the graph with its signatures and the files beside it, swapped
in whole; and re-exporting a model folder from the Keras weights of a training folder."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from nlpapps.layers import cudnn


def write_savedmodel(module: tf.Module, out_dir: Path, extra_files: dict[str, bytes],
                     keep: bool = False) -> None:
    """Writes a SavedModel (with its signatures) and extra files to a temporary folder beside
    `out_dir`, then swaps it in with renames (`swap_in`), so that a reader, or a kill at any
    moment, finds the previous complete folder or the new one, never a part of either. With
    `keep`, what `out_dir` holds besides a SavedModel (a training run's checkpoints, epoch
    weights and logs) is carried into the new folder by hard links.

    The signatures are the module's functions named in its `SIGNATURES` (default
    `serving_default` and `translate`, those it has). They are traced with the step loops of
    the module's `model`, if it has one (`cudnn.loop_only`), so that the SavedModel runs on
    any machine and converts to TFLite, also when it is written on a GPU.

    In a multi-worker run, only the chief writes `out_dir`; another worker writes the same
    SavedModel to a temporary folder it then removes (saving may need every worker).
    """
    from nlpapps import training

    out_dir = Path(out_dir)
    if not training.is_chief():
        out_dir = training.output_folder(out_dir) / out_dir.name
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_swaps(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{SWAP}", dir=out_dir.parent))
    try:
        if keep and out_dir.is_dir():
            _link_tree(out_dir, tmp, skip=SAVEDMODEL_ITEMS | set(extra_files))
        names = getattr(module, "SIGNATURES", ("serving_default", "translate"))
        signatures = {name: getattr(module, name) for name in names if hasattr(module, name)}
        with cudnn.loop_only(getattr(module, "model", None)):
            tf.saved_model.save(module, str(tmp), signatures=signatures)
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)
        _sync_tree(tmp, SAVEDMODEL_ITEMS | set(extra_files))
        swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_savedmodel_into(module: tf.Module, out_dir: Path,
                         extra_files: dict[str, bytes]) -> None:
    """Writes the SavedModel and `extra_files` as the model folder `out_dir`, keeping the rest
    of what is there (a training run's checkpoints, epoch weights, logs and weights file); the
    folder is swapped whole, as `write_savedmodel` does."""
    write_savedmodel(module, out_dir, extra_files, keep=True)


SWAP = ".savedmodel-swap."  # in the names of the temporary folders beside a model folder
SAVEDMODEL_ITEMS = {"saved_model.pb", "fingerprint.pb", "variables", "assets"}


def swap_in(new: Path, out_dir: Path) -> None:
    """Puts the folder `new` at `out_dir`, which may exist: one atomic exchange of the two
    names where Linux offers it (renameat2 RENAME_EXCHANGE), else two renames, between which
    `out_dir` is briefly absent (never partly written). The old folder ends at `new`'s name
    and is removed."""
    if not out_dir.exists():
        new.rename(out_dir)
        return
    if not _exchange(new, out_dir):
        old = new.with_name(new.name + ".old")
        out_dir.rename(old)
        new.rename(out_dir)
        new = old
    shutil.rmtree(new, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def remove_stale_swaps(out_dir: Path) -> None:
    """Removes the temporary folders that killed writes of `out_dir` left beside it (and those
    of the releases before, `.savedmodel` and `..savedmodel.*` inside it)."""
    for stale in [*out_dir.parent.glob(f".{out_dir.name}{SWAP}*"),
                  *out_dir.glob(".savedmodel"), *out_dir.glob("..savedmodel.*")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _link_tree(source: Path, target: Path, skip: set[str]) -> None:
    """Hard links every file under `source` (but the top-level names in `skip`) into
    `target`; copies where links cannot be made."""
    for item in source.iterdir():
        if item.name in skip or SWAP in item.name:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, target / item.name, copy_function=_link_or_copy,
                            symlinks=True)
        else:
            _link_or_copy(item, target / item.name)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _sync_tree(folder: Path, names: set[str]) -> None:
    """fsyncs the files under the top-level `names` of `folder` (what this write made)."""
    paths = [folder / name for name in names]
    for path in [*paths, *(p for top in paths if top.is_dir() for p in top.rglob("*"))]:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


def check_output_folder(model_dir: Path, out_dir: Path) -> None:
    """ModelError unless `out_dir` may receive a model folder exported from `model_dir`: it is
    another folder, and absent, empty or a model folder already."""
    from nlpapps.apps.model_folder_reader import ModelError

    if Path(out_dir).resolve() == Path(model_dir).resolve():
        raise ModelError("the output folder must differ from the model folder")
    if out_dir.exists() and (not out_dir.is_dir() or (
            any(out_dir.iterdir()) and not (out_dir / "saved_model.pb").exists())):
        raise ModelError(f"{out_dir} exists and is not a model folder; not replacing it")

