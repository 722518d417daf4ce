"""The language-model app: train a recurrent LM on plain text, measure bits per character,
score lines.

Text is one stream of tokens, line breaks included (the tokenizer keeps them). The model reads
`bos` and then the text; `bos` stands for "a line starts here", so every window of stateless
training starts at the beginning of a line, and so do prompts and scored lines. Stateful
training (`stateful=True`) reads the text as contiguous streams instead, each batch starting
from the states the one before ended in, as `evaluate` reads a text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from nlpapps import folder_weights, training
from nlpapps.apps.config import CONFIG_FILE, AppConfig  # noqa: F401  (the folder layout)
from nlpapps.apps.dynamic_evaluation import Adaptation, adapting_window_nll, restored_weights
from nlpapps.apps.language_model_data import dev_dataset, stream_dataset, window_dataset
from nlpapps.apps.neural_cache import Cache, caching_window_nll
from nlpapps.apps.model_folder_reader import ModelError, expect_kind
from nlpapps.data import pad_batch
from nlpapps.models.language_model_network import LanguageModel
from nlpapps.models.stateful_trainer import StatefulTrainer
from nlpapps.tokenizer import BOS_ID, PAD_ID, Tokenizer, line_start_ids

log = logging.getLogger("nlpapps.language_model")

KIND = "language_model"
TOKENIZER_FILE, WEIGHTS_FILE = "tokenizer.model", training.WEIGHTS_FILE
BEST_WEIGHTS_FILE, DEV_LOSS_FILE, METRICS_FILE = "best.weights.h5", "dev_loss.json", "metrics.json"
MODEL_TYPES = ("unigram", "char")
EVALUATION_WINDOW = 256  # tokens per compiled call when streaming through a text


@dataclasses.dataclass(frozen=True)
class LanguageModelConfig(AppConfig):
    """Everything that defines a language model and its training; saved as config.json."""

    kind: ClassVar[str] = KIND
    architecture: ClassVar[tuple[str, ...]] = (
        "vocab_size", "model_type", "embedding_dim", "units", "layers", "cell",
        "tie_embeddings", "stateful", "attention")

    vocab_size: int = 4000  # SentencePiece vocabulary; for "char", at most this many characters
    model_type: str = "unigram"  # tokenizer: "unigram" (subword pieces) or "char"
    embedding_dim: int = 256  # embedding width (the output layer is tied to it)
    units: int = 512  # width of every recurrent layer
    layers: int = 2  # recurrent layers, residual between layers of equal width
    cell: str = "lstm"  # "lstm" or "gru"
    dropout: float = 0.2  # on embeddings, between layers, before the readout
    recurrent_dropout: float = 0.0  # on each layer's previous output in its recurrent matmul
    tie_embeddings: bool = True  # output matrix = embedding matrix (projected if units differ)
    attention: bool = False  # a causal self-attention block with a memory after the last layer
    attention_memory: int = 1024  # tokens of earlier windows the attention block looks back at
    attention_dropout: float = 0.0  # on the attention weights
    freeze_recurrent: bool = False  # train only the attention block; the rest keeps its weights
    seq_len: int = 128  # tokens per training window (BPTT length); also the prompt context
    stateful: bool = False  # read the text as contiguous streams, states carried between batches
    batch_size: int = 64  # windows per step
    learning_rate: float = 2e-3  # Adam
    decay_steps: int = 0  # cosine decay of the learning rate to a tenth over these steps (0: none)
    clipnorm: float = 1.0  # each weight's gradient clipped to this norm (Keras clipnorm)
    epochs: int = 100  # at most this many epochs of `steps_per_epoch` steps
    steps_per_epoch: int = 500  # a checkpoint and a dev loss after every epoch
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    patience: int = 5  # epochs without a lower dev loss before stopping (0: never stop early)
    seed: int = 0  # of the initial weights, the order of the windows and dropout
    strategy: str = "default"  # tf.distribute strategy: "default", "mirrored" or "multi-worker"
    init_from: str = ""  # a trained language-model folder whose weights and tokenizer start the run

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.strategy not in training.STRATEGIES:
            raise ValueError(f"strategy must be one of {training.STRATEGIES}, "
                             f"got {self.strategy!r}")
        for name in ("vocab_size", "embedding_dim", "units", "layers", "batch_size", "epochs",
                     "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.attention_memory < 0:
            raise ValueError(f"attention_memory must be >= 0, got {self.attention_memory}")
        if self.freeze_recurrent and not self.attention:
            raise ValueError("freeze_recurrent trains only the attention block; "
                             "set attention too")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.stateful and self.strategy != "default":
            raise ValueError("stateful training runs on one device; use strategy 'default'")
        for name in ("dropout", "recurrent_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def resume_fields(self) -> tuple[str, ...]:
        """A stateful run's checkpoint also holds one state per row of its batch, and the
        attention memory of each."""
        return self.architecture + (("batch_size",) if self.stateful else ()) \
            + (("attention_memory",) if self.stateful and self.attention else ()) \
            + ("freeze_recurrent",)

    def model_kwargs(self, vocab_size: int) -> dict:
        """The `LanguageModel` arguments; `vocab_size` is the trained tokenizer's."""
        return dict(vocab_size=vocab_size, embedding_dim=self.embedding_dim, units=self.units,
                    num_layers=self.layers, cell=self.cell, dropout=self.dropout,
                    recurrent_dropout=self.recurrent_dropout,
                    tie_embeddings=self.tie_embeddings,
                    attention_memory=self.attention_memory if self.attention else None,
                    attention_dropout=self.attention_dropout)


# -- training -----------------------------------------------------------------------------


class DevLoss(training.CheckpointedCallback):
    """Keeps the weights of `model` at the lowest dev loss and stops after `patience` epochs
    without a lower one (0: never). Its state and files (`dev_loss.json`, the best weights)
    are committed with each epoch's checkpoint, so a resumed run goes on with them.

    The dev loss is `measure()` (nats per token) where given, else the epoch's `val_loss`.
    """

    name = "dev_loss"

    def __init__(self, out_dir: Path, patience: int, model: keras.Model, measure=None):
        super().__init__(out_dir, {"best": None, "wait": 0, "history": []})
        self.patience, self.target, self.measure = patience, model, measure

    def on_epoch_end(self, epoch, logs=None):
        loss = self.measure() if self.measure else (logs or {}).get("val_loss")
        if loss is None:
            return
        loss = float(loss)
        self.state["history"].append({"epoch": epoch + 1, "dev_loss": loss})
        if self.state["best"] is None or loss < self.state["best"]:
            self.state.update(best=loss, wait=0)
            self.stage_weights(self.target, BEST_WEIGHTS_FILE)
        else:
            self.state["wait"] += 1
            if self.patience and self.state["wait"] >= self.patience:
                self.model.stop_training = True
        self.stage_json(DEV_LOSS_FILE, self.state)
        log.info("epoch %d: dev loss %.4f (best %.4f)", epoch + 1, loss, self.state["best"])


def create_model(config: LanguageModelConfig, vocab_size: int) -> LanguageModel:
    model = LanguageModel(**config.model_kwargs(vocab_size))
    model.build()
    return model


def fresh_model(folder: Path) -> LanguageModel:
    """The model of the folder's config and tokenizer, with fresh weights."""
    folder = Path(folder)
    return create_model(LanguageModelConfig.load(folder),
                        Tokenizer.load(folder / TOKENIZER_FILE).vocab_size)


def warm_start(model: LanguageModel, config: LanguageModelConfig, folder: Path) -> None:
    """Sets the weights of `model` from the trained model in `folder`: layers the folder's
    model lacks (a deeper stack, an attention block) keep their fresh initialization.
    ModelError if the folder holds another architecture."""
    start = LanguageModelConfig.load(folder)
    if not (config.attention and not start.attention):
        training.warm_start(model, folder, grow=config.layers > start.layers)
        return
    # Loaded as the model it is, then copied part by part into the attentive model.
    base = create_model(start, model.vocab_size)
    training.warm_start(base, folder)
    pairs = [(model.embedding, base.embedding), (model.projection, base.projection),
             (model.output_layer, base.output_layer), *zip(model.rnn.layers, base.rnn.layers)]
    try:
        for layer, base_layer in pairs:
            if (layer is None) != (base_layer is None):
                raise ValueError("the output layers differ (tie_embeddings)")
            if layer is not None:
                layer.set_weights(base_layer.get_weights())
        if model.output_bias is not None:
            model.output_bias.assign(base.output_bias)
    except ValueError as error:
        raise ModelError(f"{folder} holds another architecture than this run's: "
                         f"{str(error).strip().splitlines()[0]}") from None


def freeze_recurrent(model: LanguageModel) -> None:
    """Leaves only the attention block trainable (its layer norm, attention and gate): the
    embedding, the recurrent layers and the readout keep their weights, and no gradient runs
    back through the recurrent stack."""
    for layer in (model.embedding, model.rnn, model.projection, model.output_layer):
        if layer is not None:
            layer.trainable = False
    if model.output_bias is not None:
        model.output_bias.trainable = False


def train(config: LanguageModelConfig, train_text: str, dev_text: str, out_dir: Path
          ) -> tuple[LanguageModel, Tokenizer]:
    """Trains (or resumes training) in `out_dir`; returns the model of the lowest dev loss
    and its tokenizer, saved there with the config and the dev metrics."""
    out_dir = Path(out_dir)
    strategy, folder, tokenizer = training.start_run(config, out_dir, lambda: Tokenizer.train(
        [train_text], config.vocab_size, model_type=config.model_type, keep_newlines=True),
        TOKENIZER_FILE)
    train_ids = np.asarray(line_start_ids(tokenizer, train_text), np.int32)
    dev_ids = np.asarray(line_start_ids(tokenizer, dev_text), np.int32)

    with strategy.scope():
        model = create_model(config, tokenizer.vocab_size)
        if config.init_from and not training.resumed_epoch(out_dir):  # a resumed run has all
            warm_start(model, config, Path(config.init_from))
        if config.freeze_recurrent:
            freeze_recurrent(model)
        trainer = StatefulTrainer(model, config.batch_size) if config.stateful else model
        trainer.compile(
            optimizer=training.adam(config.learning_rate, config.clipnorm, config.decay_steps),
            loss=training.masked_cross_entropy())
    dev, measure = None, None
    if config.stateful and len(dev_ids):  # the dev text read as `evaluate` reads it
        window_nll = _window_nll(model)  # traced once for every epoch's measurement

        def measure():
            return stream_nll(window_nll, dev_ids, model.initial_states(1)).mean()
    elif not config.stateful:
        dev = dev_dataset(dev_ids, config.seq_len, config.batch_size, tokenizer.newline_id)
    dev_loss = DevLoss(folder, config.patience, model, measure)
    checkpoint = training.Checkpoint(out_dir, folder, states=[dev_loss])
    with strategy.scope():
        epoch = checkpoint.restore(trainer)  # weights, optimizer, dropout seeds, dev record
    first_step = epoch * config.steps_per_epoch  # the data goes on where the checkpoint was
    log.info("training on %d tokens (%d characters), dev %d tokens, vocabulary %d%s",
             len(train_ids), len(train_text), len(dev_ids), tokenizer.vocab_size,
             f", resuming at epoch {epoch}, step {first_step} (optimizer iteration "
             f"{int(trainer.optimizer.iterations.numpy())})" if epoch else "")
    if config.stateful:
        dataset = stream_dataset(train_ids, config.seq_len, config.batch_size, first_step)
    else:
        dataset = window_dataset(train_ids, config.seq_len, config.batch_size,
                                 tokenizer.newline_id, seed=config.seed, first_step=first_step)
    callbacks = training.fit_callbacks(
        folder, [dev_loss, training.TimeLimit(config.max_minutes)], weights_of=model,
        checkpoint=checkpoint, first_step=first_step)
    trainer.fit(training.shard_by_data(dataset), epochs=config.epochs, initial_epoch=epoch,
                steps_per_epoch=config.steps_per_epoch,
                validation_data=None if dev is None else training.shard_by_data(dev),
                callbacks=callbacks, shuffle=False, verbose=training.progress_verbosity())
    if (folder / BEST_WEIGHTS_FILE).exists():
        model.load_weights(folder / BEST_WEIGHTS_FILE)
    training.save_weights(model, folder / WEIGHTS_FILE)
    if len(dev_ids):
        metrics = evaluate(model, tokenizer, dev_text)
        training.save_json(folder / METRICS_FILE, {"dev": metrics})
        log.info("dev: %.4f bits per character, perplexity %.2f",
                 metrics["bits_per_character"], metrics["perplexity"])
    return model, tokenizer


# -- evaluation and scoring ---------------------------------------------------------------


def _window_nll(model: LanguageModel):
    """A compiled `(inputs, targets, states) -> (nll in nats of each target, states)` for
    batch 1."""

    @tf.function(reduce_retracing=True)
    def window_nll(inputs, targets, states):
        logits, states = model(inputs, initial_state=states, return_state=True)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))
        return nll, states

    return window_nll


def stream_nll(window_nll, ids: Sequence[int], states, window: int = EVALUATION_WINDOW,
               progress: bool = False) -> np.ndarray:
    """`-ln p(id)` of each of `ids` read after bos, in windows of `window` tokens through the
    compiled `window_nll` (`_window_nll(model)`), carrying the states from `states` on. With
    `progress`, a Keras progress bar counts the tokens on stderr."""
    inputs = np.concatenate([[BOS_ID], np.asarray(ids[:-1], np.int32)]).astype(np.int32)[None]
    targets = np.asarray(ids, np.int32)[None]  # (1, tokens)
    nats = []
    # Keras's progress bar writes to stdout, which carries the command's result.
    with contextlib.redirect_stdout(sys.stderr) if progress else contextlib.nullcontext():
        bar = keras.utils.Progbar(len(ids), unit_name="token") if progress else None
        for start in range(0, len(ids), window):
            nll, states = window_nll(inputs[:, start:start + window],
                                     targets[:, start:start + window], states)
            nats.append(np.asarray(nll, np.float64).reshape(-1))
            if bar is not None:
                bar.update(min(start + window, len(ids)))
    return np.concatenate(nats) if nats else np.zeros(0)


def token_nll(model: LanguageModel, tokenizer: Tokenizer, text: str,
              window: int = EVALUATION_WINDOW, adaptation: Adaptation | None = None,
              progress: bool = False, cache: Cache | None = None
              ) -> tuple[list[int], np.ndarray]:
    """The ids of `text` (read from the start of a line) and the negative log-likelihood in
    nats of each, read as `evaluate` reads the text (its arguments): their sum is its total."""
    ids = line_start_ids(tokenizer, text)
    if not ids:
        raise ValueError("the text has no tokens to evaluate")
    if adaptation is not None and cache is not None:
        raise ValueError("read a text with an adaptation or with a cache, not both")
    states = model.initial_states(1)
    if cache is not None:
        return ids, stream_nll(caching_window_nll(model, cache), ids, states, window, progress)
    if adaptation is None:
        return ids, stream_nll(_window_nll(model), ids, states, window, progress)
    with restored_weights(model):
        nats = stream_nll(adapting_window_nll(model, adaptation), ids, states,
                          adaptation.window, progress)
    if not np.all(np.isfinite(nats)):
        raise ValueError("the adapting model's loss became infinite or NaN; adapt with a "
                         "smaller learning rate")
    return ids, nats


def evaluate(model: LanguageModel, tokenizer: Tokenizer, text: str,
             window: int = EVALUATION_WINDOW, adaptation: Adaptation | None = None,
             progress: bool = False, cache: Cache | None = None) -> dict:
    """Negative log-likelihood of `text`, read in windows of `window` tokens with the states
    carried from one to the next: the same as one pass over the whole text, for any length.
    With an `adaptation`, the model learns from the text as it reads it (dynamic evaluation,
    `nlpapps.apps.dynamic_evaluation`), in windows of `adaptation.window` tokens; its weights
    are restored afterwards. With a `cache`, the model is mixed with a cache of its states
    over the text read so far (`nlpapps.apps.neural_cache`). With `progress`, a progress bar
    counts the tokens on stderr.

    Returns `{"tokens", "characters", "nll_bits", "bits_per_character", "perplexity"}`:
    `nll_bits` is `-sum log2 p(token)` over the text's tokens (the first read after bos),
    bits per character divides it by the text's characters (code points), perplexity is
    `2 ** (nll_bits / tokens)`. An adaptation's or a cache's settings are added as
    "adaptation" or "cache".
    """
    ids, nats = token_nll(model, tokenizer, text, window, adaptation, progress, cache)
    bits = float(nats.sum()) / math.log(2)
    per_token = bits / len(ids)
    report = {"tokens": len(ids), "characters": len(text), "nll_bits": bits,
              "bits_per_character": bits / len(text),
              "perplexity": 2 ** per_token if per_token < 1000 else math.inf}
    if adaptation is not None:
        report["adaptation"] = dataclasses.asdict(adaptation)
    if cache is not None:
        report["cache"] = dataclasses.asdict(cache)
    return report


def score(model: LanguageModel, tokenizer: Tokenizer, lines: Sequence[str],
          batch_size: int = 64, window: int = EVALUATION_WINDOW) -> list[float]:
    """Natural-log probability of each line as a whole line: read from the start of a line
    through its line break, so that a line cut short scores lower than the full line.

    Lines of at most `window` tokens are scored together, `batch_size` at a time; a longer
    line alone, `window` tokens at a time with the states carried over (as `evaluate` reads a
    text), so that memory stays bounded whatever the length of a line."""
    log_prob = _line_log_probs(model)
    window_nll = None
    results: list[float] = []
    for start in range(0, len(lines), batch_size):
        rows = line_start_ids(tokenizer, [line + "\n" for line in lines[start:start + batch_size]])
        short = [row for row in rows if len(row) <= window]
        scores = iter([])
        if short:
            targets = pad_batch(short)  # (batch, length <= window), 0-padded
            inputs = np.concatenate([np.full((len(short), 1), BOS_ID, np.int32),
                                     targets[:, :-1]], 1)
            scores = iter(float(x) for x in log_prob(inputs, targets).numpy())
        for row in rows:
            if len(row) <= window:
                results.append(next(scores))
                continue
            window_nll = window_nll or _window_nll(model)
            nats = stream_nll(window_nll, row, model.initial_states(1), window)
            results.append(-float(nats.sum()))
    return results


def _line_log_probs(model: LanguageModel):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
    def line_log_probs(inputs, targets):
        logits = tf.cast(model(inputs), tf.float32)  # (batch, length, vocab)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return -tf.reduce_sum(tf.where(targets == PAD_ID, 0.0, nll), axis=1)

    return line_log_probs


# -- loading ------------------------------------------------------------------------------


def load(folder: Path) -> tuple[LanguageModel, Tokenizer, LanguageModelConfig]:
    """The model, tokenizer and config of a trained folder (its weights from the weights file
    of a training folder, else from the SavedModel's variables); ModelError if it is not one."""
    folder = Path(folder)
    data = expect_kind(folder, KIND)
    if not (folder / TOKENIZER_FILE).exists():
        raise ModelError(f"{folder} has no {TOKENIZER_FILE}; train the model to the end "
                         "(nlpapps lm train) or pick another folder")
    try:
        config = LanguageModelConfig.from_dict(data)
        tokenizer = Tokenizer.load(folder / TOKENIZER_FILE)
        model = create_model(config, tokenizer.vocab_size)
        folder_weights.load_weights(model, folder)
    except ModelError:
        raise
    except Exception as error:  # noqa: BLE001  (h5py, protobuf and Keras raise many kinds)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else \
            type(error).__name__
        raise ModelError(f"{folder} could not be loaded, it may be corrupt: {first_line}") \
            from None
    return model, tokenizer, config
