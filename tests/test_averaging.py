"""Tests for checkpoint averaging (`nlpapps average`), the epoch weights a run keeps for it, and
growing a language model's stack from a shallower trained one (`training.warm_start(grow=True)`).
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from nlpapps import averaging, cli, folder_weights, training
from nlpapps.apps import language_model as lm
from nlpapps.apps import translate, translator
from nlpapps.apps.model_folder_reader import ModelError

SHAKESPEARE = Path(__file__).parent / "fixtures" / "shakespeare"
TINY_LM = dict(vocab_size=200, embedding_dim=16, units=32, layers=1, dropout=0.0, seq_len=32,
               batch_size=16, learning_rate=1e-2, epochs=3, steps_per_epoch=10, patience=0)


def weights_of(model, path) -> list[np.ndarray]:
    """The weights of a weights file, or of a model folder (its SavedModel's variables)."""
    if Path(path).is_dir():
        folder_weights.load_weights(model, path)
    else:
        model.load_weights(path)
    return [v.numpy().copy() for v in model.weights]


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("lm")
    text = (SHAKESPEARE / "train.txt").read_text(encoding="utf-8")
    dev = (SHAKESPEARE / "dev.txt").read_text(encoding="utf-8")
    model, tokenizer = lm.train(lm.LanguageModelConfig(**TINY_LM), text, dev, out_dir)
    return model, tokenizer, out_dir


def test_a_run_keeps_each_epochs_weights(trained_translator):
    _, out_dir = trained_translator
    kept = sorted(p.name for p in (out_dir / training.EPOCHS_DIR).iterdir())
    assert kept == [f"epoch-{n:04d}.weights.h5" for n in (1, 2, 3, 4)]  # TINY trains 4 epochs


def test_only_the_last_epochs_are_kept(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    keep = training.KeepEpochWeights(tmp_path, keep=2)
    keep.set_model(model)
    for epoch in range(5):
        keep.on_epoch_end(epoch)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch-0004.weights.h5", "epoch-0005.weights.h5"]


def test_averaged_translator_holds_the_mean_of_the_last_epochs(trained_translator, make_config,
                                                               tmp_path):
    result, out_dir = trained_translator
    folder = tmp_path / "averaged"
    used = averaging.average_run(out_dir, folder, last=3)
    assert [p.name for p in used] == [f"epoch-{n:04d}.weights.h5" for n in (2, 3, 4)]
    probe = translator.Translator.create(make_config(), result.tokenizer).model
    expected = [np.mean(values, axis=0)
                for values in zip(*(weights_of(probe, p) for p in used))]
    averaged = weights_of(probe, folder)
    for a, e in zip(averaged, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)
    assert not np.allclose(averaged[0], weights_of(probe, used[-1])[0])
    # The folder serves like any exported translator.
    outputs = translate.SavedTranslator(folder).translate([b"Where is the station?"], 1)
    assert len(outputs) == 1 and isinstance(outputs[0].outputs[0], str)


def test_averaging_one_epoch_gives_that_epoch(trained_lm, tmp_path):
    _, tokenizer, out_dir = trained_lm
    folder = tmp_path / "last"
    used = averaging.average_run(out_dir, folder, last=1)
    probe = lm.create_model(lm.LanguageModelConfig(**TINY_LM), tokenizer.vocab_size)
    for a, b in zip(weights_of(probe, folder), weights_of(probe, used[0])):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert lm.load(folder)[2] == lm.LanguageModelConfig(**TINY_LM)


def test_average_command_and_its_errors(trained_lm, tmp_path, capsys):
    _, _, out_dir = trained_lm
    assert cli.main(["-v", "average", "--run", str(out_dir), "--last", "2",
                     "--output", str(tmp_path / "avg")]) == 0
    assert "epoch-0002, epoch-0003" in capsys.readouterr().err
    assert cli.main(["-v", "average", "--run", str(tmp_path / "missing"),
                     "--output", str(tmp_path / "x")]) == 2
    assert cli.main(["-v", "average", "--run", str(tmp_path / "avg"),
                     "--output", str(tmp_path / "y")]) == 2  # an exported folder keeps no epochs
    assert cli.main(["-v", "average", "--run", str(out_dir), "--last", "0",
                     "--output", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "does not exist" in err[0] and "keeps no epoch weights" in err[1]


def test_a_deeper_stack_grows_from_a_shallower_model(trained_lm):
    model, tokenizer, out_dir = trained_lm
    deeper = lm.create_model(lm.LanguageModelConfig(**{**TINY_LM, "layers": 2}),
                             tokenizer.vocab_size)
    fresh_top = [v.numpy().copy() for v in deeper.rnn.layers[1].weights]
    with pytest.raises(ModelError, match="another architecture"):
        training.warm_start(deeper, out_dir)
    training.warm_start(deeper, out_dir, grow=True)
    np.testing.assert_array_equal(deeper.embedding.embeddings.numpy(),
                                  model.embedding.embeddings.numpy())
    for a, b in zip(deeper.rnn.layers[0].weights, model.rnn.layers[0].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(deeper.projection.weights, model.projection.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(deeper.rnn.layers[1].weights, fresh_top):
        np.testing.assert_array_equal(a.numpy(), b)  # the new layer keeps its initialization


def test_training_a_deeper_model_from_a_shallower_one(trained_lm, tmp_path):
    model, _, out_dir = trained_lm
    config = lm.LanguageModelConfig(**{**TINY_LM, "layers": 2, "epochs": 1, "steps_per_epoch": 1,
                                       "learning_rate": 1e-9, "init_from": str(out_dir)})
    text = (SHAKESPEARE / "train.txt").read_text(encoding="utf-8")
    grown, _ = lm.train(config, text, "", tmp_path / "grown")
    np.testing.assert_allclose(grown.embedding.embeddings.numpy(),
                               model.embedding.embeddings.numpy(), atol=1e-6)
    assert len(grown.rnn.layers) == 2
