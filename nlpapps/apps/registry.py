"""The app registry: one small description per app, which the CLI, loading, averaging and
export iterate instead of comparing kind strings.

A model folder's `config.json` names its app by `kind`; `app_of(kind)` (or
`nlpapps.apps.model_folder_reader.app_of_folder`) returns the description, whose hooks are named as
`"module:attribute"` and imported only when used, so that reading the registry (the CLI's
start, `--help`) imports no TensorFlow.

Adding an app means writing its modules (config dataclass, model, training, serving, command)
and one `App(...)` entry below, as OpenNMT-tf's model catalog or KerasHub's presets list
theirs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class App:
    """What the rest of the suite needs to know about one app.

    Attributes:
        kind: its name in a model folder's config.json, e.g. "language_model".
        name: how messages name it, e.g. "language model".
        config: `"module:Class"` of its config dataclass (an `AppConfig`).
        commands: `"module"` of its CLI commands (it has `add_parsers(subparsers)`).
        model_files: the files of a model folder that, with the weights, build its model
            (config, tokenizer or vocabulary).
        fresh_model: `"module:function"`, `(folder) -> keras.Model` with fresh weights built
            from the folder's config (and tokenizer or vocabulary); None if it has none.
        export_folder: `"module:function"`, `(train_dir, out_dir)` writing a model folder from
            the Keras weights of a training folder; None if the app writes its folder only
            at the end of training.
        tflite: `"module"` of its LiteRT conversion (`nlpapps.export.tflite` reads it):
            `SIGNATURES` (which SavedModel signature becomes which of the file's, one-call and
            step-wise), `representative_samples(saved_model, texts, stepwise)` giving int8
            calibration inputs, and optionally `file_metadata` and `check_exportable`; None
            when the app has no single-file LiteRT export.
        reads: what its export report and calibration read: "pairs" (a TSV of English–German
            pairs), "text" (a plain text) or "" (no such input).
    """

    kind: str
    name: str
    config: str
    commands: str
    model_files: tuple[str, ...]
    fresh_model: str | None = None
    export_folder: str | None = None
    tflite: str | None = None
    reads: str = ""

    def hook(self, name: str) -> Callable[..., Any]:
        """The function named by the field `name`; ValueError if this app has none."""
        target = getattr(self, name)
        if target is None:
            raise ValueError(f"a {self.name} has no {name.replace('_', ' ')}")
        return resolve(target)

    def has(self, name: str) -> bool:
        return getattr(self, name) is not None


def resolve(target: str):
    """The object named `"package.module:attribute"` (the module imported now)."""
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value


APPS: tuple[App, ...] = (
    App(kind="translator", name="translator",
        config="nlpapps.apps.translator:TranslatorConfig",
        commands="nlpapps.commands.translator_commands",
        model_files=("config.json", "tokenizer.model"),
        fresh_model="nlpapps.apps.translator:fresh_model",
        export_folder="nlpapps.export.translator_folder:export_translator_folder",
        tflite="nlpapps.export.translator_conversion",
        reads="pairs"),
    App(kind="language_model", name="language model",
        config="nlpapps.apps.language_model:LanguageModelConfig",
        commands="nlpapps.commands.language_model_commands",
        model_files=("config.json", "tokenizer.model"),
        fresh_model="nlpapps.apps.language_model:fresh_model",
        export_folder="nlpapps.export.language_model_folder:export_language_model_folder",
        tflite="nlpapps.export.language_model_conversion",
        reads="text"),
    App(kind="question_answering", name="question answering model",
        config="nlpapps.apps.question_answering:QAConfig",
        commands="nlpapps.commands.question_answering_commands",
        model_files=("config.json", "vocab.json"),
        fresh_model="nlpapps.apps.question_answering:fresh_model"),
    App(kind="neural_turing_machine", name="neural Turing machine",
        config="nlpapps.apps.turing_machine:TuringMachineConfig",
        commands="nlpapps.commands.turing_machine_commands",
        model_files=("config.json",),
        fresh_model="nlpapps.apps.turing_machine:fresh_model"),
)

_BY_KIND = {app.kind: app for app in APPS}


def app_of(kind: str) -> App:
    """The app whose kind is `kind`; ModelError for a kind no app has."""
    from nlpapps.errors import ModelError

    if kind not in _BY_KIND:
        raise ModelError(f"no app makes models of kind {kind!r} (known: "
                         f"{', '.join(_BY_KIND)}); the folder may come from a newer version")
    return _BY_KIND[kind]


def kind_name(kind: str) -> str:
    """How messages name a kind of model: "translator", "language model"."""
    app = _BY_KIND.get(kind)
    return app.name if app else kind.replace("_", " ")
