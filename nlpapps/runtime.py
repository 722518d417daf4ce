"""Which runtime runs a command on a model folder: the folder's LiteRT file at batch 1, or
TensorFlow (the SavedModel).

    nlpapps generate "ROMEO:"                    # auto: the folder's LiteRT file if it runs
    nlpapps generate "ROMEO:" --runtime tf       # the SavedModel in TensorFlow
    nlpapps -v translate "Hello." --runtime litert  # the file, or one line saying why not

A model folder may hold one-call LiteRT files beside its SavedModel (`FOLDER_FILES`, written by
`nlpapps export --model FOLDER --in-folder`). With `--runtime auto` a command runs the first of
them that exists when the options asked for are ones the file runs, else the SavedModel;
`--runtime litert` runs the file or stops with one line that says why it cannot; `--runtime tf`
runs the SavedModel. `-v` logs which ran and why.

A file samples with its own seeded generator and, dynamic-range quantized, may flip a
near-tie that the float SavedModel resolves the other way: the same flags give the same text
in each runtime, and greedy text agrees between them but for such flips (docs/export.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from nlpapps.errors import ModelError, UserError

log = logging.getLogger("nlpapps")

RUNTIMES = ("auto", "tf", "litert")
# The one-call LiteRT files a model folder may hold, by their --quantize, fastest first: auto
# runs the first there. int8 files are not run by default: their calibrated activations lose
# more than the others (docs/benchmarks.md), so they run only as `--model FILE.tflite`.
FOLDER_FILES = {"dynamic": "model.dynamic.tflite", "none": "model.float32.tflite",
                "float16": "model.float16.tflite"}


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The runtime a command runs: `name` "tf" (`path` the model folder) or "litert" (`path`
    the LiteRT file), and `reason`, the why that `-v` prints."""

    name: str
    path: Path
    reason: str


def folder_file_name(quantize: str) -> str:
    """The name of a model folder's LiteRT file of `quantize`; UserError for int8 or an
    unknown mode."""
    if quantize not in FOLDER_FILES:
        raise UserError(f"--in-folder writes {', '.join(FOLDER_FILES)} files, not "
                        f"{quantize!r}; give --output FILE.tflite for another")
    return FOLDER_FILES[quantize]


def folder_file(folder: Path) -> Path | None:
    """The LiteRT file that runs `folder`'s model in LiteRT: the first of `FOLDER_FILES` in the
    folder, or None."""
    for name in FOLDER_FILES.values():
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def choose(folder: Path, requested: str, unsupported: list[str]) -> Runtime:
    """The runtime for a command on the model folder `folder`.

    Args:
        folder: the model folder (SavedModel, config.json, tokenizer, LiteRT files).
        requested: the `--runtime` flag: "auto", "tf" or "litert".
        unsupported: the options asked for that a LiteRT file cannot run, each named as its
            flag (e.g. "--beam 3"); empty when the file runs them all.

    Raises UserError for `--runtime litert` with such options, ModelError for `--runtime
    litert` on a folder without a LiteRT file.
    """
    folder = Path(folder)
    if requested not in RUNTIMES:
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {requested!r}")
    if requested == "tf":
        return Runtime("tf", folder, "--runtime tf")
    path = folder_file(folder)
    if requested == "litert":
        if unsupported:
            raise UserError(f"--runtime litert cannot run {', '.join(unsupported)}: leave "
                            "them out or give --runtime tf")
        if path is None:
            raise ModelError(f"{folder} has no LiteRT file ({', '.join(FOLDER_FILES.values())}); "
                             f"write one with `nlpapps export --model {folder} --quantize "
                             "dynamic --in-folder`, or give --runtime tf")
        return Runtime("litert", path, "--runtime litert")
    if path is None:
        return Runtime("tf", folder, f"{folder} has no LiteRT file")
    if unsupported:
        return Runtime("tf", folder, f"{path.name} cannot run {', '.join(unsupported)}")
    return Runtime("litert", path, f"{path.name} is in the model folder and runs these "
                                   "options at batch 1")


def choose_for_file(path: Path, requested: str) -> Runtime:
    """The runtime for a command given a `.tflite` file as its model: LiteRT, unless
    `--runtime tf` asks for what a file cannot be run by (UserError)."""
    if requested == "tf":
        raise UserError(f"--runtime tf runs a model folder's SavedModel; {path} is a LiteRT "
                        "file: give its folder or leave --runtime out")
    return Runtime("litert", Path(path), "the model is a LiteRT file")


def announce(runtime: Runtime) -> None:
    """Logs (seen with `-v`) which runtime runs and why."""
    log.info("runtime: %s, %s (%s)", "LiteRT" if runtime.name == "litert" else "TensorFlow",
             runtime.path, runtime.reason)


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """The `--runtime` flag of a command that runs a model folder."""
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="auto (the default): the model folder's LiteRT file at batch 1 "
                             "when it has one that runs the options given, else TensorFlow; "
                             "tf: the SavedModel; litert: the file (-v says which ran and why)")
