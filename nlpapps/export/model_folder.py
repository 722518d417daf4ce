"""Re-exporting a model folder (SavedModel, config, tokenizer, Keras weights) from a training
folder, for any app that can (the registry's `export_folder`). It sits above the exporters,
which import `nlpapps.export.saved_model_writer` and never this module."""

from __future__ import annotations

from pathlib import Path

from nlpapps.apps.registry import app_of
from nlpapps.errors import ModelError


def export_model_folder(kind: str, train_dir: Path, out_dir: Path) -> None:
    """Writes the model folder `out_dir` from the training folder `train_dir` of a `kind` model
    with the exporter its app names; ModelError for an app that has none."""
    app = app_of(kind)
    if not app.has("export_folder"):
        raise ModelError(f"a {app.name} folder is written at the end of its training, not "
                         "re-exported; train it with --export")
    app.hook("export_folder")(Path(train_dir), Path(out_dir))
