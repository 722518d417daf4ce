"""The weight options of `cell.py` that Keras's recurrent layers have (regularizers,
constraints, a cell's own dropout) against Keras holding the same weights, and configs that
pass between Keras's layers and ours."""

import keras
import numpy as np
import pytest

from nlpapps.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN

from helpers import assert_all_close, make_sequences

BATCH, TIME, FEATURES, UNITS = 3, 6, 5, 4
LENGTHS = (6, 4, 2)
PAIRS = [(SimpleRNN, keras.layers.SimpleRNN, {}), (LSTM, keras.layers.LSTM, {}),
         (GRU, keras.layers.GRU, {"reset_after": False})]
OPTIONS = {
    "kernel_regularizer": "l2", "recurrent_regularizer": keras.regularizers.L1(0.02),
    "bias_regularizer": "l1", "activity_regularizer": keras.regularizers.L2(0.03),
    "kernel_constraint": keras.constraints.MaxNorm(0.5), "recurrent_constraint": "unit_norm",
    "bias_constraint": "non_neg", "unroll": True, "return_sequences": True,
}


def pair_ids(pair):
    return pair[0].__name__


@pytest.mark.parametrize("pair", PAIRS, ids=pair_ids)
def test_regularizers_and_constraints_match_keras(pair):
    ours_class, keras_class, kind = pair
    options = dict(OPTIONS)
    if ours_class is SimpleRNN:
        # keras.layers.SimpleRNN (3.15) drops its activity_regularizer; LSTM and GRU apply it
        # through keras.layers.Layer as ours all do.
        del options["activity_regularizer"]
    keras.utils.set_random_seed(1)
    models = []
    for layer_class in (keras_class, ours_class):
        inputs = keras.Input((TIME, FEATURES))
        model = keras.Model(inputs, layer_class(UNITS, **kind, **options)(inputs))
        model.compile(keras.optimizers.SGD(0.5), "mse")
        models.append(model)
    reference, ours = models
    rng = np.random.default_rng(2)
    ours.set_weights([rng.normal(size=w.shape).astype("float32") for w in ours.weights])
    reference.set_weights(ours.get_weights())
    sequences, _ = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    targets = rng.normal(size=(BATCH, TIME, UNITS)).astype("float32")
    ours(sequences)
    reference(sequences)
    assert len(ours.losses) == len(reference.losses) == 3 + ("activity_regularizer" in options)
    np.testing.assert_allclose(sum(ours.losses), sum(reference.losses), rtol=1e-5)
    ours_loss = ours.train_on_batch(sequences, targets)
    reference_loss = reference.train_on_batch(sequences, targets)
    np.testing.assert_allclose(ours_loss, reference_loss, rtol=1e-5)
    assert_all_close(ours.get_weights(), reference.get_weights(), atol=1e-5)
    kernel, recurrent, bias = ours.get_weights()
    assert bias.min() >= 0  # the constraints held
    np.testing.assert_allclose(np.linalg.norm(recurrent, axis=0), 1, atol=1e-5)


@pytest.mark.parametrize("pair", PAIRS, ids=pair_ids)
def test_configs_pass_between_keras_and_ours(pair, tmp_path):
    ours_class, keras_class, kind = pair
    config = keras_class(UNITS, **kind, **OPTIONS, stateful=True, dropout=0.25).get_config()
    ours = ours_class.from_config(config)
    ours_config = ours.get_config()
    for key, value in config.items():
        assert ours_config[key] == value, key
    assert keras_class.from_config(ours_config).get_config() == config
    # Ours round-trips through a .keras file with the same options.
    sequences, mask = make_sequences(BATCH, TIME, FEATURES, LENGTHS)
    inputs = keras.Input((TIME, FEATURES), batch_size=BATCH)
    model = keras.Model(inputs, ours(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.layers[-1].get_config() == ours_config
    assert_all_close(loaded(sequences), model(sequences))
    assert_all_close(loaded.losses, model.losses)


@pytest.mark.parametrize("cell_class", [LSTMCell, GRUCell], ids=lambda c: c.__name__)
def test_a_cell_on_its_own_drops_only_in_training(cell_class):
    cell = cell_class(UNITS, dropout=0.5, recurrent_dropout=0.5, seed=3)
    plain = cell_class(UNITS)
    cell.build((None, FEATURES))
    plain.build((None, FEATURES))
    plain.set_weights(cell.get_weights())
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32")
              for _ in cell.state_size]
    assert_all_close(cell(inputs, states), plain(inputs, states), atol=0)
    trained = np.asarray(cell(inputs, states, training=True)[0])
    assert np.abs(trained - np.asarray(plain(inputs, states)[0])).max() > 1e-3
    assert cell.get_config()["dropout"] == 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, "dropout=1.0"), ({"recurrent_dropout": -0.5}, "recurrent_dropout=-0.5"),
    ({"units": 0}, "units=0"),
])
def test_a_cell_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRUCell(**{"units": UNITS, **kwargs})
