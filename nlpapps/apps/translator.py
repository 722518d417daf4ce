"""The translator app: train an attention seq2seq on sentence pairs, translate, evaluate."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from nlpapps import decoding, training
from nlpapps.apps.config import CONFIG_FILE, AppConfig  # noqa: F401  (the folder layout)
from nlpapps.data import pad_batch, translation_dataset
from nlpapps.models.seq2seq import Seq2Seq, output_length_limit
from nlpapps.tokenizer import BOS_ID, EOS_ID, Tokenizer

log = logging.getLogger("nlpapps.translator")

KIND = "translator"
TOKENIZER_FILE, WEIGHTS_FILE = "tokenizer.model", training.WEIGHTS_FILE
BEST_WEIGHTS_FILE = "best.weights.h5"


@dataclasses.dataclass(frozen=True)
class TranslatorConfig(AppConfig):
    """Everything that defines a translator and its training; saved as config.json."""

    kind: ClassVar[str] = KIND
    architecture: ClassVar[tuple[str, ...]] = (
        "vocab_size", "embedding_dim", "units", "encoder_layers", "decoder_layers", "cell",
        "attention", "attention_units")

    vocab_size: int = 8000  # joint SentencePiece vocabulary of both languages
    embedding_dim: int = 256  # embedding and readout width (the output layer is tied)
    units: int = 512  # encoder memory and decoder cell width
    encoder_layers: int = 1  # bidirectional layers, residual between them
    decoder_layers: int = 1  # decoder cells, residual between them
    cell: str = "lstm"  # "lstm" or "gru"
    attention: str = "bahdanau"  # "bahdanau" (from s_{i-1}) or "luong" (from s_i)
    attention_units: int = 256  # hidden width of the additive attention
    dropout: float = 0.2  # on embeddings, between layers, before the readout
    batch_size: int = 64  # sentence pairs per step
    learning_rate: float = 1e-3  # Adam
    decay_steps: int = 0  # cosine decay of the learning rate to a tenth over these steps (0: none)
    clipnorm: float = 1.0  # each weight's gradient clipped to this norm (Keras clipnorm)
    label_smoothing: float = 0.1  # share of each target's probability spread over the vocabulary
    subword_alpha: float = 0.0  # > 0: each epoch draws new segmentations (Kudo 2018), e.g. 0.1
    max_length: int = 64  # tokens per side in training; longer pairs are cut
    epochs: int = 100  # at most this many epochs of `steps_per_epoch` steps
    steps_per_epoch: int = 500  # a checkpoint is written after every epoch
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    eval_every: int = 2  # epochs between dev BLEU evaluations
    patience: int = 4  # evaluations without a better dev BLEU before stopping
    dev_sentences: int = 500  # dev pairs used for the BLEU that picks the best model
    oversample: str = ""  # "source=N": repeat the pairs of that source N times, e.g. "ding=2"
    seed: int = 0  # of the initial weights, the order of the pairs, dropout and the dev sample
    strategy: str = "default"  # tf.distribute strategy: "default", "mirrored" or "multi-worker"
    init_from: str = ""  # a trained translator folder whose weights and tokenizer start the run

    def model_kwargs(self) -> dict:
        return dict(vocab_size=self.vocab_size, embedding_dim=self.embedding_dim,
                    units=self.units, encoder_layers=self.encoder_layers,
                    decoder_layers=self.decoder_layers, cell=self.cell,
                    attention=self.attention, attention_units=self.attention_units,
                    dropout=self.dropout)


class Translator:
    """A trained model with its tokenizer: batched greedy and beam-search translation."""

    def __init__(self, model: Seq2Seq, tokenizer: Tokenizer, config: TranslatorConfig):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self._greedy = tf.function(self._greedy_ids, reduce_retracing=True)

    @classmethod
    def create(cls, config: TranslatorConfig, tokenizer: Tokenizer) -> Translator:
        model = Seq2Seq(**config.model_kwargs())
        model.build()
        return cls(model, tokenizer, config)

    def _greedy_ids(self, source_ids):
        memory, states = self.model.encode(source_ids)
        memory = self.model.with_output_kernel(memory)
        batch = tf.shape(source_ids)[0]
        ids, scores, _ = decoding.decode(
            lambda tokens, states: self.model.decode_step(tokens, states, memory),
            tf.fill([batch], BOS_ID), states, max_length=output_length_limit(source_ids),
            min_length=decoding.MIN_DECODING_LENGTH)
        return ids, scores

    def encode_sources(self, texts: Sequence[str]) -> np.ndarray:
        return pad_batch(self.tokenizer.encode(list(texts), add_eos=True,
                                               max_length=self.config.max_length))

    def translate(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """Greedy translations, one per text, in order. A text with no token (empty, only
        spaces) translates to an empty string, as in the exported model."""
        results: list[str] = []
        for start in range(0, len(texts), batch_size):
            sources = self.encode_sources(texts[start:start + batch_size])
            ids, _ = self._greedy(tf.constant(sources))
            outputs = self.tokenizer.decode(strip_after_eos(ids.numpy()))
            results += ["" if row[0] == EOS_ID else text for row, text in zip(sources, outputs)]
        return results


def strip_after_eos(ids: np.ndarray) -> list[list[int]]:
    rows = []
    for row in ids.tolist():
        rows.append(row[:row.index(EOS_ID)] if EOS_ID in row else row)
    return rows


class DevBleu(training.CheckpointedCallback):
    """Greedy dev BLEU every `every` epochs: keeps the best weights, stops after `patience`
    evaluations without improvement. Its state and files (`dev_bleu.json`, the best weights)
    are committed with each epoch's checkpoint, so a resumed run goes on with them."""

    name = "dev_bleu"

    def __init__(self, translator: Translator, pairs, out_dir: Path, every: int, patience: int):
        super().__init__(out_dir, {"best": -1.0, "wait": 0, "history": []})
        self.translator, self.pairs, self.every, self.patience = translator, pairs, every, patience

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        hypotheses = self.translator.translate([s for s, _ in self.pairs])
        bleu = sacrebleu.corpus_bleu(hypotheses, [[t for _, t in self.pairs]]).score
        self.state["history"].append({"epoch": epoch + 1, "bleu": bleu})
        if bleu > self.state["best"]:
            self.state.update(best=bleu, wait=0)
            self.stage_weights(self.model, BEST_WEIGHTS_FILE)
        else:
            self.state["wait"] += 1
            if self.state["wait"] >= self.patience:
                self.model.stop_training = True
        self.stage_json("dev_bleu.json", self.state)
        log.info("epoch %d: dev BLEU %.2f (best %.2f)", epoch + 1, bleu, self.state["best"])


def oversampled(pairs: list[tuple[str, str, str]], spec: str) -> list[tuple[str, str]]:
    """Applies `"source=N"` oversampling to `(source_text, target_text, corpus)` triples."""
    repeat = {}
    for item in filter(None, spec.split(",")):
        name, _, times = item.partition("=")
        repeat[name.strip()] = int(times)
    return [(s, t) for s, t, corpus in pairs for _ in range(repeat.get(corpus, 1))]


def fresh_model(folder: Path) -> keras.Model:
    """The model of the folder's config and tokenizer, with fresh weights."""
    folder = Path(folder)
    return Translator.create(TranslatorConfig.load(folder),
                             Tokenizer.load(folder / TOKENIZER_FILE)).model


def train(config: TranslatorConfig, train_pairs: list[tuple[str, str, str]],
          dev_pairs: list[tuple[str, str]], out_dir: Path) -> Translator:
    """Trains (or resumes training) in `out_dir`; returns the best translator found."""
    out_dir = Path(out_dir)
    strategy, folder, tokenizer = training.start_run(config, out_dir, lambda: Tokenizer.train(
        [text for s, t, _ in train_pairs for text in (s, t)], config.vocab_size),
        TOKENIZER_FILE)
    pairs = oversampled(train_pairs, config.oversample)
    dev = random.Random(config.seed).sample(dev_pairs, min(config.dev_sentences, len(dev_pairs)))

    with strategy.scope():
        translator = Translator.create(config, tokenizer)
        if config.init_from and not training.resumed_epoch(out_dir):  # a resumed run has all
            training.warm_start(translator.model, Path(config.init_from))
        translator.model.compile(
            optimizer=training.adam(config.learning_rate, config.clipnorm, config.decay_steps),
            loss=training.masked_cross_entropy(config.label_smoothing))
    dev_bleu = DevBleu(translator, dev, folder, config.eval_every, config.patience)
    checkpoint = training.Checkpoint(out_dir, folder, states=[dev_bleu])
    with strategy.scope():
        epoch = checkpoint.restore(translator.model)  # weights, optimizer, dropout seeds
    first_step = epoch * config.steps_per_epoch  # the data goes on where the checkpoint was
    log.info("training on %d pairs (%d after oversampling), vocabulary %d%s",
             len(train_pairs), len(pairs), tokenizer.vocab_size,
             f", resuming at epoch {epoch}, step {first_step}" if epoch else "")
    dataset = translation_dataset(pairs, tokenizer, config.batch_size, config.max_length,
                                  repeat=True, seed=config.seed, skip_batches=first_step,
                                  subword_alpha=config.subword_alpha)
    callbacks = training.fit_callbacks(folder, [dev_bleu, training.TimeLimit(config.max_minutes)],
                                       checkpoint=checkpoint, first_step=first_step)
    translator.model.fit(training.shard_by_data(dataset), epochs=config.epochs,
                         initial_epoch=epoch, steps_per_epoch=config.steps_per_epoch,
                         callbacks=callbacks, shuffle=False,  # the dataset shuffles
                         verbose=training.progress_verbosity())
    best = folder / BEST_WEIGHTS_FILE
    if best.exists():
        translator.model.load_weights(best)
    training.save_weights(translator.model, folder / WEIGHTS_FILE)
    return translator
