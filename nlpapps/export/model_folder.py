"""Re-exporting a model folder (SavedModel, config, tokenizer, Keras weights) from a training
folder, for either kind of model. It sits above both exporters, which import
`nlpapps.export.saved_model` and never this module."""

from __future__ import annotations

from pathlib import Path


def export_model_folder(kind: str, train_dir: Path, out_dir: Path) -> None:
    """`export_translator_folder` or `export_language_model_folder`, by the model's `kind`."""
    if kind == "translator":
        from nlpapps.export.translator import export_translator_folder

        export_translator_folder(train_dir, out_dir)
    else:
        from nlpapps.export.language_model import export_language_model_folder

        export_language_model_folder(train_dir, out_dir)
