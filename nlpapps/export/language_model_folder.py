"""A language model's model folder again from its Keras weights: the SavedModel of
`nlpapps.serving.language_model_module.LanguageModelModule` and the files beside it (the
registry's `export_folder` of the language model)."""

from __future__ import annotations

from pathlib import Path

from nlpapps.export.saved_model_writer import check_output_folder, write_savedmodel
from nlpapps.serving.language_model_module import LanguageModelModule


def export_language_model_folder(train_dir: Path, out_dir: Path) -> None:
    """Writes a language-model folder (the SavedModel with every signature of
    `LanguageModelModule`, config.json, tokenizer.model and the dev metrics; the SavedModel's
    variables hold each weight once) at `out_dir` from a training or exported folder. Raises
    ModelError for a folder that is not a trained language model, and refuses to replace a
    folder that is not a model folder."""
    from nlpapps.apps import language_model

    train_dir, out_dir = Path(train_dir), Path(out_dir)
    model, tokenizer, config = language_model.load(train_dir)
    check_output_folder(train_dir, out_dir)
    files = {"config.json": (train_dir / "config.json").read_bytes(),
             "tokenizer.model": tokenizer.to_bytes()}
    metrics = train_dir / language_model.METRICS_FILE
    if metrics.exists():
        files[metrics.name] = metrics.read_bytes()
    write_savedmodel(LanguageModelModule(model, tokenizer, config.seq_len), out_dir, files)
