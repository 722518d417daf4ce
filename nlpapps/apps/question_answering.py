"""The question-answering app: an end-to-end memory network (or an LSTM reader) trained jointly
on the bAbI tasks, evaluated per task, answering a question about a story.

A training folder holds config.json, vocab.json (words, answers, sentence and question
lengths), the checkpoint a killed run resumes from, TensorBoard logs, the best weights
(model.weights.h5), metrics.json and the SavedModel (`serving/question_answering_module.py`)
that `qa evaluate` and `qa answer` run (`apps/question_answering_inference.py`). A shipped
folder holds all but the checkpoint, logs and weights: the SavedModel holds each weight once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
from keras import ops

from nlpapps import training
from nlpapps.apps.config import AppConfig
from nlpapps.apps.model_folder_reader import expect_kind
from nlpapps.corpora.babi import Question, tokenize
from nlpapps.errors import ModelError
from nlpapps.layers import LSTM, MemoryNetwork

log = logging.getLogger("nlpapps.question_answering")

KIND = "question_answering"
MODELS = ("memn2n", "lstm")
VOCAB_FILE, METRICS_FILE, STATE_FILE = "vocab.json", "metrics.json", "training_state.json"
WEIGHTS_FILE = training.WEIGHTS_FILE
VALIDATION_FRACTION = 0.1  # of each task's training questions, held out (fixed draw)


@dataclasses.dataclass(frozen=True)
class QAConfig(AppConfig):
    """Everything that defines a question-answering model and its training."""

    kind: ClassVar[str] = KIND
    architecture: ClassVar[tuple[str, ...]] = (
        "model", "embedding_dim", "hops", "memory_size", "position_encoding",
        "temporal_encoding", "units")

    model: str = "memn2n"  # "memn2n" (end-to-end memory network) or "lstm" (LSTM reader)
    embedding_dim: int = 50  # word embedding width d
    hops: int = 3  # memn2n: memory hops K
    memory_size: int = 50  # sentences kept of a story (the most recent)
    position_encoding: bool = True  # memn2n: weigh words by their position in the sentence
    temporal_encoding: bool = True  # memn2n: add a learned vector by the sentence's age
    random_noise: float = 0.1  # memn2n: probability of an empty memory after each sentence
    linear_start: bool = True  # memn2n: no softmax in the hops until validation loss stalls
    units: int = 64  # lstm: units of the story and question LSTMs
    batch_size: int = 32  # questions per step
    learning_rate: float = 0.005  # Adam
    halve_every: int = 5  # halve the learning rate every this many epochs (0: never)
    clipnorm: float = 40.0  # each weight's gradient clipped to this norm (Keras clipnorm)
    epochs: int = 30  # at most this many epochs
    epoch_steps: int = 0  # steps between validations and checkpoints (0: one pass)
    patience: int = 6  # epochs without a lower validation loss before stopping (0: never)
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    seed: int = 0  # of the initial weights, the order of the questions and the noise
    init_from: str = ""  # a trained or shipped model folder whose weights and words start the run

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name in ("embedding_dim", "hops", "memory_size", "units", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.epoch_steps < 0:
            raise ValueError(f"epoch_steps must be 0 or more, got {self.epoch_steps}")
        if not 0 <= self.random_noise < 1:
            raise ValueError(f"random_noise must be in [0, 1), got {self.random_noise}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Word ids (0 pads) and answer ids of a trained model, and the padded lengths."""

    words: tuple[str, ...]  # id i + 1 is words[i]
    answers: tuple[str, ...]  # answer id i is answers[i], as bAbI writes it ("n,w")
    sentence_words: int  # words kept of a sentence
    question_words: int  # words kept of a question

    @classmethod
    def build(cls, questions: Sequence[Question]) -> Vocabulary:
        words, answers, sentence, question = set(), set(), 1, 1
        for item in questions:
            for text in item.story:
                tokens = tokenize(text)
                words.update(tokens)
                sentence = max(sentence, len(tokens))
            tokens = tokenize(item.question)
            words.update(tokens)
            question = max(question, len(tokens))
            answers.add(item.answer)
        return cls(tuple(sorted(words)), tuple(sorted(answers)), sentence, question)

    def save(self, folder: Path) -> None:
        training.save_json(Path(folder) / VOCAB_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        data = json.loads((Path(folder) / VOCAB_FILE).read_text())
        return cls(tuple(data["words"]), tuple(data["answers"]), data["sentence_words"],
                   data["question_words"])

    def word_ids(self) -> dict[str, int]:
        return {word: i + 1 for i, word in enumerate(self.words)}


def vectorize(questions: Sequence[Question], vocab: Vocabulary, memory_size: int):
    """`(stories, questions, answers)`: int32 `(n, memory_size, sentence_words)` (the most
    recent sentences, in story order, empty ones after them), `(n, question_words)` and `(n,)`
    (-1 for an answer not in the vocabulary). Unknown words are dropped (id 0)."""
    ids, answer_ids = vocab.word_ids(), {a: i for i, a in enumerate(vocab.answers)}
    stories = np.zeros((len(questions), memory_size, vocab.sentence_words), np.int32)
    asked = np.zeros((len(questions), vocab.question_words), np.int32)
    answers = np.full((len(questions),), -1, np.int32)
    cache: dict[str, list[int]] = {}
    for n, item in enumerate(questions):
        for i, text in enumerate(item.story[-memory_size:]):
            if text not in cache:
                cache[text] = [ids[w] for w in tokenize(text) if w in ids][:vocab.sentence_words]
            stories[n, i, :len(cache[text])] = cache[text]
        words = [ids[w] for w in tokenize(item.question) if w in ids][:vocab.question_words]
        asked[n, :len(words)] = words
        answers[n] = answer_ids.get(item.answer, -1)
    return stories, asked, answers


# -- models -------------------------------------------------------------------------------


def create_model(config: QAConfig, vocab: Vocabulary) -> keras.Model:
    """A Keras model `[story, question] -> [answer logits, attention]`: story int
    `(batch, memory_size, sentence_words)`, question `(batch, question_words)`, logits
    `(batch, answers)`, attention `(batch, hops, memory_size)` (the LSTM reader's is zeros)."""
    # Any number of sentences up to memory_size: a batch is padded to its longest story.
    story = keras.Input((None, vocab.sentence_words), dtype="int32", name="story")
    question = keras.Input((vocab.question_words,), dtype="int32", name="question")
    if config.model == "memn2n":
        memory = MemoryNetwork(len(vocab.words) + 1, config.embedding_dim, config.hops,
                               config.memory_size, config.position_encoding,
                               config.temporal_encoding, config.random_noise,
                               config.linear_start, name="memory_network")
        state, attention = memory([story, question])
        # Not tied to C^K as in the paper: answers are their own vocabulary ("n,w").
        logits = keras.layers.Dense(len(vocab.answers), use_bias=False,
                                    kernel_initializer=keras.initializers.RandomNormal(
                                        stddev=0.1), name="answer")(state)
    else:
        reader = LSTMReader(len(vocab.words) + 1, config.embedding_dim, config.units,
                            name="lstm_reader")
        logits = keras.layers.Dense(len(vocab.answers), name="answer")(
            reader([story, question]))
        attention = ZerosLike(config.memory_size, name="no_attention")(story)
    return keras.Model([story, question], [logits, attention], name=f"qa_{config.model}")


@keras.saving.register_keras_serializable(package="nlpapps")
class LSTMReader(keras.layers.Layer):
    """The LSTM reader of Keras's `babi_rnn` example: the story's words in order (sentences
    one after another, padding squeezed out) read by one LSTM, the question's by another, and
    their last outputs concatenated `(batch, 2 units)`."""

    def __init__(self, vocab_size, embedding_dim, units, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.story_lstm = LSTM(units, name="story_lstm")
        self.question_lstm = LSTM(units, name="question_lstm")

    def build(self, input_shape):
        story_shape, question_shape = input_shape
        self.embedding.build(None)
        self.story_lstm.build((None, None, self.embedding_dim))
        self.question_lstm.build((None, None, self.embedding_dim))
        self.built = True

    def call(self, inputs):
        story, question = inputs
        batch, memory, words = ops.shape(story)
        flat = ops.reshape(story, (batch, memory * words))
        # Real words first, in order, then the padding; cut at the batch's longest story.
        steps = ops.arange(memory * words)
        order = ops.argsort(ops.where(flat != 0, steps, steps + memory * words), axis=-1)
        flat = ops.take_along_axis(flat, order, axis=-1)
        longest = ops.maximum(ops.max(ops.sum(ops.cast(flat != 0, "int32"), axis=-1)), 1)
        flat = flat[:, :longest]  # (batch, story words)
        story_h = self.story_lstm(self.embedding(flat), mask=flat != 0)
        question_h = self.question_lstm(self.embedding(question), mask=question != 0)
        return ops.concatenate([story_h, question_h], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2 * self.units)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units}


@keras.saving.register_keras_serializable(package="nlpapps")
class ZerosLike(keras.layers.Layer):
    """`(batch, 1, memory_size)` zeros: the attention of a model that has none."""

    def __init__(self, memory_size, **kwargs):
        super().__init__(**kwargs)
        self.memory_size = memory_size

    def call(self, story):
        return ops.zeros((ops.shape(story)[0], 1, self.memory_size))

    def get_config(self):
        return {**super().get_config(), "memory_size": self.memory_size}


def fresh_model(folder: Path) -> keras.Model:
    """The model of the folder's config and vocabulary, with fresh weights."""
    folder = Path(folder)
    return create_model(QAConfig.load(folder), Vocabulary.load(folder))


def memory_layer(model: keras.Model) -> MemoryNetwork | None:
    for layer in model.layers:
        if isinstance(layer, MemoryNetwork):
            return layer
    return None


# -- training -----------------------------------------------------------------------------


class StoryBatches:
    """Batches of questions whose stories have about as many sentences, each padded to its
    longest story (stories average 7 sentences; padding all to 50 would do 7 times the work).

    Each epoch draws a new order: the questions shuffled, sorted by story length within pools
    of 50 batches, cut into batches, the batches shuffled. With `shuffle=False` the order is
    fixed (sorted by length), for validation."""

    def __init__(self, stories, questions, answers, batch_size: int, shuffle: bool,
                 seed: int = 0):
        self.stories, self.questions, self.answers = stories, questions, answers
        self.lengths = np.maximum((stories != 0).any(-1).sum(-1), 1)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.answers) // self.batch_size)

    def _order(self) -> list[np.ndarray]:
        if not self.shuffle:
            return np.array_split(np.argsort(self.lengths, kind="stable"), len(self))
        order = self.rng.permutation(len(self.answers))
        pools = np.array_split(order, max(1, -(-len(order) // (50 * self.batch_size))))
        order = np.concatenate([p[np.argsort(self.lengths[p], kind="stable")] for p in pools])
        batches = np.array_split(order, len(self))
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def _generate(self):
        while True:  # epoch after epoch; fit takes len(self) batches an epoch
            for rows in self._order():
                rows = np.sort(rows)
                longest = int(self.lengths[rows].max())
                yield (self.stories[rows, :longest], self.questions[rows]), self.answers[rows]

    def dataset(self):
        import tensorflow as tf

        words, asked = self.stories.shape[-1], self.questions.shape[-1]
        return tf.data.Dataset.from_generator(self._generate, output_signature=(
            (tf.TensorSpec((None, None, words), tf.int32),
             tf.TensorSpec((None, asked), tf.int32)), tf.TensorSpec((None,), tf.int32)))


def split_validation(tasks: dict[int, list[Question]]) -> tuple[list[Question], list[Question]]:
    """`(train, validation)`: 10% of each task's questions held out, by a fixed draw."""
    train, validation = [], []
    for task, questions in sorted(tasks.items()):
        order = np.random.default_rng(task).permutation(len(questions))
        held = int(round(VALIDATION_FRACTION * len(questions)))
        validation += [questions[i] for i in sorted(order[:held])]
        train += [questions[i] for i in sorted(order[held:])]
    return train, validation


class TrainingState(keras.callbacks.Callback):
    """After each epoch: turns a linear-start memory network's softmax on once the validation
    loss stops falling; keeps the weights of the lowest validation loss reached with the
    softmax on (they are what the app runs); stops after `patience` epochs without a lower
    one. Its state survives a resumed run."""

    def __init__(self, out_dir: Path, patience: int):
        super().__init__()
        self.patience, self.path = patience, out_dir / STATE_FILE
        self.best_path = out_dir / WEIGHTS_FILE
        self.state = json.loads(self.path.read_text()) if self.path.exists() else \
            {"best": None, "wait": 0, "linear_best": None, "softmax_from": None, "history": []}

    def on_train_begin(self, logs=None):
        # The checkpoint was written before the epoch's switch: a resumed run redoes it.
        memory = memory_layer(self.model)
        if memory is not None and self.state["softmax_from"] is not None:
            memory.softmax_enabled = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = float(logs["val_loss"])
        memory = memory_layer(self.model)
        entry = {"epoch": epoch + 1, "val_loss": loss,
                 "val_accuracy": float(logs.get("val_answer_accuracy", float("nan")))}
        if memory is not None and not memory.softmax_enabled:
            entry["linear"] = True
            best = self.state["linear_best"]
            if best is None or loss < best:
                self.state["linear_best"] = loss
            else:
                memory.softmax_enabled = True
                self.state["softmax_from"] = epoch + 2
                log.warning("epoch %d: validation loss stopped falling; softmax on in the hops",
                            epoch + 1)
        else:
            if self.state["best"] is None or loss < self.state["best"]:
                self.state.update(best=loss, wait=0)
                self.model.save_weights(self.best_path)
            else:
                self.state["wait"] += 1
                if self.patience and self.state["wait"] >= self.patience:
                    self.state["stopped"] = True
                    self.model.stop_training = True
        self.state["history"].append(entry)
        training.save_json(self.path, self.state)
        log.warning("epoch %d: validation loss %.4f, accuracy %.4f", epoch + 1, loss,
                    entry["val_accuracy"])


def starting_folder(folder: str | Path) -> Path:
    """`folder` if it holds a question-answering model (ModelError otherwise)."""
    folder = Path(folder)
    expect_kind(folder, KIND)
    if not (folder / VOCAB_FILE).exists():
        raise ModelError(f"{folder} has no {VOCAB_FILE}; pick a training folder or a shipped "
                         "model")
    return folder


def warm_start(model: keras.Model, folder: Path) -> None:
    """Sets the weights of `model` from the model folder `folder`: its `model.weights.h5` (a
    training folder) or the variables of its SavedModel (a shipped folder, which holds each
    weight once), each matched to the model's weight at its own attribute path; ModelError if
    they hold another architecture."""
    training.warm_start(model, starting_folder(folder))


def train(config: QAConfig, tasks: dict[int, list[Question]], out_dir: Path
          ) -> tuple[keras.Model, Vocabulary]:
    """Trains (or resumes) jointly on every task's training questions in `out_dir`, 10% held
    out for validation; returns the model of the lowest validation loss and its vocabulary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.check_resumable(out_dir)
    keras.utils.set_random_seed(config.seed)
    train_questions, validation = split_validation(tasks)
    if (out_dir / VOCAB_FILE).exists():
        vocab = Vocabulary.load(out_dir)
    elif config.init_from:
        vocab = Vocabulary.load(starting_folder(config.init_from))
        vocab.save(out_dir)
    else:
        vocab = Vocabulary.build(train_questions)
        vocab.save(out_dir)
    config.save(out_dir)
    x_story, x_question, y = vectorize(train_questions, vocab, config.memory_size)
    v_story, v_question, v_y = vectorize(validation, vocab, config.memory_size)
    known = v_y >= 0  # a held-out answer never seen in training cannot be learnt
    first = training.resumed_epoch(out_dir)
    log.warning("training a %s on %d questions of %d tasks, validating on %d; %d words, "
                "%d answers%s", config.model, len(y), len(tasks), len(v_y), len(vocab.words),
                len(vocab.answers), f", resuming at epoch {first + 1}" if first else "")
    model = create_model(config, vocab)
    if config.init_from and not first:  # a resumed run has every weight in its checkpoint
        warm_start(model, Path(config.init_from))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate,
                                                  clipnorm=config.clipnorm),
                  loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True), None],
                  metrics=[["accuracy"], []])
    state = TrainingState(out_dir, config.patience)

    def learning_rate(epoch, _):
        return config.learning_rate * 0.5 ** (epoch // config.halve_every if
                                                config.halve_every else 0)

    started = time.monotonic()
    # An early-stopped run started again has nothing to resume.
    if not state.state.get("stopped"):
        batches = StoryBatches(x_story, x_question, y, config.batch_size, True, config.seed)
        held = StoryBatches(v_story[known], v_question[known], v_y[known], 256, False)
        model.fit(batches.dataset(), steps_per_epoch=config.epoch_steps or len(batches),
                  epochs=config.epochs,
                  validation_data=held.dataset(), validation_steps=len(held),
                  shuffle=False, verbose=training.progress_verbosity(),
                  callbacks=training.fit_callbacks(out_dir, [
                      keras.callbacks.LearningRateScheduler(learning_rate), state,
                      training.TimeLimit(config.max_minutes)]))
    minutes = state.state.get("minutes", 0.0) + (time.monotonic() - started) / 60
    state.state["minutes"] = minutes  # over every run of this folder
    training.save_json(state.path, state.state)
    log.warning("trained for %.1f minutes in all", minutes)
    if (out_dir / WEIGHTS_FILE).exists():
        model.load_weights(out_dir / WEIGHTS_FILE)
    else:  # stopped before the softmax came back: run it with the softmax, as trained so far
        if memory_layer(model) is not None:
            memory_layer(model).softmax_enabled = True
        model.save_weights(out_dir / WEIGHTS_FILE)
    write_metrics(model, vocab, config, validation, minutes, out_dir)
    return model, vocab


def write_metrics(model, vocab: Vocabulary, config: QAConfig, validation: list[Question],
                  minutes: float, out_dir: Path) -> None:
    """metrics.json: the validation accuracy of each task and their mean, the epochs and the
    training minutes."""
    stories, asked, answers = vectorize(validation, vocab, config.memory_size)
    held = StoryBatches(stories, asked, answers, 256, False)
    predicted = np.zeros_like(answers)
    for rows, ((story, question), _) in zip(held._order(), held._generate()):
        predicted[np.sort(rows)] = model([story, question], training=False)[0].numpy().argmax(-1)
    tasks = np.array([q.task for q in validation])
    accuracy = {int(t): float(np.mean(predicted[tasks == t] == answers[tasks == t]))
                for t in sorted(set(tasks))}
    state = json.loads((out_dir / STATE_FILE).read_text())
    training.save_json(out_dir / METRICS_FILE, {
        "validation_accuracy": accuracy,
        "validation_mean_accuracy": float(np.mean(list(accuracy.values()))),
        "epochs": len(state["history"]), "softmax_from_epoch": state["softmax_from"],
        "training_minutes": round(minutes, 1)})
