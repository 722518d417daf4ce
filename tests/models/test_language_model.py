"""Tests for nlpapps.models.language_model_network: windows with carried states, one-step decoding,
masking, tying, and numbers against Keras's built-in layers."""

import keras
import numpy as np
import pytest

from nlpapps.models.language_model_network import LanguageModel

VOCAB, BATCH, TIME = 40, 3, 7


def make_model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    options = dict(vocab_size=VOCAB, embedding_dim=6, units=8, num_layers=2, dropout=0.0)
    model = LanguageModel(**{**options, **kwargs})
    model.build()
    return model


def token_ids(seed=0, shape=(BATCH, TIME)):
    return np.random.default_rng(seed).integers(0, VOCAB, size=shape).astype("int32")


def as_numpy(states):
    return [[np.asarray(s) for s in layer] for layer in states]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_logits_shape_and_states_per_layer(cell):
    model = make_model(cell=cell)
    logits, states = model(token_ids(), return_state=True)
    assert logits.shape == (BATCH, TIME, VOCAB)
    per_layer = 2 if cell == "lstm" else 1
    assert [[s.shape for s in layer] for layer in states] == [[(BATCH, 8)] * per_layer] * 2


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_windows_with_carried_states_equal_one_pass(cell):
    model = make_model(cell=cell)
    ids = token_ids(shape=(BATCH, 11))
    whole, whole_states = model(ids, return_state=True)
    states, pieces = None, []
    for start, stop in ((0, 4), (4, 5), (5, 11)):
        logits, states = model(ids[:, start:stop], initial_state=states, return_state=True)
        pieces.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-6)
    for got, want in zip(as_numpy(states), as_numpy(whole_states)):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(cell="lstm"), dict(cell="gru"),
                                    dict(embedding_dim=8),  # residual around the first layer
                                    dict(tie_embeddings=False)])
def test_step_by_step_equals_the_sequence_call(kwargs):
    model = make_model(**kwargs)
    ids = token_ids()
    expected, expected_states = model(ids, return_state=True)
    states = model.initial_states(BATCH)
    steps = []
    for t in range(TIME):
        logits, states = model.step(ids[:, t], states)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), expected, atol=1e-6)
    for got, want in zip(as_numpy(states), as_numpy(expected_states)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_masked_positions_leave_the_states_as_they_were():
    model = make_model()
    ids = token_ids()
    lengths = (7, 4, 1)
    mask = np.arange(TIME)[None, :] < np.array(lengths)[:, None]
    padded = np.where(mask, ids, 0)
    states = as_numpy(model.advance(padded, mask=mask))
    for row, length in enumerate(lengths):
        alone = as_numpy(model.advance(ids[row:row + 1, :length]))
        for got, want in zip(states, alone):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g[row], w[0], atol=1e-6)


def test_one_layer_lm_matches_keras_builtin_layers():
    """Embedding -> LSTM -> projection -> logits tied to the embedding, against Keras's own
    Embedding, LSTM and Dense with the same weights."""
    model = make_model(num_layers=1, embedding_dim=6, units=8)
    embedding = keras.layers.Embedding(VOCAB, 6)
    lstm = keras.layers.LSTM(8, return_sequences=True)
    projection = keras.layers.Dense(6)
    ids = token_ids()
    hidden = lstm(embedding(ids))
    projection(hidden)
    embedding.set_weights([model.embedding.embeddings.numpy()])
    lstm.set_weights(model.rnn.layers[0].get_weights())
    projection.set_weights(model.projection.get_weights())
    table = np.asarray(model.embedding.embeddings)
    expected = np.asarray(projection(lstm(embedding(ids)))) @ table.T + \
        np.asarray(model.output_bias)
    np.testing.assert_allclose(model(ids), expected, atol=1e-5)


def test_tying_shares_the_embedding_and_projects_only_when_widths_differ():
    tied = make_model(embedding_dim=6, units=8)
    same_width = make_model(embedding_dim=8, units=8)
    untied = make_model(tie_embeddings=False)
    assert tied.projection is not None and tied.output_layer is None
    assert same_width.projection is None
    assert untied.output_layer is not None
    count = lambda model: sum(int(np.prod(w.shape)) for w in model.weights)  # noqa: E731
    # Untied has its own (units, vocab) kernel; tied has the (units, embedding) projection.
    assert count(untied) - count(tied) == 8 * VOCAB - (8 * 6 + 6)


def test_config_round_trip_and_weights_file(tmp_path):
    model = make_model(cell="gru", dropout=0.1)
    clone = LanguageModel.from_config(model.get_config())
    clone.build()
    assert clone.get_config() == model.get_config()
    model.save_weights(tmp_path / "lm.weights.h5")
    clone.load_weights(tmp_path / "lm.weights.h5")
    np.testing.assert_allclose(clone(token_ids()), model(token_ids()), atol=0)


def test_keras_file_round_trip(tmp_path):
    model = make_model()
    model.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    np.testing.assert_allclose(loaded(token_ids()), model(token_ids()), atol=1e-6)


def test_dropout_is_active_in_training_only():
    model = make_model(dropout=0.5)
    ids = token_ids()
    np.testing.assert_allclose(model(ids), model(ids))
    assert not np.allclose(model(ids, training=True), model(ids))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_dropout_is_active_in_training_only(cell):
    model = make_model(cell=cell, recurrent_dropout=0.5)
    plain = make_model(cell=cell)
    plain.set_weights(model.get_weights())
    ids = token_ids()
    np.testing.assert_allclose(model(ids), plain(ids), atol=1e-6)  # off at inference
    assert not np.allclose(model(ids, training=True), plain(ids, training=True), atol=1e-4)
    assert model.rnn.layers[1].recurrent_dropout == 0.5
    assert LanguageModel.from_config(model.get_config()).recurrent_dropout == 0.5


@pytest.mark.parametrize("kwargs, message", [
    (dict(recurrent_dropout=-0.1), "recurrent_dropout"),
    (dict(cell="rnn"), "cell"),
    (dict(units=0), "units"),
    (dict(num_layers=0), "num_layers"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LanguageModel(vocab_size=VOCAB, **kwargs)
