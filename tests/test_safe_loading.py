"""Model folders are read without running code from them: no pickle, no Keras archive
deserialized unsafely, and a config.json that names a Python callable is refused as data."""

import json
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nlpapps"
UNSAFE = re.compile(r"\bpickle\b|\bdill\b|\bcloudpickle\b|\bload_model\(|safe_mode\s*=\s*False|"
                    r"allow_pickle\s*=\s*True|enable_unsafe_deserialization|\beval\(|\bexec\(")


def test_the_package_never_unpickles_or_deserializes_unsafely():
    found = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if UNSAFE.search(line.split("#")[0])]
    assert not found, "\n".join(found)



def test_a_config_naming_a_callable_is_refused_as_data(tmp_path):
    """A Keras-style serialized object in config.json is a value like any other: refused,
    and what it names is never imported or called."""
    from nlpapps.apps import language_model
    from nlpapps.apps.model_folder_reader import ModelError

    marker = tmp_path / "ran"
    config = {"kind": "language_model", "config": {"cell": {
        "module": "os", "class_name": "system", "config": {"command": f"touch {marker}"}}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.model", "model.weights.h5"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelError, match="could not be loaded"):
        language_model.load(tmp_path)
    assert not marker.exists()
