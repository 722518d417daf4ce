"""The figure of an attentive language model's memory: where the tokens of a recurring line
look back to, and what they read there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

from nlpapps.models.language_model_network import LanguageModel
from nlpapps.tokenizer import BOS_ID, Tokenizer, line_start_ids

NEWLINE_PIECE = "\n"  # `PassageAttention.pieces` holds a line break as itself
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


@dataclass(frozen=True)
class PassageAttention:
    """The attention block's weights over a passage read in one window from empty states.

    `pieces[t]` is the piece read at position t (position 0 is bos, "<s>"); `weights[t, j]`
    the weight position t gives to position j <= t: with previous keys, position t reads the
    state at j, where `pieces[j]` was read, found by the context before it. Row t predicts
    `pieces[t + 1]`.
    """

    pieces: list[str]
    weights: np.ndarray  # (T, T)


def passage_attention(model: LanguageModel, tokenizer: Tokenizer, text: str) -> PassageAttention:
    """Reads `text` (from the start of a line) in one window and returns each position's
    attention over the positions before it. ValueError for a model without attention, or a
    text longer than its memory (which one window of `evaluate` could not see whole)."""
    if model.attention is None:
        raise ValueError("the model has no attention block; train one with --attention true")
    ids = [BOS_ID, *line_start_ids(tokenizer, text)]
    if len(ids) > model.attention.memory_length:
        raise ValueError(f"the passage has {len(ids)} tokens; the model's memory holds "
                         f"{model.attention.memory_length}: give a shorter one")
    embedded = model.embedding(np.asarray([ids], np.int32))
    outputs, _ = model.rnn(embedded)
    _, _, _, weights = model.attention(model.attention_inputs(outputs, embedded),
                                       return_attention=True)
    memory = model.attention.memory_length  # the empty memory's slots come first
    pieces = ["<s>", *(NEWLINE_PIECE if i == tokenizer.newline_id else tokenizer.id_to_piece(i)
                       for i in ids[1:])]
    return PassageAttention(pieces, np.asarray(weights)[0, :, memory:])


def line_positions(attention: PassageAttention, line: str, occurrence: int = -1) -> list[int]:
    """The positions whose pieces spell `line` at the start of a line (its `occurrence`-th
    time, the last by default), with the newline piece before it. ValueError if it is not
    there."""
    starts, pieces = [], attention.pieces
    for start in range(1, len(pieces)):
        if pieces[start - 1] == NEWLINE_PIECE or start == 1:
            spelled, end = "", start
            while end < len(pieces) and len(spelled) < len(line):
                spelled += pieces[end].replace("\u2581", " ")
                end += 1
            if spelled.strip() == line.strip():
                starts.append(list(range(start - 1, end)))
    if not starts:
        raise ValueError(f"{line!r} does not begin a line of the passage")
    return starts[occurrence]


def plot_passage_attention(attention: PassageAttention, rows: list[int], path: Path,
                           columns: int = 24, title: str = "") -> None:
    """Writes a PNG heat map: one row per position in `rows` (labelled with the piece it
    reads and the one it predicts), one column per position among the `columns` most
    attended by those rows (in text order, labelled with the piece read there and its line),
    each cell the attention weight."""
    weights = attention.weights[rows]  # (rows, T)
    strongest = np.argsort(weights.max(axis=0))[::-1][:columns]
    shown = sorted(int(j) for j in strongest)
    lines = np.cumsum([piece == NEWLINE_PIECE for piece in attention.pieces]) + 1

    def label(j):
        piece = attention.pieces[j]
        return "\\n" if piece == NEWLINE_PIECE else piece.replace("\u2581", " ").strip() or "_"

    row_labels = [f"{label(t)} → {label(t + 1) if t + 1 < len(attention.pieces) else ''}"
                  for t in rows]
    column_labels = [f"{label(j)} (line {lines[j - 1] if j else 1})" for j in shown]
    figure, axes = plt.subplots(figsize=(1.0 + 0.34 * len(shown), 1.6 + 0.32 * len(rows)))
    image = axes.imshow(weights[:, shown], cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(shown)), column_labels, rotation=70, ha="right", fontsize=7)
    axes.set_yticks(range(len(rows)), row_labels, fontsize=8)
    axes.set_xlabel("position read (the piece there, and its line)", fontsize=8)
    axes.set_ylabel("position reading → the piece it predicts", fontsize=8)
    if title:
        axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.03, label="attention")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
