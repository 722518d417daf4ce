"""`nlpapps ntm train`, `ntm evaluate` and `ntm figure`: the neural Turing machine app."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from nlpapps.commands.common import UserError, add_config_arguments, config_from_args, log


def cmd_ntm_train(args) -> int:
    from nlpapps.apps import turing_machine

    try:
        config = config_from_args(turing_machine.TuringMachineConfig, args)
    except ValueError as error:
        raise UserError(str(error)) from None
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    try:
        turing_machine.train(config, out)
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None
    if args.export:
        turing_machine.export(out, Path(args.export))
    print(f"model written to {out}" + (f" and {args.export}" if args.export else ""),
          file=sys.stderr)
    return 0


def _check_evaluation(args, task) -> None:
    if args.length < task.min_length:
        raise UserError(f"--length must be at least {task.min_length} for {task.name}, "
                        f"got {args.length}")
    if args.sequences < 1:
        raise UserError(f"--sequences must be positive, got {args.sequences}")


def _task(model_config, name: str | None):
    from nlpapps.apps.ntm_tasks import TASKS, Task

    name = name or model_config.task
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; use one of {', '.join(TASKS)}")
    if name != model_config.task:
        raise UserError(f"the model was trained on {model_config.task}, not {name}; "
                        f"pass --task {model_config.task} or another --model")
    return Task(name, model_config.bits)


def cmd_ntm_evaluate(args) -> int:
    from nlpapps.apps import turing_machine
    from nlpapps.apps.ntm_tasks import TASKS

    if args.task is not None and args.task not in TASKS:  # before loading anything
        raise UserError(f"unknown task {args.task!r}; use one of {', '.join(TASKS)}")
    if args.length < 1:
        raise UserError(f"--length must be positive, got {args.length}")
    if args.sequences < 1:
        raise UserError(f"--sequences must be positive, got {args.sequences}")
    model, config = turing_machine.load(Path(args.model))
    task = _task(config, args.task)
    _check_evaluation(args, task)
    errors = turing_machine.evaluate(model, task, args.length, args.sequences, args.seed)
    print(f"bit errors per sequence: {errors:.4f}")
    return 0


def cmd_ntm_figure(args) -> int:
    from nlpapps.apps import ntm_figures

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out}")
    if args.kind == "weightings":
        if args.length < 1:
            raise UserError(f"--length must be positive, got {args.length}")
        ntm_figures.weightings_figure(Path(args.model), args.length, args.seed, out)
    else:
        if not args.baseline:
            raise UserError("the lengths figure needs --baseline DIR, the LSTM model")
        lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
        if not lengths or min(lengths) < 1:
            raise UserError(f"--lengths must be positive lengths, got {args.lengths!r}")
        if args.sequences < 1:
            raise UserError(f"--sequences must be positive, got {args.sequences}")
        ntm_figures.lengths_figure(Path(args.model), Path(args.baseline), lengths,
                                   args.sequences, args.seed, out)
    print(f"figure written to {out}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    ntm = sub.add_parser("ntm", help="neural Turing machine: train, evaluate, draw")
    actions = ntm.add_subparsers(dest="action", required=True)

    p = actions.add_parser("train", help="train an NTM or its LSTM baseline on a task "
                                         "(resumes a killed run in --out)")
    add_config_arguments(p, "nlpapps.apps.turing_machine:TuringMachineConfig")
    p.add_argument("--out", required=True, help="training folder (checkpoints, logs, weights)")
    p.add_argument("--export", help="also write config, weights and metrics to this folder")
    p.set_defaults(func=cmd_ntm_train)

    p = actions.add_parser("evaluate", help="bit errors per sequence on seeded sequences")
    p.add_argument("--model", required=True, help="a trained or exported ntm folder")
    p.add_argument("--task", help="the task (default: the model's own)")
    p.add_argument("--length", type=int, default=20,
                   help="sequence length (items for associative_recall)")
    p.add_argument("--sequences", type=int, default=1000, help="sequences to score")
    p.add_argument("--seed", type=int, default=1, help="seed of the sequences")
    p.set_defaults(func=cmd_ntm_evaluate)

    p = actions.add_parser("figure", help="draw the heads' weightings or errors against length")
    p.add_argument("kind", choices=["weightings", "lengths"])
    p.add_argument("--model", required=True, help="a trained or exported ntm folder")
    p.add_argument("--baseline", help="for lengths: the LSTM baseline's folder")
    p.add_argument("--length", type=int, default=20, help="for weightings: sequence length")
    p.add_argument("--lengths", default="20,40,80,120",
                   help="for lengths: comma-separated lengths")
    p.add_argument("--sequences", type=int, default=1000, help="for lengths: sequences each")
    p.add_argument("--seed", type=int, default=1, help="seed of the sequences")
    p.add_argument("--out", required=True, help="the .png file to write")
    p.set_defaults(func=cmd_ntm_figure)
