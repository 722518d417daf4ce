"""Loading an exported model folder with clear, one-line errors for every way it can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

from nlpapps.apps.registry import App, app_of, kind_name
from nlpapps.errors import ModelError  # noqa: F401  (raised and imported from here)


def wrong_kind(folder: Path, found: str, expected: str) -> ModelError:
    """The error for a folder that holds another kind of model than the one asked for."""
    return ModelError(f"{folder} holds a {kind_name(found)}, not a {kind_name(expected)}; "
                      f"pick a {kind_name(expected)} folder")


def read_kind(folder: Path) -> tuple[str, dict]:
    """Returns `(kind, config)` from `folder/config.json`, or raises ModelError."""
    folder = Path(folder)
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist; pass --model with a folder "
                         "made by training or export")
    if not folder.is_dir():
        raise ModelError(f"{folder} is a file, not a model folder")
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelError(f"{folder} has no config.json, so it is not an nlpapps model folder")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        return data["kind"], data["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{config_path} is corrupt ({error}); re-export the model") from None


def expect_kind(folder: Path, kind: str) -> dict:
    """The config of `folder/config.json` if the folder holds a `kind` model; ModelError (one
    that names both kinds) if it holds another."""
    found, config = read_kind(Path(folder))
    if found != kind:
        raise wrong_kind(Path(folder), found, kind)
    return config


def app_of_folder(folder: Path) -> App:
    """The app of the model folder `folder` (its config.json); ModelError if it is none."""
    kind, _ = read_kind(Path(folder))
    return app_of(kind)


def load_saved_model(folder: Path, kind: str):
    """Loads the SavedModel at the root of `folder`, checking that it holds a `kind` model."""
    folder = Path(folder)
    expect_kind(folder, kind)
    if not (folder / "saved_model.pb").exists():
        raise ModelError(f"{folder} has no saved_model.pb; export it first "
                         "(nlpapps export --format savedmodel)")
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

    try:
        return tf.saved_model.load(str(folder))
    except Exception as error:  # noqa: BLE001  (TensorFlow raises many kinds for bad files)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ModelError(f"{folder} could not be loaded, it may be corrupt: {first_line}") \
            from None
