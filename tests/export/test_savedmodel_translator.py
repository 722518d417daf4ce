"""Tests for nlpapps.serving.translator_module and nlpapps.export.saved_model_writer: the translator
SavedModel, reloaded in a fresh process that has only TensorFlow and TensorFlow Text, against
the in-memory Keras model; and the writer."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from nlpapps.export.saved_model_writer import write_savedmodel, write_savedmodel_into
from nlpapps.decoding_limits import MAX_SOURCE_TOKENS
from nlpapps.tokenizer import EOS_ID

SENTENCES = ["We all make mistakes.", "Where is the station?", "Tom is reading a book.",
             "Please close the window.", "Save the file."]
LONG = " ".join(["word"] * 5000)

# Runs in a fresh interpreter: what a server with the exported folder alone has.
SERVE_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops

requests = json.loads(sys.stdin.read())
model = tf.saved_model.load(requests["folder"])
report = {"nlpapps_imported": any(name.split(".")[0] == "nlpapps" for name in sys.modules),
          "signatures": sorted(model.signatures)}
serve, beam = model.signatures["serving_default"], model.signatures["translate"]
for name, texts in requests["batches"].items():
    inputs = tf.constant([bytes.fromhex(text) for text in texts], tf.string)
    greedy = serve(inputs=inputs)
    searched = beam(inputs=inputs, beam_size=tf.constant(requests["beam"]),
                    alpha=tf.constant(0.6))
    report[name] = {
        "outputs": [text.decode("utf-8") for text in greedy["outputs"].numpy()],
        "scores": greedy["scores"].numpy().tolist(),
        "beam_outputs": [[text.decode("utf-8") for text in row]
                         for row in searched["outputs"].numpy()],
        "beam_scores": searched["scores"].numpy().tolist(),
        "truncated": greedy["truncated"].numpy().tolist(),
        "beam_truncated": searched["truncated"].numpy().tolist(),
        "source_ids": searched["source_ids"].numpy().tolist(),
        "attention_shape": list(searched["attention"].shape),
        "target_ids_shape": list(searched["target_ids"].shape),
    }
print(json.dumps(report))
"""


def texts_of_length(tokenizer, lengths):
    """Texts of exactly these numbers of tokens (eos not counted), by the Python tokenizer."""
    texts = []
    for length in lengths:
        words = ["station"] * length
        while len(tokenizer.encode(" ".join(words))) > length:
            words.pop()
        while len(tokenizer.encode(" ".join(words + ["a"]))) <= length:
            words.append("a")
        text = " ".join(words)
        assert len(tokenizer.encode(text)) == length
        texts.append(text)
    return texts


@pytest.fixture(scope="module")
def edge_texts(exported_translator):
    """Texts one token short of being cut (eos fills the last place) and one token over."""
    from nlpapps.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(exported_translator / "tokenizer.model")
    return texts_of_length(tokenizer, [MAX_SOURCE_TOKENS - 1, MAX_SOURCE_TOKENS])


@pytest.fixture(scope="module")
def served(exported_translator, edge_texts):
    """What the exported translator answers in a fresh process, by batch name."""
    batches = {"sentences": SENTENCES, "empty": ["", "   "], "invalid": [b"Wo \xff\xfe ist es?"],
               "long": [LONG], "emoji": ["Grüße 😀 aus Köln"], "edge": edge_texts}
    requests = {"folder": str(exported_translator), "beam": 3,
                "batches": {name: [(t if isinstance(t, bytes) else t.encode()).hex()
                                   for t in texts] for name, texts in batches.items()}}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(SERVE_SCRIPT)],
                         input=json.dumps(requests), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_loads_with_tensorflow_and_tensorflow_text_alone(served):
    assert not served["nlpapps_imported"]
    assert {"serving_default", "translate"} <= set(served["signatures"])


def test_serving_default_matches_the_keras_model(served, trained_translator):
    result, _ = trained_translator
    expected = result.translate(SENTENCES)
    assert served["sentences"]["outputs"] == expected
    assert len(set(expected)) > 1  # the tiny model's translations differ: not a vacuous match
    _, scores = result._greedy(tf.constant(result.encode_sources(SENTENCES)))
    np.testing.assert_allclose(served["sentences"]["scores"], scores.numpy(), rtol=1e-4)


def test_translate_signature_is_a_sorted_beam_search(served):
    batch = served["sentences"]
    assert batch["target_ids_shape"][:2] == [len(SENTENCES), 3]
    assert batch["attention_shape"][:3] == batch["target_ids_shape"]
    assert batch["attention_shape"][3] == len(batch["source_ids"][0])
    for outputs, scores in zip(batch["beam_outputs"], batch["beam_scores"]):
        assert len(outputs) == 3
        assert scores == sorted(scores, reverse=True)


def test_empty_input_gives_empty_output(served):
    assert served["empty"]["outputs"] == ["", ""]
    assert served["empty"]["beam_outputs"] == [["", "", ""], ["", "", ""]]


def test_odd_inputs_translate_without_error(served):
    for name in ("invalid", "emoji", "long"):
        batch = served[name]
        assert len(batch["outputs"]) == 1 and batch["outputs"][0]
        assert np.isfinite(batch["scores"][0])
    # The long input is cut to the longest source the model takes.
    assert len(served["long"]["source_ids"][0]) == MAX_SOURCE_TOKENS


def test_truncated_says_which_inputs_were_cut(served, saved_translator, edge_texts):
    for signature in ("truncated", "beam_truncated"):
        assert served["long"][signature] == [True]
        assert served["sentences"][signature] == [False] * len(SENTENCES)
        assert served["empty"][signature] == [False, False]
        # With eos, MAX_SOURCE_TOKENS - 1 tokens fill the source exactly; one more is cut.
        assert served["edge"][signature] == [False, True]
    assert [saved_translator.too_long(text) for text in edge_texts] == [False, True]
    short = served["edge"]["source_ids"][0]  # all of it read, eos last
    assert len(short) == MAX_SOURCE_TOKENS and 0 not in short and short[-1] == EOS_ID


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(exported_translator):
    command = [shutil.which("saved_model_cli")] if shutil.which("saved_model_cli") else \
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    run = subprocess.run([*command, "show", "--all", "--dir", str(exported_translator)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for signature in ("serving_default", "translate"):
        assert f"signature_def['{signature}']" in run.stdout
    assert "inputs['inputs'] tensor_info:\n        dtype: DT_STRING" in run.stdout


class _Echo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serving_default(self, inputs):
        return {"outputs": inputs}


def test_write_savedmodel_replaces_a_folder_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "model"
    write_savedmodel(_Echo(), folder, {"config.json": b'{"version": 1}'})
    write_savedmodel(_Echo(), folder, {"config.json": b'{"version": 2}'})
    assert json.loads((folder / "config.json").read_text()) == {"version": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    # A failure while writing (here: an extra file that is not bytes) leaves the old model.
    with pytest.raises(TypeError):
        write_savedmodel(_Echo(), folder, {"config.json": "not bytes"})
    assert json.loads((folder / "config.json").read_text()) == {"version": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    loaded = tf.saved_model.load(str(folder))
    assert loaded.signatures["serving_default"](
        inputs=tf.constant(["a"]))["outputs"].numpy().tolist() == [b"a"]


def test_write_savedmodel_into_a_training_folder_keeps_the_run(tmp_path):
    run = tmp_path / "run"
    for name in ("checkpoint/latest.weights.h5", "epochs/epoch-0001.weights.h5", "logs/x",
                 "model.weights.h5"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(name.encode())
    write_savedmodel_into(_Echo(), run, {"config.json": b'{"version": 1}'})
    write_savedmodel_into(_Echo(), run, {"config.json": b'{"version": 2}'})
    for name in ("checkpoint/latest.weights.h5", "epochs/epoch-0001.weights.h5", "logs/x",
                 "model.weights.h5"):
        assert (run / name).read_bytes() == name.encode()
    assert json.loads((run / "config.json").read_text()) == {"version": 2}
    assert not (run / ".savedmodel").exists()
    loaded = tf.saved_model.load(str(run))
    assert loaded.signatures["serving_default"](
        inputs=tf.constant(["b"]))["outputs"].numpy().tolist() == [b"b"]


def test_a_text_never_translates_to_an_empty_line(trained_translator):
    """With eos's output bias far above every other and a word's second, each decoder
    still emits that word before eos: greedy, beam, the batch-1 signatures and the step-wise
    loop of LiteRT."""
    from nlpapps.export.tflite import numpy_function
    from nlpapps.serving.litert_translator import greedy_steps
    from nlpapps.serving.translator_module import TranslatorModule
    from nlpapps.models.seq2seq import Seq2Seq

    result, _ = trained_translator
    model = Seq2Seq(**result.config.model_kwargs())
    model.build()
    model.set_weights(result.model.get_weights())
    tokenizer = result.tokenizer
    word = next(i for i in range(4, tokenizer.vocab_size) if tokenizer.decode([i]).isalpha())
    model.output_bias.assign(tf.one_hot(EOS_ID, model.vocab_size, on_value=60.0) +
                             tf.one_hot(word, model.vocab_size, on_value=30.0))
    module = TranslatorModule(model, tokenizer)
    texts = ["hi", "Where is the station?", "\U0001f600"]
    inputs = tf.constant([text.encode() for text in texts])

    greedy = module.serving_default(inputs)
    beam = module.translate(inputs, tf.constant(3), tf.constant(1.0))
    expected = tokenizer.decode([word]).encode()
    assert greedy["outputs"].numpy().tolist() == [expected] * len(texts)
    assert beam["outputs"].numpy()[:, 0].tolist() == [expected] * len(texts)
    ids = beam["target_ids"].numpy()  # (batch, beam, steps)
    assert np.all(ids[:, :, 0] != EOS_ID) and np.all(ids[:, :, 0] != 0)
    assert np.all(ids[:, :, 1] == EOS_ID)  # then eos wins
    for row in range(len(texts)):
        assert module.translate_one(inputs[row:row + 1])["outputs"].numpy()[0] == expected
        assert module.translate_beam_one(inputs[row:row + 1], tf.constant(1.0)
                                         )["outputs"].numpy()[0] == expected
        encoded = numpy_function(module.encode)(inputs=np.array([texts[row].encode()], object))
        assert greedy_steps(encoded, numpy_function(module.decode_step)) == [word, EOS_ID]
    # Text with no token still translates to "", and an empty batch to an empty batch.
    assert module.serving_default(tf.constant([b"", b"  "]))["outputs"].numpy().tolist() == \
        [b"", b""]
    assert module.serving_default(tf.zeros([0], tf.string))["outputs"].shape == (0,)
    assert module.translate(tf.zeros([0], tf.string), tf.constant(2),
                            tf.constant(1.0))["outputs"].shape == (0, 2)


@pytest.mark.parametrize("beam_size, alpha", [(0, 1.0), (-1, 1.0), (65, 1.0),
                                              (3, float("nan")), (3, float("inf")), (3, -0.5)])
def test_translate_refuses_arguments_out_of_range(saved_translator, beam_size, alpha):
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_size|alpha"):
        saved_translator.module.translate(inputs=tf.constant([b"hi"]),
                                          beam_size=tf.constant(beam_size),
                                          alpha=tf.constant(alpha))
