"""Fixtures shared by the app, export and CLI tests: the en-de pairs and one tiny translator,
trained and exported once per session."""

from pathlib import Path

import pytest

from nlpapps.corpora.en_de import read_pairs_tsv

FIXTURES = Path(__file__).parent / "fixtures"
PAIRS_TSV = FIXTURES / "pairs.en-de.tsv"

# Small enough to train in seconds on a CPU, big enough to learn something from 460 pairs.
# A large learning rate gets it past the unigram plateau (loss ~4.2, every translation empty)
# within a hundred steps, so that its translations have words.
TINY = dict(vocab_size=200, embedding_dim=32, units=32, attention_units=16, dropout=0.0,
            batch_size=32, learning_rate=5e-2, label_smoothing=0.0, max_length=24,
            epochs=4, steps_per_epoch=30, eval_every=1000, dev_sentences=20, seed=0)


def tiny_config(**changes):
    """A `TranslatorConfig` for tests: TINY with `changes` over it."""
    from nlpapps.apps.translator import TranslatorConfig

    return TranslatorConfig(**{**TINY, **changes})


@pytest.fixture(scope="session")
def make_config():
    """`tiny_config(**changes)`."""
    return tiny_config


@pytest.fixture(scope="session")
def en_de_pairs():
    """The 460 fixture pairs as `Pair(english, german, source, origin)`."""
    return read_pairs_tsv(PAIRS_TSV)


def train_split(pairs):
    """`(train_triples, dev_pairs)` as `translator.train` takes them."""
    train = [(p.english, p.german, p.source) for p in pairs[:-40]]
    dev = [(p.english, p.german) for p in pairs[-40:]]
    return train, dev


@pytest.fixture(scope="session")
def en_de_split(en_de_pairs):
    """`(train_triples, dev_pairs)` of the fixture pairs, the last 40 for dev."""
    return train_split(en_de_pairs)


@pytest.fixture(scope="session")
def trained_translator(tmp_path_factory, en_de_split):
    """`(translator, out_dir)`: a tiny translator trained for TINY's 4 epochs of 30 steps."""
    from nlpapps.apps import translator

    out_dir = tmp_path_factory.mktemp("translator")
    train, dev = en_de_split
    result = translator.train(tiny_config(), train, dev, out_dir)
    return result, out_dir


@pytest.fixture(scope="session")
def exported_translator(tmp_path_factory, trained_translator):
    """The folder of `trained_translator` exported as the CLI reads it: SavedModel,
    config.json and tokenizer.model."""
    from nlpapps.export.saved_model_writer import write_savedmodel
    from nlpapps.serving.translator_module import TranslatorModule

    result, out_dir = trained_translator
    folder = tmp_path_factory.mktemp("exported") / "translator"
    write_savedmodel(TranslatorModule(result.model, result.tokenizer), folder, {
        "config.json": (out_dir / "config.json").read_bytes(),
        "tokenizer.model": result.tokenizer.to_bytes(),
    })
    return folder


@pytest.fixture(scope="session")
def saved_translator(exported_translator):
    """The exported translator loaded in this process (`SavedTranslator`)."""
    from nlpapps.apps.translate import SavedTranslator

    return SavedTranslator(exported_translator)

