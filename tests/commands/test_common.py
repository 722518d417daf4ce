"""Tests for nlpapps.commands.common.read_text: a file or a folder of .txt files, and bytes
that are not UTF-8."""

import dataclasses
import gzip

import pytest

from nlpapps.commands.common import UserError, read_text


def test_a_folder_reads_its_txt_files_in_path_order(tmp_path):
    (tmp_path / "b.txt").write_text("second\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first, no line end", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not text to read\n", encoding="utf-8")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "d.txt").write_text("in a subfolder: ü\n", encoding="utf-8")
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    assert read_text(str(tmp_path)) == "first, no line end\nsecond\nin a subfolder: ü\n"


def test_a_file_reads_as_it_is(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("no line end at the end", encoding="utf-8")
    assert read_text(str(path)) == "no line end at the end"


def test_gzip_files_are_read_decompressed(tmp_path):
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as file:
        file.write("second, from gzip: é")
    (tmp_path / "a.txt").write_text("first\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("third\n", encoding="utf-8")
    assert read_text(str(tmp_path / "b.txt.gz")) == "second, from gzip: é"
    assert read_text(str(tmp_path)) == "first\nsecond, from gzip: é\nthird\n"
    (tmp_path / "d.txt.gz").write_bytes(b"plain text, not gzip")
    with pytest.raises(UserError, match=r"d.txt.gz is not a readable gzip file"):
        read_text(str(tmp_path))


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), "is a folder with no .txt or .txt.gz file in it"),
    (lambda path: None, "does not exist"),
])
def test_nothing_to_read_is_a_user_error(tmp_path, make, message):
    make(tmp_path / "texts")
    with pytest.raises(UserError, match=message):
        read_text(str(tmp_path / "texts"))


def test_bytes_that_are_not_utf8_are_kept_with_a_warning(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("line one\ncafé crème\n".encode("latin-1"))
    text = read_text(str(path))
    assert text.encode("utf-8", "surrogateescape") == path.read_bytes()
    assert capsys.readouterr().err == (
        f"warning: {path}: 2 bytes are not UTF-8 (the first on line 2); they are read as "
        "unknown characters\n")


def test_utf8_gives_no_warning(tmp_path, capsys):
    path = tmp_path / "utf8.txt"
    path.write_text("café crème\n", encoding="utf-8")
    assert read_text(str(path)) == "café crème\n"
    assert capsys.readouterr().err == ""


def test_every_config_flag_is_explained_by_its_fields_comment(capsys):
    from nlpapps.apps.language_model import LanguageModelConfig
    from nlpapps.apps.translator import TranslatorConfig
    from nlpapps.cli import main
    from nlpapps.commands.common import field_comments

    for config_cls in (TranslatorConfig, LanguageModelConfig):
        comments = field_comments(config_cls)
        assert set(comments) == {field.name for field in dataclasses.fields(config_cls)}
        assert all(comments.values())
    assert field_comments(TranslatorConfig)["label_smoothing"] == \
        "share of each target's probability spread over the vocabulary"
    with pytest.raises(SystemExit):
        main(["translate-train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--vocab-size VOCAB_SIZE joint SentencePiece vocabulary of both languages " \
           "(default: 8000)" in text
