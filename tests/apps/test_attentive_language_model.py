"""The language model with a self-attention block (`--attention`): its memory carried as a
state (windows against one pass, decoding steps, causality across the memory, stateful
training), the warm start from an LSTM-only folder, a reader without attention refusing its
folder, its SavedModel and LiteRT files, freezing the stack, and the attention figure."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.apps import language_model as lm
from nlpapps.errors import ModelError
from nlpapps.models.language_model_network import LanguageModel
from nlpapps.models.stateful_trainer import StatefulTrainer
from nlpapps.tokenizer import BOS_ID

from tiny_language_model import log_softmax, text, train_tiny

VOCAB, MEMORY = 30, 6


def make_model(memory=MEMORY, gate=0.7, **kwargs):
    keras.utils.set_random_seed(0)
    model = LanguageModel(VOCAB, embedding_dim=8, units=8, num_layers=2, dropout=0.0,
                          attention_memory=memory, **kwargs)
    model.build()
    attend(model)
    model.attention_gate.assign(gate)
    return model


def attend(model, seed=1):
    """Gives the attention block an output projection as a trained model has one; a fresh
    model's is zero, so that its block adds nothing."""
    kernel = model.attention.output_kernel
    kernel.assign(np.random.default_rng(seed).normal(0, 0.5, kernel.shape).astype("float32"))


def ids(length, seed=0, batch=2):
    return np.random.default_rng(seed).integers(4, VOCAB, (batch, length)).astype("int32")


def read_in_windows(model, tokens, window):
    states, pieces = model.initial_states(tokens.shape[0]), []
    for start in range(0, tokens.shape[1], window):
        logits, states = model(tokens[:, start:start + window], initial_state=states,
                               return_state=True)
        pieces.append(np.asarray(logits))
    return np.concatenate(pieces, axis=1), states


@pytest.mark.parametrize("litert", [False, True])
def test_windows_with_the_memory_carried_equal_one_pass_and_decoding_steps(litert):
    model = make_model(memory=11)  # every position before the last of 12
    tokens = ids(12)
    whole = np.asarray(model(tokens))
    for window in (3, 5):
        np.testing.assert_allclose(read_in_windows(model, tokens, window)[0], whole, atol=1e-5)
    states, steps = model.initial_states(2), []
    for t in range(12):
        logits, states = model.step(tokens[:, t], states, litert=litert)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(steps, 1), whole, atol=1e-5)
    assert [tuple(s.shape) for s in states[-1]] == [(2, 11, 8 + 8), (2, 11)]  # [h; E y]


@pytest.mark.parametrize("position", [2, 7, 9])
def test_a_later_token_never_changes_an_earlier_prediction(position):
    model = make_model()
    tokens = ids(15)
    changed = tokens.copy()
    changed[:, position] = (changed[:, position] - 4 + 1) % (VOCAB - 4) + 4
    before = read_in_windows(model, tokens, 5)[0]
    after = read_in_windows(model, changed, 5)[0]
    np.testing.assert_array_equal(after[:, :position], before[:, :position])
    assert np.abs(after[:, position] - before[:, position]).max() > 1e-5


def test_the_memory_reaches_back_past_the_recurrent_states():
    """With the LSTM states cut at each window, the next window still sees the last one
    through the memory: its predictions depend on the tokens there."""
    model = make_model()
    tokens = ids(10)
    changed = tokens.copy()
    changed[:, 3] = (changed[:, 3] - 4 + 1) % (VOCAB - 4) + 4

    def second_window(first):
        _, states = model(first[:, :5], return_state=True)
        fresh = model.initial_states(2)[:2] + [states[2]]  # recurrent states zero, memory kept
        return np.asarray(model(first[:, 5:], initial_state=fresh))

    assert np.abs(second_window(changed) - second_window(tokens)).max() > 1e-5
    no_memory = make_model(memory=0)
    _, states = no_memory(tokens[:, :5], return_state=True)
    assert states[2][0].shape == (2, 0, 8 + 8)


def test_a_masked_prompt_leaves_the_memory_of_its_real_tokens():
    model = make_model()
    tokens = ids(6)
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    states = model.advance(tokens, mask=mask)
    alone = model.advance(tokens[1:, :4])
    for got, want in zip(states[-1], alone[-1]):
        np.testing.assert_allclose(np.asarray(got)[1], np.asarray(want)[0], atol=1e-6)


def test_a_fresh_block_adds_nothing_and_learns_from_the_first_step():
    """The output projection starts at zero and the gate at one: the model predicts as the
    stack alone does, and the projection (not only the gate) gets a gradient at once."""
    keras.utils.set_random_seed(0)
    model = LanguageModel(VOCAB, embedding_dim=8, units=8, num_layers=2, dropout=0.0,
                          attention_memory=MEMORY)
    model.build()
    tokens = ids(7)
    outputs, _ = model.rnn(model.embedding(tokens))
    np.testing.assert_allclose(model(tokens), model.readout(outputs), atol=1e-6)
    assert float(model.attention_gate.numpy()) == 1.0
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(tokens) ** 2)
    gradient = tape.gradient(loss, model.attention.output_kernel)
    assert np.abs(np.asarray(gradient)).max() > 1e-6


def test_a_zero_gate_gives_the_model_without_attention():
    attentive = make_model(gate=0.0)
    plain = LanguageModel(VOCAB, embedding_dim=8, units=8, num_layers=2, dropout=0.0)
    plain.build()
    for layer, other in ((plain.embedding, attentive.embedding), (plain.rnn, attentive.rnn)):
        layer.set_weights(other.get_weights())
    plain.output_bias.assign(attentive.output_bias)
    np.testing.assert_allclose(attentive(ids(7)), plain(ids(7)), atol=1e-6)
    assert LanguageModel.from_config(attentive.get_config()).attention_memory == MEMORY


def test_stateful_training_carries_the_memory_and_resets_it():
    model = make_model()
    trainer = StatefulTrainer(model, batch_size=2)
    trainer.compile(optimizer="adam", loss=lm.training.masked_cross_entropy())
    tokens = ids(5)

    def batches(reset):
        return tf.data.Dataset.from_tensors(
            ((tokens[:, :4], np.array(reset)), tokens[:, 1:])).repeat()

    trainer.fit(batches([False, False]), steps_per_epoch=2, epochs=1, verbose=0)
    assert trainer.carried[-1][1].numpy().sum(axis=1).tolist() == [MEMORY, MEMORY]
    trainer.fit(batches([True, False]), steps_per_epoch=1, epochs=1, verbose=0)
    assert trainer.carried[-1][1].numpy().sum(axis=1).tolist() == [4, MEMORY]


@pytest.fixture(scope="module")
def lstm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lstm")
    train_tiny(folder, epochs=1, steps_per_epoch=2)
    return folder


@pytest.fixture(scope="module")
def attentive_folder(lstm_folder, tmp_path_factory):
    """A stateful attentive run warm-started from the LSTM folder."""
    folder = tmp_path_factory.mktemp("attentive")
    model, tokenizer = train_tiny(folder, init_from=str(lstm_folder), attention=True,
                                  attention_memory=48, stateful=True, batch_size=4, epochs=1,
                                  steps_per_epoch=2, learning_rate=1e-9)
    return model, tokenizer, folder


def test_warm_start_from_lstm_weights_keeps_their_predictions(lstm_folder, attentive_folder):
    model, tokenizer, folder = attentive_folder
    plain, _, _ = lm.load(lstm_folder)
    loaded, _, config = lm.load(folder)
    assert config.attention and loaded.attention.memory_length == 48
    tokens = np.asarray([[BOS_ID, *lm.line_start_ids(tokenizer, text("dev"))[:40]]], np.int32)
    np.testing.assert_allclose(loaded(tokens), plain(tokens), atol=1e-4)
    assert len(loaded.weights) == len(plain.weights) + 7  # norm 2, attention 4, gate 1


def test_freeze_recurrent_trains_the_attention_block_alone(lstm_folder, tmp_path):
    model, _ = train_tiny(tmp_path / "frozen", init_from=str(lstm_folder), attention=True,
                          attention_memory=16, stateful=True, batch_size=4, epochs=1,
                          steps_per_epoch=3, learning_rate=1e-2, freeze_recurrent=True)
    plain, _, _ = lm.load(lstm_folder)
    for layer, start in ((model.embedding, plain.embedding), (model.rnn, plain.rnn)):
        for got, want in zip(layer.get_weights(), start.get_weights()):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.output_bias.numpy(), plain.output_bias.numpy())
    assert np.abs(model.attention.output_kernel.numpy()).max() > 0
    with pytest.raises(ValueError, match="set attention"):
        lm.LanguageModelConfig(freeze_recurrent=True)


def test_evaluation_reads_the_text_with_the_memory(attentive_folder):
    model, tokenizer, _ = attentive_folder
    attend(model)
    try:
        report = lm.evaluate(model, tokenizer, text("dev"), window=16)
        token_ids = lm.line_start_ids(tokenizer, text("dev"))[:47]
        # One pass over the first 48 tokens sees all of them, as the windows with memory do.
        log_probs = log_softmax(model(np.asarray([[BOS_ID, *token_ids]], np.int32))[0])
        _, nats = lm.token_nll(model, tokenizer, text("dev"), window=16)
        expected = -log_probs[np.arange(len(token_ids)), token_ids]
        np.testing.assert_allclose(nats[:len(token_ids)], expected, atol=1e-4)
        assert report["tokens"] == len(nats)
    finally:
        model.attention.output_kernel.assign(np.zeros(model.attention.output_kernel.shape))


def test_a_reader_without_attention_refuses_the_folder(attentive_folder, tmp_path):
    _, _, folder = attentive_folder
    old = tmp_path / "as-an-old-reader-sees-it"
    shutil.copytree(folder, old)
    data = json.loads((old / "config.json").read_text())
    data["config"] = {k: v for k, v in data["config"].items() if not k.startswith("attention")}
    (old / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="could not be loaded"):
        lm.load(old)


@pytest.fixture(scope="module")
def exported(attentive_folder, tmp_path_factory):
    """`(Keras model, tokenizer, SavedModel folder)` of the attentive run with an attending
    block (a warm start's block adds nothing; trained models attend)."""
    from nlpapps.export.language_model_folder import export_language_model_folder

    model, tokenizer, folder = attentive_folder
    root = tmp_path_factory.mktemp("attending")
    shutil.copytree(folder, root / "run")
    attend(model)
    lm.training.save_weights(model, root / "run" / lm.WEIGHTS_FILE)
    model.attention.output_kernel.assign(np.zeros(model.attention.output_kernel.shape))
    export_language_model_folder(root / "run", root / "exported")
    return lm.load(root / "run")[0], tokenizer, root / "exported"


def greedy_ids(loaded, prompt, count):
    outputs = loaded.signatures["generate"](
        inputs=tf.constant([prompt]), max_new_tokens=count, temperature=0.0, top_k=0,
        top_p=1.0, seed=0)
    return outputs["ids"].numpy()[0].tolist()


def test_the_saved_model_scores_and_generates_as_the_keras_model(exported):
    model, tokenizer, folder = exported
    loaded = tf.saved_model.load(str(folder))
    tokens = np.asarray([[BOS_ID, *lm.line_start_ids(tokenizer, text("dev"))[:30]]], np.int32)
    width = loaded.score.concrete_functions[0].structured_input_signature[0][1].shape[-1]
    assert width == 2 * 2 * 32 + 48 * (32 + 16) + 48  # LSTM h, c; memory of [h; E y]
    states = tf.zeros([1, width])
    first = loaded.score(tokens=tokens[:, :16], states=states)
    second = loaded.score(tokens=tokens[:, 15:], states=first["states"])
    log_probs = np.concatenate([first["log_probs"][0], second["log_probs"][0]])
    expected = log_softmax(model(tokens[:, :-1])[0])[np.arange(30), tokens[0, 1:]]
    np.testing.assert_allclose(log_probs, expected, atol=1e-4)
    assert len(greedy_ids(loaded, "ROMEO:", 5)) == 5


@pytest.mark.parametrize("stepwise", [False, True])
def test_the_litert_file_carries_the_memory_as_a_buffer_and_agrees(exported, stepwise):
    """The memory (48 states and their validity) is part of the file's fixed-size states; the
    file runs in LiteRT with builtins and the tokenizer ops only, greedy text as the
    SavedModel's and log-probabilities as the Keras model's, past the memory's length."""
    from nlpapps.export.tflite import TFTEXT_OPS, audit_ops, default_output, export_tflite
    from nlpapps.serving.litert_language_model import SCORE_WINDOW, LiteRTLanguageModel

    model, tokenizer, folder = exported
    path = export_tflite(folder, default_output(folder, "none", stepwise), "none", None,
                         stepwise)
    assert TFTEXT_OPS <= audit_ops(path.read_bytes())
    lite = LiteRTLanguageModel(path)
    loaded = tf.saved_model.load(str(folder))
    for prompt in ("ROMEO:\n", "", "Who's there? Nay, answer me"):
        assert lite.generate(prompt, 60)[1] == greedy_ids(loaded, prompt, 60), prompt
    sample = text("test")[:2000]
    ids = lm.line_start_ids(tokenizer, sample)
    assert len(ids) > 2 * 48
    # The file's step-wise signatures read one token a call: the attention then sees the
    # memory and the token itself, as `evaluate` does with windows of one.
    keras_ids, keras_nats = lm.token_nll(model, tokenizer, sample,
                                         window=1 if stepwise else SCORE_WINDOW)
    assert list(keras_ids) == list(ids)
    assert -lite.log_prob(ids) == pytest.approx(keras_nats.sum(), rel=1e-5)


def test_the_litert_file_keeps_the_memory_in_blocks_and_draws_as_step_by_step(
        exported, tmp_path, monkeypatch):
    """The one-call file writes the memory every `ATTENTION_BLOCK` steps and reads its filled
    part from a multiple of `MEMORY_GRANULE` (here 8 and 16, below this model's memory of
    48): over 150 tokens the memory fills, wraps and its read part grows, and the greedy
    tokens are those of the SavedModel's `generate`, which steps one token at a time over
    the whole memory; sampled, LiteRT draws what TensorFlow draws with the same signature."""
    import nlpapps.serving.language_model_module as module
    from nlpapps.export.language_model_folder import export_language_model_folder
    from nlpapps.export.tflite import default_output, export_tflite
    from nlpapps.serving.litert_language_model import LiteRTLanguageModel, sampling_inputs

    monkeypatch.setattr(module, "ATTENTION_BLOCK", 8)
    monkeypatch.setattr(module, "MEMORY_GRANULE", 16)
    _, _, folder = exported
    blocks = tmp_path / "blocks"
    export_language_model_folder(folder, blocks)
    lite = LiteRTLanguageModel(export_tflite(blocks, default_output(blocks, "none"), "none"))
    step_by_step = tf.saved_model.load(str(folder))
    in_blocks = tf.saved_model.load(str(blocks)).signatures["generate_one"]
    for prompt in ("ROMEO:\n", "", text("dev")[:400]):
        assert lite.generate(prompt, 150)[1] == greedy_ids(step_by_step, prompt, 150), prompt
        options = sampling_inputs(150, temperature=1.0, seed=3)
        expected = in_blocks(inputs=tf.constant([prompt]),
                             **{name: tf.constant(value) for name, value in options.items()})
        text_out, drawn = lite.generate(prompt, 150, temperature=1.0, seed=3)
        assert drawn == expected["ids"].numpy()[0].tolist(), prompt
        assert text_out.encode() == expected["text"].numpy()[0]
        assert lite.continuation(prompt, 150, temperature=1.0, seed=3) == \
            text_out[len(expected["prompt"].numpy()[0].decode()):]


def test_the_attention_figure_reads_a_passage_causally(attentive_folder, tmp_path):
    from nlpapps.apps.language_model_attention_figure import (line_positions,
                                                              passage_attention,
                                                              plot_passage_attention)

    model, tokenizer, _ = attentive_folder
    passage = "BERNARDO:\nWho?\n\nFRANCISCO:\nNay.\n\nBERNARDO:\nLong"
    attention = passage_attention(model, tokenizer, passage)
    weights = attention.weights
    assert weights.shape == (len(attention.pieces),) * 2
    np.testing.assert_array_equal(np.triu(weights, 1), 0)  # nothing after a position
    np.testing.assert_allclose(weights[1:].sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(weights[0], 0)  # bos: no position before it gives a key
    assert "".join(attention.pieces[1:]).replace("\u2581", " ") == passage
    rows = line_positions(attention, "BERNARDO:")
    assert rows[0] > line_positions(attention, "BERNARDO:", occurrence=0)[-1]
    assert attention.pieces[rows[0]] == "\n"
    plot_passage_attention(attention, rows, tmp_path / "attention.png", columns=6)
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="does not begin a line"):
        line_positions(attention, "HAMLET:")
    with pytest.raises(ValueError, match="memory holds 48"):
        passage_attention(model, tokenizer, passage * 8)


def test_the_block_reads_the_embedding_of_each_token_read():
    """What the block remembers is LN([h; E y]): the state beside the token's embedding, so
    a value carries the token itself (checked against LayerNormalization's equation)."""
    model = make_model()
    tokens = ids(5)
    embedded = np.asarray(model.embedding(tokens))
    outputs, _ = model.rnn(embedded)
    _, states = model(tokens, return_state=True)
    memory, valid = (np.asarray(s) for s in states[-1])
    joined = np.concatenate([np.asarray(outputs), embedded], axis=-1)[:, -MEMORY:]
    gamma, beta = (w.numpy() for w in model.attention_norm.weights)
    mean, var = joined.mean(-1, keepdims=True), joined.var(-1, keepdims=True)
    expected = (joined - mean) / np.sqrt(var + model.attention_norm.epsilon) * gamma + beta
    assert valid.sum(axis=1).tolist() == [5, 5]
    np.testing.assert_allclose(memory[:, -5:], expected, atol=1e-5)
