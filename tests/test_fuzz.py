"""Tests of the entry points against odd input (`scripts/fuzz.py`, a fast subset on tiny
models) and against damaged model folders: no traceback, no crash, one line out per line in,
and one clear error line with exit status 2 for a folder that cannot be used."""

import importlib.util
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "apps"))  # tiny_language_model


def load_fuzz():
    spec = importlib.util.spec_from_file_location("fuzz", ROOT / "scripts" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = load_fuzz()


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A tiny language model folder (2 training steps), exported as `lm train` exports it."""
    from tiny_language_model import train_tiny

    from nlpapps.export.language_model_folder import export_language_model_folder

    run = tmp_path_factory.mktemp("lm") / "run"
    train_tiny(run, epochs=1, steps_per_epoch=2)
    folder = tmp_path_factory.mktemp("exported") / "lm"
    export_language_model_folder(run, folder)
    return folder


@pytest.fixture(scope="module")
def every_input():
    """Every quick input of the fuzzer in one, and the number of lines a reader finds."""
    case = fuzz.combined(fuzz.make_cases(quick=True))
    return case, fuzz.lines_read(case.data())


# The entry points the quick test runs (`scripts/fuzz.py` runs them all): each code path once.
QUICK = ("translate (folder, beam 5)", "generate --file (folder)", "lm score --file",
         "translator serving_default", "translator bad arguments", "language model generate",
         "language model bad arguments")


def _entries(entries, names):
    """The entries of `fuzz.entry_points` named in `names`."""
    return [(group, run) for group, run in entries if run.entry_name in names]


def check(row):
    assert row.tracebacks == 0 and row.crashes == 0, row.notes
    if row.line_oriented:
        assert row.lines_out == row.lines_in > 0, row.notes


def test_commands_print_a_line_for_every_line_of_odd_input(exported_translator, language_model,
                                                           every_input, tmp_path, monkeypatch):
    monkeypatch.setattr(fuzz, "IN_PROCESS", True)
    case, lines = every_input
    assert lines > 100 and any(len(line) >= 200_000 for line in case.lines)
    args = fuzz.argparse.Namespace(translator=exported_translator,
                                   language_model=language_model, translator_tflite=None,
                                   lm_tflite=None, qa=None, litert_lines=40)
    rows = [run([case], tmp_path) for _, run in _entries(fuzz.entry_points(args), QUICK)]
    assert len(rows) == len(QUICK)
    for row in rows:
        check(row)
        if row.name.endswith("bad arguments"):  # every out-of-range argument is refused
            assert row.refused == row.tried > 0
        else:
            assert row.refused == 0, row.notes


def test_lm_score_reads_a_long_line_window_by_window(language_model):
    """A line longer than the window scores as the same line read in one pass would."""
    from nlpapps.apps import language_model as lm

    model, tokenizer, _ = lm.load(language_model)
    line = "What say you to the king, my lord? " * 40
    assert len(lm.line_start_ids(tokenizer, line + "\n")) > 64
    whole, = lm.score(model, tokenizer, [line], window=10_000)
    windowed, short, = lm.score(model, tokenizer, [line, "Ay."], window=64)
    assert windowed == pytest.approx(whole, rel=1e-4)
    assert short == pytest.approx(lm.score(model, tokenizer, ["Ay."])[0], rel=1e-5)


def test_litert_file_survives_odd_input_and_warns_as_the_folder(language_model, every_input,
                                                                 tmp_path, monkeypatch):
    from nlpapps.export.tflite import export_tflite

    file = export_tflite(language_model, tmp_path / "lm.float32.tflite", "none")
    assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~_umask()  # 0644 by default
    monkeypatch.setattr(fuzz, "IN_PROCESS", True)
    case, _ = every_input
    check(fuzz.call_entry("LiteRT file", lambda: fuzz.litert_language_model(file),
                          limit=40)([case], tmp_path))
    check(fuzz.command_entry("generate --model FILE", lambda path: [
        "generate", "--model", str(file), "--file", str(path), "--max-new-tokens", "4",
        "--stop", "\\n"], True, fuzz.generated_texts)([case], tmp_path))

    prompt = "ROMEO \u4e2d\u6587 " + "word " * 60
    warnings = []
    for model in (str(language_model), str(file)):
        status, _, err = fuzz.run_in_process(["generate", "--model", model, prompt,
                                              "--max-new-tokens", "2"])
        assert status == 0
        warnings.append([line for line in err.decode().splitlines()
                         if line.startswith("warning:")])
    assert len(warnings[0]) == 2 and warnings[1] == warnings[0]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- damaged model folders ---------------------------------------------------------------------

def damaged_copies(folder: Path, tmp_path: Path):
    """`(label, copy)`: a copy of `folder` with each of its files deleted, then cut in half."""
    files = sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    for name in files:
        for damage in ("deleted", "cut in half"):
            copy = tmp_path / f"{str(name).replace('/', '-')}-{damage.replace(' ', '-')}"
            shutil.copytree(folder, copy)
            target = copy / name
            if damage == "deleted":
                target.unlink()
            else:
                target.write_bytes(target.read_bytes()[:target.stat().st_size // 2])
            yield f"{name} {damage}", name, copy


def assert_clear(label, status, err, must_fail):
    text = err.decode("utf-8", "replace")
    assert "Traceback" not in text, f"{label}: {text[-2000:]}"
    assert status in (0, 2), f"{label}: exit {status}: {text[-2000:]}"
    if status == 2:
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{label}: {text}"
    if must_fail:
        assert status == 2, f"{label}: read a damaged file without an error"


def test_a_damaged_language_model_folder_gives_one_error_line(language_model, tmp_path):
    """`generate` (the SavedModel) and `lm score` (the Keras model, its weights read from the
    SavedModel's variables) on the folder with each file deleted or cut in half in turn."""
    saved_model = {"config.json", "tokenizer.model", "saved_model.pb",
                   "variables/variables.index"}
    keras_files = {"config.json", "tokenizer.model", "variables/variables.index",
                   "variables/variables.data-00000-of-00001"}
    tried = 0
    for label, name, copy in damaged_copies(language_model, tmp_path):
        if str(name) not in keras_files - saved_model:  # files the SavedModel path reads
            status, out, err = fuzz.run_in_process(["generate", "--model", str(copy), "ROMEO:",
                                                    "--max-new-tokens", "2"])
            assert_clear(f"generate, {label}", status, err, str(name) in saved_model)
        if str(name) in keras_files:
            status, out, err = fuzz.run_in_process(["lm", "score", "--model", str(copy), "Ay."])
            assert_clear(f"lm score, {label}", status, err, must_fail=True)
        tried += 1
    assert tried >= 12  # 6 files or more, two ways each


def test_a_damaged_or_wrong_translator_folder_gives_one_error_line(exported_translator,
                                                                   language_model, tmp_path):
    must_fail = {"config.json", "tokenizer.model", "saved_model.pb"}
    for label, name, copy in damaged_copies(exported_translator, tmp_path):
        if str(name) not in must_fail and not str(name).startswith("variables/"):
            continue
        status, _, err = fuzz.run_in_process(["translate", "--model", str(copy), "hi"])
        assert_clear(f"translate, {label}", status, err, str(name) in must_fail)
    for argv in (["translate", "--model", str(language_model), "hi"],
                 ["generate", "--model", str(exported_translator), "x"],
                 ["lm", "score", "--model", str(exported_translator), "x"],
                 ["translate", "--model", str(tmp_path / "missing"), "hi"],
                 ["generate", "--model", str(language_model / "config.json"), "x"]):
        status, _, err = fuzz.run_in_process(argv)
        assert_clear(" ".join(argv[:3]), status, err, must_fail=True)


@pytest.mark.parametrize("argv, message", [
    (["generate", "--seed", "2147483648", "x"], "seed"),
    (["generate", "--beam", "65", "x"], "beam"),
    (["translate", "--beam", "100000", "hi"], "--beam"),
    (["translate", "--nbest", "0", "hi"], "--nbest"),
    (["translate", "--plot-attention", "no/such/folder/a.png", "hi"], "does not exist"),
    (["lm", "train", "--text", "x.txt", "--out", "o", "--learning-rate", "-1"],
     "--learning-rate"),
    (["lm", "train", "--text", "x.txt", "--out", "o", "--dropout", "1"], "dropout"),
    (["lm", "train", "--text", "x.txt", "--out", "o", "--units", "-4"], "--units"),
    (["translate-train", "--pairs", "x.tsv", "--out", "o", "--label-smoothing", "1.5"],
     "--label-smoothing"),
    (["translate-train", "--pairs", "x.tsv", "--out", "o", "--clipnorm", "nan"], "--clipnorm"),
])
def test_arguments_out_of_range_give_one_error_line(argv, message, tmp_path, monkeypatch):
    """Refused before any model is read or anything trained: the paths need not exist."""
    monkeypatch.chdir(tmp_path)
    status, out, err = fuzz.run_in_process(argv)
    text = err.decode()
    assert status == 2 and out == b"", text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in text
    assert not (tmp_path / "o").exists()
