"""The `nlpapps` command. Each subcommand maps its flags onto an app's config dataclass.

    nlpapps translate "Where is the station?"          (shipped model; stdin if no text)
    nlpapps translate-train --data DIR --out DIR        (flags = TranslatorConfig fields)
    nlpapps translate-eval --model DIR --pairs TEST.tsv
    nlpapps data prepare --corpus en-de --out DIR
    nlpapps export --format tflite --quantize dynamic  (--report: size, quality, speed)
    nlpapps generate "ROMEO:" --temperature 0.8          (shipped model; --help for options)
    nlpapps lm train --data DIR --out DIR                (flags = LanguageModelConfig fields)
    nlpapps lm evaluate TEST.txt --model DIR             (bits per character, perplexity)
    nlpapps lm score --model DIR < lines.txt             (log-probability of each line)
    nlpapps gradients adding | norms | clipping          (docs/gradients.md)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from nlpapps.apps.registry import APPS, resolve  # noqa: E402
from nlpapps.commands import (data_commands, export_commands,  # noqa: E402
                              gradients_commands, recipe_commands)
from nlpapps.errors import EXIT_STATUS, NlpappsError  # noqa: E402

# Commands of no single app; each app's own come from the registry, in its order.
SHARED_COMMANDS = (data_commands, export_commands, recipe_commands, gradients_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlpapps", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (*(resolve(app.commands) for app in APPS), *SHARED_COMMANDS):
        commands.add_parsers(sub)
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
    try:
        return args.func(args)
    except NlpappsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_STATUS
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        # TensorFlow's ResourceExhaustedError (an allocation refused), without importing it
        if not isinstance(error, MemoryError) and type(error).__name__ != \
                "ResourceExhaustedError":
            raise
        print("error: out of memory; give fewer or shorter inputs at a time (or a smaller "
              "--batch-size or --beam)", file=sys.stderr)
        return EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())
