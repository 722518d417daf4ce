"""Tests for nlpapps.export.tflite and nlpapps.serving.litert_translator: LiteRT files of the
tiny translator against its SavedModel, the op audit, quantization, bad inputs, the step-wise
signatures and the `export` command."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from nlpapps import cli
from nlpapps.apps.model_folder_reader import ModelError
from nlpapps.decoding_limits import BEAM_ONE_SIZE, DEFAULT_ALPHA, MAX_SOURCE_TOKENS
from nlpapps.export.litert_report import compare_translator, format_report
from nlpapps.export.tflite import (TFTEXT_OPS, ExportError, audit_ops, default_output,
                                   export_tflite, tflite_ops, weight_bytes)
from nlpapps.serving.litert_translator import LiteRTTranslator

PAIRS_TSV = Path(__file__).parent.parent / "fixtures" / "pairs.en-de.tsv"
ROOT = Path(__file__).resolve().parents[2]
ODD_INPUTS = ["", "   ", "word " * 400, b"Who\xff\xfe is there", "\u4e2d\u6587 \U0001f600"]

slow = pytest.mark.slow


def as_bytes(text):
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def sentences(en_de_pairs):
    return [pair.english for pair in en_de_pairs]


@pytest.fixture(scope="module")
def saved_greedy(saved_translator):
    """The SavedModel's greedy translation of one sentence at a time (in a batch, the longest
    source sets every row's length limit, so a batch can give other outputs)."""
    serving = saved_translator.module.signatures["serving_default"]

    def translate(text):
        outputs = serving(inputs=tf.constant([as_bytes(text)]))["outputs"]
        return outputs.numpy()[0].decode("utf-8", "replace")
    return translate


@pytest.fixture(scope="module")
def saved_outputs(saved_greedy, sentences):
    return [saved_greedy(text) for text in sentences]


@pytest.fixture(scope="module")
def saved_beam(saved_translator):
    """The best of the SavedModel's beam search (`translate`) of one sentence at a time."""
    translate = saved_translator.module.signatures["translate"]

    def run(text):
        outputs = translate(inputs=tf.constant([as_bytes(text)]), beam_size=tf.constant(
            BEAM_ONE_SIZE), alpha=tf.constant(DEFAULT_ALPHA))["outputs"]
        return outputs.numpy()[0, 0].decode("utf-8", "replace")
    return run


@pytest.fixture(scope="module")
def tflite_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite")


def _export(folder, name, quantize, stepwise, en_de_split):
    train, _ = en_de_split
    texts = [source for source, _, _ in train[:60]]
    return export_tflite(folder, folder.parent / f"{name}.tflite", quantize, texts, stepwise)


@pytest.fixture(scope="module")
def float_file(exported_translator, en_de_split):
    return _export(exported_translator, "float", "none", False, en_de_split)


@pytest.fixture(scope="module")
def dynamic_file(exported_translator, en_de_split):
    return _export(exported_translator, "dynamic", "dynamic", False, en_de_split)


@pytest.fixture(scope="module")
def float16_file(exported_translator, en_de_split):
    return _export(exported_translator, "float16", "float16", False, en_de_split)


@pytest.fixture(scope="module")
def int8_file(exported_translator, en_de_split):
    return _export(exported_translator, "int8", "int8", False, en_de_split)


@pytest.fixture(scope="module")
def steps_file(exported_translator, en_de_split):
    return _export(exported_translator, "steps", "none", True, en_de_split)


@pytest.fixture(scope="module")
def steps_int8_file(exported_translator, en_de_split):
    return _export(exported_translator, "steps-int8", "int8", True, en_de_split)


# -- round trips -------------------------------------------------------------------------------

@slow
def test_float_file_translates_as_the_savedmodel(float_file, sentences, saved_outputs):
    translator = LiteRTTranslator(float_file)
    assert not translator.stepwise
    outputs = [translator.translate(text) for text in sentences]
    same = sum(a == b for a, b in zip(outputs, saved_outputs))
    assert same >= 0.99 * len(sentences), f"{same} of {len(sentences)} equal"
    assert len(set(saved_outputs)) > 20  # the model says different things to different inputs


@slow
def test_float_file_beam_search_is_the_savedmodels(float_file, sentences, saved_beam,
                                                   saved_outputs):
    translator = LiteRTTranslator(float_file)
    some = sentences[:100]
    expected = [saved_beam(text) for text in some]
    outputs = [translator.translate(text, beam=True) for text in some]
    same = sum(a == b for a, b in zip(outputs, expected))
    assert same >= 0.99 * len(some), f"{same} of {len(some)} equal"
    assert expected != saved_outputs[:100]  # beam search finds other outputs than greedy
    for text in ODD_INPUTS:
        assert translator.translate(text, beam=True) == saved_beam(text), text


@slow
def test_beam_report_compares_the_files_beam_search(exported_translator, float_file,
                                                    en_de_pairs):
    pairs = [(pair.english, pair.german) for pair in en_de_pairs[:12]]
    rows = compare_translator(exported_translator, {"tflite-none": float_file}, pairs, beam=True)
    assert rows["tflite-none"]["exact_match"] == 1.0
    assert rows["tflite-none"]["bleu_change"] == 0.0
    assert f"12 sentences, one at a time, beam {BEAM_ONE_SIZE}" in format_report(rows)


@slow
def test_stepwise_file_driven_from_python_reproduces_greedy(steps_file, sentences,
                                                            saved_outputs, saved_translator):
    translator = LiteRTTranslator(steps_file)
    assert translator.stepwise
    outputs = [translator.translate(text) for text in sentences]
    same = sum(a == b for a, b in zip(outputs, saved_outputs))
    assert same >= 0.99 * len(sentences), f"{same} of {len(sentences)} equal"
    with pytest.raises(ModelError, match="no beam signature"):
        translator.translate(sentences[0], beam=True)

    # The state an app feeds back has a static shape: the cells' states and the context.
    model = json.loads((saved_translator.folder / "config.json").read_text())["config"]
    state = translator.interpreter.get_signature_runner("decode_step").get_input_details()
    assert list(state["state"]["shape"]) == [1, 3, model["units"]]  # LSTM h, c; context


@slow
@pytest.mark.parametrize("name", ["float_file", "steps_file", "int8_file"])
def test_odd_inputs_translate_without_error(request, name, saved_greedy):
    translator = LiteRTTranslator(request.getfixturevalue(name))
    for text in ODD_INPUTS:
        output = translator.translate(text)
        assert isinstance(output, str)
        if name != "int8_file":
            assert output == saved_greedy(text), text
    assert translator.translate("") == translator.translate("   ") == ""


@slow
@pytest.mark.parametrize("name", ["float_file", "steps_file"])
def test_run_says_whether_the_input_was_cut(request, name, saved_greedy):
    translator = LiteRTTranslator(request.getfixturevalue(name))
    long = "word " * 400
    assert translator.run(long) == (saved_greedy(long), True)
    assert translator.run("Save the file.") == (saved_greedy("Save the file."), False)
    assert translator.run("") == ("", False)
    if translator.has_beam:
        assert translator.run(long, beam=True)[1] is True
        assert translator.run("Save the file.", beam=True)[1] is False


# -- what the files hold -----------------------------------------------------------------------

@slow
@pytest.mark.parametrize("name", ["float_file", "dynamic_file", "float16_file", "int8_file",
                                  "steps_file", "steps_int8_file"])
def test_every_export_passes_the_op_audit(request, name):
    model = request.getfixturevalue(name).read_bytes()
    ops = audit_ops(model)
    assert ops == tflite_ops(model)
    assert TFTEXT_OPS <= ops  # the tokenizer is inside the file
    assert "WHILE" in ops  # and so are the recurrences


@slow
def test_quantized_weights_are_smaller(float_file, dynamic_file, float16_file):
    """The tokenizer models ("UINT8", about 250 KB) dwarf the tiny model's weights, so the
    files shrink little; the weights themselves shrink to int8 and float16."""
    def weights(path):
        sizes = weight_bytes(path.read_bytes())
        return sum(size for kind, size in sizes.items() if kind != "UINT8"), sizes

    float_weights, float_sizes = weights(float_file)
    dynamic_weights, dynamic_sizes = weights(dynamic_file)
    float16_weights, _ = weights(float16_file)
    assert float_sizes["FLOAT32"] > 50_000 and "INT8" not in float_sizes
    assert dynamic_sizes["INT8"] > 0
    assert dynamic_weights <= 0.40 * float_weights
    assert float16_weights <= 0.55 * float_weights
    saved = float_file.stat().st_size - dynamic_file.stat().st_size
    assert saved >= 0.5 * float_weights


@slow
def test_int8_quantizes_activations(int8_file, dynamic_file, steps_int8_file):
    for path in (int8_file, steps_int8_file):
        ops = tflite_ops(path.read_bytes())
        assert "QUANTIZE" in ops  # float activations are quantized to int8 between ops
        assert weight_bytes(path.read_bytes())["INT8"] > 0
    assert "QUANTIZE" not in tflite_ops(dynamic_file.read_bytes())


@slow
def test_the_int8_file_translates_to_text(int8_file):
    """The eos mask of the first step stays inside the logits' range: with a -1e9 there, the
    calibrated scale rounded every logit to one integer and the file translated to ""."""
    assert LiteRTTranslator(int8_file).translate("We all make mistakes.")


def _convert(function, flex: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function)
    if flex:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                                tf.lite.OpsSet.SELECT_TF_OPS]
    else:
        converter.allow_custom_ops = True
    return converter.convert()


@pytest.fixture(scope="module")
def flex_model():
    @tf.function(input_signature=[tf.TensorSpec([1], tf.string)])
    def replace(strings):
        return tf.strings.regex_replace(strings, "a+", "b")  # no LiteRT builtin: Flex

    return _convert(replace, flex=True)


def test_audit_refuses_flex_ops(flex_model):
    foreign = [op for op in tflite_ops(flex_model) if op.startswith("Flex")]
    assert foreign
    with pytest.raises(ExportError, match=foreign[0]):
        audit_ops(flex_model)


def test_audit_refuses_custom_ops_other_than_tf_text():
    @tf.function(input_signature=[tf.TensorSpec([1], tf.string), tf.TensorSpec([1], tf.bool)])
    def choose(strings, empty):
        return tf.where(empty, "", strings)  # LiteRT has no select on strings

    model = _convert(choose, flex=False)
    assert "SelectV2" in tflite_ops(model)
    with pytest.raises(ExportError, match="SelectV2"):
        audit_ops(model)


def test_tflite_ops_refuses_what_is_not_a_tflite_file():
    with pytest.raises(ExportError, match="not a LiteRT"):
        tflite_ops(b"PK\x03\x04 a zip file")


# -- export errors -----------------------------------------------------------------------------

def test_failed_audit_leaves_no_file(tmp_path, monkeypatch, flex_model):
    from nlpapps.export import tflite as module

    monkeypatch.setattr(module, "convert", lambda *args, **kwargs: flex_model)
    output = tmp_path / "out" / "model.tflite"
    with pytest.raises(ExportError, match="Flex"):
        export_tflite(tmp_path / "model", output)
    assert list((tmp_path / "out").iterdir()) == []


def test_export_refuses_bad_arguments(tmp_path):
    with pytest.raises(ExportError, match="unknown quantization 'int4'"):
        export_tflite(tmp_path, tmp_path / "a.tflite", quantize="int4")
    with pytest.raises(ExportError, match="representative texts"):
        export_tflite(tmp_path, tmp_path / "a.tflite", quantize="int8")
    with pytest.raises(ExportError, match="is a folder"):
        export_tflite(tmp_path, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="cannot write"):
        export_tflite(tmp_path, tmp_path / "file" / "a.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_export_refuses_a_savedmodel_without_the_batch_1_signatures(tmp_path):
    module = tf.Module()
    module.serving_default = tf.function(lambda inputs: {"outputs": inputs},
                                         input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "old"))
    (tmp_path / "old" / "config.json").write_text('{"kind": "translator", "config": {}}')
    with pytest.raises(ExportError, match="no translate_one, translate_beam_one signature.*"
                                          "--format savedmodel"):
        export_tflite(tmp_path / "old", tmp_path / "old.tflite")
    assert not (tmp_path / "old.tflite").exists()


def test_runner_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        LiteRTTranslator(tmp_path / "missing.tflite")
    (tmp_path / "corrupt.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="not a usable TFLite file"):
        LiteRTTranslator(tmp_path / "corrupt.tflite")


def test_default_output_is_beside_the_model():
    folder = Path("saved_models/translator-en-de")
    assert default_output(folder, "dynamic") == Path("saved_models/translator-en-de.dynamic.tflite")
    assert default_output(folder, "none", stepwise=True) == \
        Path("saved_models/translator-en-de.float32.steps.tflite")


# -- the export command ------------------------------------------------------------------------

def run_cli(monkeypatch, capsys, *argv):
    """`nlpapps ARGV` in this process: `(exit code, stdout, stderr lines)`."""
    monkeypatch.setattr(cli, "silence_native_logs", lambda: None)
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _bad_folders(tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"kind": "translator", "config": {}}')
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"kind": "speller", "config": {}}')
    answering = tmp_path / "answering"
    answering.mkdir()
    (answering / "config.json").write_text('{"kind": "question_answering", "config": {}}')
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.json").write_text('{"kind": "language_model", "config": {}}')
    (tmp_path / "file").write_text("x")


@pytest.mark.parametrize("argv, message", [
    (["--model", "{tmp}/missing"], "does not exist"),
    (["--model", "{tmp}/corrupt"], "is corrupt"),
    (["--model", "{tmp}/broken"], "could not be loaded"),
    (["--model", "{tmp}/other"], "no app makes models of kind 'speller'"),
    (["--model", "{tmp}/answering"], "holds a question answering model; TFLite export takes "
                                     "translators and language models"),
    (["--model", "{tmp}/untrained"], "has no saved_model.pb"),
    (["--model", "{tmp}/other", "--format", "onnx"], "unknown --format 'onnx'"),
    (["--model", "{tmp}/other", "--quantize", "int4"], "unknown --quantize 'int4'"),
    (["--model", "{tmp}/untrained", "--output", "{tmp}/file/x.tflite"], "cannot write"),
    (["--model", "{tmp}/broken", "--quantize", "int8"], "needs --calibrate TRAIN.tsv"),
    (["--model", "{tmp}/untrained", "--quantize", "int8"], "needs --calibrate TRAIN.txt"),
    (["--model", "{tmp}/broken", "--report"], "--report needs --pairs"),
    (["--model", "{tmp}/untrained", "--report"], "--report needs --text"),
    (["--model", "{tmp}/other", "--format", "savedmodel"], "no app makes models of kind"),
    (["--model", "{tmp}/untrained", "--format", "savedmodel"], "has no tokenizer.model"),
    (["--model", "{tmp}/broken", "--format", "savedmodel", "--beam"], "apply to --format tflite"),
    (["--model", "{tmp}/broken", "--beam"], "--beam reports a translator's one-call files"),
])
def test_export_command_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    _bad_folders(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, out, err = run_cli(monkeypatch, capsys, "export", *argv)
    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(tmp_path.rglob("*")) == before  # no partial file


def test_export_script_prints_one_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), "--model", str(tmp_path / "no")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: model folder {tmp_path / 'no'} does not exist; pass --model with a folder "
        "made by training or export"]


@slow
def test_export_command_writes_beside_the_model_and_reports(exported_translator, monkeypatch,
                                                            capsys):
    code, out, err = run_cli(monkeypatch, capsys, "export", "--model", str(exported_translator),
                             "--quantize", "dynamic", "--report", "--pairs", str(PAIRS_TSV),
                             "--limit", "8")
    written = exported_translator.parent / "translator.dynamic.tflite"
    assert code == 0 and written.is_file()
    assert err == [f"{written} ({written.stat().st_size} bytes)"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:-1]}
    assert set(rows) == {"savedmodel", "tflite-dynamic"}
    assert int(rows["tflite-dynamic"][0]) == written.stat().st_size
    assert "8 sentences" in out.splitlines()[-1]


@slow
def test_export_command_rebuilds_the_savedmodel_from_weights(trained_translator, tmp_path,
                                                             monkeypatch, capsys,
                                                             saved_greedy):
    _, train_dir = trained_translator
    out = tmp_path / "rebuilt"
    code, _, _ = run_cli(monkeypatch, capsys, "export", "--format", "savedmodel",
                         "--model", str(train_dir), "--output", str(out))
    assert code == 0
    loaded = tf.saved_model.load(str(out))
    assert {"serving_default", "translate", "translate_one", "translate_beam_one", "encode",
            "decode_step", "detokenize"} <= set(loaded.signatures)
    for text in ["We all make mistakes.", "Where is the station?"]:
        output = loaded.signatures["translate_one"](inputs=tf.constant([text]))["outputs"]
        assert output.numpy()[0].decode() == saved_greedy(text)
    # The folder holds each weight once, in the SavedModel's variables, and alone converts and
    # exports again from them (config and tokenizer came along).
    assert {p.name for p in out.iterdir()} >= {"saved_model.pb", "variables", "config.json",
                                               "tokenizer.model"}
    assert not (out / "model.weights.h5").exists()
    again = tmp_path / "again"
    code, _, _ = run_cli(monkeypatch, capsys, "export", "--format", "savedmodel",
                         "--model", str(out), "--output", str(again))
    assert code == 0
    output = tf.saved_model.load(str(again)).signatures["translate_one"](
        inputs=tf.constant(["We all make mistakes."]))["outputs"]
    assert output.numpy()[0].decode() == saved_greedy("We all make mistakes.")
    shutil.rmtree(out / "variables")
    code, _, err = run_cli(monkeypatch, capsys, "export", "--format", "savedmodel",
                           "--model", str(out), "--output", str(tmp_path / "none"))
    assert code == 2 and "has no weights" in err[0]


@slow
def test_translate_command_runs_a_tflite_file(float_file, steps_file, sentences, capsys,
                                              tmp_path):
    lines = [sentences[0], "", sentences[1], "   ", sentences[2], "word " * 400]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    translator = LiteRTTranslator(float_file)
    for beam in (1, BEAM_ONE_SIZE):
        assert cli.main(["-v", "translate", "--model", str(float_file), "--beam", str(beam),
                         "--file", str(tmp_path / "in.txt")]) == 0
        out, err = capsys.readouterr()
        assert out.split("\n") == [translator.translate(line, beam=beam > 1) for line in lines] \
            + [""]
        assert out.split("\n")[1] == out.split("\n")[3] == ""
        assert err == (f"warning: line 6 is longer than {MAX_SOURCE_TOKENS} tokens; only its "
                       "beginning is translated\n")
    # A step-wise file has no beam search: greedy, with a warning.
    assert cli.main(["-v", "translate", "--model", str(steps_file), sentences[0]]) == 0
    out, err = capsys.readouterr()
    assert out == LiteRTTranslator(steps_file).translate(sentences[0]) + "\n"
    assert err == f"warning: {steps_file} has no beam search; translating greedily\n"
    assert cli.main(["-v", "translate", "--model", str(float_file), "--nbest", "2", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: a TFLite file gives one translation")


@slow
def test_int8_beam_search_gives_text(int8_file, sentences):
    """The int8 file's beam search, calibrated on the same graph, writes text for ordinary
    sentences (the loop's constants stay inside the range calibration sees)."""
    translator = LiteRTTranslator(int8_file)
    assert translator.has_beam
    outputs = [translator.translate(text, beam=True) for text in sentences[:20]]
    assert all(output.strip() for output in outputs), outputs
