"""`nlpapps train --recipe FILE`: rebuild a shipped model from its corpus, stage by stage."""

from __future__ import annotations

import sys
from pathlib import Path

from nlpapps import recipes


def cmd_train(args) -> int:
    recipe = recipes.load_recipe(Path(args.recipe))
    data = Path(args.data) if args.data else recipe.default_data
    work = Path(args.work) if args.work else recipe.default_work
    if args.dry_run:
        print(recipes.plan(recipe, data, work, recipes.finished_stages(work)))
        return 0
    model = recipes.run_recipe(recipe, data, work, verbose=args.verbose)
    print(f"rebuilt {recipe.model}: {model}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="rebuild a model from its recipe (saved_models/<name>/"
                                     "recipe.json), every stage in order")
    p.add_argument("--recipe", required=True,
                   help="a recipe.json, or a model folder that holds one")
    p.add_argument("--data", help="the corpus folder (default: the recipe's, e.g. data/en-de)")
    p.add_argument("--work", help="where every stage writes (default: runs/<model>-rebuild); "
                                  "running again goes on after the last finished stage")
    p.add_argument("--dry-run", action="store_true",
                   help="print the stages, their commands and expected minutes; run nothing")
    p.set_defaults(func=cmd_train)
