"""What every app's training shares: the loss, the distribution strategy, the callbacks."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from nlpapps.tokenizer import PAD_ID

STRATEGIES = ("default", "mirrored")
WEIGHTS_FILE = "model.weights.h5"  # the trained weights in a model folder


def masked_cross_entropy(label_smoothing: float = 0.0):
    """Token cross-entropy over non-pad targets, with optional label smoothing.

    `loss = mean over real tokens of (1 - eps) * -log p(y) + eps * mean_v(-log p(v))`.
    """

    def loss(y_true, logits):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, y_true[..., None], axis=-1)[..., 0]
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        mean = ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)
        # Keras divides a loss averaged over the batch by the replicas in sync, whose
        # gradients are summed, but leaves a scalar loss as it is: this one divides itself.
        return mean / tf.distribute.get_strategy().num_replicas_in_sync

    loss.__name__ = "masked_cross_entropy"
    return loss


def get_strategy(name: str) -> tf.distribute.Strategy:
    """"default" (one device) or "mirrored" (every local GPU, else every logical CPU)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def adam(learning_rate: float, clipnorm: float, decay_steps: int = 0) -> keras.optimizers.Adam:
    """Adam with gradient clipping; with `decay_steps`, the learning rate follows a cosine from
    `learning_rate` down to a tenth of it over that many steps, then stays there."""
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps,
                                                               alpha=0.1)
    return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)


def fit_callbacks(out_dir: Path, extra: list[keras.callbacks.Callback] = (),
                  weights_of: keras.Model | None = None) -> list:
    """Checkpoints that let a killed run resume (weights, optimizer state and epoch, saved at
    every epoch's end), TensorBoard logs, each epoch's weights of `weights_of` (default: the
    model being fit) and the app's own callbacks."""
    return [
        keras.callbacks.BackupAndRestore(str(out_dir / "checkpoint"), save_freq="epoch",
                                         double_checkpoint=True, delete_checkpoint=False),
        keras.callbacks.TensorBoard(str(out_dir / "logs"), update_freq=50),
        KeepEpochWeights(out_dir / EPOCHS_DIR, model=weights_of),
        *extra,
    ]


EPOCHS_DIR = "epochs"


class KeepEpochWeights(keras.callbacks.Callback):
    """Saves the weights of `model` (default: the model being fit) at each epoch's end as
    `epoch-NNNN.weights.h5` in `folder`, keeping the last `keep` of them, for checkpoint
    averaging (`nlpapps average`)."""

    def __init__(self, folder: Path, keep: int = 8, model: keras.Model | None = None):
        super().__init__()
        self.folder, self.keep, self.target = Path(folder), keep, model

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.target or self.model).save_weights(
            self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
        for old in sorted(self.folder.glob("epoch-*.weights.h5"))[:-self.keep]:
            old.unlink()


def resumed_epoch(out_dir: Path) -> int:
    """The epoch a run in `out_dir` resumes at: the one `BackupAndRestore` recorded, else 0."""
    metadata = Path(out_dir) / "checkpoint" / "training_metadata.json"
    try:
        return int(json.loads(metadata.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch past `minutes` of this run."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes, self.start = minutes, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and time.monotonic() - self.start > 60 * self.minutes:
            self.model.stop_training = True


def load_or_train_tokenizer(path: Path, train):
    """The run's tokenizer: loaded from `path` when a resumed run has one, else `train()`'s
    result saved there."""
    from nlpapps.tokenizer import Tokenizer

    if Path(path).exists():
        return Tokenizer.load(path)
    tokenizer = train()
    tokenizer.save(path)
    return tokenizer


def copy_tokenizer(init_from: str, path: Path) -> None:
    """A run that starts from a trained model (`init_from`) keeps that model's tokenizer."""
    if init_from and not Path(path).exists():
        from nlpapps.apps.saved_model import read_kind

        read_kind(Path(init_from))  # a clear error for a folder that is not a model
        source = Path(init_from) / Path(path).name
        if not source.exists():
            from nlpapps.apps.saved_model import ModelError

            raise ModelError(f"{init_from} has no {source.name}, so it cannot start a run")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(source.read_bytes())


def weights_bytes(model: keras.Model) -> bytes:
    """The model's weights as a `.weights.h5` file's bytes: the layers' weights only, as an
    exported folder ships them (a training run's file also holds the optimizer's state)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / WEIGHTS_FILE
        model.save_weights(path)
        return path.read_bytes()


def warm_start(model: keras.Model, folder: Path, grow: bool = False) -> None:
    """Sets the weights of the built `model` from the `model.weights.h5` of the trained or
    exported model folder `folder`; ModelError if it has none or holds another architecture.

    With `grow`, `model` may have layers that the folder's model lacks (a deeper stack): those
    keep their fresh initialization and every other weight is loaded."""
    from nlpapps.apps.saved_model import ModelError

    path = Path(folder) / WEIGHTS_FILE
    if not path.exists():
        raise ModelError(f"{folder} has no {WEIGHTS_FILE} to start from; pick a training "
                         "folder or a folder exported with its weights")
    try:
        if grow:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*could not be loaded")
                model.load_weights(path, skip_mismatch=True)
        else:
            model.load_weights(path)
    except ValueError as error:
        raise ModelError(f"{folder} holds another architecture than this run's: "
                         f"{str(error).strip().splitlines()[0]}") from None


def progress_verbosity() -> int:
    """Keras progress bar when a person watches, one line per epoch in a log."""
    return 1 if os.isatty(2) else 2


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
