"""A translator's model folder again from its Keras weights: the SavedModel of
`nlpapps.serving.translator_module.TranslatorModule` and the files beside it (the registry's
`export_folder` of the translator)."""

from __future__ import annotations

from pathlib import Path

from nlpapps.export.saved_model_writer import check_output_folder, write_savedmodel
from nlpapps.serving.translator_module import TranslatorModule
from nlpapps.tokenizer import Tokenizer


def export_translator_folder(train_dir: Path, out_dir: Path) -> None:
    """Writes a translator folder (the SavedModel with every signature of `TranslatorModule`,
    config.json and tokenizer.model; the SavedModel's variables hold each weight once) at
    `out_dir` from the Keras weights of a training folder (`nlpapps translate-train --out`) or
    an exported one, e.g. to give an older export the TFLite signatures. Raises ModelError for
    a folder that is not a trained translator, and refuses to replace a folder that is not a
    model folder."""
    from nlpapps import folder_weights
    from nlpapps.apps.model_folder_reader import expect_kind
    from nlpapps.apps.translator import (CONFIG_FILE, KIND, TOKENIZER_FILE, Translator,
                                         TranslatorConfig)

    train_dir, out_dir = Path(train_dir), Path(out_dir)
    expect_kind(train_dir, KIND)
    check_output_folder(train_dir, out_dir)
    tokenizer = Tokenizer.load(train_dir / TOKENIZER_FILE)
    translator = Translator.create(TranslatorConfig.load(train_dir), tokenizer)
    folder_weights.load_weights(translator.model, train_dir)
    write_savedmodel(TranslatorModule(translator.model, tokenizer), out_dir, {
        CONFIG_FILE: (train_dir / CONFIG_FILE).read_bytes(),
        TOKENIZER_FILE: tokenizer.to_bytes(),
    })
