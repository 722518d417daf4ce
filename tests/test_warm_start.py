"""Tests for `training.warm_start` and `init_from`: a run started from a trained or exported
folder begins with exactly its weights and keeps its tokenizer."""

import numpy as np
import pytest

from nlpapps import training
from nlpapps.apps import translator
from nlpapps.apps.model_folder_reader import ModelError
from nlpapps.export.translator_folder import export_translator_folder


def same_weights(a, b) -> bool:
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights))


@pytest.fixture(scope="module")
def exported_with_weights(trained_translator, tmp_path_factory):
    _, out_dir = trained_translator
    folder = tmp_path_factory.mktemp("exported") / "translator"
    export_translator_folder(out_dir, folder)
    return folder


def test_exported_folder_carries_the_weights(trained_translator, exported_with_weights,
                                             make_config):
    result, _ = trained_translator
    fresh = translator.Translator.create(make_config(), result.tokenizer)
    assert not same_weights(fresh.model, result.model)
    training.warm_start(fresh.model, exported_with_weights)
    assert same_weights(fresh.model, result.model)
    sentences = ["Where is the station?", "I love you."]
    assert fresh.translate(sentences) == result.translate(sentences)


def test_training_from_a_folder_keeps_its_tokenizer_and_starts_from_its_weights(
        trained_translator, exported_with_weights, en_de_split, make_config, tmp_path):
    result, _ = trained_translator
    train, dev = en_de_split
    config = make_config(init_from=str(exported_with_weights), epochs=1, steps_per_epoch=1,
                         learning_rate=1e-9, decay_steps=10)
    tuned = translator.train(config, train, dev, tmp_path / "tuned")
    assert (tmp_path / "tuned" / "tokenizer.model").read_bytes() == \
        result.tokenizer.to_bytes()
    # One step at a vanishing learning rate: the weights are the start's, nearly.
    for a, b in zip(tuned.model.weights, result.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_another_architecture_is_refused_in_one_line(trained_translator, make_config):
    result, out_dir = trained_translator
    wider = translator.Translator.create(make_config(units=48), result.tokenizer)
    with pytest.raises(ModelError, match="another architecture") as error:
        training.warm_start(wider.model, out_dir)
    assert "\n" not in str(error.value)


def test_a_folder_without_weights_is_refused(tmp_path, trained_translator, make_config,
                                             en_de_split):
    result, _ = trained_translator
    model = translator.Translator.create(make_config(), result.tokenizer).model
    with pytest.raises(ModelError, match="has no weights"):
        training.warm_start(model, tmp_path)
    train, dev = en_de_split
    with pytest.raises(ModelError, match="does not exist"):
        translator.train(make_config(init_from=str(tmp_path / "missing")), train, dev,
                         tmp_path / "run")


def test_a_resumed_run_goes_on_from_its_checkpoint_not_the_start(
        trained_translator, exported_with_weights, en_de_split, make_config, tmp_path):
    train, dev = en_de_split
    run = tmp_path / "run"
    config = make_config(init_from=str(exported_with_weights), epochs=1, steps_per_epoch=2)
    first = translator.train(config, train, dev, run)
    weights = [w.numpy().copy() for w in first.model.weights]
    # The start folder is gone: a resumed run does not need it, its checkpoint has all.
    resumed = translator.train(make_config(init_from=str(tmp_path / "gone"), epochs=1,
                                           steps_per_epoch=2), train, dev, run)
    for a, b in zip(resumed.model.weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)
