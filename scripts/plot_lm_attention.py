"""Plots where an attentive language model's tokens look back to, in a passage where a line
(a speaker's name) recurs.

    python scripts/plot_lm_attention.py --text data/shakespeare/dev.txt --chars 1100 \
        --line MARULLUS: --out docs/language_model_attention.png

The passage is the first `--chars` characters of `--text`, read in one window from empty
states; the rows are the pieces of the last line spelled `--line` (with the line break before
it), the columns the positions those rows attend to most.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlpapps.apps import language_model
from nlpapps.apps.language_model_attention_figure import (line_positions, passage_attention,
                                                          plot_passage_attention)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("saved_models/shakespeare"),
                        help="an attentive language-model folder")
    parser.add_argument("--text", type=Path, required=True, help="a UTF-8 text file")
    parser.add_argument("--chars", type=int, default=1100, help="characters of the passage")
    parser.add_argument("--line", default="MARULLUS:", help="the recurring line to follow")
    parser.add_argument("--columns", type=int, default=24, help="positions shown")
    parser.add_argument("--out", type=Path, default=Path("docs/language_model_attention.png"))
    args = parser.parse_args(argv)
    model, tokenizer, _ = language_model.load(args.model)
    passage = args.text.read_text(encoding="utf-8")[:args.chars]
    try:
        attention = passage_attention(model, tokenizer, passage)
        rows = line_positions(attention, args.line)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    plot_passage_attention(attention, rows, args.out, args.columns,
                           title=f"{args.model.name}: the last {args.line!r} of "
                                 f"{args.text.name}[:{args.chars}]")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
