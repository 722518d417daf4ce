"""Tests for text generation: the samplers of nlpapps.decoding, the module of
nlpapps.serving.language_model_module, nlpapps.apps.text_generator (seeds, streaming, stop
strings, bad input), the SavedModel in a fresh process and the `nlpapps generate` command."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps import decoding
from nlpapps.apps.language_model import LanguageModelConfig, line_start_ids
from nlpapps.apps import text_generator
from nlpapps.apps.text_generator import TextGenerator
from nlpapps.export.saved_model_writer import write_savedmodel_into
from nlpapps.models.language_model_network import LanguageModel
from nlpapps.serving.generation_config import GenerationConfig
from nlpapps.serving.language_model_module import LanguageModelModule
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

SHAKESPEARE = Path(__file__).parent.parent / "fixtures" / "shakespeare"
CONTEXT = 24  # prompt tokens the module reads
PROMPTS = ["BERNARDO:\n", "", "Who's there? Nay, answer me", " stand"]


@pytest.fixture(scope="module")
def tokenizer():
    text = (SHAKESPEARE / "train.txt").read_text(encoding="utf-8")
    return Tokenizer.train([text], 120, keep_newlines=True)


@pytest.fixture(scope="module")
def model(tokenizer):
    # Untrained, its weights scaled up so that the most probable token of a step is clear
    # (greedy meets no near tie that float rounding could flip) and draws still vary.
    keras.utils.set_random_seed(0)
    lm = LanguageModel(tokenizer.vocab_size, embedding_dim=8, units=16, num_layers=2,
                       dropout=0.0)
    lm.build()
    lm.set_weights([4 * w for w in lm.get_weights()])
    return lm


@pytest.fixture(scope="module")
def module(model, tokenizer):
    return LanguageModelModule(model, tokenizer, CONTEXT)


@pytest.fixture(scope="module")
def generator(module, tokenizer):
    return TextGenerator(module, tokenizer, CONTEXT)


def options(**changes):
    return GenerationConfig(**{"max_new_tokens": 20, "seed": 1, **changes})


def reference_greedy(model, tokenizer, prompt, steps):
    """Greedy ids by an eager loop over `model.step`: bos and the prompt, then argmax of the
    logits without pad, unk, bos and eos."""
    tokens = [BOS_ID] + line_start_ids(tokenizer, prompt)[-CONTEXT:]
    states = model.initial_states(1)
    for token in tokens[:-1]:
        _, states = model.step(np.array([token], np.int32), states)
    token, ids = tokens[-1], []
    for _ in range(steps):
        logits, states = model.step(np.array([token], np.int32), states)
        logits = np.array(logits[0])
        logits[[PAD_ID, UNK_ID, BOS_ID, EOS_ID]] = -np.inf
        token = int(np.argmax(logits))
        ids.append(token)
    return ids


def continuation(tokenizer, prompt, ids):
    context = line_start_ids(tokenizer, prompt)[-CONTEXT:]
    return tokenizer.decode(context + ids)[len(tokenizer.decode(context)):]


# -- samplers -----------------------------------------------------------------------------

PROBS = np.array([0.5, 0.3, 0.1, 0.06, 0.04])
LOGITS = tf.constant(np.log(PROBS)[None].repeat(4000, axis=0), tf.float32)  # 4000 draws


def draws(**kwargs):
    return decoding.make_sampler(**kwargs)(LOGITS, step=tf.constant(0)).numpy()


@pytest.mark.parametrize("top_p, nucleus", [(0.45, {0}), (0.7, {0, 1}), (0.85, {0, 1, 2}),
                                            (1.0, {0, 1, 2, 3, 4})])
def test_top_p_never_samples_outside_the_nucleus(top_p, nucleus):
    drawn = draws(top_p=top_p, seed=3)
    assert set(drawn.tolist()) == nucleus
    kept = PROBS[sorted(nucleus)] / PROBS[sorted(nucleus)].sum()
    frequencies = np.bincount(drawn, minlength=5)[sorted(nucleus)] / len(drawn)
    np.testing.assert_allclose(frequencies, kept, atol=0.03)


def test_top_k_keeps_the_k_most_probable_and_zero_keeps_all():
    assert set(draws(top_k=2, seed=3).tolist()) == {0, 1}
    assert set(draws(top_k=1, seed=3).tolist()) == {0}
    np.testing.assert_array_equal(draws(top_k=0, seed=3), draws(top_k=5, seed=3))
    np.testing.assert_array_equal(draws(top_k=0, seed=3), draws(top_k=99, seed=3))


def test_temperature_sharpens_and_zero_is_greedy():
    assert (draws(temperature=0.0, seed=3) == 0).all()
    sharp = np.bincount(draws(temperature=0.5, seed=3), minlength=5) / 4000
    expected = PROBS ** 2 / (PROBS ** 2).sum()
    np.testing.assert_allclose(sharp, expected, atol=0.03)


def test_draws_depend_on_seed_and_step_only():
    sampler = decoding.make_sampler(seed=5)
    first = sampler(LOGITS, step=tf.constant(2)).numpy()
    np.testing.assert_array_equal(first, sampler(LOGITS, step=tf.constant(2)).numpy())
    assert (first != sampler(LOGITS, step=tf.constant(3)).numpy()).any()
    assert (first != decoding.make_sampler(seed=6)(LOGITS, step=tf.constant(2)).numpy()).any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-0.1), "temperature"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(top_k=-1), "top_k")])
def test_bad_sampling_options_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decoding.make_sampler(**kwargs)
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_decode_passes_the_step_counted_from_start_step():
    seen = []

    def sampler(logits, step):
        seen.append(step)
        return tf.fill([tf.shape(logits)[0]], step + 10)

    ids, _, _ = decoding.decode(lambda t, s: (tf.zeros([1, 50]), s, None), tf.constant([BOS_ID]),
                                [tf.zeros([1, 1])], 4, sampler=sampler, eos_id=-1, start_step=7)
    np.testing.assert_array_equal(ids, [[17, 18, 19, 20]])


# -- generation ---------------------------------------------------------------------------


def test_greedy_matches_an_eager_argmax_loop_and_is_deterministic(generator, model, tokenizer):
    greedy = options(temperature=0.0)
    texts = generator.generate(PROMPTS, greedy)
    assert texts == generator.generate(PROMPTS, greedy)
    for prompt, text in zip(PROMPTS, texts):
        assert text == continuation(tokenizer, prompt, reference_greedy(model, tokenizer,
                                                                        prompt, 20))


def test_a_batch_gives_each_prompt_what_it_gets_alone(generator):
    greedy = options(temperature=0.0)
    assert generator.generate(PROMPTS, greedy) == \
        [generator.generate([prompt], greedy)[0] for prompt in PROMPTS]


@pytest.mark.parametrize("beam", [1, 2])
def test_many_prompts_run_in_bounded_batches_with_the_same_texts(generator, monkeypatch, beam):
    """A file of many prompts goes through `BATCH_ROWS` rows at a time (memory bounded by
    the batch, not the file): greedy and beam texts are each prompt's own, and a stream of
    them joins into the same texts."""
    config = options(temperature=0.0, beam=beam, max_new_tokens=9)
    alone = [generator.generate([prompt], config)[0] for prompt in PROMPTS]
    monkeypatch.setattr(text_generator, "BATCH_ROWS", 2)
    batches = text_generator.prompt_batches(len(PROMPTS), beam)
    assert len(batches) > 1 and all(len(batch) * beam <= 2 for batch in batches)
    assert generator.generate(PROMPTS, config) == alone
    pieces = list(generator.stream(PROMPTS, config, chunk_tokens=3))
    assert all(len(p) == len(PROMPTS) for p in pieces)
    assert ["".join(p[i] for p in pieces) for i in range(len(PROMPTS))] == alone


def test_top_k_one_is_greedy(generator):
    greedy = generator.generate(PROMPTS, options(temperature=0.0))
    for seed in (1, 2):
        assert generator.generate(PROMPTS, options(temperature=1.3, top_k=1, seed=seed)) == greedy


def test_same_seed_same_text_other_seed_other_text(generator):
    first = generator.generate(PROMPTS, options(seed=11))
    assert generator.generate(PROMPTS, options(seed=11)) == first
    other = generator.generate(PROMPTS, options(seed=12))
    assert all(a != b for a, b in zip(first, other))


@pytest.mark.parametrize("chunk", [1, 3, 8])
@pytest.mark.parametrize("changes", [dict(), dict(top_p=0.9, top_k=20, seed=4),
                                     dict(stop=("e", "\n\n"), seed=2)])
def test_streamed_text_equals_the_generated_text(generator, chunk, changes):
    config = options(max_new_tokens=17, **changes)
    pieces = list(generator.stream(PROMPTS, config, chunk_tokens=chunk))
    assert all(len(p) == len(PROMPTS) for p in pieces)
    streamed = ["".join(p[i] for p in pieces) for i in range(len(PROMPTS))]
    assert streamed == generator.generate(PROMPTS, config)
    if not changes.get("stop"):
        assert len(pieces) > 17 // chunk  # text comes as it is drawn, not at the end


def test_stop_strings_cut_before_the_first_one(generator):
    full = generator.generate(PROMPTS, options(max_new_tokens=40))
    cut = generator.generate(PROMPTS, options(max_new_tokens=40, stop=("e", "a")))
    for whole, text in zip(full, cut):
        positions = [i for i in (whole.find("e"), whole.find("a")) if i >= 0]
        assert text == (whole[:min(positions)] if positions else whole)


def test_generated_text_holds_no_special_tokens(generator, module):
    result = module.generate(inputs=tf.constant(PROMPTS), max_new_tokens=60,
                             temperature=3.0, top_k=0, top_p=1.0, seed=0)
    ids = result["ids"].numpy()
    assert ids.shape == (len(PROMPTS), 60)
    assert not np.isin(ids, [PAD_ID, UNK_ID, BOS_ID, EOS_ID]).any()
    assert all("\u2047" not in text.decode() for text in result["outputs"].numpy())


def test_empty_prompt_generates_from_bos(generator, model, tokenizer):
    [text] = generator.generate([""], options(temperature=0.0))
    assert text and text == continuation(tokenizer, "", reference_greedy(model, tokenizer, "",
                                                                          20))
    assert generator.warnings("") == []


def test_a_long_prompt_is_read_from_its_last_context_tokens(generator, module, tokenizer):
    prompt = (SHAKESPEARE / "dev.txt").read_text(encoding="utf-8")[:400]
    ids = line_start_ids(tokenizer, prompt)
    assert len(ids) > CONTEXT
    [note] = generator.warnings(prompt)
    assert f"only its last {CONTEXT}" in note
    state = module.prefill(inputs=tf.constant([prompt]))
    np.testing.assert_array_equal(state["context_ids"].numpy()[0], ids[-CONTEXT:])
    [text] = generator.generate([prompt], options())
    assert text == continuation(tokenizer, prompt, generator._extend(
        dict(state), options(), 0, 20)["ids"].numpy()[0].tolist())


def test_unknown_characters_are_read_as_unknown_with_a_warning(generator):
    [note] = generator.warnings("Héllo ☃ there")
    assert "é" in note and "☃" in note
    [text] = generator.generate(["Héllo ☃ there"], options())
    assert text and "\u2047" not in text


def test_no_prompts_and_no_new_tokens(generator):
    assert generator.generate([], options()) == []
    assert list(generator.stream([], options())) == []
    assert generator.generate(PROMPTS, options(max_new_tokens=0)) == [""] * len(PROMPTS)


def test_beam_search_is_deterministic_and_one_beam_is_greedy(generator, module):
    beams = generator.generate(PROMPTS, options(beam=3, seed=1))
    assert beams == generator.generate(PROMPTS, options(beam=3, seed=2))
    one = module.beam_search(inputs=tf.constant(PROMPTS), max_new_tokens=20, beam_size=1)
    greedy = module.generate(inputs=tf.constant(PROMPTS), max_new_tokens=20, temperature=0.0,
                             top_k=0, top_p=1.0, seed=0)
    np.testing.assert_array_equal(one["ids"], greedy["ids"])
    assert list(generator.stream(PROMPTS, options(beam=3))) == [beams]


@pytest.mark.parametrize("changes", [dict(temperature=-1.0), dict(top_p=0.0),
                                     dict(top_p=1.5), dict(top_k=-2)])
def test_the_module_refuses_bad_options(module, changes):
    values = {**dict(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0, seed=0), **changes}
    with pytest.raises(tf.errors.InvalidArgumentError):
        module.generate(inputs=tf.constant(["x"]), **values)


def test_generation_config_checks_its_own_fields():
    with pytest.raises(ValueError, match="beam"):
        GenerationConfig(beam=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=-1)
    with pytest.raises(ValueError, match="stop"):
        GenerationConfig(stop=("",))


# -- SavedModel and command line ----------------------------------------------------------

FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
prompts = tf.constant(json.loads(sys.argv[2]))
default = model.signatures["serving_default"](inputs=prompts)
sampled = model.generate(inputs=prompts, max_new_tokens=15, temperature=0.9, top_k=30,
                         top_p=0.95, seed=4)
beam = model.beam_search(inputs=prompts, max_new_tokens=15, beam_size=2)
one = model.generate_one(inputs=prompts[:1], max_new_tokens=15, temperature=0.9, top_k=30,
                         top_p=0.95, seed=4)
outputs = {name: [t.decode() for t in result["outputs"].numpy()]
           for name, result in (("default", default), ("sampled", sampled), ("beam", beam))}
outputs["one"] = one["text"].numpy()[0].decode()
print(json.dumps(outputs))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model, tokenizer, module):
    folder = tmp_path_factory.mktemp("export") / "lm"
    config = LanguageModelConfig(vocab_size=120, embedding_dim=8, units=16, seq_len=CONTEXT)
    config.save(folder.parent)
    write_savedmodel_into(module, folder, {
        "config.json": (folder.parent / "config.json").read_bytes(),
        "tokenizer.model": tokenizer.to_bytes()})
    return folder


@pytest.mark.slow
def test_saved_model_round_trip_in_a_fresh_process(exported, module, generator):
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(exported),
                             json.dumps(PROMPTS)], capture_output=True, text=True, check=True)
    outputs = json.loads(result.stdout.splitlines()[-1])
    default = module.serving_default(inputs=tf.constant(PROMPTS))["outputs"].numpy()
    assert outputs["default"] == [t.decode() for t in default]
    sampled = options(max_new_tokens=15, temperature=0.9, top_k=30, top_p=0.95, seed=4)
    assert outputs["sampled"] == generator.generate(PROMPTS, sampled)
    assert outputs["beam"] == generator.generate(PROMPTS, options(max_new_tokens=15, beam=2))
    assert outputs["default"] == generator.generate(PROMPTS, GenerationConfig())
    one = module.generate_one(inputs=tf.constant(PROMPTS[:1]), max_new_tokens=15,
                              temperature=0.9, top_k=30, top_p=0.95, seed=4)
    assert outputs["one"] == one["text"].numpy()[0].decode()


@pytest.mark.slow
def test_loaded_generator_streams_what_the_in_memory_one_generates(exported, generator):
    loaded = TextGenerator.load(exported)
    assert loaded.context_tokens == CONTEXT
    config = options(top_p=0.8, seed=9)
    expected = generator.generate(PROMPTS, config)
    assert loaded.generate(PROMPTS, config) == expected
    pieces = list(loaded.stream(PROMPTS, config, chunk_tokens=4))
    assert ["".join(p[i] for p in pieces) for i in range(len(PROMPTS))] == expected


@pytest.mark.slow
def test_generate_command(exported, generator, capsys, tmp_path):
    from nlpapps.cli import main

    flags = ["--model", str(exported), "--max-new-tokens", "12", "--seed", "3"]
    config = options(max_new_tokens=12, seed=3)
    assert main(["-v", "generate", "BERNARDO:", "Ho!", *flags]) == 0
    texts = generator.generate(["BERNARDO:", "Ho!"], config)
    assert capsys.readouterr().out == f"BERNARDO:{texts[0]}\n---\nHo!{texts[1]}\n"
    assert main(["-v", "generate", "BERNARDO:", "Ho!", "--stream", *flags]) == 0
    assert capsys.readouterr().out == f"BERNARDO:{texts[0]}\n---\nHo!{texts[1]}\n"
    assert main(["-v", "generate", *flags, "--stop", r"\n"]) == 0
    [text] = generator.generate([""], options(max_new_tokens=12, seed=3, stop=("\n",)))
    assert capsys.readouterr().out == text + "\n"
    # Prompts from a file, one per line, as from arguments.
    (tmp_path / "prompts.txt").write_text("BERNARDO:\nHo!\n", encoding="utf-8")
    assert main(["-v", "generate", "--file", str(tmp_path / "prompts.txt"), *flags]) == 0
    assert capsys.readouterr().out == f"BERNARDO:{texts[0]}\n---\nHo!{texts[1]}\n"
    (tmp_path / "none.txt").write_text("", encoding="utf-8")
    assert main(["-v", "generate", "--file", str(tmp_path / "none.txt"), *flags]) == 2
    assert main(["-v", "generate", "x", "--file", str(tmp_path / "prompts.txt"), *flags]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'none.txt'} holds no prompt; give one per line",
        "error: give prompts as arguments or with --file, not both"]
    beam = generator.generate(["Ho!"], options(max_new_tokens=12, beam=2))[0]
    assert main(["-v", "generate", "Ho!", *flags, "--beam", "2", "--top-k", "5"]) == 0
    out, err = capsys.readouterr()
    assert out == f"Ho!{beam}\n"
    assert "warning: beam search does not sample; --top-k and --top-p are not used" in err

    (tmp_path / "translator").mkdir()
    (tmp_path / "translator" / "config.json").write_text('{"kind": "translator", "config": {}}')
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text((exported / "config.json").read_text())
    (tmp_path / "corrupt" / "saved_model.pb").write_bytes(b"not a model")
    for bad in (["--temperature", "-1"], ["--top-p", "0"], ["--top-p", "1.01"],
                ["--top-k", "-1"], ["--model", str(tmp_path / "missing")],
                ["--model", str(tmp_path / "translator")], ["--model", str(tmp_path / "corrupt")]):
        assert main(["-v", "generate", "x", *flags, *bad]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 7 and all(line.startswith("error: ") for line in errors)
    assert "temperature" in errors[0] and "top_p" in errors[1] and "top_k" in errors[3]
    assert "does not exist" in errors[4] and "translator" in errors[5]
    assert "corrupt" in errors[6]
