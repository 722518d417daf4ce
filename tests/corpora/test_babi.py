"""The bAbI format: stories, questions, supporting facts; the official archive; bad lines."""

import io
import tarfile
from pathlib import Path

import pytest

from nlpapps.corpora import babi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "babi"

LINES = """1 Mary moved to the bathroom.
2 Sandra journeyed to the bedroom.
3 Mary got the football there.
4 Where is Mary? \tbathroom\t1
5 Mary went back to the garden.
6 Where is the football? \tgarden\t3 5
1 The hallway is west of the bathroom.
2 How do you go from the bathroom to the hallway?\tw\t1
""".splitlines()


def test_a_questions_story_is_every_statement_since_its_story_began():
    first, second, third = babi.parse(LINES, task=2)
    assert first.story == ("Mary moved to the bathroom.", "Sandra journeyed to the bedroom.",
                           "Mary got the football there.")
    assert (first.question, first.answer, first.supporting) == ("Where is Mary?", "bathroom", (0,))
    # The earlier question is not part of the story; line numbers map to statements.
    assert second.story == first.story + ("Mary went back to the garden.",)
    assert second.supporting == (2, 3) and second.answer == "garden" and second.task == 2
    assert third.story == ("The hallway is west of the bathroom.",) and third.answer == "w"


def test_tokenize_lowercases_and_drops_punctuation():
    assert babi.tokenize("Where is the Football? ") == ["where", "is", "the", "football"]


@pytest.mark.parametrize("line, message", [
    ("Mary moved to the bathroom.", "expected 'N text'"),
    ("5 Mary moved to the bathroom.", "line number 5 follows 3"),
    ("4 Where is Mary?\tbathroom", "a question line is"),
    ("4 Where is Mary?\tbathroom\t9", "supporting line numbers '9'"),
])
def test_a_malformed_line_is_named_with_its_number(line, message):
    lines = LINES[:3] + [line]
    with pytest.raises(babi.BabiFormatError, match=message) as error:
        babi.parse(lines, source="story.txt")
    assert str(error.value).startswith("story.txt:4: ")


def test_fixture_files_read_with_their_task():
    tasks = babi.read_folder(FIXTURES)
    assert sorted(tasks) == [1, 2, 8, 19] and set(tasks[8]) == {"train", "test"}
    assert any(q.answer == "n,w" or "," in q.answer for q in tasks[19]["train"])
    assert all(q.task == 2 for q in tasks[2]["test"])
    first = tasks[1]["train"][0]
    assert first.question == "Where is Mary?" and first.answer == "bathroom"


def make_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_prepare_writes_the_en_10k_files_of_the_archive(tmp_path):
    story = "\n".join(LINES) + "\n"
    make_archive(tmp_path / babi.ARCHIVE_NAME, {
        f"{babi.ARCHIVE_FOLDER}/qa1_single-supporting-fact_train.txt": story,
        f"{babi.ARCHIVE_FOLDER}/qa1_single-supporting-fact_test.txt": story,
        "tasks_1-20_v1-2/en/qa1_single-supporting-fact_train.txt": "1 other set\n",
    })
    counts = babi.prepare(tmp_path / "out", tmp_path / babi.ARCHIVE_NAME)
    assert counts == {1: {"train": 3, "test": 3}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt"]
    assert babi.read_folder(tmp_path / "out")[1]["train"][1].answer == "garden"


def test_prepare_rejects_an_archive_without_the_tasks(tmp_path):
    make_archive(tmp_path / "other.tar.gz", {"something/else.txt": "x"})
    with pytest.raises(RuntimeError, match="no task files under tasks_1-20_v1-2/en-10k"):
        babi.prepare(tmp_path / "out", tmp_path / "other.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(RuntimeError, match="not a readable bAbI archive"):
        babi.prepare(tmp_path / "out", tmp_path / "junk.tar.gz")
