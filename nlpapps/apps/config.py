"""What every app's config dataclass shares: saved as config.json together with its kind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from nlpapps import training
from nlpapps.apps.model_folder_reader import kind_name

CONFIG_FILE = "config.json"


class AppConfig:
    """Base of the apps' frozen config dataclasses; `kind` names the app in config.json and
    `architecture` the fields a training checkpoint depends on (a run may resume with other
    values of the rest)."""

    kind: ClassVar[str] = ""
    architecture: ClassVar[tuple[str, ...]] = ()
    # Set by @dataclasses.dataclass on each subclass; declared (not assigned) so that type
    # checkers take every config for a dataclass (dataclasses.fields, asdict).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def resume_fields(self) -> tuple[str, ...]:
        """The fields that must equal those of the run being resumed."""
        return self.architecture

    def check_resumable(self, out_dir: Path) -> None:
        """ValueError if `out_dir` holds a run of another app, or of a model that differs from
        this config's in one of `resume_fields()`. A field the run's config.json lacks (it
        was written before the field existed) had the field's default."""
        path = Path(out_dir) / CONFIG_FILE
        if not path.exists():
            return
        data = json.loads(path.read_text())
        if data.get("kind") != self.kind:
            raise ValueError(f"{out_dir} holds a {kind_name(data.get('kind', '?'))}, not a "
                             f"{kind_name(self.kind)}; use another --out")
        old = data["config"]
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        changed = [f"{name} {old.get(name, defaults[name])!r} -> {getattr(self, name)!r}"
                   for name in self.resume_fields()
                   if old.get(name, defaults[name]) != getattr(self, name)]
        if changed:
            raise ValueError(f"{out_dir} holds a run of another model ({', '.join(changed)}); "
                             "use the same options to resume it or another --out")

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
