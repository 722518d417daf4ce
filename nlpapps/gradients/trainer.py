"""One seeded training run on the adding problem: the training loop, top to bottom.

Every step draws a fresh batch, takes the mean squared error's gradient, records the loss
and the gradient's global norm (before any clipping) and applies the optimizer. Every
`eval_every` steps the MSE on a fixed test set is recorded. A loss that becomes NaN or inf
ends the run, which is then `diverged`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from nlpapps.gradients.adding import adding_batch
from nlpapps.gradients.cells import CELLS, adding_model

OPTIMIZERS = ("adam", "sgd")
TEST_SEED = 1_000_003  # the test set is the same for every run, apart from the training seed


@dataclasses.dataclass(frozen=True)
class RunConfig:
    cell: str = "lstm"  # the recurrence: a key of cells.CELLS
    length: int = 100  # steps per sequence, T
    units: int = 128  # size of the recurrent state
    batch_size: int = 50  # sequences per training step
    steps: int = 3000  # training steps
    optimizer: str = "adam"  # adam or sgd (plain, no momentum)
    learning_rate: float = 1e-3  # the optimizer's step size
    global_clipnorm: float = 1.0  # clip the gradient to this global norm; 0: no clipping
    eval_every: int = 100  # steps between two test-MSE measurements
    test_size: int = 1000  # sequences in the fixed test set
    seed: int = 0  # seeds the weights and the training batches

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; use one of {', '.join(CELLS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use adam or sgd")
        if self.length < 2:
            raise ValueError(f"--length must be at least 2 (two markers), got {self.length}")
        for name in ("units", "batch_size", "steps", "eval_every", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, "
                                 f"got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.global_clipnorm < 0:
            raise ValueError(f"--global-clipnorm must be 0 (off) or positive, "
                             f"got {self.global_clipnorm}")


@dataclasses.dataclass
class RunResult:
    config: RunConfig
    losses: list[float]  # training loss of every step taken
    grad_norms: list[float]  # global gradient norm of every step taken, before clipping
    test_steps: list[int]  # the steps at which the test MSE was measured (0: untrained)
    test_mse: list[float]
    diverged: bool  # whether the loss became NaN or inf
    seconds: float

    @property
    def final_mse(self) -> float:
        return self.test_mse[-1] if self.test_mse else math.nan

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_json(cls, record: dict) -> RunResult:
        return cls(**{**record, "config": RunConfig(**record["config"])})


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    clip = {"global_clipnorm": config.global_clipnorm} if config.global_clipnorm else {}
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate, **clip)
    return keras.optimizers.SGD(config.learning_rate, **clip)


def train(config: RunConfig, log: Callable[[str], None] = lambda line: None,
          model: keras.Model | None = None) -> tuple[keras.Model, RunResult]:
    """Trains a fresh adding model (or `model`) as `config` says; `log` gets a line every
    `eval_every` steps."""
    keras.utils.set_random_seed(config.seed)
    model = model or adding_model(config.cell, config.units)
    optimizer = make_optimizer(config)
    variables = model.trainable_variables
    rng = np.random.default_rng(config.seed)
    test_x, test_y = adding_batch(np.random.default_rng(TEST_SEED), config.test_size,
                                  config.length)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, variables)
        norm = tf.linalg.global_norm(gradients)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss, norm

    @tf.function(reduce_retracing=True)
    def test_mse(x, y):
        return tf.reduce_mean(tf.square(model(x, training=False) - y))

    result = RunResult(config, [], [], [0], [float(test_mse(test_x, test_y))], False, 0.0)
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        x, y = adding_batch(rng, config.batch_size, config.length)
        loss, norm = (float(value) for value in train_step(x, y))
        result.losses.append(loss)
        result.grad_norms.append(norm)
        if not math.isfinite(loss):
            result.diverged = True
            log(f"{_name(config)} step {step}: the loss is {loss}; the run has diverged")
            break
        if step % config.eval_every == 0 or step == config.steps:
            result.test_steps.append(step)
            result.test_mse.append(float(test_mse(test_x, test_y)))
            log(f"{_name(config)} step {step}/{config.steps}: loss {loss:.4f}, gradient "
                f"norm {norm:.3g}, test MSE {result.test_mse[-1]:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    result.seconds = time.perf_counter() - start
    return model, result


def _name(config: RunConfig) -> str:
    clip = f"clip {config.global_clipnorm:g}" if config.global_clipnorm else "no clip"
    return (f"{config.cell} T={config.length} seed {config.seed} "
            f"({config.optimizer}, {clip})")
