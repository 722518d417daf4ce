"""The neural Turing machine app: train an NTM (or an LSTM baseline of about the same size) on
an algorithmic task of Graves et al. 2014 (`ntm_tasks`), measure bit errors per sequence.

Every training step draws one batch of sequences of one length, uniform over the task's
training lengths (Graves 2014's), from a generator seeded by `(seed, step)`: a resumed run sees
the batches an uninterrupted one would. The loss is the sigmoid cross-entropy summed over the
scored steps and bits of a sequence and averaged over the batch (Collier & Beel 2018), the
gradient is clipped to a global norm of `clipnorm`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from nlpapps import training
from nlpapps.apps.config import CONFIG_FILE, AppConfig
from nlpapps.apps.ntm_tasks import TASKS, Task, bit_errors
from nlpapps.apps.model_folder_reader import ModelError, expect_kind
from nlpapps.layers.lstm import LSTM
from nlpapps.layers.ntm import NTM

log = logging.getLogger("nlpapps.turing_machine")

KIND = "neural_turing_machine"
MODELS = ("ntm", "lstm")
WEIGHTS_FILE, METRICS_FILE = training.WEIGHTS_FILE, "metrics.json"
BEST_WEIGHTS_FILE, VALIDATION_FILE = "best.weights.h5", "validation.json"
VALIDATION_SEED = 1_000_003  # the validation sequences are the same for every run


@dataclasses.dataclass(frozen=True)
class TuringMachineConfig(AppConfig):
    """A neural Turing machine (or its LSTM baseline), its task and its training."""

    kind: ClassVar[str] = KIND
    architecture: ClassVar[tuple[str, ...]] = (
        "task", "model", "bits", "units", "memory_size", "memory_width", "heads", "lstm_units")

    task: str = "copy"  # "copy", "repeat_copy" or "associative_recall" (Graves 2014)
    model: str = "ntm"  # "ntm", or "lstm": the baseline of about the same parameter count
    bits: int = 8  # bits of each vector of the task
    min_length: int = 0  # shortest training sequence (items for associative recall); 0: the task's
    max_length: int = 0  # longest training sequence; 0: the task's (copy 20, repeat 10, recall 6)
    units: int = 100  # the NTM's LSTM controller
    memory_size: int = 128  # N, the NTM's memory locations
    memory_width: int = 20  # M, the size of each location
    heads: int = 1  # read heads, and as many write heads
    lstm_units: int = 0  # the baseline's LSTM; 0: the size closest to the NTM's parameter count
    batch_size: int = 32  # sequences per step, all of one length
    learning_rate: float = 1e-3  # Adam
    clipnorm: float = 50.0  # gradient clipping by global norm
    steps_per_epoch: int = 250  # a checkpoint and a validation after every epoch
    epochs: int = 100  # at most this many epochs
    max_minutes: float = 0.0  # stop after this much training, resumed runs included (0: no limit)
    stop_below: float = 0.0  # stop at this many validation bit errors per sequence (0: never)
    validation_sequences: int = 320  # seeded sequences of the longest length, scored each epoch
    seed: int = 0  # of the initial weights and of the training sequences

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name in ("bits", "units", "memory_size", "memory_width", "heads", "batch_size",
                     "steps_per_epoch", "epochs", "validation_sequences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("min_length", "max_length", "lstm_units", "max_minutes", "stop_below"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        low, high = self.lengths
        if low < self.get_task().min_length or high < low:
            raise ValueError(f"training lengths {low} to {high} are not a range of lengths "
                             f"{self.get_task().min_length} or more for {self.task}")
        if self.memory_size < 3:
            raise ValueError(f"memory_size must be at least 3, got {self.memory_size}")

    def get_task(self) -> Task:
        return Task(self.task, self.bits)

    @property
    def lengths(self) -> tuple[int, int]:
        """The shortest and longest training lengths."""
        low, high = Task(self.task, self.bits).training_lengths
        return self.min_length or low, self.max_length or high


# -- model --------------------------------------------------------------------------------


def ntm_parameters(config: TuringMachineConfig) -> int:
    return create_model(dataclasses.replace(config, model="ntm")).count_params()


def baseline_units(config: TuringMachineConfig) -> int:
    """The LSTM width whose model has the parameter count closest to the NTM's."""
    if config.lstm_units:
        return config.lstm_units
    task = config.get_task()
    target = ntm_parameters(config)
    inputs, outputs = task.input_channels, task.output_channels

    def count(units):
        return 4 * units * (inputs + units + 1) + outputs * (units + 1)

    # count(units) grows with units: the root of 4 u^2 + (4 (inputs + 1) + outputs) u = target.
    b = 4 * (inputs + 1) + outputs
    guess = int((-b + math.sqrt(b * b + 16 * (target - outputs))) / 8)
    return min((guess, guess + 1), key=lambda units: abs(count(units) - target))


def create_model(config: TuringMachineConfig) -> keras.Model:
    """`(batch, time, input channels) -> (batch, time, output channels)` logits."""
    task = config.get_task()
    inputs = keras.Input((None, task.input_channels), name="inputs")
    if config.model == "ntm":
        hidden = NTM(config.units, memory_size=config.memory_size,
                     memory_width=config.memory_width, read_heads=config.heads,
                     write_heads=config.heads, return_sequences=True, name="ntm")(inputs)
    else:
        hidden = LSTM(baseline_units(config), return_sequences=True, name="lstm")(inputs)
    logits = keras.layers.Dense(task.output_channels, name="readout")(hidden)
    return keras.Model(inputs, logits, name=config.model)


def sequence_loss(y_true, logits):
    """Sigmoid cross-entropy summed over the scored steps and channels of each sequence;
    `y_true` holds the targets and, as its last channel, the weights of the steps."""
    targets, weights = y_true[..., :-1], y_true[..., -1]
    entropy = ops.binary_crossentropy(targets, logits, from_logits=True)  # (batch, time, channels)
    return ops.sum(ops.sum(entropy, axis=-1) * weights, axis=-1)  # (batch,)


def bit_error_metric(y_true, logits):
    """Bit errors of each sequence of the batch (logits thresholded at 0)."""
    targets, weights = y_true[..., :-1], y_true[..., -1]
    wrong = ops.cast(ops.not_equal(ops.cast(logits > 0, "float32"), targets), "float32")
    return ops.sum(ops.sum(wrong, axis=-1) * weights, axis=-1)


bit_error_metric.__name__ = "bit_errors"


# -- training -----------------------------------------------------------------------------


def training_batch(config: TuringMachineConfig, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The batch of training step `step`: `(inputs, targets and weights)`, seeded by
    `(seed, step)` alone."""
    rng = np.random.default_rng([config.seed, step])
    low, high = config.lengths
    inputs, targets, weights = config.get_task().batch(
        rng, int(rng.integers(low, high + 1)), config.batch_size)
    return inputs, np.concatenate([targets, weights[..., None]], axis=-1)


def training_dataset(config: TuringMachineConfig, first_step: int) -> tf.data.Dataset:
    task = config.get_task()

    def batches():
        step = first_step
        while True:
            yield training_batch(config, step)
            step += 1

    return tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, None, task.input_channels), tf.float32),
        tf.TensorSpec((None, None, task.output_channels + 1), tf.float32),
    )).prefetch(2)


class Validation(keras.callbacks.Callback):
    """After each epoch: the bit errors per sequence on the validation sequences, the best
    weights so far, the training time of every run so far (`max_minutes` counts it), and a
    stop on a loss that is no longer finite. Its state survives a resumed run."""

    def __init__(self, config: TuringMachineConfig, out_dir: Path, model: keras.Model):
        super().__init__()
        self.config, self.target = config, model
        self.state_path = out_dir / VALIDATION_FILE
        self.best_path = out_dir / BEST_WEIGHTS_FILE
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else \
            {"best": None, "seconds": 0.0, "history": []}

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self.start
        self.state["seconds"] += seconds
        logs = logs or {}
        loss = float(logs.get("loss", float("nan")))
        errors = evaluate(self.target, self.config.get_task(), self.config.lengths[1],
                          self.config.validation_sequences, VALIDATION_SEED)
        self.state["history"].append({
            "epoch": epoch + 1, "loss": loss, "bit_errors": errors,
            "train_bit_errors": float(logs.get("bit_errors", float("nan"))),
            "steps_per_second": self.config.steps_per_epoch / seconds,
            "seconds": round(self.state["seconds"], 1)})
        if not math.isfinite(loss):
            self.state["nan"] = epoch + 1
            self.model.stop_training = True
        elif self.state["best"] is None or errors < self.state["best"]:  # ties: the earlier
            self.state["best"] = errors
            self.target.save_weights(self.best_path)
        training.save_json(self.state_path, self.state)
        log.info("epoch %d: loss %.4f, bit errors per sequence at length %d: %.3f (best %.3f), "
                 "%.2f steps/s, %.1f min", epoch + 1, loss, self.config.lengths[1], errors,
                 self.state["best"] if self.state["best"] is not None else float("nan"),
                 self.config.steps_per_epoch / seconds, self.state["seconds"] / 60)
        if self.config.max_minutes and self.state["seconds"] > 60 * self.config.max_minutes:
            self.model.stop_training = True
        if self.config.stop_below and errors <= self.config.stop_below:
            log.info("validation reached %.3f bit errors per sequence (--stop-below %g): "
                     "stopping", errors, self.config.stop_below)
            self.model.stop_training = True


def fresh_model(folder: Path) -> keras.Model:
    """The model of the folder's config, with fresh weights."""
    return create_model(TuringMachineConfig.load(Path(folder)))


def train(config: TuringMachineConfig, out_dir: Path) -> keras.Model:
    """Trains (or resumes training) in `out_dir`; returns the model of the fewest validation
    bit errors, saved there as `model.weights.h5` with the config and `metrics.json`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.check_resumable(out_dir)
    keras.utils.set_random_seed(config.seed)
    config.save(out_dir)
    first_step = training.resumed_epoch(out_dir) * config.steps_per_epoch
    model = create_model(config)
    log.info("%s on %s, lengths %d to %d: %d parameters%s", config.model, config.task,
             *config.lengths, model.count_params(),
             f", resuming at step {first_step}" if first_step else "")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate,
                                                  global_clipnorm=config.clipnorm),
                  loss=sequence_loss, metrics=[bit_error_metric])
    validation = Validation(config, out_dir, model)
    callbacks = training.fit_callbacks(out_dir, [validation])
    model.fit(training_dataset(config, first_step), epochs=config.epochs,
              steps_per_epoch=config.steps_per_epoch, callbacks=callbacks,
              shuffle=False, verbose=training.progress_verbosity())
    if validation.state.get("nan"):
        raise ValueError(f"the loss became NaN in epoch {validation.state['nan']}; the best "
                         f"weights before it are in {out_dir / BEST_WEIGHTS_FILE}")
    if (out_dir / BEST_WEIGHTS_FILE).exists():
        model.load_weights(out_dir / BEST_WEIGHTS_FILE)
    model.save_weights(out_dir / WEIGHTS_FILE)
    history = validation.state["history"]
    training.save_json(out_dir / METRICS_FILE, {
        "parameters": model.count_params(),
        "steps": len(history) * config.steps_per_epoch,
        "training_minutes": round(validation.state["seconds"] / 60, 1),
        "validation_bit_errors": validation.state["best"],
        "validation_length": config.lengths[1],
        "nan": False})
    return model


def export(out_dir: Path, folder: Path) -> None:
    """Writes what running the trained model in `out_dir` needs (config, weights without the
    optimizer's state, metrics) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE):
        (folder / name).write_bytes((Path(out_dir) / name).read_bytes())


# -- loading and evaluation ---------------------------------------------------------------


def load(folder: Path) -> tuple[keras.Model, TuringMachineConfig]:
    """The model and config of a trained or exported folder; ModelError if it is not one."""
    folder = Path(folder)
    data = expect_kind(folder, KIND)
    try:
        config = TuringMachineConfig.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ModelError(f"{folder / CONFIG_FILE} is not a valid configuration ({error})") \
            from None
    if not (folder / WEIGHTS_FILE).exists():
        raise ModelError(f"{folder} has no {WEIGHTS_FILE}; train it to the end or pick "
                         "another folder")
    model = create_model(config)
    try:
        model.load_weights(folder / WEIGHTS_FILE)
    except (ValueError, OSError) as error:
        raise ModelError(f"{folder / WEIGHTS_FILE} does not fit its config.json: "
                         f"{str(error).strip().splitlines()[0]}") from None
    return model, config


def evaluate(model: keras.Model, task: Task, length: int, sequences: int, seed: int,
             batch_size: int = 1000) -> float:
    """Bit errors per sequence of `model` on `sequences` seeded sequences of `length`."""
    if sequences < 1:
        raise ValueError(f"sequences must be positive, got {sequences}")
    rng = np.random.default_rng(seed)
    errors = []
    for start in range(0, sequences, batch_size):
        inputs, targets, weights = task.batch(rng, length, min(batch_size, sequences - start))
        logits = model.predict_on_batch(inputs)
        errors.append(bit_errors(1.0 / (1.0 + np.exp(-logits)), targets, weights))
    return float(np.mean(np.concatenate(errors)))
