"""A finished model folder holds each weight once, in its SavedModel's variables:
`folder_weights.load_weights` reads them into a Keras model by attribute path, exactly, and
refuses what does not fit with one ModelError line."""

import sys
from pathlib import Path

import numpy as np
import pytest

from nlpapps import folder_weights
from nlpapps.apps import language_model as lm
from nlpapps.errors import ModelError
from nlpapps.export.language_model_folder import export_language_model_folder

sys.path.insert(0, str(Path(__file__).parent / "apps"))
from tiny_language_model import tiny_config, train_tiny  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny training folder (its model.weights.h5, and its SavedModel with the optimizer's
    state) and the folder exported from it (the SavedModel alone)."""
    run = tmp_path_factory.mktemp("lm") / "run"
    model, tokenizer = train_tiny(run, epochs=1, steps_per_epoch=3)
    from nlpapps.commands.language_model_commands import export_language_model

    export_language_model(model, tokenizer, tiny_config(epochs=1, steps_per_epoch=3), run, None)
    exported = tmp_path_factory.mktemp("exported") / "lm"
    export_language_model_folder(run, exported)
    return run, exported


def weights(model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.weights]


def test_the_exported_folder_holds_each_weight_once_and_loads_exactly(folders):
    run, exported = folders
    assert not (exported / folder_weights.WEIGHTS_FILE).exists()
    expected = lm.fresh_model(run)
    expected.load_weights(run / folder_weights.WEIGHTS_FILE)  # Keras's own file
    loaded = lm.fresh_model(exported)
    assert not all(np.array_equal(a, b) for a, b in zip(weights(loaded), weights(expected)))
    folder_weights.load_weights(loaded, exported)
    for a, b, w in zip(weights(loaded), weights(expected), loaded.weights):
        np.testing.assert_array_equal(a, b, err_msg=w.path)
    # The values are keyed by the attribute path that reaches each weight.
    values = folder_weights.saved_variables(exported)
    assert len(values) == len(loaded.weights)
    np.testing.assert_array_equal(values["rnn/layers/1/cell/recurrent_kernel"],
                                  loaded.rnn.layers[1].cell.recurrent_kernel.numpy())


def test_a_training_folders_savedmodel_holds_no_optimizer_state(folders, tmp_path):
    """The SavedModel written into a training folder keeps the weights of an uncompiled copy:
    its variables load alone (without the folder's weights file) and equal that file's."""
    import shutil

    import tensorflow as tf

    run, _ = folders
    keys = tf.train.load_checkpoint(str(run / "variables" / "variables")) \
        .get_variable_to_shape_map()
    assert not any("optimizer" in key for key in keys)
    alone = tmp_path / "alone"
    shutil.copytree(run, alone, ignore=shutil.ignore_patterns(folder_weights.WEIGHTS_FILE))
    from_variables = lm.fresh_model(alone)
    folder_weights.load_weights(from_variables, alone)
    from_file = lm.fresh_model(run)
    from_file.load_weights(run / folder_weights.WEIGHTS_FILE)
    for a, b in zip(weights(from_variables), weights(from_file)):
        np.testing.assert_array_equal(a, b)


def test_another_architecture_is_refused_with_one_line(folders):
    _, exported = folders
    wider = lm.create_model(tiny_config(units=48), lm.fresh_model(exported).vocab_size)
    with pytest.raises(ModelError, match="another architecture") as error:
        folder_weights.load_weights(wider, exported)
    assert "\n" not in str(error.value) and "is (32, 16) there, (48, 16) here" in str(error.value)
    deeper = lm.create_model(tiny_config(layers=3), wider.vocab_size)
    with pytest.raises(ModelError, match="no value for .*lstm_2"):
        folder_weights.load_weights(deeper, exported)
    # Growing a stack keeps the new layer's fresh weights and loads every other.
    fresh = weights(deeper)
    folder_weights.load_weights(deeper, exported, grow=True)
    reference = lm.fresh_model(exported)
    folder_weights.load_weights(reference, exported)
    np.testing.assert_array_equal(deeper.rnn.layers[1].cell.kernel.numpy(),
                                  reference.rnn.layers[1].cell.kernel.numpy())
    third = [i for i, w in enumerate(deeper.weights) if "lstm_2" in w.path]
    assert third and all(np.array_equal(weights(deeper)[i], fresh[i]) for i in third)
    shallower = lm.create_model(tiny_config(layers=1), wider.vocab_size)
    with pytest.raises(ModelError, match="no weight at rnn/layers/1"):
        folder_weights.load_weights(shallower, exported)


def test_damaged_or_missing_variables_give_one_line(folders, tmp_path):
    _, exported = folders
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    data = next((copy / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(ModelError, match="could not be read") as error:
        folder_weights.load_weights(lm.fresh_model(exported), copy)
    assert "\n" not in str(error.value)
    shutil.rmtree(copy / "variables")
    assert not folder_weights.has_weights(copy)
    with pytest.raises(ModelError, match="has no weights"):
        folder_weights.load_weights(lm.fresh_model(exported), copy)
