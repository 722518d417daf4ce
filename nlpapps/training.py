"""What every app's training shares: the loss, the distribution strategy, the callbacks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from nlpapps import checkpoint, folder_weights
from nlpapps.checkpoint import Checkpoint, CheckpointedCallback
from nlpapps.tokenizer import PAD_ID

STRATEGIES = ("default", "mirrored", "multi-worker")
WEIGHTS_FILE = folder_weights.WEIGHTS_FILE  # a training folder's weights


def masked_cross_entropy(label_smoothing: float = 0.0):
    """Token cross-entropy over non-pad targets, with optional label smoothing.

    `loss = mean over real tokens of (1 - eps) * -log p(y) + eps * mean_v(-log p(v))`.

    Under a strategy of several replicas the mean is over the real tokens of the global batch:
    each replica divides its sum by the count of all replicas' tokens (an all-reduce), so that
    the summed gradients are those of one process's mean, however the padding falls.
    """

    def loss(y_true, logits):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, y_true[..., None], axis=-1)[..., 0]
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        replica = tf.distribute.get_replica_context()
        if replicas > 1 and replica is not None:
            # Keras sums the replicas' gradients and leaves a scalar loss as it is (it divides
            # only a loss averaged over the batch by the replicas in sync).
            count = replica.all_reduce("sum", ops.sum(mask))
            return ops.sum(nll * mask) / ops.maximum(count, 1.0)
        mean = ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)
        return mean / replicas

    loss.__name__ = "masked_cross_entropy"
    return loss


def get_strategy(name: str) -> tf.distribute.Strategy:
    """"default" (one device), "mirrored" (every local GPU, else every logical CPU) or
    "multi-worker" (`MultiWorkerMirroredStrategy`: one replica per local GPU, else the CPU, on
    every worker of the cluster that the `TF_CONFIG` environment variable describes; a lone
    worker without it).

    A multi-worker strategy must be made before TensorFlow runs its first op, and once per
    process: make it first, and a second call returns the same one."""
    global _MULTI_WORKER
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        if _MULTI_WORKER is None:
            try:
                json.loads(os.environ.get("TF_CONFIG") or "{}")
            except ValueError as error:
                from nlpapps.errors import UserError

                raise UserError(f"TF_CONFIG is not JSON ({error}); set it as "
                                "docs/distributed.md shows") from None
            _MULTI_WORKER = _MultiWorkerStrategy()
        return _MULTI_WORKER
    raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's `fit` gives it
    (keras-team/keras#20585): a nest of values (a whole `(inputs, targets)` batch, reduced to
    build the model), where the strategy takes one value; and scalars (the logged loss) with
    `axis=0`, which here means across the replicas only."""

    def reduce(self, reduce_op, value, axis):
        def reduce_one(one):
            rank = self.experimental_local_results(one)[0].shape.rank
            return super(_MultiWorkerStrategy, self).reduce(reduce_op, one,
                                                            axis if rank else None)

        return tf.nest.map_structure(reduce_one, value)


_MULTI_WORKER: tf.distribute.MultiWorkerMirroredStrategy | None = None


def is_chief() -> bool:
    """Whether this process writes the run's files: true unless it is a worker of a
    multi-worker run other than the chief (the "chief" task, else "worker" 0)."""
    if _MULTI_WORKER is None:
        return True
    resolver = _MULTI_WORKER.cluster_resolver
    if resolver.task_type in (None, "chief"):
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and \
        "chief" not in resolver.cluster_spec().as_dict()


def output_folder(out_dir: Path) -> Path:
    """Where this process writes a run's files: `out_dir` for the chief; a temporary folder,
    removed at exit, for any other worker of a multi-worker run, which still reads (and resumes
    from) the chief's `out_dir`, as TensorFlow's multi-worker Keras tutorial has it."""
    if is_chief():
        return Path(out_dir)
    return checkpoint.temporary_folder(f"nlpapps-worker-{_MULTI_WORKER.cluster_resolver.task_id}-")


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Sets the multi-worker auto-shard policy DATA on `dataset`: every worker builds the same
    global batches and keeps its own rows of each (our pipelines are generated from one array
    in memory, not read from files, so sharding by FILE has nothing to split)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def adam(learning_rate: float, clipnorm: float, decay_steps: int = 0) -> keras.optimizers.Adam:
    """Adam with gradient clipping; with `decay_steps`, the learning rate follows a cosine from
    `learning_rate` down to a tenth of it over that many steps, then stays there."""
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps,
                                                               alpha=0.1)
    return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)


def fit_callbacks(out_dir: Path, extra: list[keras.callbacks.Callback] = (),
                  weights_of: keras.Model | None = None,
                  checkpoint: Checkpoint | None = None, first_step: int = 0) -> list:
    """TensorBoard logs (counting steps from `first_step`, where a resumed run starts), each
    epoch's weights of `weights_of` (default: the model being fit), the app's own callbacks,
    and last the epoch checkpoint that commits them (`checkpoint`; default: one in `out_dir`
    that restores itself when training begins)."""
    return [
        ResumedTensorBoard(str(out_dir / "logs"), first_step, update_freq=50),
        KeepEpochWeights(out_dir / EPOCHS_DIR, model=weights_of),
        *extra,
        checkpoint or Checkpoint(out_dir, states=[cb for cb in extra
                                                  if isinstance(cb, CheckpointedCallback)]),
    ]


EPOCHS_DIR = "epochs"


class ResumedTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard whose batch summaries of a resumed run go on at the resumed step (Keras's
    starts every `fit` at step 0)."""

    def __init__(self, log_dir: str, first_step: int = 0, **kwargs):
        super().__init__(log_dir, **kwargs)
        self.first_step = first_step

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self.first_step


class KeepEpochWeights(keras.callbacks.Callback):
    """Saves the weights of `model` (default: the model being fit) at each epoch's end as
    `epoch-NNNN.weights.h5` in `folder`, keeping the last `keep` of them, for checkpoint
    averaging (`nlpapps average`)."""

    def __init__(self, folder: Path, keep: int = 8, model: keras.Model | None = None):
        super().__init__()
        self.folder, self.keep, self.target = Path(folder), keep, model

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        checkpoint.save_weights(self.target or self.model,
                                self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
        for old in sorted(self.folder.glob("epoch-*.weights.h5"))[:-self.keep]:
            old.unlink()


resumed_epoch = checkpoint.resumed_epoch


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch past `minutes` of this run. The workers of a
    multi-worker run stop together: at the first epoch past the limit on any of them."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes, self.start = minutes, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if not self.minutes:
            return
        late = float(time.monotonic() - self.start > 60 * self.minutes)
        if _MULTI_WORKER is not None:  # every worker calls this at every epoch's end
            late = float(_MULTI_WORKER.reduce("SUM", tf.constant(late), axis=None))
        if late:
            self.model.stop_training = True


def load_or_train_tokenizer(path: Path, train):
    """The run's tokenizer: loaded from `path` when a resumed run has one, else `train()`'s
    result saved there."""
    from nlpapps.tokenizer import Tokenizer

    if Path(path).exists():
        return Tokenizer.load(path)
    tokenizer = train()
    checkpoint.write_bytes(Path(path), tokenizer.to_bytes())
    return tokenizer


def start_run(config, out_dir: Path, train_tokenizer, tokenizer_file: str = "tokenizer.model"):
    """What every app's `train` does first, in this order: makes the distribution strategy
    (a multi-worker one must exist before TensorFlow's first op), creates `out_dir`, refuses
    a run of another app or architecture there (`config.check_resumable`), seeds Keras, saves
    the config, and loads the run's tokenizer: the resumed run's, else `config.init_from`'s,
    else `train_tokenizer()`'s, saved in the run.

    Returns `(strategy, folder, tokenizer)`; `folder` is where this process writes (`out_dir`,
    or a temporary folder on a worker other than the chief, `output_folder`)."""
    out_dir = Path(out_dir)
    strategy = get_strategy(config.strategy)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.check_resumable(out_dir)
    folder = output_folder(out_dir)
    keras.utils.set_random_seed(config.seed)
    config.save(folder)
    tokenizer_path = out_dir / tokenizer_file
    if folder != out_dir and not resumed_epoch(out_dir):
        tokenizer_path = folder / tokenizer_file  # trained as the chief trains its own
    copy_tokenizer(config.init_from, tokenizer_path)
    return strategy, folder, load_or_train_tokenizer(tokenizer_path, train_tokenizer)


def copy_tokenizer(init_from: str, path: Path) -> None:
    """A run that starts from a trained model (`init_from`) keeps that model's tokenizer."""
    if init_from and not Path(path).exists():
        from nlpapps.apps.model_folder_reader import read_kind

        read_kind(Path(init_from))  # a clear error for a folder that is not a model
        source = Path(init_from) / Path(path).name
        if not source.exists():
            from nlpapps.apps.model_folder_reader import ModelError

            raise ModelError(f"{init_from} has no {source.name}, so it cannot start a run")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(Path(path), source.read_bytes())


def weights_bytes(model: keras.Model) -> bytes:
    """The model's weights as a `.weights.h5` file's bytes: the layers' weights only, as an
    exported folder ships them (a training run's file also holds the optimizer's state)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / WEIGHTS_FILE
        model.save_weights(path)
        return path.read_bytes()


def warm_start(model: keras.Model, folder: Path, grow: bool = False) -> None:
    """Sets the weights of the built `model` from the trained or exported model folder
    `folder` (its `model.weights.h5` or its SavedModel's variables); ModelError if it has
    neither or holds another architecture.

    With `grow`, `model` may have layers that the folder's model lacks (a deeper stack): those
    keep their fresh initialization and every other weight is loaded."""
    folder_weights.load_weights(model, Path(folder), grow)


def progress_verbosity() -> int:
    """Keras progress bar when a person watches, one line per epoch in a log."""
    return 1 if os.isatty(2) else 2


def save_json(path: Path, data: dict) -> None:
    """Writes `data` as JSON to `path` whole (a temporary file renamed over it)."""
    checkpoint.write_json(Path(path), data)


save_weights = checkpoint.save_weights
