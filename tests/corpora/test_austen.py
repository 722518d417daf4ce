"""Tests of the R lazy-load reader on a cut of the real `janeaustenr` database."""

import gzip
import struct
import zlib
from pathlib import Path

import pytest

from nlpapps.corpora import austen

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "corpora" / "janeaustenr"

# The openings of the novels as every edition prints them.
OPENINGS = {
    "emma": "Emma Woodhouse, handsome, clever, and rich, with a comfortable home",
    "prideprejudice": "It is a truth universally acknowledged, that a single man in possession",
}


def test_index_lists_the_six_novels_with_offsets_into_the_rdb():
    packed = (DATA / "Rdata.rdx").read_bytes()
    index = austen.named(austen.RReader(gzip.decompress(packed)).read())
    assert set(index) == {"variables", "references", "compressed"}
    assert index["compressed"] == [1]  # TRUE: every object is zlib-compressed
    variables = austen.named(index["variables"])
    assert list(variables) == list(austen.NOVELS)
    size = (DATA / "Rdata.rdb").stat().st_size
    assert sum(length for _, length in variables.values()) == size


def test_read_novels_gives_the_lines_of_each_novel():
    novels = austen.read_novels(DATA)
    assert list(novels) == list(austen.NOVELS)
    assert all(len(lines) == 20 for lines in novels.values())
    assert novels["emma"][:3] == ["EMMA", "", "By Jane Austen"]
    assert novels["persuasion"][0] == "Persuasion"
    for novel, line in OPENINGS.items():
        assert line in novels[novel]


def test_austen_text_separates_novels_by_an_empty_line():
    text = austen.austen_text(DATA)
    lines = text.split("\n")
    assert len(lines) == 6 * 20 + 5 + 1  # the novels, five separators, the final newline
    assert lines[20:22] == ["", "MANSFIELD PARK"]
    assert text.index("EMMA") < text.index("MANSFIELD PARK") < text.index("SENSE AND SENS")


def test_split_holds_out_whole_novels():
    novels = austen.read_novels(DATA)
    splits = austen.split_novels(novels)
    assert splits["test"] == "\n".join(novels["persuasion"]) + "\n"
    assert splits["dev"] == "\n".join(novels["northangerabbey"]) + "\n"
    train = splits["train"]
    assert all("\n".join(novels[n]) in train
               for n in ("emma", "mansfieldpark", "prideprejudice", "sensesensibility"))
    assert novels["persuasion"][0] not in train and "NORTHANGER" not in train
    lines = sum(text.count("\n") for text in splits.values())
    assert lines == austen.austen_text(DATA).count("\n") - 2  # two fewer separators


def test_prepare_writes_the_novels_and_the_split(tmp_path, monkeypatch, capsys):
    root = tmp_path / "packages" / "root"
    (root / austen.DATA_DIR).parent.mkdir(parents=True)
    (root / austen.DATA_DIR).symlink_to(DATA)
    monkeypatch.setattr(austen.debian, "fetch", lambda packages, cache_dir, patterns: root)
    path = austen.prepare(tmp_path / "austen")
    assert gzip.decompress(path.read_bytes()).decode() == austen.austen_text(DATA)
    for split, text in austen.split_novels(austen.read_novels(DATA)).items():
        assert (tmp_path / "austen" / f"{split}.txt").read_text(encoding="utf-8") == text
    assert "train: 83, dev: 20, test: 20" in capsys.readouterr().out  # 4 x 20 + 3 separators


def test_reader_reads_a_data_frame_of_strings():
    # janeaustenr's own help index, Meta/Rd.rds: a data.frame with one row per help page
    frame = austen.RReader(gzip.decompress((DATA / "Rd.rds").read_bytes())).read()
    assert frame.attributes["class"] == ["data.frame"]
    assert frame.attributes["row.names"] == [None, -8]  # R's compact form of rows 1..8
    columns = austen.named(frame)
    assert list(columns)[:4] == ["File", "Name", "Type", "Title"]
    assert columns["Name"] == ["austen_books", "emma", "janeaustenr-package",
                               *austen.NOVELS[1:]]


def _serialize(payload: bytes, version: int = 3) -> bytes:
    header = b"X\n" + struct.pack(">iii", version, 0x040201, 0x030500)
    if version == 3:
        header += struct.pack(">i", 5) + b"UTF-8"
    return header + payload


def _charsxp(text: bytes, flags: int = 0x00040009) -> bytes:
    return struct.pack(">ii", flags, len(text)) + text


def test_reader_handles_na_latin1_and_numbers():
    # c("a", NA, "Größe" in latin-1), then integers with NA, then doubles, as R writes them
    strings = (struct.pack(">ii", 16, 3) + _charsxp(b"a") + struct.pack(">ii", 9, -1)
               + _charsxp("Größe".encode("latin-1"), 0x00004009))
    assert austen.RReader(_serialize(strings)).read() == ["a", None, "Größe"]
    integers = struct.pack(">ii", 13, 2) + struct.pack(">ii", 7, -(2**31))
    assert austen.RReader(_serialize(integers, version=2)).read() == [7, None]
    doubles = struct.pack(">ii", 14, 2) + struct.pack(">dd", 0.5, -2.0)
    assert austen.RReader(_serialize(doubles)).read() == [0.5, -2.0]


def test_reader_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="not an XDR R serialization"):
        austen.RReader(b"RDX3\n")
    closure = struct.pack(">i", 3)  # CLOSXP: functions are not data
    with pytest.raises(ValueError, match="R object type 3 is not supported"):
        austen.RReader(_serialize(closure)).read()


def test_read_lazy_load_db_reads_a_zlib_index_too(tmp_path):
    for name in ("Rdata.rdb", "Rdata.rdx"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    index = gzip.decompress((DATA / "Rdata.rdx").read_bytes())
    (tmp_path / "Rdata.rdx").write_bytes(zlib.compress(index))
    assert austen.read_lazy_load_db(tmp_path)["persuasion"][0] == "Persuasion"
