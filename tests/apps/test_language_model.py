"""Tests for nlpapps.apps.language_model: training with resume, bits per character against an
independent computation, windowed evaluation, line scores, and the `nlpapps lm` commands."""

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from nlpapps import training
from nlpapps.apps import language_model as lm
from nlpapps.corpora import shakespeare
from nlpapps.tokenizer import BOS_ID

from terminal import answer_at_terminal
from tiny_language_model import (SHAKESPEARE, TINY, log_softmax, text, tiny_config,
                                 train_tiny)

SCRIPTS = Path(__file__).parent.parent.parent / "scripts"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(model, tokenizer, out_dir)` of a tiny model trained for 3 epochs of 20 steps."""
    out_dir = tmp_path_factory.mktemp("lm")
    return (*train_tiny(out_dir), out_dir)


def numpy_log_probs(model, ids):
    """log p(ids[t] | bos, ids[:t]) for every t, from one call over the whole sequence."""
    logits = model(np.asarray([[BOS_ID] + ids[:-1]], np.int32))[0]  # (tokens, vocab)
    return log_softmax(logits)[np.arange(len(ids)), ids]


def test_training_lowers_the_dev_loss_and_saves_the_run(trained):
    model, tokenizer, out_dir = trained
    history = json.loads((out_dir / lm.DEV_LOSS_FILE).read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["dev_loss"] < history[0]["dev_loss"]
    untrained = lm.create_model(tiny_config(), tokenizer.vocab_size)
    before = lm.evaluate(untrained, tokenizer, text("dev"))["bits_per_character"]
    after = json.loads((out_dir / lm.METRICS_FILE).read_text())["dev"]["bits_per_character"]
    assert after < 0.85 * before
    for name in (lm.CONFIG_FILE, lm.TOKENIZER_FILE, lm.WEIGHTS_FILE, lm.BEST_WEIGHTS_FILE):
        assert (out_dir / name).exists(), name
    loaded, loaded_tokenizer, config = lm.load(out_dir)
    assert config == tiny_config()
    ids = np.asarray([[BOS_ID, 5, 6, 7]], np.int32)
    np.testing.assert_allclose(loaded(ids), model(ids), atol=0)


def test_tokenizer_keeps_line_breaks(trained):
    _, tokenizer, _ = trained
    sample = "BERNARDO:\nWho's there?\n\nFRANCISCO:\n"
    assert tokenizer.decode(lm.line_start_ids(tokenizer, sample)) == sample


def test_bits_per_character_equal_the_summed_log_probs_over_characters(trained):
    model, tokenizer, _ = trained
    sample = text("test")[:3000]
    ids = lm.line_start_ids(tokenizer, sample)
    expected_bits = -numpy_log_probs(model, ids).sum() / math.log(2)
    report = lm.evaluate(model, tokenizer, sample, window=64)
    assert report["tokens"] == len(ids) and report["characters"] == len(sample)
    assert report["nll_bits"] == pytest.approx(expected_bits, rel=1e-5)
    assert report["bits_per_character"] == pytest.approx(expected_bits / len(sample), rel=1e-5)
    assert report["perplexity"] == pytest.approx(2 ** (expected_bits / len(ids)), rel=1e-4)


def test_token_nll_is_each_tokens_share_of_the_evaluated_total(trained):
    model, tokenizer, _ = trained
    sample = text("test")[:3000]
    ids, nats = lm.token_nll(model, tokenizer, sample, window=50)
    assert ids == lm.line_start_ids(tokenizer, sample) and nats.shape == (len(ids),)
    np.testing.assert_allclose(nats, -numpy_log_probs(model, ids), rtol=1e-4, atol=1e-5)
    report = lm.evaluate(model, tokenizer, sample, window=50)
    assert nats.sum() / math.log(2) == pytest.approx(report["nll_bits"], rel=1e-9)


def test_bits_by_line_kind_add_up_to_the_evaluated_total(trained):
    spec = importlib.util.spec_from_file_location("bits_by_line", SCRIPTS / "bits_by_line.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model, tokenizer, _ = trained
    sample = text("test")[:3000]
    ids, nats = lm.token_nll(model, tokenizer, sample)
    report = script.bits_by_kind(sample, ids, nats, tokenizer.newline_id)
    kinds = [report[kind] for kind in ("speaker", "speech", "blank")]
    assert sum(kind["characters"] for kind in kinds) == len(sample)
    assert sum(kind["share_of_bits"] for kind in kinds) == pytest.approx(1.0)
    assert report["bits_per_character"] == pytest.approx(
        lm.evaluate(model, tokenizer, sample)["bits_per_character"], rel=1e-6)
    # Counted apart: a token is in the line its decoded prefix ends in.
    speaker = shakespeare.speaker_lines(sample)
    line_of = [tokenizer.decode(ids[:k]).count("\n") for k in range(len(ids))]
    speaker_bits = sum(n for n, line in zip(nats, line_of) if speaker[line]) / math.log(2)
    assert report["bits_per_speaker_line"] == pytest.approx(speaker_bits / sum(speaker))
    assert report["speaker"]["share_of_bits"] == pytest.approx(
        speaker_bits / (nats.sum() / math.log(2)))


def test_windowed_evaluation_with_carried_states_equals_one_pass(trained):
    model, tokenizer, _ = trained
    sample = text("test")
    one_pass = lm.evaluate(model, tokenizer, sample, window=10**6)
    for window in (1, 7, 100):
        windowed = lm.evaluate(model, tokenizer, sample[:600] if window == 1 else sample,
                               window=window)
        reference = one_pass if window > 1 else lm.evaluate(model, tokenizer, sample[:600],
                                                            window=10**6)
        assert windowed["nll_bits"] == pytest.approx(reference["nll_bits"], rel=1e-5)


def test_evaluation_progress_goes_to_stderr(trained, capsys):
    model, tokenizer, _ = trained
    sample = text("test")[:2000]
    report = lm.evaluate(model, tokenizer, sample, window=50, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{report['tokens']}/{report['tokens']}" in captured.err
    assert report == lm.evaluate(model, tokenizer, sample, window=50)


def test_evaluating_an_empty_text_is_an_error(trained):
    model, tokenizer, _ = trained
    with pytest.raises(ValueError, match="no tokens"):
        lm.evaluate(model, tokenizer, "")


def test_line_scores_are_log_probs_of_the_whole_line(trained):
    model, tokenizer, _ = trained
    lines = ["Who's there?", "", "Long live the king!", "Nay, answer me: stand, and unfold"]
    scores = lm.score(model, tokenizer, lines, batch_size=3)
    for line, value in zip(lines, scores):
        expected = numpy_log_probs(model, lm.line_start_ids(tokenizer, line + "\n")).sum()
        assert value == pytest.approx(expected, rel=1e-5, abs=1e-4)
    assert lm.score(model, tokenizer, []) == []


def test_resuming_goes_on_from_the_last_epoch(tmp_path):
    config = tiny_config(epochs=1, steps_per_epoch=5)
    lm.train(config, text("train"), text("dev"), tmp_path)
    assert training.resumed_epoch(tmp_path) == 1
    lm.train(tiny_config(epochs=2, steps_per_epoch=5), text("train"), text("dev"), tmp_path)
    history = json.loads((tmp_path / lm.DEV_LOSS_FILE).read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    with pytest.raises(ValueError, match="units 32 -> 16"):
        lm.train(tiny_config(units=16), text("train"), text("dev"), tmp_path)


def test_stateful_training_measures_dev_as_one_stream_and_resumes(tmp_path):
    config = tiny_config(stateful=True, batch_size=8, epochs=2, steps_per_epoch=10)
    model, tokenizer = lm.train(config, text("train"), text("dev"), tmp_path)
    history = json.loads((tmp_path / lm.DEV_LOSS_FILE).read_text())["history"]
    streamed = lm.evaluate(model, tokenizer, text("dev"))
    best = min(h["dev_loss"] for h in history)
    assert best == pytest.approx(streamed["nll_bits"] * math.log(2) / streamed["tokens"],
                                 rel=1e-5)
    loaded, _, loaded_config = lm.load(tmp_path)  # a plain language model, no carried states
    assert loaded_config.stateful and len(loaded.weights) == len(model.weights)
    assert sorted(p.name for p in (tmp_path / training.EPOCHS_DIR).iterdir()) == [
        "epoch-0001.weights.h5", "epoch-0002.weights.h5"]

    lm.train(tiny_config(stateful=True, batch_size=8, epochs=3, steps_per_epoch=10),
             text("train"), text("dev"), tmp_path)
    history = json.loads((tmp_path / lm.DEV_LOSS_FILE).read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    with pytest.raises(ValueError, match="batch_size 8 -> 4"):
        lm.train(tiny_config(stateful=True, batch_size=4), text("train"), text("dev"), tmp_path)
    with pytest.raises(ValueError, match="stateful True -> False"):
        lm.train(tiny_config(batch_size=8), text("train"), text("dev"), tmp_path)


@pytest.mark.parametrize("changes, message", [
    (dict(model_type="bpe"), "model_type"), (dict(cell="rnn"), "cell"),
    (dict(seq_len=1), "seq_len"), (dict(units=0), "units"), (dict(dropout=1.0), "dropout"),
    (dict(stateful=True, strategy="mirrored"), "one device"),
])
def test_bad_config_values_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


def test_char_models_train_on_characters(tmp_path):
    model, tokenizer = lm.train(tiny_config(model_type="char", epochs=1, steps_per_epoch=2),
                                text("train"), text("dev"), tmp_path)
    assert tokenizer.model_type == "char" and tokenizer.vocab_size < 100
    assert model.vocab_size == tokenizer.vocab_size


@pytest.mark.slow
def test_lm_commands_train_evaluate_and_score(tmp_path, capsys, monkeypatch):
    import io

    from nlpapps.cli import main

    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, "epochs": 1,
                                                        "steps_per_epoch": 3}.items()]
    assert main(["-v", "lm", "train", "--data", str(SHAKESPEARE), "--out", str(out),
                 "--export", str(tmp_path / "export"), *flags]) == 0
    for folder in (out, tmp_path / "export"):
        for name in ("saved_model.pb", "config.json", "tokenizer.model"):
            assert (folder / name).exists(), (folder, name)
    assert (out / "model.weights.h5").exists()  # the training folder's, beside its checkpoint
    assert not (tmp_path / "export" / "model.weights.h5").exists()  # each weight once
    assert (out / "checkpoint").is_dir() and (out / "logs").is_dir()
    capsys.readouterr()

    test_file = str(SHAKESPEARE / "test.txt")
    assert main(["-v", "lm", "evaluate", test_file, "--model", str(tmp_path / "export")]) == 0
    report = json.loads(capsys.readouterr().out)
    model, tokenizer, _ = lm.load(out)
    assert report == pytest.approx(lm.evaluate(model, tokenizer, text("test")))
    # A folder of .txt files reads as their text joined in path order.
    lines = text("test").splitlines(keepends=True)
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "1.txt").write_text("".join(lines[:40]), encoding="utf-8")
    (folder / "2.txt").write_text("".join(lines[40:]), encoding="utf-8")
    assert main(["-v", "lm", "evaluate", str(folder), "--model", str(tmp_path / "export")]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(report)

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Who's there?\n\nHo!\n")))
    assert main(["-v", "lm", "score", "--model", str(out)]) == 0
    printed = [float(x) for x in capsys.readouterr().out.split()]
    expected = lm.score(model, tokenizer, ["Who's there?", "", "Ho!"])
    assert printed == pytest.approx(expected, abs=1e-4)
    # At a terminal, a line's score comes when it is entered, the input still open.
    answer = answer_at_terminal(["lm", "score", "--model", str(out)], "Ctrl-D", "Ho!",
                                lambda text: re.search(r"-?\d+\.\d{4}\s", text))
    assert float(answer.split()[0]) == pytest.approx(expected[2], abs=1e-4)

    assert main(["-v", "lm", "evaluate", test_file, "--model", str(tmp_path / "nothing")]) == 2
    assert main(["-v", "lm", "train", "--text", test_file, "--out", str(out),
                 "--units=16"]) == 2
    assert main(["-v", "lm", "train", "--out", str(out), "--cell", "rnn"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in errors[-3:]] == ["error"] * 3
    assert "does not exist" in errors[-3] and "units 32 -> 16" in errors[-2]
    assert "cell" in errors[-1]


def test_training_can_start_from_a_trained_folder(trained, tmp_path):
    model, tokenizer, out_dir = trained
    config = tiny_config(init_from=str(out_dir), epochs=1, steps_per_epoch=1,
                         learning_rate=1e-9)
    tuned, tuned_tokenizer = lm.train(config, text("train"), text("dev"), tmp_path)
    assert tuned_tokenizer.to_bytes() == tokenizer.to_bytes()
    for a, b in zip(tuned.weights, model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
