"""What the subcommands share: user errors, flags from config dataclasses, reading inputs."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib
import inspect
import io
import logging
import math
import sys
import textwrap
import tokenize
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nlpapps.errors import UserError  # noqa: F401  (the commands raise it from here)
from nlpapps.text_bytes import to_utf8

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_TRANSLATOR = PACKAGE_ROOT / "saved_models" / "translator-en-de"
DEFAULT_GENERATOR = PACKAGE_ROOT / "saved_models" / "shakespeare"

log = logging.getLogger("nlpapps")



def add_config_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    """One flag per dataclass field: `--field-name VALUE`, its help the field's comment and its
    default the field's default.

    `config_cls` may be named as `"package.module:Class"`: the flags are then added when the
    parser's subcommand is the one run (or its --help asked for), so that building the command
    line imports no app module (and no TensorFlow) for the other subcommands.
    """
    if isinstance(config_cls, str):
        parse_known_args = parser.parse_known_args

        def parse_with_config(args=None, namespace=None):
            if not getattr(parser, "config_added", False):
                parser.config_added = True
                module, _, name = config_cls.partition(":")
                add_config_arguments(parser, getattr(importlib.import_module(module), name))
            return parse_known_args(args, namespace)

        # Wrapping the bound method on this one parser is the point (mypy forbids it).
        parser.parse_known_args = parse_with_config  # type: ignore[method-assign]
        return
    group = parser.add_argument_group(f"{config_cls.__name__} fields")
    comments = field_comments(config_cls)
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kinds: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str,
                                                  "bool": _bool}
        kind = kinds[str(field.type)]
        about = comments.get(field.name, "").replace("%", "%%")  # argparse formats help
        group.add_argument(flag, type=kind, default=field.default, dest=field.name,
                           help=f"{about} (default: {field.default!r})".lstrip())


def field_comments(config_cls) -> dict[str, str]:
    """{field: the comment at the end of its line} in the dataclass's source."""
    try:
        source = textwrap.dedent(inspect.getsource(config_cls))
    except (OSError, TypeError):  # no source (a frozen build): flags without help
        return {}
    comments, field = {}, None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.start[1] == 4 and field is None:
            field = token.string  # a name at the class body's indentation
        elif token.type == tokenize.COMMENT and field:
            comments[field] = token.string.lstrip("# ").strip()
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            field = None
    return comments


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def config_from_args(config_cls, args: argparse.Namespace):
    """The config of the flags; UserError for a value out of range (a negative size or
    learning rate, a dropout of 1 or more, ...), before anything is trained."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)}
    check_config_values(values)
    try:
        return config_cls(**values)
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None


INT32_MAX = 2**31 - 1
# Fields, by name, of every app's config: what a value must be to mean anything.
POSITIVE = ("vocab_size", "embedding_dim", "units", "layers", "encoder_layers",
            "decoder_layers", "attention_units", "batch_size", "epochs", "steps_per_epoch",
            "seq_len", "eval_every", "dev_sentences", "memory_size", "hops")
NON_NEGATIVE = ("decay_steps", "patience", "max_minutes", "subword_alpha", "max_length")
FRACTIONS = ("dropout", "recurrent_dropout", "label_smoothing")  # in [0, 1)


def check_config_values(values: dict) -> None:
    """UserError naming the first flag whose value cannot be meant: a size below 1, a
    negative count, a fraction outside [0, 1), a learning rate that is not a positive number,
    an integer past 32 bits."""
    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise UserError(f"{flag(name)} must be a finite number, got {value}")
        if isinstance(value, int) and not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise UserError(f"{flag(name)} must fit in 32 bits (at most {INT32_MAX}), "
                            f"got {value}")
        if name in POSITIVE and value < 1:
            raise UserError(f"{flag(name)} must be at least 1, got {value}")
        if name in NON_NEGATIVE and value < 0:
            raise UserError(f"{flag(name)} must be 0 or more, got {value}")
        if name in FRACTIONS and not 0 <= value < 1:
            raise UserError(f"{flag(name)} must be in [0, 1), got {value}")
        if name == "learning_rate" and value <= 0:
            raise UserError(f"{flag(name)} must be positive, got {value}")
        if name in ("clipnorm", "seed") and value < 0:
            raise UserError(f"{flag(name)} must be 0 or more, got {value}")


def check_output_file(path: Path, flag: str) -> None:
    """UserError unless a file can be written at `path`: its folder exists, and it is not a
    folder itself."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist; create it or "
                        "give another path")


def iter_lines(args) -> Iterator[bytes]:
    """The input lines, without their line ends: the `text` arguments, else the lines of
    `--file`, else of stdin, read as they come (a line typed at a terminal is yielded when it
    is entered). A missing file is an error at once."""
    if args.text:
        # as the shell gave them; a lone surrogate given from Python as its UTF-8 form
        return (to_utf8(text) for text in args.text)
    return lines_of(args.file)


def lines_of(file: str | None) -> Iterator[bytes]:
    """The lines of a file without their line ends, or of stdin for None or "-"; a missing
    file is an error at once."""
    if file and file != "-":
        path = Path(file)
        check_file(path, "input file")
        return _file_lines(path)
    # readline, not iteration: iterating a buffered stdin waits for a full buffer.
    return (_strip_line_end(line) for line in iter(sys.stdin.buffer.readline, b""))


def check_file(path: Path, what: str) -> None:
    """UserError unless `path` is a file that can be read: missing, or a folder."""
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a regular file")


def reads_a_terminal(args) -> bool:
    """Whether `iter_lines(args)` reads lines a person types at a terminal."""
    return not args.text and args.file in (None, "-") and sys.stdin.isatty()


def _file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        yield from (_strip_line_end(line) for line in file)


def _strip_line_end(line: bytes) -> bytes:
    return line[:-1].rstrip(b"\r") if line.endswith(b"\n") else line.rstrip(b"\r")


def read_pairs(path: str):
    from nlpapps.corpora.en_de import read_pairs_tsv

    check_file(Path(path), "pairs file")
    try:
        rows = read_pairs_tsv(Path(path))
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None
    if not rows:
        raise UserError(f"{path} holds no pairs; give english<TAB>german lines")
    return rows


def read_text(path: str | Path) -> str:
    """The text of a file, or of a folder's `*.txt` and `*.txt.gz` files (in its subfolders
    too, in path order, each ending in a line end); a `.gz` file is decompressed. Bytes that
    are not UTF-8 are kept as unknown characters, with a warning on stderr naming the first
    one's line."""
    source = Path(path)
    if not source.exists():
        raise UserError(f"text file {source} does not exist")
    if not source.is_dir():
        return _decode_text(source)
    files = sorted(file for pattern in ("*.txt", "*.txt.gz") for file in source.rglob(pattern)
                   if file.is_file())
    if not files:
        raise UserError(f"{source} is a folder with no .txt or .txt.gz file in it")
    texts = [_decode_text(file) for file in files]
    return "".join(text if text.endswith("\n") or not text else text + "\n" for text in texts)


def _decode_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise UserError(f"{path} is not a readable gzip file ({error})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="surrogateescape")
        bad = sum(1 for char in text if "\udc80" <= char <= "\udcff")
        line = data.count(b"\n", 0, error.start) + 1
        print(f"warning: {path}: {bad} bytes are not UTF-8 (the first on line {line}); they "
              "are read as unknown characters", file=sys.stderr)
        return text
