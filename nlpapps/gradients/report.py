"""The results of the gradients demonstrations on disk: one JSON line per finished run, appended
as runs end (so a stopped grid keeps what it did), and the Markdown tables made from them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from nlpapps.gradients.adding import BASELINE_MSE
from nlpapps.gradients.trainer import RunConfig, RunResult


def load_runs(path: Path) -> list[RunResult]:
    """The runs recorded in the JSON-lines file `path` (none if it does not exist)."""
    if not path.exists():
        return []
    return [RunResult.from_json(json.loads(line)) for line in path.read_text().splitlines()
            if line.strip()]


def append_run(path: Path, run: RunResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(run.to_json(), allow_nan=True) + "\n")


def find_run(runs: Sequence[RunResult], config: RunConfig) -> RunResult | None:
    """The recorded run of exactly `config`, if there is one."""
    return next((run for run in runs if run.config == config), None)


def _mse(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def adding_table(runs: Sequence[RunResult], bar: float = 0.01) -> str:
    """Markdown: one row per (cell, length), the final test MSE of each seed, how many seeds
    are below `bar`, and the baseline."""
    rows = ["| cell | T | steps | final test MSE per seed | seeds < " f"{bar:g} | baseline |",
            "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.config.cell, run.config.length), []).append(run)
    for (cell, length), group in sorted(groups.items(), key=lambda item: (item[0][1],)):
        group = sorted(group, key=lambda run: run.config.seed)
        seeds = ", ".join(f"{run.config.seed}: {_mse(run.final_mse)}" for run in group)
        below = sum(run.final_mse < bar for run in group)
        rows.append(f"| {cell} | {length} | {group[0].config.steps} | {seeds} | "
                    f"{below} of {len(group)} | {BASELINE_MSE:.3f} |")
    return "\n".join(rows) + "\n"


def clipping_table(runs: Sequence[RunResult]) -> str:
    """Markdown: one row per (optimizer, clipping): how many seeds diverged, and when."""
    rows = ["| optimizer | learning rate | clipping | diverged (loss NaN/inf) | at step | "
            "largest gradient norm | final test MSE per seed |",
            "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        key = (run.config.optimizer, run.config.learning_rate, run.config.global_clipnorm)
        groups.setdefault(key, []).append(run)
    for (optimizer, rate, clip), group in groups.items():
        diverged = [run for run in group if run.diverged]
        at = ", ".join(str(len(run.losses)) for run in diverged) or "-"
        finite = [norm for run in group for norm in run.grad_norms if math.isfinite(norm)]
        largest = f"{max(finite):.3g}" if finite else "-"
        final = ", ".join("-" if run.diverged else _mse(run.final_mse) for run in group)
        clipping = f"global_clipnorm={clip:g}" if clip else "none"
        rows.append(f"| {optimizer} | {rate:g} | {clipping} | {len(diverged)} of "
                    f"{len(group)} | {at} | {largest} | {final} |")
    return "\n".join(rows) + "\n"
