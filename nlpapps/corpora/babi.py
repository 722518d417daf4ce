"""The bAbI question-answering tasks (Weston et al. 2015): the format, the official archive,
and `nlpapps data prepare --corpus babi`.

A bAbI file is numbered lines; the numbering restarts at 1 with each story. A statement is
`N text`, a question `N text?<TAB>answer<TAB>supporting line numbers`. The story of a
question is every statement since its story began (earlier questions are not part of it).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import re
import tarfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("nlpapps.babi")

ARCHIVE_URL = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz"
ARCHIVE_NAME = "tasks_1-20_v1-2.tar.gz"
ARCHIVE_FOLDER = "tasks_1-20_v1-2/en-10k"  # the 10,000-question training sets
SPLITS = ("train", "test")
TASK_NAMES = {
    1: "single-supporting-fact", 2: "two-supporting-facts", 3: "three-supporting-facts",
    4: "two-arg-relations", 5: "three-arg-relations", 6: "yes-no-questions", 7: "counting",
    8: "lists-sets", 9: "simple-negation", 10: "indefinite-knowledge",
    11: "basic-coreference", 12: "conjunction", 13: "compound-coreference",
    14: "time-reasoning", 15: "basic-deduction", 16: "basic-induction",
    17: "positional-reasoning", 18: "size-reasoning", 19: "path-finding",
    20: "agents-motivations",
}
FILE_PATTERN = re.compile(r"qa(\d+)_([a-z-]+)_(train|test)\.txt(\.gz)?$")


class BabiFormatError(ValueError):
    """A line that is not bAbI's format; the message names the file and the line."""


@dataclasses.dataclass(frozen=True)
class Question:
    """One bAbI question with its story."""

    story: tuple[str, ...]  # the statements since the story began, in order, without numbers
    question: str  # e.g. "Where is the football?"
    answer: str  # as bAbI writes it: "garden", "n,w", "apple,football"
    supporting: tuple[int, ...]  # indices into `story` of the supporting statements
    task: int = 0  # 1..20, 0 if unknown


def tokenize(text: str) -> list[str]:
    """Lowercased words without punctuation: "Where is the football?" -> where is the football.
    The exported model does the same in its graph (`[^a-z0-9]+` separates words)."""
    return [word for word in re.split(r"[^a-z0-9]+", text.lower()) if word]


def parse(lines: Iterable[str], source: str = "<text>", task: int = 0) -> list[Question]:
    """The questions of a bAbI file's lines; BabiFormatError names the first bad line."""
    questions: list[Question] = []
    story: list[str] = []
    statement_of_line: dict[int, int] = {}  # line number -> index in `story`
    last = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{source}:{number}"
        head, _, rest = line.partition(" ")
        if not head.isdigit() or not rest.strip():
            raise BabiFormatError(f"{where}: expected 'N text' (a line number, a space, text), "
                                  f"got {line[:60]!r}")
        index = int(head)
        if index == 1:
            story, statement_of_line = [], {}
        elif index != last + 1:
            raise BabiFormatError(f"{where}: line number {index} follows {last}; numbers "
                                  "count up from 1 within a story")
        last = index
        if "\t" not in rest:
            story.append(rest.strip())
            statement_of_line[index] = len(story) - 1
            continue
        fields = rest.split("\t")
        if len(fields) != 3 or not fields[1].strip():
            raise BabiFormatError(f"{where}: a question line is 'N question?<TAB>answer<TAB>"
                                  "supporting line numbers'")
        text, answer, support = (field.strip() for field in fields)
        try:
            supporting = tuple(statement_of_line[int(n)] for n in support.split())
        except (ValueError, KeyError):
            raise BabiFormatError(f"{where}: supporting line numbers {support!r} are not "
                                  "statements of this story") from None
        if not story:
            raise BabiFormatError(f"{where}: a question with no story before it")
        questions.append(Question(tuple(story), text, answer, supporting, task))
    return questions


def task_of(path: Path | str) -> tuple[int, str] | None:
    """`(task, split)` of a file named like `qa2_two-supporting-facts_train.txt[.gz]`."""
    match = FILE_PATTERN.search(Path(path).name)
    return (int(match.group(1)), match.group(3)) if match else None


def read_file(path: Path) -> list[Question]:
    """The questions of a bAbI file, plain or gzip."""
    path = Path(path)
    found = task_of(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return parse(data.decode("utf-8").splitlines(), str(path), found[0] if found else 0)


def read_folder(folder: Path) -> dict[int, dict[str, list[Question]]]:
    """{task: {split: questions}} of the `qaN_<name>_{train,test}.txt[.gz]` files in `folder`;
    FileNotFoundError if it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"bAbI folder {folder} does not exist; make it with "
                                "`nlpapps data prepare --corpus babi --out DIR`")
    tasks: dict[int, dict[str, list[Question]]] = {}
    for path in sorted(folder.iterdir()):
        found = task_of(path)
        if found:
            tasks.setdefault(found[0], {})[found[1]] = read_file(path)
    if not tasks:
        raise FileNotFoundError(f"{folder} holds no bAbI file (qaN_<name>_train.txt or "
                                "_test.txt); make it with `nlpapps data prepare --corpus babi`")
    return dict(sorted(tasks.items()))


def archive_files(archive: Path, folder: str = ARCHIVE_FOLDER) -> dict[str, bytes]:
    """{file name: bytes} of the task files under `folder` of the official archive."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            files = {}
            for member in tar.getmembers():
                name = Path(member.name)
                if member.isfile() and str(name.parent) == folder and task_of(name):
                    files[name.name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise RuntimeError(f"{archive} is not a readable bAbI archive ({error}); give "
                           f"{ARCHIVE_NAME}") from None
    if not files:
        raise RuntimeError(f"{archive} has no task files under {folder}/; give the official "
                           f"{ARCHIVE_NAME}")
    return files


def download(cache: Path) -> Path:
    """The official archive, downloaded into `cache` once."""
    path = Path(cache) / ARCHIVE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.warning("downloading %s", ARCHIVE_URL)
        try:
            with urllib.request.urlopen(ARCHIVE_URL, timeout=60) as response:
                data = response.read()
        except OSError as error:
            raise RuntimeError(f"could not download {ARCHIVE_URL} ({error}); download it "
                               "elsewhere and give it with --archive PATH") from None
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def prepare(out: Path, archive: Path | None = None) -> dict[int, dict[str, int]]:
    """Writes the en-10k task files of `archive` (downloaded when None) into `out`, after
    checking each parses; returns {task: {split: questions}}."""
    out = Path(out)
    if archive is None:
        archive = download(out / ".download")
    elif not Path(archive).is_file():
        raise FileNotFoundError(f"archive {archive} does not exist; give the path of "
                                f"{ARCHIVE_NAME}")
    files = archive_files(Path(archive))
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[int, dict[str, int]] = {}
    for name, data in sorted(files.items()):
        task, split = task_of(name)
        questions = parse(data.decode("utf-8").splitlines(), f"{archive}:{name}", task)
        (out / name).write_bytes(data)
        counts.setdefault(task, {})[split] = len(questions)
    log.warning("wrote %d bAbI files (%d tasks) to %s", len(files), len(counts), out)
    return dict(sorted(counts.items()))
