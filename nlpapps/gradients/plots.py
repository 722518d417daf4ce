"""The figures of the gradients demonstrations, written as PNG files with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nlpapps.gradients.adding import BASELINE_MSE  # noqa: E402


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_norms(curves: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """One panel per state ("untrained", "trained"): for each cell, the norm of dL_T/dh_{T-k}
    against k on a log scale."""
    figure, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), sharey=True,
                                squeeze=False)
    for axis, (state, by_cell) in zip(axes[0], curves.items(), strict=True):
        for cell, norms in by_cell.items():
            norms = np.where(norms > 0, norms, np.nan)  # log scale: a zero gradient is a gap
            axis.semilogy(np.arange(len(norms)), norms, label=cell)
        axis.set_title(f"{state}")
        axis.set_xlabel("k (steps back from the last)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("mean ||dL_T / dh_{T-k}||")
    axes[0][-1].legend()
    figure.suptitle(title)
    _save(figure, path)


def plot_mse(runs: Sequence, path: Path) -> None:
    """One panel per sequence length: test MSE against training step, one line per run
    (colour by cell), with the baseline of predicting the mean."""
    lengths = sorted({run.config.length for run in runs})
    cells = list(dict.fromkeys(run.config.cell for run in runs))
    colours = dict(zip(cells, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    figure, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 4), sharey=True,
                                squeeze=False)
    for axis, length in zip(axes[0], lengths, strict=True):
        labelled = set()
        for run in runs:
            if run.config.length != length:
                continue
            cell = run.config.cell
            axis.semilogy(run.test_steps, run.test_mse, color=colours[cell], alpha=0.8,
                          label=None if cell in labelled else cell)
            labelled.add(cell)
        axis.axhline(BASELINE_MSE, color="grey", linestyle="--", label="predict the mean")
        axis.axhline(0.01, color="grey", linestyle=":", label="bar, 0.01")
        axis.set_title(f"adding problem, T = {length}")
        axis.set_xlabel("training step")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("test MSE")
    _save(figure, path)


def plot_grad_norms(runs: Sequence, path: Path, title: str) -> None:
    """One panel per (optimizer, clipping): the global gradient norm (before clipping) of
    every step of every seed, log scale; a cross marks where a run's loss became NaN/inf."""
    groups = list(dict.fromkeys((run.config.optimizer, run.config.global_clipnorm)
                                for run in runs))
    figure, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), sharex=True,
                                sharey=True, squeeze=False)
    for axis, (optimizer, clip) in zip(axes[0], groups, strict=True):
        for run in runs:
            if (run.config.optimizer, run.config.global_clipnorm) != (optimizer, clip):
                continue
            norms = np.asarray(run.grad_norms, dtype=float)
            steps = np.arange(1, len(norms) + 1)
            finite = np.isfinite(norms)
            line, = axis.semilogy(steps[finite], norms[finite], alpha=0.8,
                                  label=f"seed {run.config.seed}")
            if run.diverged:
                last = norms[finite][-1] if finite.any() else 1.0
                axis.plot(len(norms), last, "x", color=line.get_color(), markersize=10)
        clipping = f"global_clipnorm={clip:g}" if clip else "no clipping"
        axis.set_title(f"{optimizer}, {clipping}")
        axis.set_xlabel("training step")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("global gradient norm (before clipping)")
    axes[0][-1].legend(fontsize=8)
    figure.suptitle(title)
    _save(figure, path)
