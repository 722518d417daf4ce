"""Tests for nlpapps.cli on a tiny exported translator: `translate` on odd input, n-best,
attention plots, one-line errors for broken model folders, and `translate-eval`."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import tensorflow as tf

from nlpapps import cli
from nlpapps.decoding_limits import MAX_SOURCE_TOKENS

from terminal import answer_at_terminal

ROOT = Path(__file__).resolve().parent.parent

ODD_LINES = [
    b"We all make mistakes.",
    b"",
    b"   \t ",
    b"Wo \xff\xfe ist es?",  # invalid UTF-8
    b" ".join([b"word"] * 5000),
    "Grüße aus Köln 😀".encode(),
    b"Save the file.\r",  # a Windows line end
    b"Where is the station?",
]


def translate(folder, *flags, stdin=None, monkeypatch=None):
    """Runs `nlpapps -v translate --model folder *flags` in this process; returns the code."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    # -v keeps file descriptor 2 as it is, so that pytest captures it.
    return cli.main(["-v", "translate", "--model", str(folder), *flags])


def expected_translations(saved_translator, lines, beam=1):
    return [t.outputs[0] for t in saved_translator.translate(lines, beam)]


@pytest.mark.parametrize("source", ["stdin", "file"])
def test_translate_keeps_every_line_in_order(source, exported_translator, saved_translator,
                                             monkeypatch, capfd, tmp_path):
    data = b"\n".join(ODD_LINES) + b"\n"
    if source == "stdin":
        code = translate(exported_translator, "--beam", "1", stdin=data,
                         monkeypatch=monkeypatch)
    else:
        (tmp_path / "in.txt").write_bytes(data)
        code = translate(exported_translator, "--beam", "1", "--file", str(tmp_path / "in.txt"))
    out, err = capfd.readouterr()
    assert code == 0
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == len(ODD_LINES) + 1
    expected = expected_translations(saved_translator, [line.rstrip(b"\r") for line in ODD_LINES])
    assert lines[:-1] == expected
    assert lines[1] == lines[2] == ""
    assert all(lines[i] for i in (0, 3, 4, 5, 6, 7))
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: line 5 is longer than {MAX_SOURCE_TOKENS} tokens; only its "
                        "beginning is translated"]


def test_translate_in_batches_gives_one_line_per_input(exported_translator, capfd):
    texts = ["We all make mistakes.", "", "Save the file.", "Where is the station?", "   "]
    assert translate(exported_translator, "--beam", "1", "--batch-size", "2", *texts) == 0
    out, _ = capfd.readouterr()
    lines = out.split("\n")[:-1]
    assert len(lines) == len(texts)
    assert [i for i, line in enumerate(lines) if not line] == [1, 4]


def test_translate_without_input_prints_nothing(exported_translator, monkeypatch, capfd):
    assert translate(exported_translator, stdin=b"", monkeypatch=monkeypatch) == 0
    assert capfd.readouterr().out == ""


def test_nbest_prints_tab_separated_hypotheses(exported_translator, saved_translator, capfd):
    texts = ["We all make mistakes.", "", "Where is the station?"]
    assert translate(exported_translator, "--nbest", "3", *texts) == 0
    rows = [line.split("\t") for line in capfd.readouterr().out.splitlines()]
    assert [len(row) for row in rows] == [3, 3, 3]
    assert rows[1] == ["", "", ""]
    assert [row[0] for row in rows] == expected_translations(saved_translator, texts, beam=5)

    assert translate(exported_translator, "--nbest", "3", "--scores", *texts) == 0
    rows = [line.split("\t") for line in capfd.readouterr().out.splitlines()]
    assert [len(row) for row in rows] == [6, 6, 6]
    for row in rows:
        scores = [float(score) for score in row[1::2]]
        assert scores == sorted(scores, reverse=True)


def test_plot_attention_writes_a_png(exported_translator, capfd, tmp_path):
    path = tmp_path / "attention.png"
    assert translate(exported_translator, "--beam", "1", "--plot-attention", str(path),
                     "Where is the station?") == 0
    out, err = capfd.readouterr()
    assert len(out.splitlines()) == 1
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in err


def _broken_folders(folder, tmp_path):
    """`(name, path)` of model folders broken in every way `load_saved_model` tells apart."""
    config = (folder / "config.json").read_bytes()
    cases = {"missing": tmp_path / "missing", "file": tmp_path / "file"}
    cases["file"].write_text("not a folder")
    for name, files in {
        "no_config": {},
        "corrupt_config": {"config.json": b'{"kind": "transl'},
        "config_without_kind": {"config.json": b'{"config": {}}'},
        "other_kind": {"config.json": json.dumps({"kind": "language_model",
                                                  "config": {}}).encode()},
        "no_saved_model": {"config.json": config},
        "corrupt_saved_model": {"config.json": config, "saved_model.pb": b"\x08\x01garbage",
                                "tokenizer.model": (folder / "tokenizer.model").read_bytes()},
    }.items():
        path = tmp_path / name
        path.mkdir()
        for file, data in files.items():
            (path / file).write_bytes(data)
        cases[name] = path
    shutil.copytree(folder / "variables", cases["corrupt_saved_model"] / "variables")
    return cases


BROKEN = ["missing", "file", "no_config", "corrupt_config", "config_without_kind", "other_kind",
          "no_saved_model", "corrupt_saved_model"]


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_model_folder_is_one_line_of_error(broken, exported_translator, capsys,
                                                    tmp_path):
    folder = _broken_folders(exported_translator, tmp_path)[broken]
    assert translate(folder, "Hello.") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert str(folder) in err
    if broken == "other_kind":
        assert err == (f"error: {folder} holds a language model, not a translator; pick a "
                       "translator folder\n")


@pytest.mark.parametrize("flags, message", [
    (["--beam", "0"], "error: --beam must be between 1 and 64, got 0"),
    (["--nbest", "0"], "error: --nbest must be between 1 and 64, got 0"),
    (["--file", "no/such/file.txt"], "error: input file no/such/file.txt does not exist"),
    (["--batch-size", "0"], "error: --batch-size must be at least 1, got 0"),
    (["--alpha", "nan"], "error: --alpha (the length penalty exponent) must be 0 or more, got nan"),
    (["--alpha", "-1"], "error: --alpha (the length penalty exponent) must be 0 or more, got -1.0"),
])
def test_bad_flags_are_one_line_of_error(flags, message, exported_translator, capsys):
    assert translate(exported_translator, *flags) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == message + "\n"


@pytest.mark.slow
def test_script_error_is_one_line_on_the_real_stderr(exported_translator, tmp_path):
    # Without -v, whatever TensorFlow's runtime writes to file descriptor 2 is dropped.
    folder = _broken_folders(exported_translator, tmp_path)["corrupt_saved_model"]
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "translate.py"), "--model",
                          str(folder), "Hello."], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("error: "), run.stderr
    assert "could not be loaded" in run.stderr


def test_translate_eval_prints_bleu_and_chrf(exported_translator, saved_translator,
                                            en_de_pairs, capsys, tmp_path):
    test_pairs = en_de_pairs[-8:]
    pairs_tsv = tmp_path / "test.tsv"
    pairs_tsv.write_text("".join(f"{p.english}\t{p.german}\n" for p in test_pairs))
    assert cli.main(["-v", "translate-eval", "--model", str(exported_translator),
                     "--pairs", str(pairs_tsv), "--beam", "2", "--limit", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"greedy", "beam2"}
    for scores in report.values():
        assert scores["sentences"] == 6
        assert 0 <= scores["bleu"] <= 100 and 0 < scores["chrf"] <= 100
        assert scores["bleu_signature"].startswith("nrefs:1")
    hypotheses = expected_translations(saved_translator, [p.english for p in test_pairs[:6]])
    references = [[p.german for p in test_pairs[:6]]]
    assert report["greedy"]["chrf"] == round(
        sacrebleu.corpus_chrf(hypotheses, references).score, 2)
    assert report["greedy"]["bleu"] == round(
        sacrebleu.corpus_bleu(hypotheses, references).score, 2)

    # --output keeps every translation the scores were computed from.
    out = tmp_path / "translations.tsv"
    assert cli.main(["-v", "translate-eval", "--model", str(exported_translator),
                     "--pairs", str(pairs_tsv), "--beam", "2", "--limit", "6",
                     "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == report
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["english", "reference", "greedy", "beam2"]
    assert [row[:3] for row in rows[1:]] == [  # a field's white space is one space
        [p.english, p.german, " ".join(text.split())]
        for p, text in zip(test_pairs[:6], hypotheses)]
    beam = [row[3] for row in rows[1:]]
    assert report["beam2"]["bleu"] == round(sacrebleu.corpus_bleu(beam, references).score, 2)


@pytest.mark.parametrize("flags, message", [
    (["--beam", "0"], "error: --beam must be between 1 and 64, got 0"),
    (["--limit", "-2"], "error: --limit must be 0 (every pair) or more, got -2"),
    (["--alpha", "inf"], "error: --alpha (the length penalty exponent) must be 0 or more, got inf"),
])
def test_translate_eval_refuses_bad_flags(flags, message, exported_translator, capsys):
    assert cli.main(["-v", "translate-eval", "--model", str(exported_translator), "--pairs",
                     str(ROOT / "tests" / "fixtures" / "pairs.en-de.tsv"), *flags]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_translate_eval_of_a_missing_pairs_file(exported_translator, capsys, tmp_path):
    code = cli.main(["-v", "translate-eval", "--model", str(exported_translator),
                     "--pairs", str(tmp_path / "none.tsv")])
    assert code == 2
    assert capsys.readouterr().err == f"error: pairs file {tmp_path / 'none.tsv'} does not exist\n"
    code = cli.main(["-v", "translate-eval", "--model", str(exported_translator),
                     "--pairs", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err == f"error: pairs file {tmp_path} is a folder; give a file\n"


def test_translate_train_writes_its_savedmodel_beside_the_run(tmp_path, capfd):
    from conftest import PAIRS_TSV, TINY

    out = tmp_path / "run"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in
             {**TINY, "epochs": 2, "steps_per_epoch": 2}.items()]
    assert cli.main(["-v", "translate-train", "--pairs", str(PAIRS_TSV), "--out", str(out),
                     *flags]) == 0
    assert "model written to" in capfd.readouterr().err
    for name in ("saved_model.pb", "config.json", "tokenizer.model", "model.weights.h5",
                 "checkpoint", "epochs/epoch-0001.weights.h5", "epochs/epoch-0002.weights.h5",
                 "logs"):
        assert (out / name).exists(), name
    # The run goes on from its checkpoint and can be averaged.
    assert cli.main(["-v", "average", "--run", str(out), "--last", "2",
                     "--output", str(tmp_path / "averaged")]) == 0
    assert (tmp_path / "averaged" / "saved_model.pb").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "{path} holds no pairs; give english<TAB>german lines"),
    (b"\n\n", "{path} holds no pairs; give english<TAB>german lines"),
    (b"Hello.\tHallo.\nWo \xff ist es?\tWo?\n",
     "{path}:2: not UTF-8 text; save the file as UTF-8"),
])
def test_unusable_pairs_files_are_one_line_of_error(content, message, exported_translator,
                                                    capsys, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    for command in (["translate-eval", "--model", str(exported_translator)],
                    ["translate-train", "--out", str(tmp_path / "run")]):
        assert cli.main(["-v", *command, "--pairs", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == "error: " + message.format(path=path) + "\n"
    assert not (tmp_path / "run").exists()


def test_training_on_too_few_pairs_or_no_text_is_one_line_of_error(capsys, tmp_path):
    (tmp_path / "one.tsv").write_text("Hello.\tHallo.\n")
    assert cli.main(["-v", "translate-train", "--pairs", str(tmp_path / "one.tsv"),
                     "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'one.tsv'} holds too few pairs to "
                                       "keep some for dev; give more pairs or --dev DEV.tsv\n")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    assert cli.main(["-v", "lm", "train", "--text", str(tmp_path / "blank.txt"),
                     "--out", str(tmp_path / "lm")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'blank.txt'} has no text to train on\n"


@pytest.mark.slow
def test_a_line_typed_at_a_terminal_is_translated_when_entered(exported_translator,
                                                               saved_translator):
    sentence = "We all make mistakes."
    expected = expected_translations(saved_translator, [sentence])[0]
    # The answer comes while the input is still open: no Ctrl-D was typed yet.
    answer = answer_at_terminal(["translate", "--model", str(exported_translator), "--beam",
                                 "1"], "Ctrl-D", sentence, lambda text: expected in text)
    assert expected in answer


@pytest.mark.parametrize("error", [MemoryError(), tf.errors.ResourceExhaustedError(
    None, None, "OOM when allocating tensor with shape[30000,1024,768]")])
def test_running_out_of_memory_is_one_line_of_error(error, monkeypatch, capsys):
    """An allocation refused (Python's or TensorFlow's) ends the command with one line saying
    what to do, and exit status 2, not a traceback; any other exception still propagates."""
    raised = [error]

    def fail(args):
        raise raised[0]

    real = cli.build_parser

    def parser_failing_in_generate():
        parser = real()
        sub = next(a for a in parser._actions if a.dest == "command")
        sub.choices["generate"].set_defaults(func=fail)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_failing_in_generate)
    assert cli.main(["-v", "generate", "ROMEO:"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory;") and err.count("\n") == 1
    raised[0] = ValueError("a defect")
    with pytest.raises(ValueError, match="a defect"):
        cli.main(["-v", "generate", "ROMEO:"])
