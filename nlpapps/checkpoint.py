"""Resuming a killed run to the step: atomic files, and the epoch checkpoint that commits the
weights, the optimizer, the random-number state and the app's own records together.

A run may be killed (SIGKILL, a pre-empted machine) at any instruction. Every file here is
written under a temporary name in its folder and renamed over the old one, so a reader finds
the old file or the new one, never part of one. One epoch's checkpoint is committed by one
rename, that of `checkpoint/training_metadata.json`:

    checkpoint/epoch-NNNN.weights.h5    model and optimizer variables of epoch NNNN
    checkpoint/training_metadata.json   {"epoch", "step", "weights": "epoch-NNNN.weights.h5",
                                         "rng": the dropout seed states, "states": each
                                         CheckpointedCallback's state, "staged": its files}
    checkpoint/training_metadata.previous.json   the checkpoint before, kept as a fallback

A `CheckpointedCallback` (the dev-loss record, the best weights) stages its files during the
epoch's end; they are renamed into place only after the metadata naming them is committed, and a
restart that finds the metadata committed but a staged file not yet renamed finishes the rename.
So a kill anywhere leaves the app's records and the checkpoint of the same epoch.

The dropout masks come from Keras seed generators whose states are variables that
`save_weights` leaves out; the checkpoint keeps them, so a resumed run draws the masks the
uninterrupted run draws. The data pipelines are indexed by step (`first_step`), so a resumed
run reads the batches the uninterrupted run reads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

log = logging.getLogger("nlpapps.checkpoint")

CHECKPOINT_DIR = "checkpoint"
METADATA_FILE, PREVIOUS_METADATA_FILE = "training_metadata.json", "training_metadata.previous.json"
STAGED = ".staged"  # in the names of files written for the next commit


# -- atomic files ---------------------------------------------------------------------------


def _temporary_name(path: Path, suffix: str = "") -> Path:
    """A hidden name beside `path`, unique to this process, ending in `suffix`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def _sync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` to `path` whole: a reader finds the old file or the new one."""
    path = Path(path)
    tmp = _temporary_name(path)
    with open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def save_weights(model: keras.Model, path: Path) -> None:
    """`model.save_weights(path)`, written whole (Keras writes the file in place)."""
    path = Path(path)
    tmp = _temporary_name(path, ".weights.h5")  # Keras insists on the suffix
    model.save_weights(tmp)
    _sync(tmp)
    os.replace(tmp, path)


def remove_stale(folder: Path) -> None:
    """Removes what killed processes left in `folder`: temporary files of `write_bytes` and
    `save_weights` whose process is gone."""
    for path in Path(folder).glob(".*.tmp*"):
        pid = path.name.rsplit(".tmp", 1)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- what save_weights leaves out -------------------------------------------------------------


def rng_variables(model: keras.Model) -> list:
    """The states of the model's seed generators (dropout masks), in a fixed order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


# -- the epoch checkpoint ---------------------------------------------------------------------


class CheckpointedCallback(keras.callbacks.Callback):
    """A callback whose `state` (a JSON dict) and files are committed with each epoch's
    checkpoint and restored from it. Write files with `stage_weights` / `stage_json`; they
    reach their names when the checkpoint commits."""

    name = ""  # the state's key in the metadata

    def __init__(self, folder: Path, state: dict):
        super().__init__()
        self.folder, self.state, self.staged = Path(folder), state, {}

    def stage_weights(self, model: keras.Model, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}{STAGED}.weights.h5"
        model.save_weights(tmp)
        _sync(tmp)
        self.staged[name] = tmp.name

    def stage_json(self, name: str, data: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}{STAGED}"
        write_json(tmp, data)
        self.staged[name] = tmp.name


class Checkpoint(keras.callbacks.Callback):
    """Saves the model being fit (weights, optimizer, dropout seed states) and the states of
    `states` (`CheckpointedCallback`s) at each epoch's end, committed together; `restore`
    loads the newest checkpoint that reads back whole.

    Checkpoints are read from `read_dir` and written to `write_dir` (default: the same): a
    multi-worker run's workers other than the chief restore from the chief's folder and write
    to a temporary one. Place this callback after every callback whose state it commits.
    """

    def __init__(self, read_dir: Path, write_dir: Path | None = None,
                 states: list[CheckpointedCallback] = ()):
        super().__init__()
        self.read_dir = Path(read_dir) / CHECKPOINT_DIR
        self.write_root = Path(write_dir or read_dir)
        self.write_dir = self.write_root / CHECKPOINT_DIR
        self.states = list(states)
        self.restored_epoch: int | None = None

    # Restoring ------------------------------------------------------------------------------

    def restore(self, model: keras.Model) -> int:
        """Loads the newest whole checkpoint into `model` (which must be compiled) and the
        states; returns its epoch, 0 when there is none. A checkpoint whose metadata or weights
        do not read back is passed over with a warning for the one before it."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        fresh = [np.array(v) for v in model.variables]
        self.restored_epoch = 0
        for name in (METADATA_FILE, PREVIOUS_METADATA_FILE):
            path = self.read_dir / name
            if not path.exists():
                continue
            try:
                metadata = json.loads(path.read_text(encoding="utf-8"))
                epoch = int(metadata["epoch"])
                # A checkpoint of Keras's BackupAndRestore (before this module) has no names.
                model.load_weights(self.read_dir / metadata.get("weights", "latest.weights.h5"))
                for variable, value in zip(rng_variables(model), metadata.get("rng", []),
                                           strict="rng" in metadata):
                    variable.assign(np.asarray(value, variable.dtype))
            except Exception as error:  # noqa: BLE001  (json, h5py and Keras raise many kinds)
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                log.warning("checkpoint %s cannot be read (%s); trying the one before it",
                            path, first_line)
                for variable, value in zip(model.variables, fresh, strict=True):
                    variable.assign(value)
                continue
            for state in self.states:
                state.state = metadata.get("states", {}).get(state.name, state.state)
            if self.read_dir == self.write_dir:
                self._finish_commit(metadata)
            self.restored_epoch = epoch
            return epoch
        if any(self.read_dir.glob("*.json")):
            log.warning("no checkpoint in %s reads back whole; training starts from the "
                        "beginning", self.read_dir)
        return 0

    def _finish_commit(self, metadata: dict) -> None:
        """Renames the files the committed metadata staged, where a kill came first, and
        removes files staged for a commit that never came."""
        for name, tmp in metadata.get("staged", {}).items():
            if (self.write_root / tmp).exists():
                os.replace(self.write_root / tmp, self.write_root / name)
        for stale in self.write_root.glob(f".*{STAGED}*"):
            stale.unlink()
        for folder in [self.write_root, *(p for p in self.write_root.iterdir() if p.is_dir())]:
            remove_stale(folder)  # the run folder, checkpoint/, epochs/

    def on_train_begin(self, logs=None):
        if self.restored_epoch is None:  # an app that leaves restoring to the callback
            self.model._initial_epoch = self.restore(self.model) or None

    # Saving ---------------------------------------------------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        self.write_dir.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1:04d}.weights.h5"
        save_weights(self.model, self.write_dir / weights)
        staged = {}
        for state in self.states:
            staged.update(state.staged)
            state.staged = {}
        metadata = {
            "epoch": epoch + 1,
            "step": int(self.model.optimizer.iterations.numpy()),
            "weights": weights,
            "rng": [np.asarray(v).tolist() for v in rng_variables(self.model)],
            "states": {state.name: state.state for state in self.states},
            "staged": staged,
        }
        current = self.write_dir / METADATA_FILE
        if current.exists():
            os.replace(current, self.write_dir / PREVIOUS_METADATA_FILE)
        write_json(current, metadata)  # the commit
        self._finish_commit(metadata)
        keep = {weights, _weights_named_in(self.write_dir / PREVIOUS_METADATA_FILE)}
        for old in self.write_dir.glob("epoch-*.weights.h5"):
            if old.name not in keep:
                old.unlink()


def _weights_named_in(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["weights"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resumed_epoch(out_dir: Path) -> int:
    """The epoch of the checkpoint a run in `out_dir` resumes from, as its metadata says
    (the previous one's when the last is unreadable); 0 when there is none."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    for name in (METADATA_FILE, PREVIOUS_METADATA_FILE):
        try:
            return int(json.loads((folder / name).read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0


def temporary_folder(prefix: str) -> Path:
    """A folder removed when the process exits (a multi-worker run's non-chief output)."""
    import atexit

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
