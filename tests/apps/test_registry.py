"""The app registry: every app's description resolves, and the rest of the suite asks it
instead of comparing kind strings."""

import re
from pathlib import Path

import pytest

import nlpapps
from nlpapps.apps.registry import APPS, App, app_of, kind_name, resolve
from nlpapps.apps.model_folder_reader import app_of_folder, expect_kind
from nlpapps.errors import ModelError

PACKAGE = Path(nlpapps.__file__).parent
SHIPPED = PACKAGE.parent / "saved_models"


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.kind)
def test_every_hook_of_an_app_resolves(app: App):
    assert resolve(app.config).kind == app.kind  # config.json names the app by its kind
    assert callable(resolve(app.commands).add_parsers)
    for field in ("fresh_model", "export_folder"):
        if app.has(field):
            assert callable(app.hook(field))
    if app.has("tflite"):
        lite = resolve(app.tflite)
        assert set(lite.SIGNATURES) == {False, True}
        assert callable(lite.representative_samples)
    assert app.model_files[0] == "config.json"
    assert app.reads in ("pairs", "text", "")


def test_kinds_are_unique_and_named():
    assert len({app.kind for app in APPS}) == len(APPS)
    assert kind_name("language_model") == "language model"
    assert kind_name("neural_turing_machine") == "neural Turing machine"
    assert kind_name("something_new") == "something new"  # a folder of a newer version


def test_an_unknown_kind_is_one_clear_error():
    with pytest.raises(ModelError, match="no app makes models of kind 'chess'"):
        app_of("chess")


def test_a_shipped_folder_names_its_app_and_builds_its_model():
    app = app_of_folder(SHIPPED / "babi-qa")
    assert app.kind == "question_answering"
    model = app.hook("fresh_model")(SHIPPED / "babi-qa")
    assert [tuple(w.shape) for w in model.weights][-1] == (50, 60)  # 60 answers, d = 50
    with pytest.raises(ModelError, match="holds a question answering model, not a translator"):
        expect_kind(SHIPPED / "babi-qa", "translator")
    with pytest.raises(ValueError, match="no export folder"):
        app.hook("export_folder")


def test_no_module_compares_kind_strings_outside_the_registry():
    """A kind is asked of the registry (`app_of`, `expect_kind`), never compared in place."""
    comparison = re.compile(r"""(?<![.\w])kind\s*[!=]=\s*["']|["']\s*[!=]=\s*kind\b|"""
                            r"""\bKIND\s*[!=]=|[!=]=\s*KIND\b""")
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             if path.name not in ("registry.py", "model_folder_reader.py", "config.py")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if comparison.search(line)]
    assert not found, "\n".join(found)
