"""Recipes: how a shipped model is rebuilt from its corpus, stage by stage, in one command.

A recipe is a JSON file kept in the model folder (`saved_models/<name>/recipe.json`):

    {
      "model": "shakespeare",
      "about": "what the stages do, in a sentence or two",
      "data": "data/shakespeare",
      "stages": [
        {"name": "corpus", "minutes": 1, "about": "...",
         "run": ["data", "prepare", "--corpus", "shakespeare", "--out", "{data}"]},
        {"name": "one-layer", "minutes": 63, "about": "...",
         "run": ["lm", "train", "--data", "{data}", "--out", "{work}/one-layer", "--layers", "1"]},
        {"name": "two-layers", "minutes": 29, "about": "...",
         "run": ["lm", "train", "--data", "{data}", "--out", "{work}/two-layers",
                 "--init-from", "{work}/one-layer"]}
      ],
      "result": "{work}/two-layers"
    }

Each stage is one `nlpapps` command line (warm starts are `--init-from` a folder of an earlier
stage); `{data}` is the corpus folder (by default the recipe's "data") and `{work}` the folder that
receives every stage's output (by default `runs/<model>-rebuild`).
`nlpapps train --recipe FILE` prints the stages with their expected minutes, then runs them in
order, each in its own process. A finished stage is recorded in `{work}/recipe-progress.json`,
so the same command started again after an interruption skips the finished stages and starts
the interrupted one again (training commands resume from their last checkpoint). Stages bounded
by `--max-minutes` stop where the machine's speed puts them: the minutes in a recipe are those
of the machine that built the shipped model.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from nlpapps.errors import UserError

PLACEHOLDERS = frozenset({"data", "work"})
PROGRESS_FILE = "recipe-progress.json"


@dataclass(frozen=True)
class Stage:
    name: str  # unique within the recipe
    run: tuple[str, ...]  # the nlpapps command line, with {data} and {work}
    minutes: float  # the time it took when the shipped model was built
    about: str = ""  # what the stage does and why


@dataclass(frozen=True)
class Recipe:
    model: str
    stages: tuple[Stage, ...]
    result: str  # the folder that holds the rebuilt model, with {work}
    about: str = ""
    data: str = ""  # the default corpus folder

    @property
    def default_data(self) -> Path:
        return Path(self.data or f"data/{self.model}")

    @property
    def default_work(self) -> Path:
        return Path("runs") / f"{self.model}-rebuild"

    @property
    def minutes(self) -> float:
        return sum(stage.minutes for stage in self.stages)


def load_recipe(path: Path) -> Recipe:
    """The recipe in `path`, checked; UserError naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"recipe {path} does not exist; give a recipe.json "
                        "(each folder in saved_models/ has one)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"recipe {path} is not valid JSON ({error}); "
                        "fix the file or take it again from the model folder") from None
    return recipe_from_dict(data, str(path))


def recipe_from_dict(data: object, where: str = "recipe") -> Recipe:
    def fail(what: str) -> UserError:
        return UserError(f"{where}: {what}")

    if not isinstance(data, dict):
        raise fail("expected a JSON object with model, stages and result")
    for key in ("model", "stages", "result"):
        if key not in data:
            raise fail(f"no {key!r}; a recipe has model, stages and result")
    if not isinstance(data["stages"], list) or not data["stages"]:
        raise fail("'stages' must be a non-empty list")
    stages, names = [], set()
    for number, item in enumerate(data["stages"], 1):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise fail(f"stage {number} needs a name")
        name = item["name"]
        if name in names:
            raise fail(f"two stages are called {name!r}; names must differ")
        names.add(name)
        run = item.get("run")
        if not (isinstance(run, list) and run and all(isinstance(arg, str) for arg in run)):
            raise fail(f"stage {name!r}: 'run' must be a non-empty list of strings "
                       "(the nlpapps command line)")
        for arg in run:
            _check_placeholders(arg, fail, f"stage {name!r}")
        minutes = item.get("minutes", 0)
        if not isinstance(minutes, (int, float)) or minutes < 0:
            raise fail(f"stage {name!r}: 'minutes' must be a number ≥ 0")
        stages.append(Stage(name, tuple(run), float(minutes), str(item.get("about", ""))))
    _check_placeholders(str(data["result"]), fail, "result")
    return Recipe(str(data["model"]), tuple(stages), str(data["result"]),
                  str(data.get("about", "")), str(data.get("data", "")))


def _check_placeholders(text: str, fail, where: str) -> None:
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise fail(f"{where}: {text!r} is not a valid template ({error})") from None
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise fail(f"{where}: unknown placeholder {{{sorted(unknown)[0]}}} in {text!r}; "
                   "use {data} or {work}")


def command_line(stage: Stage, data: Path, work: Path) -> list[str]:
    """The stage's arguments with `{data}` and `{work}` filled in."""
    return [arg.format(data=data, work=work) for arg in stage.run]


def plan(recipe: Recipe, data: Path, work: Path, done: AbstractSet[str] = frozenset()) -> str:
    """The stages as the command prints them before running: name, minutes, command."""
    lines = [f"recipe for {recipe.model}: {len(recipe.stages)} stages, about "
             f"{_duration(recipe.minutes)} on the machine that built it"]
    if recipe.about:
        lines.append(f"  {recipe.about}")
    for number, stage in enumerate(recipe.stages, 1):
        state = "done, skipped" if stage.name in done else _duration(stage.minutes)
        lines.append(f"{number}. {stage.name} ({state}): nlpapps "
                     + " ".join(command_line(stage, data, work)))
        if stage.about:
            lines.append(f"   {stage.about}")
    lines.append(f"the model: {recipe.result.format(data=data, work=work)}")
    return "\n".join(lines)


def _duration(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def finished_stages(work: Path) -> set[str]:
    try:
        return set(json.loads((work / PROGRESS_FILE).read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return set()


def _record_finished(work: Path, done: set[str]) -> None:
    staging = work / (PROGRESS_FILE + ".tmp")
    staging.write_text(json.dumps(sorted(done)), encoding="utf-8")
    os.replace(staging, work / PROGRESS_FILE)


def run_recipe(recipe: Recipe, data: Path, work: Path, verbose: bool = False) -> Path:
    """Runs every stage not yet finished, in order, each as `python -m nlpapps.cli ...`;
    returns the folder of the rebuilt model. UserError when a stage fails."""
    work.mkdir(parents=True, exist_ok=True)
    done = finished_stages(work)
    print(plan(recipe, data, work, done), file=sys.stderr, flush=True)
    for stage in recipe.stages:
        if stage.name in done:
            continue
        argv = ["-v", *command_line(stage, data, work)] if verbose else \
            command_line(stage, data, work)
        print(f"== {stage.name}: nlpapps {' '.join(argv)}", file=sys.stderr, flush=True)
        start = time.monotonic()
        status = subprocess.run([sys.executable, "-m", "nlpapps.cli", *argv]).returncode
        if status != 0:
            raise UserError(f"stage {stage.name!r} failed with exit status {status} (its output "
                            "is above); fix the cause and run the same command again to go on "
                            "from this stage")
        done.add(stage.name)
        _record_finished(work, done)
        print(f"== {stage.name} done in {(time.monotonic() - start) / 60:.1f} min",
              file=sys.stderr, flush=True)
    return Path(recipe.result.format(data=data, work=work))
