"""Recipes: every shipped model folder has one whose stages are valid commands, and a recipe runs
end to end (and goes on after an interruption) on a tiny corpus."""

import json
import shutil
from pathlib import Path

import pytest

from nlpapps import cli, recipes
from nlpapps.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(path for path in (ROOT / "saved_models").iterdir() if path.is_dir())
FIXTURE_PLAYS = Path(__file__).parent / "fixtures" / "shakespeare"


def written_folders(stage: recipes.Stage) -> set[str]:
    run = list(stage.run)
    flags = ("--out", "--output", "--export")
    return {run[i + 1] for i, arg in enumerate(run[:-1]) if arg in flags}


@pytest.mark.parametrize("folder", SHIPPED, ids=[path.name for path in SHIPPED])
def test_every_shipped_model_has_a_recipe_of_valid_commands(folder):
    recipe = recipes.load_recipe(folder)
    assert recipe.model == folder.name
    parser = cli.build_parser()
    written = set()
    for stage in recipe.stages:
        args = parser.parse_args(recipes.command_line(stage, Path("data"), Path("work")))
        assert callable(args.func)
        run = list(stage.run)
        if "--init-from" in run:  # a warm start reads a folder an earlier stage wrote
            assert run[run.index("--init-from") + 1] in written, stage.name
        written |= written_folders(stage)
    assert recipe.result in written
    assert recipe.minutes > 30


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("stages"), "no 'stages'"),
    (lambda r: r.update(stages=[]), "non-empty list"),
    (lambda r: r["stages"].append(dict(r["stages"][0])), "two stages are called 'first'"),
    (lambda r: r["stages"][0].update(run="lm train"), "list of strings"),
    (lambda r: r["stages"][0]["run"].append("{model}"), "unknown placeholder {model}"),
    (lambda r: r["stages"][0].update(minutes=-1), "'minutes' must be a number"),
    (lambda r: r.update(result="{work/x"), "not a valid template"),
])
def test_a_bad_recipe_is_one_clear_error(change, message):
    recipe = {"model": "m", "result": "{work}/first",
              "stages": [{"name": "first", "run": ["lm", "train", "--out", "{work}/first"]}]}
    change(recipe)
    with pytest.raises(UserError, match=message.replace("{", r"\{").replace("(", r"\(")):
        recipes.recipe_from_dict(recipe)


def test_the_command_says_what_is_wrong_with_a_recipe_file(tmp_path, capsys):
    assert cli.main(["-v", "train", "--recipe", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "recipe.json").write_text("{not json", encoding="utf-8")
    assert cli.main(["-v", "train", "--recipe", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and err.count("\n") == 1


def test_dry_run_prints_the_stages_with_their_minutes(capsys):
    assert cli.main(["-v", "train", "--recipe", str(ROOT / "saved_models" / "shakespeare"),
                     "--work", "w", "--data", "d", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recipe for shakespeare: 11 stages, about 5.2 h")
    assert "2. one-layer (63 min): nlpapps lm train --data d " in out
    assert "--init-from w/one-layer-decay" in out
    assert "--init-from w/long-windows" in out  # the attention block starts from the LSTM
    assert out.rstrip().endswith("the model: w/attention-continued")


TINY_LM = ["--vocab-size", "120", "--embedding-dim", "8", "--units", "8", "--seq-len", "16",
           "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "3", "--seed", "0"]


@pytest.mark.slow
def test_a_recipe_runs_end_to_end_and_goes_on_after_a_failed_stage(tmp_path, capsys):
    data = tmp_path / "plays"
    shutil.copytree(FIXTURE_PLAYS, data)
    recipe = {
        "model": "tiny", "data": str(data), "result": "{work}/grown",
        "stages": [
            {"name": "one-layer", "minutes": 1, "run": [
                "lm", "train", "--data", "{data}", "--out", "{work}/one", "--layers", "1",
                *TINY_LM]},
            {"name": "grown", "minutes": 1, "run": [
                "lm", "train", "--data", "{data}", "--out", "{work}/grown", "--layers", "2",
                "--init-from", "{work}/one", *TINY_LM]},
        ]}
    path = tmp_path / "recipe.json"
    work = tmp_path / "work"
    # the second stage cannot run yet: its corpus folder has no train.txt
    (data / "train.txt").rename(tmp_path / "train.txt")
    recipe["stages"][0]["run"][3] = str(FIXTURE_PLAYS)
    path.write_text(json.dumps(recipe), encoding="utf-8")
    assert cli.main(["-v", "train", "--recipe", str(path), "--work", str(work)]) == 2
    assert "stage 'grown' failed" in capsys.readouterr().err
    assert recipes.finished_stages(work) == {"one-layer"}
    one_layer = (work / "one" / "model.weights.h5").stat().st_mtime_ns

    (tmp_path / "train.txt").rename(data / "train.txt")
    assert cli.main(["-v", "train", "--recipe", str(path), "--work", str(work)]) == 0
    err = capsys.readouterr().err
    assert "1. one-layer (done, skipped)" in err
    assert (work / "one" / "model.weights.h5").stat().st_mtime_ns == one_layer  # not rerun
    assert recipes.finished_stages(work) == {"one-layer", "grown"}
    grown = json.loads((work / "grown" / "config.json").read_text())
    assert grown["config"]["layers"] == 2
    assert grown["config"]["init_from"] == str(work / "one")
    assert (work / "grown" / "saved_model.pb").exists()
