"""Tests of the English–German corpus readers, filters and the fixed split (no downloads)."""

import gettext
import gzip
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from nlpapps.corpora import en_de
from nlpapps.corpora.en_de import Pair

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPORA = FIXTURES / "corpora"


def write_mo(path: Path, messages: dict[str, str], charset: str = "UTF-8") -> Path:
    """Writes a little-endian gettext .mo catalog (header first, keys sorted as msgfmt does)."""
    header = f"Content-Type: text/plain; charset={charset}\n"
    entries = sorted({"": header, **messages}.items())
    ids = [k.encode(charset) for k, _ in entries]
    strs = [v.encode(charset) for _, v in entries]
    n = len(entries)
    ids_at, strs_at = 28, 28 + 8 * n
    data_at = strs_at + 8 * n
    tables, blob = [b"", b""], b""
    for which, texts in ((0, ids), (1, strs)):
        for text in texts:
            tables[which] += struct.pack("<2I", len(text), data_at + len(blob))
            blob += text + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, ids_at, strs_at, 0, 0)
    path.write_bytes(head + tables[0] + tables[1] + blob)
    return path


# --- .mo catalogs ----------------------------------------------------------------------------

MESSAGES = {
    "Open File": "Datei öffnen",
    "menu\x04Quit": "Beenden",
    "One file\x00%d files": "Eine Datei\x00%d Dateien",
    "Untranslated": "",
}


def test_read_mo_agrees_with_python_gettext(tmp_path):
    path = write_mo(tmp_path / "demo.mo", MESSAGES)
    with open(path, "rb") as file:
        catalog = gettext.GNUTranslations(file)
    assert catalog.gettext("Open File") == "Datei öffnen"
    assert catalog.pgettext("menu", "Quit") == "Beenden"
    assert catalog.ngettext("One file", "%d files", 2) == "%d Dateien"
    assert sorted(en_de.read_mo(path)) == [
        ("One file", "Eine Datei"), ("Open File", "Datei öffnen"), ("Quit", "Beenden"),
    ]


def test_read_mo_decodes_the_declared_charset(tmp_path):
    path = write_mo(tmp_path / "latin1.mo", {"Wrong size": "Falsche Größe"}, "ISO-8859-1")
    assert en_de.read_mo(path) == [("Wrong size", "Falsche Größe")]


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs msgfmt (package gettext)")
def test_read_mo_reads_a_catalog_compiled_by_msgfmt(tmp_path):
    po = tmp_path / "demo.po"
    po.write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgctxt "menu"\nmsgid "Quit"\nmsgstr "Beenden"\n\n'
        'msgid "Save the file first."\nmsgstr "Speichern Sie zuerst die Datei."\n',
        encoding="utf-8",
    )
    subprocess.run(["msgfmt", "-o", str(tmp_path / "demo.mo"), str(po)], check=True)
    assert sorted(en_de.read_mo(tmp_path / "demo.mo")) == [
        ("Quit", "Beenden"), ("Save the file first.", "Speichern Sie zuerst die Datei."),
    ]


def test_read_mo_rejects_other_files(tmp_path):
    (tmp_path / "x.mo").write_bytes(b"not a catalog at all")
    with pytest.raises(ValueError, match="not a gettext .mo catalog"):
        en_de.read_mo(tmp_path / "x.mo")


def test_read_wesnoth_strips_contexts_and_splits_sentences(tmp_path):
    write_mo(tmp_path / "wesnoth-tb.mo", {
        "female^Dark Adept": "Dunkle Adeptin",
        "Come on, men. Let’s catch\nthose kidnappers!":
            "Kommt, Männer. Schnappen wir uns\ndiese Entführer!",
        "I wonder... if it could carry us.": "Ich frage mich … ob es uns tragen könnte.",
    })
    assert sorted(en_de.read_wesnoth(tmp_path)) == [
        Pair("Come on, men.", "Kommt, Männer.", "wesnoth", "wesnoth-tb"),
        Pair("Dark Adept", "Dunkle Adeptin", "wesnoth", "wesnoth-tb"),
        Pair("I wonder... if it could carry us.", "Ich frage mich … ob es uns tragen könnte.",
             "wesnoth", "wesnoth-tb"),
        Pair("Let’s catch those kidnappers!", "Schnappen wir uns diese Entführer!",
             "wesnoth", "wesnoth-tb"),
    ]


def test_read_gettext_keeps_one_line_messages_only(tmp_path):
    write_mo(tmp_path / "coreutils.mo", {
        "Try '%s --help' for more information.\n": "»%s --help« gibt weitere Informationen.\n",
        "write error": "Schreibfehler",
    })
    assert list(en_de.read_gettext(tmp_path)) == [
        Pair("write error", "Schreibfehler", "gettext", "coreutils"),
    ]


# --- Ding ---------------------------------------------------------------------------------

def test_read_ding_pairs_example_sentences_only():
    pairs = list(en_de.read_ding(CORPORA / "ding.de-en.txt"))
    pair_set = {(p.english, p.german) for p in pairs}
    assert all(p.source == p.origin == "ding" for p in pairs)
    # a one-line entry that is itself a sentence
    assert ("That's not much good.", "Das war wohl nichts.") in pair_set
    # `; ` alternatives line up one to one; a single German one pairs with each English one
    assert ("Botheration!", "Verflixt!") in pair_set
    assert {("Speak!", "Gib Laut!"), ("Bark!", "Gib Laut!")} <= pair_set
    # `{vt}` and `(leaving phrase)` stripped; of "achten/aufpassen" the first word stays
    assert ("You really ought to take better care of yourself.",
            "Du solltest wirklich mehr auf dich achten.") in pair_set
    assert ("Bye and take care of yourself!", "Tschüss und pass auf dich auf!") in pair_set
    # headwords and one-word commands are not sentences; `<...>` marks a cross-reference
    english = {p.english for p in pairs}
    assert not english & {"eel", "Fetch!", "Stay!", "Bye bye!", "He settled the quarrel."}
    assert not any("sb." in e or "jdn." in g or "…" in e for e, g in pair_set)


@pytest.mark.parametrize("german, english, expected", [
    ("Guten Appetit!; Mahlzeit!", "Enjoy your meal!; Bon appétit!",
     [("Enjoy your meal!", "Guten Appetit!"), ("Bon appétit!", "Mahlzeit!")]),
    ("Wie ärgerlich!; Verflixt!", "Bother!; Botheration!",
     [("Bother!", "Wie ärgerlich!"), ("Botheration!", "Verflixt!")]),
    ("Apport!", "Fetch!", []),                                  # one German word
    ("Das liegt bei dir", "It is up to you.", []),              # not a sentence
    ("Er hat jdn. angerufen.", "He called sb.", []),            # a template
    ("Kamera ab!; Läuft!", "Roll camera!; Roll it!; Rolling!",  # 2 vs 3: first with first
     [("Roll camera!", "Kamera ab!")]),
])
def test_ding_pairs(german, english, expected):
    assert en_de.ding_pairs(german, english) == expected


# --- LibreOffice help ---------------------------------------------------------------------

def test_read_lohelp_joins_paragraphs_by_id():
    pairs = list(en_de.read_lohelp(CORPORA / "lohelp"))
    pair_set = {(p.english, p.german) for p in pairs}
    assert all(p.source == "lohelp" and p.origin == "sdatabase" for p in pairs)
    assert ("Query Wizard - Detail or Summary",
            "Abfrageassistent – Detail oder Zusammenfassung") in pair_set
    # text inside <span> is part of its paragraph
    assert ("Select the aggregate function.", "Wählen Sie die Aggregatfunktion aus.") in pair_set
    # a two-sentence paragraph on both sides becomes two pairs
    assert ("You can enter as many aggregate functions as you want, one in each row of "
            "controls.", "Sie können beliebig viele Aggregatfunktionen eingeben, eine in jeder "
            "Reihe von Steuerelementen.") in pair_set
    # navigation and the footer's hidden `bm_*` paragraphs are not help text
    assert not any("LibreOffice 7.4 Help" in e or "Title is" in e for e, _ in pair_set)


def test_help_paragraphs_handles_nested_markup():
    html = ('<h2 id="hd_1">Title</h2><p id="par_id1">Choose <span class="emph">Tools - '
            'Options</span>.<br>Then <a href="x">click</a>.</p><p id="bm_HID"></p>')
    assert en_de.help_paragraphs(html) == {"hd_1": "Title",
                                           "par_id1": "Choose Tools - Options . Then click ."}


# --- filters and dedup ----------------------------------------------------------------------

@pytest.mark.parametrize("english, german, keep", [
    ("Save the document.", "Speichern Sie das Dokument.", True),
    ("Cannot open %s", "%s kann nicht geöffnet werden", False),
    ("Hello $USER", "Hallo $USER", False),
    ("Rename {name}", "{name} umbenennen", False),
    ("Click <b>OK</b>", "Klicken Sie auf <b>OK</b>", False),
    ("Manual", "manual", False),                                   # untranslated copy
    ("Yes.", "Das ist eine ganz andere und viel längere Antwort.", False),
    (" ".join(["word"] * 61), " ".join(["Wort"] * 61), False),
    ("", "Leer", False),
])
def test_keep_pair(english, german, keep):
    assert en_de.keep_pair(english, german) is keep


def test_clean_pairs_drops_case_insensitive_duplicates_keeping_the_first():
    rows = [Pair("Open File", "Datei öffnen", "wesnoth", "a"),
            Pair("open file", "Datei Öffnen", "gettext", "b"),
            Pair("Open file", "Öffne die Datei", "gettext", "c"),
            Pair("Open %s", "%s öffnen", "gettext", "d")]
    assert list(en_de.clean_pairs(rows)) == [rows[0], rows[2]]


# --- the fixed split --------------------------------------------------------------------------

def test_split_bucket_is_sha1_of_the_stripped_lowercased_english():
    digest = hashlib.sha1(b"we all make mistakes.").hexdigest()
    assert en_de.split_bucket("  We all make mistakes. ") == int(digest, 16) % 20


def test_split_pairs_on_the_fixture():
    rows = en_de.read_pairs_tsv(FIXTURES / "pairs.en-de.tsv")
    splits = en_de.split_pairs(rows)
    assert {name: len(part) for name, part in splits.items()} == {
        "train": 400, "dev": 30, "test": 30}
    for name, bucket in (("test", 0), ("dev", 1)):
        assert all(r.source == "ding" and en_de.split_bucket(r.english) == bucket
                   for r in splits[name])
    held_out = {r.english.strip().lower() for r in splits["test"] + splits["dev"]}
    assert not held_out & {r.english.strip().lower() for r in splits["train"]}
    # pairs of other sources in a held-out bucket stay in train
    assert any(r.source != "ding" and en_de.split_bucket(r.english) == 0
               for r in splits["train"])


def test_split_pairs_keeps_other_sources_out_of_train_when_their_english_is_held_out():
    english = next(f"Sentence number {i}." for i in range(100)
                   if en_de.split_bucket(f"Sentence number {i}.") == 0)
    rows = [Pair(english, "Satz.", "ding", "ding"),
            Pair(english.upper(), "SATZ.", "wesnoth", "wesnoth-l"),
            Pair("Another one.", "Noch einer.", "ding", "ding")]
    splits = en_de.split_pairs(rows)
    assert splits["test"] == rows[:1]
    assert rows[1] not in splits["train"]


# --- TSV files ---------------------------------------------------------------------------------

def test_pairs_tsv_round_trip_plain_and_gzip(tmp_path):
    rows = [Pair("Hello!", "Hallo!", "ding", "ding"), Pair("Tab\u00a0here", "Tab hier", "x", "y")]
    for name in ("pairs.tsv", "pairs.tsv.gz"):
        assert en_de.write_pairs_tsv(rows, tmp_path / name) == 2
        assert en_de.read_pairs_tsv(tmp_path / name) == rows
    with gzip.open(tmp_path / "pairs.tsv.gz", "rt", encoding="utf-8") as file:
        assert file.readline() == "Hello!\tHallo!\tding\tding\n"


def test_read_pairs_tsv_accepts_two_columns(tmp_path):
    (tmp_path / "mine.tsv").write_text("Good morning.\tGuten Morgen.\n\n", encoding="utf-8")
    assert en_de.read_pairs_tsv(tmp_path / "mine.tsv") == [
        Pair("Good morning.", "Guten Morgen.", "", "")]


def test_read_pairs_tsv_names_the_bad_line(tmp_path):
    (tmp_path / "bad.tsv").write_text("One.\tEins.\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected `english<TAB>german") as error:
        en_de.read_pairs_tsv(tmp_path / "bad.tsv")
    assert "\n" not in str(error.value)


def test_fetch_source_rejects_unknown_sources(tmp_path):
    with pytest.raises(ValueError, match="`source` must be one of"):
        en_de.fetch_source("europarl", tmp_path)
