"""Where a language model's bits go in a play: speaker lines against the speech.

    python scripts/bits_by_line.py data/shakespeare/test.txt [--model saved_models/shakespeare]
    python scripts/bits_by_line.py data/shakespeare/test.txt --adapt 0.1   (dynamic evaluation)
    python scripts/bits_by_line.py data/shakespeare/test.txt --cache 20000 (neural cache)

Reads the canonical text (`nlpapps data prepare --pair shakespeare`) as `nlpapps lm evaluate`
reads it (with `--adapt LR` or `--cache N`, as `lm evaluate` does with them) and splits the
total negative log-likelihood by the kind of line each token is in: speaker lines (the name
that opens each speech), spoken lines and blank lines. A line's break counts with the line it
ends. Prints a JSON report: for each kind its characters, its share of the bits and its own
bits per character, and the bits per speaker line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlpapps.cli import silence_native_logs  # noqa: E402
from nlpapps.commands.common import DEFAULT_GENERATOR  # noqa: E402


def line_kinds(text: str) -> list[str]:
    from nlpapps.corpora.shakespeare import speaker_lines

    return ["speaker" if speaker else "speech" if line else "blank"
            for line, speaker in zip(text.split("\n"), speaker_lines(text))]


def bits_by_kind(text: str, ids: list[int], nats, newline_id: int) -> dict:
    """The report for `text`, given each token's nll (`language_model.token_nll`)."""
    kinds = line_kinds(text)
    lines = text.split("\n")
    line = 0
    bits = dict.fromkeys(("speaker", "speech", "blank"), 0.0)
    for id, nll in zip(ids, nats, strict=True):
        bits[kinds[line]] += nll / math.log(2)
        line += id == newline_id  # the break belongs to the line it ends
    total = sum(bits.values())
    report = {"characters": len(text), "bits_per_character": total / len(text)}
    for kind, kind_bits in bits.items():
        characters = sum(len(lines[i]) + (i < len(lines) - 1)  # with its break
                         for i, k in enumerate(kinds) if k == kind)
        report[kind] = {"characters": characters, "share_of_bits": kind_bits / total,
                        "bits_per_character": kind_bits / max(characters, 1)}
    report["bits_per_speaker_line"] = bits["speaker"] / max(kinds.count("speaker"), 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", help="a canonical play text")
    parser.add_argument("--model", default=str(DEFAULT_GENERATOR))
    reading = parser.add_mutually_exclusive_group()
    reading.add_argument("--adapt", type=float, metavar="LR",
                         help="dynamic evaluation at this learning rate (other settings default)")
    reading.add_argument("--cache", type=int, metavar="N",
                         help="a neural cache of the last N positions (other settings default)")
    args = parser.parse_args()
    silence_native_logs()
    from nlpapps.apps import language_model
    from nlpapps.apps.dynamic_evaluation import Adaptation
    from nlpapps.apps.neural_cache import Cache
    from nlpapps.apps.model_folder_reader import ModelError

    try:
        text = Path(args.text).read_text(encoding="utf-8")
        adaptation = Adaptation(learning_rate=args.adapt) if args.adapt else None
        cache = Cache(size=args.cache) if args.cache else None
        model, tokenizer, _ = language_model.load(Path(args.model))
        ids, nats = language_model.token_nll(model, tokenizer, text, adaptation=adaptation,
                                             cache=cache)
    except (OSError, UnicodeDecodeError, ValueError, ModelError) as error:
        parser.exit(2, f"error: {str(error).splitlines()[0]}\n")
    print(json.dumps(bits_by_kind(text, ids, nats, tokenizer.newline_id), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
