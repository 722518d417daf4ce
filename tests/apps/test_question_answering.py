"""The question-answering app: joint training that resumes, linear start, the exported
SavedModel (equal to the in-memory model), long stories, and the command's errors."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from nlpapps import cli
from nlpapps.apps import question_answering as qa
from nlpapps.corpora import babi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "babi"
TINY = qa.QAConfig(embedding_dim=8, hops=2, memory_size=10, batch_size=16, epochs=2,
                   learning_rate=0.02, patience=0, seed=0)


def train_tasks():
    return {task: splits["train"] for task, splits in babi.read_folder(FIXTURES).items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(model, vocab, out_dir)`: TINY trained one epoch, then resumed for the second, and
    exported into its folder."""
    from nlpapps.export.question_answering_folder import export_qa

    out = tmp_path_factory.mktemp("qa")
    qa.train(dataclasses.replace(TINY, epochs=1), train_tasks(), out)
    model, vocab = qa.train(TINY, train_tasks(), out)
    export_qa(model, vocab, TINY, out)
    return model, vocab, out


def test_a_restarted_run_resumes_where_it_stopped(trained):
    _, _, out = trained
    state = json.loads((out / qa.STATE_FILE).read_text())
    assert [entry["epoch"] for entry in state["history"]] == [1, 2]
    assert (out / "checkpoint").is_dir() and (out / qa.WEIGHTS_FILE).exists()
    metrics = json.loads((out / qa.METRICS_FILE).read_text())
    assert sorted(metrics["validation_accuracy"]) == ["1", "19", "2", "8"]
    assert metrics["epochs"] == 2 and 0 <= metrics["validation_mean_accuracy"] <= 1


def test_a_run_of_another_model_is_not_resumed(trained):
    _, _, out = trained
    with pytest.raises(ValueError, match="hops 2 -> 3"):
        qa.train(dataclasses.replace(TINY, hops=3), train_tasks(), out)


def test_validation_holds_out_a_tenth_of_each_task_by_a_fixed_draw():
    tasks = train_tasks()
    train, held = qa.split_validation(tasks)
    assert len(held) == sum(round(0.1 * len(q)) for q in tasks.values())
    assert not {id(q) for q in held} & {id(q) for q in train}
    assert qa.split_validation(tasks)[1] == held


def test_linear_start_puts_the_softmax_back_when_validation_loss_stalls(tmp_path):
    vocab = qa.Vocabulary(("a", "b"), ("x", "y"), 3, 2)
    model = qa.create_model(TINY, vocab)
    state = qa.TrainingState(tmp_path, patience=0)
    state.set_model(model)
    memory = qa.memory_layer(model)
    for epoch, loss in enumerate([2.0, 1.5]):
        state.on_epoch_end(epoch, {"val_loss": loss})
    assert not memory.softmax_enabled and not (tmp_path / qa.WEIGHTS_FILE).exists()
    state.on_epoch_end(2, {"val_loss": 1.6})
    assert memory.softmax_enabled
    state.on_epoch_end(3, {"val_loss": 1.7})
    assert (tmp_path / qa.WEIGHTS_FILE).exists()  # the best weights are softmax ones
    memory.softmax_enabled = False  # a resumed run restores the switch from its state
    qa.TrainingState(tmp_path, patience=0).set_model(model)
    resumed = qa.TrainingState(tmp_path, patience=0)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert memory.softmax_enabled


@pytest.fixture(scope="module")
def saved(trained):
    from nlpapps.apps.question_answering_inference import SavedQA

    return SavedQA(trained[2])


def test_the_saved_model_answers_as_the_keras_model(trained, saved):
    model, vocab, out = trained
    questions = [q for splits in babi.read_folder(FIXTURES).values() for q in splits["test"]]
    stories, asked, _ = qa.vectorize(questions, vocab, TINY.memory_size)
    logits, attention = model.predict([stories, asked], verbose=0)
    expected = [vocab.answers[i] for i in logits.argmax(-1)]
    assert saved.answer(["\n".join(q.story) for q in questions],
                        [q.question for q in questions]) == expected
    for n in (0, len(questions) // 2, len(questions) - 1):
        reply = saved.attend("\n".join(questions[n].story), questions[n].question)
        kept = questions[n].story[-TINY.memory_size:]
        assert reply.sentences == kept and reply.story_sentences == len(questions[n].story)
        np.testing.assert_allclose(reply.attention, attention[n][:, :len(kept)], atol=1e-5)


def test_a_story_longer_than_the_memory_keeps_its_last_sentences(saved):
    story = [f"Mary went to the {place}." for place in ["kitchen", "garden", "office"] * 5]
    long_reply = saved.attend("\n".join(story), "Where is Mary?")
    short_reply = saved.attend("\n".join(story[-10:]), "Where is Mary?")
    assert long_reply.story_sentences == 15 and long_reply.sentences == tuple(story[-10:])
    np.testing.assert_allclose(long_reply.attention, short_reply.attention, atol=1e-6)


def run(argv, capsys):
    code = cli.main(["-v", *argv])  # -v: Python's stderr stays the one pytest captures
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_answer_prints_the_answer_and_what_each_hop_read(trained, tmp_path, capsys):
    _, _, out = trained
    story = tmp_path / "story.txt"
    story.write_text("1 Mary went to the garden.\n2 John moved to the office.\n"
                     + "\n".join("Sandra went to the kitchen." for _ in range(11)) + "\n")
    code, printed, err = run(["qa", "answer", "--model", str(out), "--story", str(story),
                              "Where is Mary?", "--plot-attention", str(tmp_path / "a.png")],
                             capsys)
    assert code == 0
    lines = printed.splitlines()
    assert len(lines) == 1 + TINY.hops and lines[1].startswith("  hop 1: ")
    assert "the story has 13 sentences; the memory keeps the last 10" in err
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("story, question, message", [
    (None, "Where is Mary?", "a question needs a story: give it with --story FILE"),
    ("\n\n", "Where is Mary?", "is empty; give its sentences one a line"),
    ("Mary went to the garden.\n", "Where is the spaceship?",
     "the question has a word the model does not know: spaceship"),
    ("Mary went to the garden.\n", "", "give a question"),
])
def test_answer_says_what_is_wrong_in_one_line(trained, tmp_path, capsys, story, question,
                                               message):
    _, _, out = trained
    argv = ["qa", "answer", "--model", str(out), question]
    if story is not None:
        (tmp_path / "story.txt").write_text(story)
        argv += ["--story", str(tmp_path / "story.txt")]
    code, printed, err = run(argv, capsys)
    assert code == 2 and not printed
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_train_names_the_line_of_a_malformed_file(tmp_path, capsys):
    (tmp_path / "qa1_single-supporting-fact_train.txt").write_text(
        "1 Mary went to the garden.\n2 Where is Mary?\tgarden\n")
    code, _, err = run(["qa", "train", "--data", str(tmp_path), "--out",
                        str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "qa1_single-supporting-fact_train.txt:2: a question line is" in err


def test_evaluate_prints_each_task_and_the_mean(trained, saved, capsys):
    from nlpapps.apps.question_answering_inference import evaluate

    _, _, out = trained
    code, printed, _ = run(["qa", "evaluate", "--data", str(FIXTURES), "--model", str(out),
                            "--task", "2"], capsys)
    assert code == 0
    rows = printed.splitlines()
    assert rows[1].split()[:3] == ["2", "two-supporting-facts", "10"]
    report = evaluate(saved, {2: babi.read_folder(FIXTURES)[2]["test"]})
    assert rows[1].split()[3] == f"{100 * report['tasks'][2]['accuracy']:.1f}%"
    assert rows[-1].split()[1] == f"{100 * report['mean_accuracy']:.1f}%"


def test_the_lstm_reader_reads_the_storys_words_in_order_without_padding():
    keras.utils.set_random_seed(5)
    reader = qa.LSTMReader(vocab_size=10, embedding_dim=4, units=3)
    padded = np.array([[[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 0]]], "int32")
    compact = np.array([[[1, 2, 3, 4], [5, 6, 0, 0]]], "int32")
    shuffled = np.array([[[3, 0, 0, 0], [1, 2, 0, 0], [4, 5, 6, 0]]], "int32")
    question = np.array([[7, 8, 0]], "int32")
    out = np.asarray(reader([padded, question]))
    assert out.shape == (1, 6)
    np.testing.assert_allclose(np.asarray(reader([compact, question])), out, atol=1e-6)
    assert np.abs(np.asarray(reader([shuffled, question])) - out).max() > 1e-4
