"""The shipped question-answering model (saved_models/babi-qa) runs with TensorFlow alone and
answers held-out bAbI questions as bAbI writes them."""

import re

import pytest
import tensorflow as tf

from nlpapps.commands.question_answering_commands import DEFAULT_QA
from nlpapps.corpora import babi

from conftest import FIXTURES


@pytest.fixture(scope="module")
def answer():
    module = tf.saved_model.load(str(DEFAULT_QA))  # no nlpapps code: the graph does it all

    def run(stories, questions):
        out = module.signatures["answer"](story=tf.constant(stories, tf.string),
                                          question=tf.constant(questions, tf.string))
        return [a.decode() for a in out["answer"].numpy()]

    return run


@pytest.fixture(scope="module")
def fixture_tests():
    return {task: splits["test"] for task, splits in babi.read_folder(FIXTURES / "babi").items()}


def test_the_shipped_model_answers_the_fixtures_test_questions(answer, fixture_tests):
    for task, questions in fixture_tests.items():
        got = answer(["\n".join(q.story) for q in questions], [q.question for q in questions])
        right = sum(a == q.answer for a, q in zip(got, questions))
        if task == 19:  # two directions, as bAbI writes them
            assert all(re.fullmatch(r"[nsew],[nsew]", a) for a in got), got
        assert right >= FLOORS[task] * len(questions), (task, got)


# Fraction of the fixture's test questions answered right (the full test sets: docs/).
FLOORS = {1: 1.0, 2: 0.8, 8: 0.8, 19: 0.0}


def test_the_shipped_model_reads_stories_written_by_hand(answer):
    stories = ["Mary went to the kitchen.\nJohn went to the office.\nMary went to the garden.",
               "Mary went to the kitchen.\nMary got the football there.\nMary went to the garden.",
               "John went to the hallway.\nJohn took the apple there.\n"
               "John got the football there."]
    assert answer(stories, ["Where is Mary?", "Where is the football?",
                            "What is John carrying?"]) == ["garden", "garden", "apple,football"]
    assert answer([], []) == []


def test_a_run_starts_from_the_shipped_folder_with_its_weights(answer, fixture_tests):
    """`--init-from saved_models/babi-qa` (a folder without model.weights.h5): the Keras model
    built from its config takes the SavedModel's variables and answers as the SavedModel does."""
    from nlpapps.apps.question_answering import (QAConfig, Vocabulary, create_model,
                                                 vectorize, warm_start)

    config, vocab = QAConfig.load(DEFAULT_QA), Vocabulary.load(DEFAULT_QA)
    model = create_model(config, vocab)
    warm_start(model, DEFAULT_QA)
    questions = [q for task in sorted(fixture_tests) for q in fixture_tests[task]]
    stories, asked, _ = vectorize(questions, vocab, config.memory_size)
    ours = [vocab.answers[i] for i in
            model([stories, asked], training=False)[0].numpy().argmax(-1)]
    assert ours == answer(["\n".join(q.story) for q in questions],
                          [q.question for q in questions])


def test_a_run_cannot_start_from_a_folder_of_another_kind(tmp_path):
    from nlpapps.apps.question_answering import QAConfig, Vocabulary, create_model, warm_start
    from nlpapps.errors import ModelError

    model = create_model(QAConfig.load(DEFAULT_QA), Vocabulary.load(DEFAULT_QA))
    with pytest.raises(ModelError, match="has no config.json"):
        warm_start(model, tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "translator", "config": {}}')
    with pytest.raises(ModelError, match="holds a translator, not a question answering model"):
        warm_start(model, tmp_path)
