"""Tests for the language model's LiteRT files (nlpapps.export.tflite with
nlpapps.serving.litert_language_model): a tiny trained model's files against its SavedModel and
Keras model, run in LiteRT: greedy ids, log-probabilities, the step-wise signatures, sampling, odd
input, quantization, the op audit and the `export` command."""

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from nlpapps import cli
from nlpapps.apps import language_model as lm
from nlpapps.apps.model_folder_reader import ModelError, load_saved_model
from nlpapps.decoding_limits import MAX_NEW_TOKENS_ONE
from nlpapps.export.language_model_folder import export_language_model_folder
from nlpapps.export.litert_report import compare_language_model
from nlpapps.export.tflite import (TFTEXT_OPS, audit_ops, default_output, export_tflite,
                                   tflite_ops, weight_bytes)
from nlpapps.serving.litert_language_model import NOT_TEXT, LiteRTLanguageModel

SHAKESPEARE = Path(__file__).parent.parent / "fixtures" / "shakespeare"
PROMPTS = ["BERNARDO:\n", "", "Who's there? Nay, answer me", " stand", "\n\n",
           b"Who\xff\xfe is there", "\u4e2d\u6587 \U0001f600"]
NEW_TOKENS = 24


def text(split: str) -> str:
    return (SHAKESPEARE / f"{split}.txt").read_text(encoding="utf-8")


def as_bytes(prompt):
    return prompt if isinstance(prompt, bytes) else prompt.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny language model trained for 2 epochs of 20 steps, exported with its weights."""
    config = lm.LanguageModelConfig(vocab_size=200, embedding_dim=16, units=32, layers=2,
                                    dropout=0.0, seq_len=32, batch_size=16,
                                    learning_rate=1e-2, epochs=2, steps_per_epoch=20)
    run = tmp_path_factory.mktemp("lm") / "run"
    lm.train(config, text("train"), text("dev"), run)
    out = tmp_path_factory.mktemp("exported") / "shakespeare"
    export_language_model_folder(run, out)
    return out


@pytest.fixture(scope="module")
def loaded(folder):
    return load_saved_model(folder, "language_model")


def _export(folder, quantize, stepwise=False):
    lines = [line for line in text("train").splitlines() if line.strip()][:30]
    return export_tflite(folder, default_output(folder, quantize, stepwise), quantize, lines,
                         stepwise)


@pytest.fixture(scope="module")
def float_file(folder):
    return _export(folder, "none")


@pytest.fixture(scope="module")
def steps_file(folder):
    return _export(folder, "none", stepwise=True)


@pytest.fixture(scope="module")
def dynamic_file(folder):
    return _export(folder, "dynamic")


def saved_greedy_ids(loaded, prompt):
    outputs = loaded.signatures["generate"](
        inputs=tf.constant([as_bytes(prompt)]), max_new_tokens=tf.constant(NEW_TOKENS),
        temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0),
        seed=tf.constant(0))
    return outputs["ids"].numpy()[0].tolist(), outputs["outputs"].numpy()[0].decode(
        "utf-8", "replace")


def test_float_file_generates_the_savedmodels_greedy_text(loaded, float_file):
    model = LiteRTLanguageModel(float_file)
    assert not model.stepwise
    for prompt in PROMPTS:
        ids, continuation = saved_greedy_ids(loaded, prompt)
        text_out, lite_ids = model.generate(prompt, NEW_TOKENS)
        assert lite_ids == ids, prompt
        assert text_out.endswith(continuation) and len(text_out) >= len(continuation)


def test_stepwise_file_driven_from_python_gives_the_same_ids(loaded, steps_file):
    model = LiteRTLanguageModel(steps_file)
    assert model.stepwise
    for prompt in PROMPTS[:4]:
        ids, continuation = saved_greedy_ids(loaded, prompt)
        text_out, lite_ids = model.generate(prompt, NEW_TOKENS)
        assert lite_ids == ids
        assert text_out.strip() == continuation.strip()


def test_file_log_probs_give_the_bits_per_character_of_the_keras_model(folder, float_file,
                                                                      steps_file):
    model, tokenizer, _ = lm.load(folder)
    sample = text("test")[:3000]
    expected = lm.evaluate(model, tokenizer, sample)["bits_per_character"]
    ids = lm.line_start_ids(tokenizer, sample)
    for path in (float_file, steps_file):
        bpc = -LiteRTLanguageModel(path).log_prob(ids) / math.log(2) / len(sample)
        assert bpc == pytest.approx(expected, abs=1e-4), path


def test_litert_samples_as_the_savedmodel_with_the_same_seed(loaded, float_file):
    model = LiteRTLanguageModel(float_file)
    # A high temperature flattens the tiny model's distributions, so that draws differ.
    draws = {seed: model.generate("ROMEO:\n", 40, temperature=5.0, top_k=50, top_p=0.99,
                                  seed=seed)[1] for seed in (1, 2)}
    for seed, ids in draws.items():
        assert len(ids) == 40 and not set(ids) & set(NOT_TEXT)
        assert len(set(ids)) > 5  # not one token over and over
        saved = loaded.signatures["generate_one"](
            inputs=tf.constant(["ROMEO:\n"]), max_new_tokens=tf.constant(40),
            temperature=tf.constant(5.0), top_k=tf.constant(50), top_p=tf.constant(0.99),
            seed=tf.constant(seed))
        assert saved["ids"].numpy()[0].tolist() == ids
    assert draws[1] != draws[2]
    # Out-of-range options have a defined meaning: <= 0 temperature is greedy.
    assert len(model.generate("ROMEO:\n", 40, temperature=1.0, top_k=20, top_p=0.9)[1]) == 40
    greedy = model.generate("ROMEO:\n", 10)[1]
    assert model.generate("ROMEO:\n", 10, temperature=-1.0, top_k=-3, top_p=7.0)[1] == greedy


def test_one_thread_and_the_default_threads_draw_the_same_tokens(float_file, dynamic_file):
    """Files open on `DEFAULT_THREADS` kernel threads; the tokens are those of one thread."""
    for path in (float_file, dynamic_file):
        one, default = LiteRTLanguageModel(path, num_threads=1), LiteRTLanguageModel(path)
        for temperature in (0.0, 5.0):
            assert one.generate("ROMEO:\n", 30, temperature=temperature, seed=4) == \
                default.generate("ROMEO:\n", 30, temperature=temperature, seed=4)
        ids = [3, 4, 5, 6, 7, 8]
        assert one.log_prob(ids) == pytest.approx(default.log_prob(ids), abs=1e-4)


def test_generation_keeps_its_tensors_and_draws_as_an_interpreter_that_shares_them(
        float_file, dynamic_file):
    """A runner generates in an interpreter that keeps every tensor (its loops' subgraphs are
    not prepared again at every run) and scores in one that shares memory between tensors;
    both draw and score as a plain interpreter of the file."""
    from nlpapps.serving.litert_interpreter import open_interpreter
    from nlpapps.serving.litert_language_model import sampling_inputs, total_log_prob

    for path in (float_file, dynamic_file):
        model = LiteRTLanguageModel(path)
        plain = open_interpreter(path).get_signature_runner("serving_default")
        for prompt in PROMPTS[:4]:
            for temperature, top_k, top_p in ((0.0, 0, 1.0), (5.0, 0, 1.0), (5.0, 40, 0.9)):
                expected = plain(inputs=np.array([as_bytes(prompt)], dtype=object),
                                 **sampling_inputs(NEW_TOKENS, temperature, top_k, top_p, 3))
                ids = [i for i in expected["ids"][0].tolist() if i != 0]
                assert model.generate(prompt, NEW_TOKENS, temperature, top_k, top_p, 3) == \
                    (expected["text"][0].decode("utf-8", "replace"), ids)
        kept = open_interpreter(path, preserve_tensors=True).get_signature_runner("score")
        ids = model.tokenizer.encode(text("test")[:2000])
        assert len(ids) > 300
        assert model.log_prob(ids) == total_log_prob(kept, ids, model.state_width)
        assert model._score is not model._runners["score"]


def test_the_continuation_is_the_text_after_the_prompt_as_read(float_file):
    """`continuation` cuts the text at the prompt the file says it read; for a file written
    before it said so, at the text of a call that draws nothing."""
    model = LiteRTLanguageModel(float_file)
    for prompt in PROMPTS:
        text_out, _ = model.generate(prompt, NEW_TOKENS, 1.0, seed=5)
        read, _ = model.generate(prompt, 0)
        assert text_out.startswith(read)
        assert model.continuation(prompt, NEW_TOKENS, 1.0, seed=5) == text_out[len(read):]
    expected = [model.continuation(prompt, NEW_TOKENS, 1.0, seed=5) for prompt in PROMPTS]
    run = model._runners["serving_default"]
    model._runners["serving_default"] = lambda **inputs: {
        name: value for name, value in run(**inputs).items() if name != "prompt"}
    assert [model.continuation(prompt, NEW_TOKENS, 1.0, seed=5) for prompt in PROMPTS] == \
        expected


def test_token_counts_zero_negative_and_past_the_buffer(float_file):
    model = LiteRTLanguageModel(float_file)
    assert model.generate("ROMEO:", 0) == ("ROMEO:", [])
    assert model.generate("ROMEO:", -5)[1] == []
    assert len(model.generate("ROMEO:", MAX_NEW_TOKENS_ONE + 100)[1]) == MAX_NEW_TOKENS_ONE
    assert len(model.generate("word " * 3000, 5)[1]) == 5  # a prompt past the context


def test_every_language_model_file_passes_the_op_audit(float_file, steps_file, dynamic_file):
    for path in (float_file, steps_file, dynamic_file):
        ops = audit_ops(path.read_bytes())
        assert TFTEXT_OPS <= ops and "WHILE" in ops
        assert not any(op.startswith("Flex") for op in tflite_ops(path.read_bytes()))


def test_dynamic_file_stores_the_tied_matrix_once_and_keeps_the_bits(folder, float_file,
                                                                     dynamic_file):
    model, tokenizer, _ = lm.load(folder)
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    quantized = weight_bytes(dynamic_file.read_bytes())
    assert quantized["INT8"] <= params  # one int8 byte per weight at most: no second copy
    assert quantized.get("FLOAT32", 0) < 0.1 * weight_bytes(float_file.read_bytes())["FLOAT32"]
    sample = text("test")[:3000]
    ids = lm.line_start_ids(tokenizer, sample)
    bits = [-LiteRTLanguageModel(p).log_prob(ids) / math.log(2) / len(sample)
            for p in (float_file, dynamic_file)]
    assert abs(bits[1] - bits[0]) < 0.05


def test_int8_files_convert_calibrated_and_run(folder):
    for stepwise in (False, True):
        path = _export(folder, "int8", stepwise)
        assert weight_bytes(path.read_bytes())["INT8"] > 0
        audit_ops(path.read_bytes())
        ids = LiteRTLanguageModel(path).generate("ROMEO:\n", 8)[1]
        assert len(ids) == 8 and not set(ids) & set(NOT_TEXT)


def test_compare_reports_bits_agreement_and_latency(folder, float_file):
    sample = text("test")[:2000]
    rows = compare_language_model(folder, {"float": float_file}, sample, ["ROMEO:", "JULIET:"], 8)
    assert set(rows) == {"savedmodel", "float"}
    assert rows["float"]["exact_match"] == 1.0
    assert abs(rows["float"]["bpc_change"]) < 1e-3
    assert rows["float"]["size_bytes"] == float_file.stat().st_size


def test_runner_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        LiteRTLanguageModel(tmp_path / "none.tflite")
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a usable TFLite file"):
        LiteRTLanguageModel(tmp_path / "bad.tflite")


def test_export_command_reports_on_a_language_model(folder, monkeypatch, capsys):
    monkeypatch.setattr(cli, "silence_native_logs", lambda: None)
    test_file = SHAKESPEARE / "test.txt"
    code = cli.main(["export", "--model", str(folder), "--quantize", "dynamic", "--report",
                     "--text", str(test_file), "--limit", "1500"])
    captured = capsys.readouterr()
    written = default_output(folder, "dynamic")
    assert code == 0 and written.is_file()
    lines = captured.out.strip().splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert set(rows) == {"savedmodel", "tflite-dynamic"}
    assert "bits_per_char" in lines[0] and "1500 characters" in lines[-1]


def test_generate_command_runs_a_tflite_file(loaded, float_file, steps_file, capsys):
    prompts = ["BERNARDO:\n", "Who's there? Nay, answer me"]
    flags = ["--max-new-tokens", str(NEW_TOKENS)]
    assert cli.main(["-v", "generate", "--model", str(float_file), "--temperature", "0",
                     *flags, *prompts]) == 0
    continuations = [saved_greedy_ids(loaded, prompt)[1] for prompt in prompts]
    assert capsys.readouterr().out == "\n---\n".join(
        prompt + text for prompt, text in zip(prompts, continuations)) + "\n"
    # Sampled, cut before the first stop string.
    model = LiteRTLanguageModel(float_file)
    read, _ = model.generate(prompts[0], 0)
    drawn = model.generate(prompts[0], NEW_TOKENS, 1.0, 0, 1.0, 5)[0][len(read):]
    stop = drawn[3:5]
    assert cli.main(["-v", "generate", "--model", str(float_file), "--seed", "5",
                     "--temperature", "1", "--stop", stop, *flags, prompts[0]]) == 0
    assert capsys.readouterr().out == prompts[0] + drawn[:drawn.find(stop)] + "\n"
    # A step-wise file runs greedily.
    assert cli.main(["-v", "generate", "--model", str(steps_file), "--temperature", "0",
                     *flags, prompts[0]]) == 0
    assert capsys.readouterr().out.strip() == (prompts[0] + continuations[0]).strip()
    for bad in (["--model", str(steps_file)], ["--model", str(float_file), "--beam", "2"]):
        assert cli.main(["-v", "generate", *bad, "x"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "--temperature 0" in errors[0] and "--beam needs" in errors[1]
