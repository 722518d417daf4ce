"""Tests for nlpapps.apps.translator: training on the fixture pairs, resuming from the
checkpoint, the saved files, dev BLEU, oversampling, and in-memory translation."""

import json
import shutil

import numpy as np
import pytest

from nlpapps.apps import translator
from nlpapps.apps.translator import DevBleu, Translator, TranslatorConfig, oversampled
from nlpapps.tokenizer import Tokenizer

SENTENCES = ["We all make mistakes.", "She assured me that she was OK.", "Where is the station?",
             "Tom is reading a book.", "Save the file."]


def test_training_lowers_the_loss(trained_translator):
    result, _ = trained_translator
    losses = result.model.history.history["loss"]
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.2
    assert int(result.model.optimizer.iterations.numpy()) == 4 * 30


def test_training_writes_a_folder_that_reloads(trained_translator, make_config):
    result, out_dir = trained_translator
    assert json.loads((out_dir / "config.json").read_text())["kind"] == "translator"
    assert TranslatorConfig.load(out_dir) == make_config()
    metadata = json.loads((out_dir / "checkpoint" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 4

    tokenizer = Tokenizer.load(out_dir / translator.TOKENIZER_FILE)
    assert tokenizer.to_bytes() == result.tokenizer.to_bytes()
    reloaded = Translator.create(TranslatorConfig.load(out_dir), tokenizer)
    reloaded.model.load_weights(out_dir / translator.WEIGHTS_FILE)
    for weight, expected in zip(reloaded.model.weights, result.model.weights):
        np.testing.assert_array_equal(np.asarray(weight), np.asarray(expected))
    assert reloaded.translate(SENTENCES) == result.translate(SENTENCES)


def test_translate_gives_one_output_per_input_in_order(trained_translator):
    result, _ = trained_translator
    texts = ["", *SENTENCES[:3], "   ", "Grüße aus Köln 😀", SENTENCES[3], ""]
    outputs = result.translate(texts)
    assert len(outputs) == len(texts)
    assert [i for i, text in enumerate(outputs) if not text] == [0, 4, 7]
    # The tiny model already tells its inputs apart.
    assert len(set(outputs) - {""}) > 2
    # Translating the texts in the opposite order gives the same translations, reversed.
    assert result.translate(texts[::-1]) == outputs[::-1]
    # Several batches: every input still gets exactly one output, empty ones "".
    batched = result.translate(texts, batch_size=2)
    assert len(batched) == len(texts)
    assert [i for i, text in enumerate(batched) if not text] == [0, 4, 7]
    assert result.translate([]) == []


@pytest.mark.slow
def test_training_resumes_from_the_last_epoch(trained_translator, en_de_split, make_config,
                                              tmp_path):
    first, out_dir = trained_translator
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(out_dir, resumed_dir)
    train, dev = en_de_split

    result = translator.train(make_config(epochs=6), train, dev, resumed_dir)

    history = result.model.history
    assert history.epoch == [4, 5]  # only the two epochs the first run did not do
    # The optimizer's step count, saved with the weights, goes on from the first run's.
    assert int(result.model.optimizer.iterations.numpy()) == 6 * 30
    # Training goes on from the trained weights, not from a fresh start.
    first_losses = first.model.history.history["loss"]
    resumed_losses = history.history["loss"]
    assert resumed_losses[0] < first_losses[0] - 0.2
    assert abs(resumed_losses[0] - first_losses[-1]) < 0.3
    metadata = json.loads((resumed_dir / "checkpoint" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 6
    assert TranslatorConfig.load(resumed_dir).epochs == 6
    assert Tokenizer.load(resumed_dir / translator.TOKENIZER_FILE).to_bytes() == \
        first.tokenizer.to_bytes()
    # A run of another architecture, or of another app, is refused before anything is written.
    config_bytes = (resumed_dir / "config.json").read_bytes()
    with pytest.raises(ValueError, match="units 32 -> 48"):
        translator.train(make_config(units=48, epochs=7), train, dev, resumed_dir)
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "config.json").write_text('{"kind": "language_model", "config": {}}')
    with pytest.raises(ValueError, match="holds a language model, not a translator"):
        translator.train(make_config(), train, dev, tmp_path / "lm")
    assert (resumed_dir / "config.json").read_bytes() == config_bytes


def test_nbest_scores_are_sorted(saved_translator):
    translations = saved_translator.translate(SENTENCES, beam_size=4)
    assert len(translations) == len(SENTENCES)
    for translation in translations:
        assert len(translation.outputs) == len(translation.scores) == 4
        assert translation.scores == sorted(translation.scores, reverse=True)
        assert all(np.isfinite(translation.scores))


class _Translator:
    """Gives the next of a list of hypotheses lists."""

    def __init__(self, hypotheses):
        self.hypotheses = list(hypotheses)

    def translate(self, texts):
        return self.hypotheses.pop(0)


class _Model:
    def __init__(self):
        self.stop_training, self.saved = False, []

    def save_weights(self, path):
        self.saved.append(path.name)
        path.write_bytes(b"weights")


def test_dev_bleu_keeps_the_best_and_stops_after_patience_across_runs(tmp_path):
    pairs = [("one", "ein Haus steht dort"), ("two", "zwei Katzen sind hier")]
    good, bad = [t for _, t in pairs], ["nichts", "gar nichts"]

    model = _Model()
    callback = DevBleu(_Translator([good, bad]), pairs, tmp_path, every=2, patience=2)
    callback.set_model(model)
    callback.on_epoch_end(0)  # not an evaluation epoch
    assert callback.staged == {} and callback.state["history"] == []
    callback.on_epoch_end(1)
    # The best weights and the record are staged for the epoch's checkpoint to commit.
    assert set(callback.staged) == {"best.weights.h5", "dev_bleu.json"}
    assert not (tmp_path / "best.weights.h5").exists()
    callback.staged = {}  # committed
    callback.on_epoch_end(3)
    assert not model.stop_training and set(callback.staged) == {"dev_bleu.json"}

    # A resumed run, given the committed state, picks up the count of evaluations without
    # improvement.
    model = _Model()
    resumed = DevBleu(_Translator([bad]), pairs, tmp_path, every=2, patience=2)
    resumed.state = json.loads(json.dumps(callback.state))
    resumed.set_model(model)
    resumed.on_epoch_end(5)
    assert model.stop_training and "best.weights.h5" not in resumed.staged
    assert resumed.state["best"] == pytest.approx(100.0)
    assert [entry["epoch"] for entry in resumed.state["history"]] == [2, 4, 6]
    staged = json.loads((tmp_path / resumed.staged["dev_bleu.json"]).read_text())
    assert staged == resumed.state


def test_oversampled():
    pairs = [("a", "A", "ding"), ("b", "B", "wesnoth"), ("c", "C", "gettext")]
    assert oversampled(pairs, "") == [("a", "A"), ("b", "B"), ("c", "C")]
    assert oversampled(pairs, "ding=2, gettext=3") == \
        [("a", "A"), ("a", "A"), ("b", "B"), ("c", "C"), ("c", "C"), ("c", "C")]
    assert oversampled(pairs, "wesnoth=0") == [("a", "A"), ("c", "C")]


def test_config_load_checks_the_kind(tmp_path, make_config):
    config = make_config(cell="gru", attention="luong")
    config.save(tmp_path)
    assert TranslatorConfig.load(tmp_path) == config
    data = json.loads((tmp_path / "config.json").read_text())
    data["config"]["field_of_a_newer_version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert TranslatorConfig.load(tmp_path) == config
    (tmp_path / "config.json").write_text(json.dumps({**data, "kind": "language_model"}))
    with pytest.raises(ValueError, match="holds a language model, not a translator"):
        TranslatorConfig.load(tmp_path)
