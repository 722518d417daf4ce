"""What every app's config dataclass shares: saved as config.json together with its kind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from nlpapps import training
from nlpapps.apps.saved_model import kind_name

CONFIG_FILE = "config.json"


class AppConfig:
    """Base of the apps' frozen config dataclasses; `kind` names the app in config.json."""

    kind: ClassVar[str] = ""

    def save(self, folder: Path) -> None:
        training.save_json(Path(folder) / CONFIG_FILE,
                           {"kind": self.kind, "config": dataclasses.asdict(self)})

    @classmethod
    def from_dict(cls, data: dict):
        """The config from a dict, ignoring keys that are not fields."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def load(cls, folder: Path):
        data = json.loads((Path(folder) / CONFIG_FILE).read_text())
        if data.get("kind") != cls.kind:
            raise ValueError(f"{folder} holds a {kind_name(data.get('kind', '?'))}, not a "
                             f"{kind_name(cls.kind)}")
        return cls.from_dict(data["config"])
