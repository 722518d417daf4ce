"""Running an exported question-answering model (its SavedModel, TensorFlow alone): answers
with the sentences each hop attended to, and accuracy per bAbI task."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlpapps.apps.question_answering import KIND, METRICS_FILE, QAConfig, Vocabulary
from nlpapps.apps.model_folder_reader import load_saved_model
from nlpapps.corpora.babi import TASK_NAMES, Question, tokenize

LINE_NUMBER = re.compile(r"^\s*\d+\s+")
BATCH = 500  # questions per call when evaluating


@dataclasses.dataclass(frozen=True)
class Reply:
    """An answer and what the memory read to find it."""

    answer: str
    sentences: tuple[str, ...]  # the sentences the memory kept, in story order
    attention: np.ndarray  # (hops, len(sentences)): each hop's weight on each sentence
    story_sentences: int  # sentences in the story (more than `sentences` when cut)


class SavedQA:
    """An exported question-answering model folder: SavedModel, config.json, vocab.json."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.module = load_saved_model(self.folder, KIND)
        self.config = QAConfig.load(self.folder)
        self.vocab = Vocabulary.load(self.folder)
        self.known = set(self.vocab.words)
        metrics = self.folder / METRICS_FILE
        # The tasks it was trained on (those it was validated on), None if not recorded.
        self.trained_tasks = {int(t) for t in json.loads(metrics.read_text()).get(
            "validation_accuracy", {})} or None if metrics.exists() else None

    def unknown_words(self, text: str) -> list[str]:
        return [word for word in tokenize(text) if word not in self.known]

    def answer(self, stories: Sequence[str], questions: Sequence[str]) -> list[str]:
        """The answers to `questions`, each about the story (sentences, one per line) beside
        it."""
        import tensorflow as tf

        answers = []
        for start in range(0, len(questions), BATCH):
            out = self.module.answer(story=tf.constant(list(stories[start:start + BATCH])),
                                     question=tf.constant(list(questions[start:start + BATCH])))
            answers += [a.decode() for a in out["answer"].numpy()]
        return answers

    def attend(self, story: str, question: str) -> Reply:
        import tensorflow as tf

        out = self.module.attend(story=tf.constant([story]), question=tf.constant([question]))
        sentences = tuple(s.decode() for s in out["sentences"].numpy()[0] if s)
        return Reply(out["answer"].numpy()[0].decode(), sentences,
                     out["attention"].numpy()[0][:, :len(sentences)],
                     int(out["story_sentences"].numpy()[0]))


def story_lines(text: str) -> list[str]:
    """The sentences of a story file: one per non-blank line; bAbI's line numbers, if the
    lines have them, are left out."""
    return [LINE_NUMBER.sub("", line).strip() for line in text.splitlines() if line.strip()]


def accuracy(model: SavedQA, questions: Sequence[Question]) -> float:
    answers = model.answer(["\n".join(q.story) for q in questions],
                           [q.question for q in questions])
    return float(np.mean([a == q.answer for a, q in zip(answers, questions)]))


def evaluate(model: SavedQA, tasks: dict[int, list[Question]]) -> dict:
    """{"tasks": {task: {"name", "questions", "accuracy", "trained"}}, "mean_accuracy"}: the
    mean is over the tasks the model was trained on (all, if it does not say)."""
    report = {task: {"name": TASK_NAMES.get(task, "?"), "questions": len(questions),
                     "accuracy": accuracy(model, questions),
                     "trained": model.trained_tasks is None or task in model.trained_tasks}
              for task, questions in sorted(tasks.items())}
    trained = [r["accuracy"] for r in report.values() if r["trained"]]
    return {"tasks": report, "mean_accuracy": float(np.mean(trained)) if trained else None}
