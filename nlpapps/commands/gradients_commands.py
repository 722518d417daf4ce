"""`nlpapps gradients norms | adding | clipping`: gradients through time on our layers.

    nlpapps gradients adding --length 100 --cell lstm,gru,tanh --seeds 3 --steps 3000
    nlpapps gradients norms --length 201                 (untrained and after training)
    nlpapps gradients clipping --seeds 5                 (IRNN 1.5 x I, with and without clipping)

Each writes its table (Markdown), its records (JSON lines) and its figure (PNG) under --out;
see docs/gradients.md.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from nlpapps.commands.common import UserError

# The keys of nlpapps.gradients.cells.CELLS, here so that building the parser imports no Keras.
CELL_NAMES = ("tanh", "irnn", "irnn1.5", "lstm", "gru", "gru-textbook")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _ints(text: str, flag: str, least: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{flag} takes whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise UserError(f"{flag} is empty; give at least one number")
    for value in values:
        if value < least:
            raise UserError(f"{flag} must be at least {least}, got {value}")
    return values


def _cells(text: str) -> list[str]:
    cells = [part.strip() for part in text.split(",") if part.strip()]
    if not cells:
        raise UserError("--cell is empty; give one or more of " + ", ".join(CELL_NAMES))
    for cell in cells:
        if cell not in CELL_NAMES:
            raise UserError(f"unknown cell {cell!r}; use one of {', '.join(CELL_NAMES)}")
    return cells


def _check_common(args) -> None:
    for flag, value in (("--seeds", getattr(args, "seeds", 1)), ("--steps", args.steps),
                        ("--units", args.units), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if not args.learning_rate > 0:
        raise UserError(f"--learning-rate must be positive, got {args.learning_rate}")


def _run_config(args, **fields):
    from nlpapps.gradients.trainer import RunConfig

    base = dict(units=args.units, batch_size=args.batch_size, steps=args.steps,
                learning_rate=args.learning_rate, eval_every=args.eval_every,
                test_size=args.test_size)
    try:
        return RunConfig(**{**base, **fields})
    except ValueError as error:
        raise UserError(str(error)) from None


def _run_grid(configs, records: Path, on_update, train: bool = True) -> list:
    """Trains every config not yet in `records` (with `train`; else leaves it out), appending
    each run as it ends."""
    from nlpapps.gradients import report, trainer

    runs = report.load_runs(records)
    for config in configs:
        if report.find_run(runs, config):
            _log(f"{config.cell} T={config.length} seed {config.seed}: recorded in {records}")
            continue
        if not train:
            _log(f"{config.cell} T={config.length} seed {config.seed}: not recorded, left out")
            continue
        _log(f"config: {dataclasses.asdict(config)}")
        _, run = trainer.train(config, log=_log)
        report.append_run(records, run)
        runs.append(run)
        on_update([r for r in runs if r.config in configs])
    return [run for run in runs if run.config in configs]


def cmd_adding(args) -> int:
    from nlpapps.gradients import plots, report
    from nlpapps.gradients.adding import BASELINE_MSE

    lengths = _ints(args.length, "--length", 2)
    cells = _cells(args.cell)
    _check_common(args)
    configs = [_run_config(args, cell=cell, length=length, seed=seed,
                           global_clipnorm=args.global_clipnorm)
               for length in lengths for cell in cells for seed in range(args.seeds)]
    out = Path(args.out)
    table, figure = out / "adding.md", out / "adding.png"

    def write(runs):
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(report.adding_table(runs))
        plots.plot_mse(runs, figure)

    if args.recorded_only:
        recorded = report.load_runs(out / "adding.jsonl")
        if not any(report.find_run(recorded, config) for config in configs):
            raise UserError(f"{out / 'adding.jsonl'} records none of these runs; "
                            "drop --recorded-only to train them")
    runs = _run_grid(configs, out / "adding.jsonl", write, train=not args.recorded_only)
    write(runs)
    print(report.adding_table(runs), end="")
    print(f"baseline (always predict the mean, 1): test MSE {BASELINE_MSE:.3f}")
    print(f"written: {table}, {figure}, {out / 'adding.jsonl'}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("gradients", help="gradients through time: norms, the adding problem, "
                                         "clipping (docs/gradients.md)")
    commands = p.add_subparsers(dest="gradients_command", required=True)

    def common(parser, steps, units, learning_rate, seeds, out):
        if seeds:
            parser.add_argument("--seeds", type=int, default=seeds,
                                help=f"runs per setting, seeded 0, 1, ... (default: {seeds})")
        parser.add_argument("--steps", type=int, default=steps,
                            help=f"training steps per run (default: {steps})")
        parser.add_argument("--units", type=int, default=units,
                            help=f"size of the recurrent state (default: {units})")
        parser.add_argument("--batch-size", type=int, default=50,
                            help="sequences per training step (default: 50)")
        parser.add_argument("--learning-rate", type=float, default=learning_rate,
                            help=f"the optimizer's step size (default: {learning_rate:g})")
        parser.add_argument("--eval-every", type=int, default=100,
                            help="steps between test-MSE measurements (default: 100)")
        parser.add_argument("--test-size", type=int, default=1000,
                            help="sequences in the fixed test set (default: 1000)")
        parser.add_argument("--out", default=out,
                            help=f"folder for the table, records and figure (default: {out})")

    adding = commands.add_parser(
        "adding", help="train on the adding problem; final test MSE per cell and length")
    adding.add_argument("--length", default="100", metavar="T[,T...]",
                        help="sequence lengths, comma-separated (default: 100)")
    adding.add_argument("--cell", default="lstm,gru,tanh", metavar="CELL[,CELL...]",
                        help=f"cells, comma-separated, of {', '.join(CELL_NAMES)} "
                             "(default: lstm,gru,tanh)")
    adding.add_argument("--global-clipnorm", type=float, default=1.0,
                        help="clip each step's gradient to this global norm; 0: off "
                             "(default: 1)")
    adding.add_argument("--recorded-only", action="store_true",
                        help="train nothing: tabulate and plot the runs of this grid already "
                             "recorded in --out")
    common(adding, steps=3000, units=64, learning_rate=3e-3, seeds=3, out="runs/gradients")
    adding.set_defaults(func=cmd_adding)
    _add_more_parsers(commands, common)


NORM_KS = (0, 1, 10, 50, 100, 150, 200)  # the k of the norms table


def cmd_norms(args) -> int:
    import keras
    import numpy as np

    from nlpapps.gradients import norms, plots, report, trainer
    from nlpapps.gradients.adding import adding_batch
    from nlpapps.gradients.cells import adding_model

    cells = _cells(args.cell)
    _check_common(args)
    if args.length < 2:
        raise UserError(f"--length must be at least 2, got {args.length}")
    if args.examples < 1:
        raise UserError(f"--examples must be at least 1, got {args.examples}")
    if args.train_length < 2:
        raise UserError(f"--train-length must be at least 2, got {args.train_length}")
    train_length = args.train_length
    configs = {cell: _run_config(args, cell=cell, length=train_length, seed=args.seed,
                                 global_clipnorm=args.global_clipnorm) for cell in cells}
    out = Path(args.out)
    inputs, targets = adding_batch(np.random.default_rng(args.seed), args.examples, args.length)
    curves: dict[str, dict[str, np.ndarray]] = {"untrained": {}, "trained": {}}
    notes = []
    for cell in cells:
        config = configs[cell]
        keras.utils.set_random_seed(args.seed)
        model = adding_model(cell, args.units)
        curves["untrained"][cell] = norms.gradient_norms(norms.in_float64(model, cell),
                                                         inputs, targets)
        probes = (0, args.length // 2, args.length - 1)
        _log(f"{cell} untrained: |dL/dh_(T-k)| at k = {', '.join(map(str, probes))}: "
             + ", ".join(f"{curves['untrained'][cell][k]:.3g}" for k in probes))
        if args.steps and not args.untrained_only:
            _log(f"config: {dataclasses.asdict(config)}")
            model, run = trainer.train(config, log=_log, model=model)
            report.append_run(out / "norms-training.jsonl", run)
            if run.diverged:
                notes.append(f"{cell}: training diverged at step {len(run.losses)}; "
                             "no trained curve")
                _log(notes[-1])
            else:
                notes.append(f"{cell}: trained {config.steps} steps at T={config.length}, "
                             f"test MSE {run.final_mse:.4f}")
                curves["trained"][cell] = norms.gradient_norms(
                    norms.in_float64(model, cell), inputs, targets)
    if not curves["trained"]:
        del curves["trained"]
    ks = [k for k in NORM_KS if k < args.length]
    lines = ["| cell | state | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---|" + "---|" * len(ks)]
    for state, by_cell in curves.items():
        for cell, values in by_cell.items():
            lines.append(f"| {cell} | {state} | "
                         + " | ".join(f"{values[k]:.3g}" for k in ks) + " |")
    table = "\n".join(lines) + "\n" + "".join(f"\n- {note}" for note in notes) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "norms.md").write_text(table)
    plots.plot_norms(curves, out / "norms.png",
                     f"mean ||dL_T/dh_(T-k)|| on {args.examples} adding sequences of "
                     f"T = {args.length}")
    print(table, end="")
    print(f"written: {out / 'norms.md'}, {out / 'norms.png'}", file=sys.stderr)
    return 0


def cmd_clipping(args) -> int:
    from nlpapps.gradients import plots, report

    _check_common(args)
    if args.length < 2:
        raise UserError(f"--length must be at least 2, got {args.length}")
    if not args.global_clipnorm > 0:
        raise UserError(f"--global-clipnorm must be positive, got {args.global_clipnorm}")
    cells = _cells(args.cell)
    configs = [_run_config(args, cell=cells[0], length=args.length, seed=seed,
                           optimizer=optimizer, global_clipnorm=clip,
                           learning_rate=args.learning_rate if optimizer == "adam"
                           else args.sgd_learning_rate)
               for optimizer in ("adam", "sgd") for clip in (args.global_clipnorm, 0.0)
               for seed in range(args.seeds)]
    out = Path(args.out)
    table, figure = out / "clipping.md", out / "clipping.png"
    title = (f"{cells[0]} on the adding problem, T = {args.length}: gradient norm per step")

    def write(runs):
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(report.clipping_table(runs))
        plots.plot_grad_norms(runs, figure, title)

    runs = _run_grid(configs, out / "clipping.jsonl", write)
    write(runs)
    print(report.clipping_table(runs), end="")
    print(f"written: {table}, {figure}, {out / 'clipping.jsonl'}", file=sys.stderr)
    return 0


def _add_more_parsers(commands, common) -> None:
    norms = commands.add_parser(
        "norms", help="the norm of dL_T/dh_(T-k) against k, untrained and after training")
    norms.add_argument("--cell", default=",".join(CELL_NAMES), metavar="CELL[,CELL...]",
                       help=f"cells, comma-separated (default: {','.join(CELL_NAMES)})")
    norms.add_argument("--length", type=int, default=201,
                       help="length T of the measured sequences; k runs to T-1 (default: 201)")
    norms.add_argument("--examples", type=int, default=20,
                       help="sequences the norm is averaged over (default: 20)")
    norms.add_argument("--train-length", type=int, default=50,
                       help="length of the training sequences (default: 50)")
    norms.add_argument("--global-clipnorm", type=float, default=1.0,
                       help="clipping while training (default: 1)")
    norms.add_argument("--seed", type=int, default=0, help="seeds weights and data (default: 0)")
    norms.add_argument("--untrained-only", action="store_true", help="skip the training")
    common(norms, steps=600, units=64, learning_rate=3e-3, seeds=None, out="runs/gradients")
    norms.set_defaults(func=cmd_norms)

    clipping = commands.add_parser(
        "clipping", help="exploding gradients: divergence with and without clipping, "
                         "Adam and SGD")
    clipping.add_argument("--cell", default="irnn1.5", choices=CELL_NAMES,
                          help="the recurrence (default: irnn1.5, ReLU with 1.5 x identity)")
    clipping.add_argument("--length", type=int, default=50,
                          help="sequence length T (default: 50)")
    clipping.add_argument("--global-clipnorm", type=float, default=1.0,
                          help="the clipped runs' global norm (default: 1)")
    clipping.add_argument("--sgd-learning-rate", type=float, default=1e-3,
                          help="plain SGD's step size (default: 0.001)")
    common(clipping, steps=300, units=64, learning_rate=1e-3, seeds=5, out="runs/gradients")
    clipping.set_defaults(func=cmd_clipping)
