"""Tests for nlpapps.runtime through the commands that use it: on tiny models with a float32
LiteRT file in their folder, `translate`, `generate` and `lm score` give the same output with
`--runtime tf` and `--runtime litert` on 200 inputs each (greedy text, log-probabilities to
float precision), a seed draws the same text again within each runtime, `auto` runs the file
when it can and says why with -v, and `--runtime litert` that cannot run is one error line."""

import logging
from pathlib import Path

import pytest

from nlpapps import cli
from nlpapps.apps.text_generator import SEPARATOR
from nlpapps.runtime import FOLDER_FILES, choose, folder_file_name

FIXTURES = Path(__file__).parent / "fixtures"
INPUTS = 200


def run(capfd, *argv):
    """`(exit status, stdout, stderr)` of `nlpapps -v *argv` in this process."""
    capfd.readouterr()
    code = cli.main(["-v", *argv])
    out, err = capfd.readouterr()
    return code, out, err


def with_file(folder: Path, tmp_path_factory) -> Path:
    """A copy of the model folder `folder` with its float32 LiteRT file beside the SavedModel."""
    import shutil

    from nlpapps.export.tflite import export_tflite

    copy = tmp_path_factory.mktemp("with-file") / folder.name
    shutil.copytree(folder, copy)
    export_tflite(copy, copy / folder_file_name("none"), "none")
    return copy


@pytest.fixture(scope="module")
def translator_folder(exported_translator, tmp_path_factory):
    return with_file(Path(exported_translator), tmp_path_factory)


@pytest.fixture(scope="module")
def language_model_folder(tmp_path_factory):
    """A tiny language model trained for 50 steps on the Shakespeare fixture, its float32 file
    in its folder."""
    from nlpapps.apps import language_model as lm
    from nlpapps.export.language_model_folder import export_language_model_folder

    shakespeare = FIXTURES / "shakespeare"
    config = lm.LanguageModelConfig(vocab_size=120, embedding_dim=16, units=32, layers=1,
                                    dropout=0.0, seq_len=24, batch_size=16,
                                    learning_rate=3e-2, epochs=2, steps_per_epoch=25)
    run_dir = tmp_path_factory.mktemp("lm") / "run"
    lm.train(config, (shakespeare / "train.txt").read_text(encoding="utf-8"),
             (shakespeare / "dev.txt").read_text(encoding="utf-8"), run_dir)
    folder = tmp_path_factory.mktemp("lm-folder") / "shakespeare"
    export_language_model_folder(run_dir, folder)
    return with_file(folder, tmp_path_factory)


def lines_file(tmp_path, lines, name="inputs.txt") -> str:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def english_sentences():
    rows = (FIXTURES / "pairs.en-de.tsv").read_text(encoding="utf-8").splitlines()
    return [row.split("\t")[0] for row in rows][:INPUTS]


def play_lines():
    text = "".join((FIXTURES / "shakespeare" / f"{split}.txt").read_text(encoding="utf-8")
                   for split in ("test", "dev"))
    lines = [line[:40] for line in text.splitlines() if line.strip()]
    return lines[:INPUTS]


def test_translate_greedy_is_the_same_in_both_runtimes(translator_folder, tmp_path, capfd):
    sentences = english_sentences()
    assert len(sentences) == INPUTS
    outputs = {}
    for runtime in ("tf", "litert"):
        code, out, err = run(capfd, "translate", "--model", str(translator_folder), "--beam", "1",
                             "--file", lines_file(tmp_path, sentences), "--runtime", runtime)
        assert code == 0, err
        outputs[runtime] = out.split("\n")[:-1]
        assert len(outputs[runtime]) == INPUTS
    assert outputs["litert"] == outputs["tf"]
    assert sum(bool(line) for line in outputs["tf"]) > INPUTS // 2  # translations with words


def test_generate_greedy_is_the_same_in_both_runtimes(language_model_folder, tmp_path, capfd):
    prompts = play_lines()
    assert len(prompts) == INPUTS
    outputs = {}
    for runtime in ("tf", "litert"):
        code, out, err = run(capfd, "generate", "--model", str(language_model_folder),
                             "--file", lines_file(tmp_path, prompts), "--temperature", "0",
                             "--max-new-tokens", "12", "--runtime", runtime)
        assert code == 0, err
        outputs[runtime] = out
    assert outputs["litert"] == outputs["tf"]
    texts = outputs["tf"].removesuffix("\n").split(SEPARATOR)
    assert [text[:len(prompt)] for text, prompt in zip(texts, prompts)] == prompts
    continuations = {text[len(prompt):] for text, prompt in zip(texts, prompts)}
    assert len(continuations) > 1  # not one text whatever the prompt


def test_lm_score_is_the_same_in_both_runtimes(language_model_folder, tmp_path, capfd):
    lines = play_lines()
    scores = {}
    for runtime in ("tf", "litert"):
        code, out, err = run(capfd, "lm", "score", "--model", str(language_model_folder),
                             "--file", lines_file(tmp_path, lines), "--runtime", runtime)
        assert code == 0, err
        scores[runtime] = [float(value) for value in out.split()]
    assert len(scores["tf"]) == INPUTS
    assert scores["litert"] == pytest.approx(scores["tf"], abs=1e-3)
    assert len(set(scores["tf"])) > INPUTS // 2


@pytest.mark.parametrize("runtime", ["tf", "litert"])
def test_a_seed_draws_the_same_text_again_in_each_runtime(runtime, language_model_folder,
                                                          capfd):
    def draw(seed):
        code, out, err = run(capfd, "generate", "ROMEO:", "--model", str(language_model_folder),
                             "--temperature", "1", "--max-new-tokens", "30", "--seed",
                             str(seed), "--runtime", runtime)
        assert code == 0, err
        return out

    first = draw(5)
    assert draw(5) == first
    assert draw(6) != first


def test_auto_runs_the_file_when_it_can_and_says_why(language_model_folder, translator_folder,
                                                      capfd, caplog):
    def said(*argv):
        """What -v logged of the runtime for `nlpapps -v *argv`."""
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nlpapps"):
            code, _, err = run(capfd, *argv)
        assert code == 0, err
        return "\n".join(r.getMessage() for r in caplog.records if "runtime:" in r.getMessage())

    logged = said("generate", "ROMEO:", "--model", str(language_model_folder),
                 "--max-new-tokens", "4")
    assert "runtime: LiteRT" in logged and FOLDER_FILES["none"] in logged
    logged = said("generate", "ROMEO:", "--model", str(language_model_folder),
                 "--max-new-tokens", "4", "--beam", "2")
    assert "runtime: TensorFlow" in logged and "cannot run --beam 2" in logged
    logged = said("translate", "Hello.", "--model", str(translator_folder))
    assert "runtime: LiteRT" in logged  # beam 5, the file's own beam search
    logged = said("translate", "Hello.", "--model", str(translator_folder), "--nbest", "2")
    assert "runtime: TensorFlow" in logged and "cannot run --nbest 2" in logged


def test_runtime_litert_that_cannot_run_is_one_error_line(language_model_folder,
                                                          exported_translator, capfd):
    code, out, err = run(capfd, "translate", "Hello.", "--model", str(exported_translator),
                         "--runtime", "litert")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "has no LiteRT file" in err and "--in-folder" in err
    code, _, err = run(capfd, "generate", "ROMEO:", "--model", str(language_model_folder),
                       "--runtime", "litert", "--beam", "3")
    assert code == 2 and err == "error: --runtime litert cannot run --beam 3: leave them out " \
                                "or give --runtime tf\n"
    code, _, err = run(capfd, "lm", "score", "a line", "--model",
                       str(language_model_folder / FOLDER_FILES["none"]), "--runtime", "tf")
    assert code == 2 and err.startswith("error: --runtime tf runs a model folder's SavedModel")


def test_choose_without_a_file_runs_tensorflow(tmp_path):
    assert choose(tmp_path, "auto", []).name == "tf"
    (tmp_path / FOLDER_FILES["none"]).write_bytes(b"")
    assert choose(tmp_path, "auto", []).path == tmp_path / FOLDER_FILES["none"]
    (tmp_path / FOLDER_FILES["dynamic"]).write_bytes(b"")  # the faster file comes first
    assert choose(tmp_path, "litert", []).path == tmp_path / FOLDER_FILES["dynamic"]
    assert choose(tmp_path, "tf", []).name == "tf"
    assert choose(tmp_path, "auto", ["--beam 2"]).name == "tf"


def test_export_in_folder_refuses_what_a_folder_does_not_hold(language_model_folder, capfd):
    for flags, message in ((["--stepwise"], "without --output and --stepwise"),
                           (["--quantize", "int8"], "not 'int8'")):
        code, out, err = run(capfd, "export", "--model", str(language_model_folder),
                             "--in-folder", *flags)
        assert code == 2 and out == "" and err.startswith("error: ") and message in err
    assert sorted(path.name for path in language_model_folder.glob("*.tflite")) == \
        [FOLDER_FILES["none"]]
