"""The figure of a memory network's hops: each hop's attention over a story's sentences."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_attention(reply, question: str, path: Path) -> None:
    """Writes a PNG heat map: one row per sentence the memory kept, one column per hop, each
    cell the hop's attention weight on the sentence; the title is the question and answer."""
    attention = reply.attention.T  # (sentences, hops)
    height = 1.2 + 0.32 * len(reply.sentences)
    figure, axes = plt.subplots(figsize=(7.5, height))
    image = axes.imshow(attention, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(attention.shape[1]),
                    [f"hop {k + 1}" for k in range(attention.shape[1])])
    axes.set_yticks(range(len(reply.sentences)),
                    [textwrap.shorten(s, 48) for s in reply.sentences], fontsize=8)
    for (row, column), weight in np.ndenumerate(attention):
        if weight >= 0.05:
            axes.text(column, row, f"{weight:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if weight > 0.6 else "black")
    axes.set_title(f"{question}  ->  {reply.answer}", fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.04, label="attention")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
