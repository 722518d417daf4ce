"""The English–German corpus, built from Debian packages, and its fixed split.

Four sources, read in this order (a pair seen earlier wins the case-insensitive dedup):

- `ding`: example sentences of the TU Chemnitz dictionary (`trans-de-en`), lines
  `German :: English` whose ` | ` sub-entries line up one to one and whose `; ` alternatives
  are synonyms; `{f}`, `[coll.]` and `(...)` annotations are stripped.
- `wesnoth`: the German gettext catalogs of Battle for Wesnoth 1.16 (msgid is English).
- `lohelp`: the English and German LibreOffice help, paragraphs joined on their `id`.
- `gettext`: one-line messages of the German catalogs of common Debian packages.

Rows are `Pair(english, german, source, origin)`; `origin` names the document inside the
source (campaign, help module, catalog), so whole documents can be held out.

The fixed split: test = the `ding` pairs whose `sha1(english.strip().lower()) % 20 == 0`,
dev = `== 1`, train = every other pair whose English is in neither test nor dev.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import re
import struct
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

from nlpapps.corpora import debian

SOURCES = ("ding", "wesnoth", "lohelp", "gettext")
WESNOTH_CAMPAIGNS = "did dm dw ei httt l low nr sof sota sotbe thot trow tsg ttb utbs".split()
PACKAGES = {
    "ding": ("trans-de-en",),
    "wesnoth": tuple(f"wesnoth-1.16-{p}" for p in ["core", "data", *WESNOTH_CAMPAIGNS]),
    "lohelp": ("libreoffice-help-en-us", "libreoffice-help-de"),
    # The packages whose German catalogs (`/usr/share/locale/de`) a Debian 12 system has.
    "gettext": tuple(
        "adduser appstream apt at-spi2-common bash binutils-common coreutils diffutils dpkg "
        "findutils gettext gettext-base git gnupg-l10n grep gsettings-desktop-schemas iso-codes "
        "krb5-locales libapt-pkg6.0 libavahi-common-data libc-l10n libdpkg-perl libelf1 "
        "libgdk-pixbuf2.0-common libglib2.0-data libgnutls30 libgstreamer1.0-0 libgtk2.0-common "
        "libidn2-0 libpam-runtime libpq5 login make man-db net-tools packagekit polkitd "
        "postgresql-15 postgresql-client-15 procps psmisc python-apt-common sed "
        "shared-mime-info software-properties-common systemd tar wget xdg-user-dirs xkb-data "
        "xz-utils".split()
    ),
}
PATHS = {  # inside the unpacked packages: what each source reads, and what to unpack
    "ding": ("usr/share/trans/de-en", ("usr/share/trans/de-en",)),
    "wesnoth": ("usr/share/games/wesnoth/1.16/locale/de/LC_MESSAGES",
                ("usr/share/games/wesnoth/*/de/LC_MESSAGES/*.mo",)),
    "lohelp": ("usr/share/libreoffice/help", ("usr/share/libreoffice/help/*.html",)),
    "gettext": ("usr/share/locale/de/LC_MESSAGES", ("usr/share/locale/de/LC_MESSAGES/*.mo",)),
}
MAX_ENGLISH_WORDS = 60


class Pair(NamedTuple):
    """One sentence pair and where it came from."""

    english: str
    german: str
    source: str = ""
    origin: str = ""


# --- filters shared by every source -------------------------------------------------------

_MARKUP = re.compile(r"[<>*_#\\|@=%${}]")  # tags, %s / $var / {} placeholders, wiki markup
# A sentence ends at . ! ? or … (maybe closing a quote) before a capital, digit or opening.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?…])|(?<=[.!?…][”\"’»«]))\s+(?=[A-ZÄÖÜ0-9(‘“\"'„»«])"
)


def _normalize(text: str) -> str:
    return " ".join(text.split())


def length_ratio_ok(english: str, german: str) -> bool:
    """False for pairs whose lengths (in characters, plus 10 so that short labels may vary
    more) differ by more than a factor of 2.5."""
    short, long = sorted((len(english), len(german)))
    return (long + 10) / (short + 10) <= 2.5


def keep_pair(english: str, german: str) -> bool:
    """The corpus filters: no markup or placeholders, at most 60 English words, a sane
    length ratio, and a German side that is not an untranslated copy."""
    return (
        bool(english and german)
        and not _MARKUP.search(english + german)
        and len(english.split()) <= MAX_ENGLISH_WORDS
        and english.lower() != german.lower()
        and length_ratio_ok(english, german)
    )


def split_sentences(english: str, german: str) -> list[tuple[str, str]]:
    """Splits a multi-sentence message into sentence pairs when both sides have the same
    number of sentences; otherwise returns the message whole."""
    en, de = _SENTENCE_END.split(english), _SENTENCE_END.split(german)
    return list(zip(en, de)) if 1 < len(en) == len(de) else [(english, german)]


# --- ding ---------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|\([^)]*\))")
_SLASH_ALTERNATIVE = re.compile(r"(?<=[^\W\d_])/(?!or\b|oder\b)\w+")  # "achten/aufpassen"
_END = re.compile(r"[.!?]['’\"“”]?$")
_DING_PLACEHOLDER = re.compile(r"…| / |\b(sb|sth|so|jd|jdm|jdn|jds|etw)\.")


def _ding_clean(text: str) -> str:
    return _normalize(_SLASH_ALTERNATIVE.sub("", _ANNOTATION.sub("", text)))


def ding_pairs(german: str, english: str) -> list[tuple[str, str]]:
    """The sentence pairs of one Ding sub-entry (`german`, `english` as in the file).

    A sub-entry counts when its first alternatives are sentences (end in . ! or ?) and the
    German one has two words or more. Alternatives pair up one to one when both sides have
    as many; a single one on one side pairs with each on the other; else first with first.
    Of `word/word` alternatives the first is kept ("and/or" stays); sentences that are
    templates (`sb.`, `sth.`, `so.`, `jdm.`, `etw.`, `…`, ` / `) are dropped."""
    de = [a for a in map(_ding_clean, german.split("; ")) if a]
    en = [a for a in map(_ding_clean, english.split("; ")) if a]
    if not de or not en or not (_END.search(de[0]) and _END.search(en[0])):
        return []
    if len(de[0].split()) < 2:
        return []
    if len(de) == len(en):
        pairs = list(zip(en, de))
    elif len(de) == 1 or len(en) == 1:
        pairs = [(e, d) for e in en for d in de]
    else:
        pairs = [(en[0], de[0])]
    return [
        (e, d) for e, d in pairs
        if _END.search(e) and _END.search(d) and not _DING_PLACEHOLDER.search(e + " " + d)
    ]


def read_ding(path: Path) -> Iterator[Pair]:
    """Reads the Ding file (`/usr/share/trans/de-en`) into sentence pairs."""
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            de_entries, en_entries = german.split(" | "), english.split(" | ")
            if len(de_entries) != len(en_entries):
                continue
            for de, en in zip(de_entries, en_entries):
                for e, d in ding_pairs(de, en):
                    yield Pair(e, d, "ding", "ding")


# --- gettext catalogs (.mo) ---------------------------------------------------------------

_CHARSET = re.compile(rb"charset=([-\w]+)")


def read_mo(path: Path) -> list[tuple[str, str]]:
    """All (msgid, msgstr) of a compiled gettext catalog, header excluded.

    Contexts (`msgctxt`) are dropped; for plural messages the singular msgid and the first
    msgstr are kept."""
    data = Path(path).read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = {0x950412DE: "<", 0xDE120495: ">"}.get(magic)
    if order is None:
        raise ValueError(f"{path} is not a gettext .mo catalog (magic {magic:#x})")
    count, ids_at, strs_at = struct.unpack(order + "3I", data[8:20])

    def string(table: int, i: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset: offset + length]

    raw = [(string(ids_at, i), string(strs_at, i)) for i in range(count)]
    match = _CHARSET.search(dict(raw).get(b"", b""))
    charset = match.group(1).decode() if match else "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:  # e.g. the template's literal "CHARSET"
        charset = "utf-8"
    pairs = []
    for msgid, msgstr in raw:
        if not msgid or not msgstr:
            continue
        msgid = msgid.split(b"\x04")[-1].split(b"\0")[0]
        msgstr = msgstr.split(b"\0")[0]
        pairs.append((msgid.decode(charset, "replace"), msgstr.decode(charset, "replace")))
    return pairs


_WESNOTH_CONTEXT = re.compile(r"^[a-z][a-z0-9 +]*\^")  # "female^feeding", "race+plural^Elves"


def read_wesnoth(locale_dir: Path) -> Iterator[Pair]:
    """Wesnoth's German catalogs (`.../locale/de/LC_MESSAGES/*.mo`), one origin per catalog."""
    for mo in sorted(Path(locale_dir).glob("*.mo")):
        for msgid, msgstr in read_mo(mo):
            english = _normalize(_WESNOTH_CONTEXT.sub("", msgid))
            for e, d in split_sentences(english, _normalize(msgstr)):
                yield Pair(e, d, "wesnoth", mo.stem)


def read_gettext(locale_dir: Path) -> Iterator[Pair]:
    """The one-line messages of every catalog in `locale_dir`; multi-line ones (usage texts,
    option tables) are skipped."""
    for mo in sorted(Path(locale_dir).glob("*.mo")):
        for msgid, msgstr in read_mo(mo):
            if "\n" not in msgid and "\n" not in msgstr:
                yield Pair(_normalize(msgid), _normalize(msgstr), "gettext", mo.stem)


# --- LibreOffice help ---------------------------------------------------------------------

_HEADINGS_AND_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}
_VOID = {"br", "img", "input", "meta", "link", "hr", "col", "area", "source", "wbr"}


class _Paragraphs(HTMLParser):
    """Collects {id: text} of the help's paragraphs and headings (`<p id="par_id…">`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self._id: str | None = None
        self._depth = 0
        self._chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._id is not None:
            self._depth += tag not in _VOID
            return
        element_id = dict(attrs).get("id") or ""
        if tag in _HEADINGS_AND_PARAGRAPHS and element_id and not element_id.startswith("bm_"):
            self._id, self._depth, self._chunks = element_id, 1, []

    def handle_endtag(self, tag: str) -> None:
        if self._id is None or tag in _VOID:
            return
        self._depth -= 1
        if self._depth == 0:
            text = _normalize(" ".join(self._chunks))
            if text:
                self.texts.setdefault(self._id, text)
            self._id = None

    def handle_data(self, data: str) -> None:
        if self._id is not None:
            self._chunks.append(data)


def help_paragraphs(html: str) -> dict[str, str]:
    """{element id: text} of one LibreOffice help page."""
    parser = _Paragraphs()
    parser.feed(html)
    parser.close()
    return parser.texts


def read_lohelp(help_dir: Path) -> Iterator[Pair]:
    """Joins `help_dir/en-US/text/**.html` with `help_dir/de/...` paragraph by paragraph;
    the origin is the help module (`shared`, `swriter`, `scalc`, ...)."""
    english_root, german_root = Path(help_dir) / "en-US", Path(help_dir) / "de"
    for english_page in sorted(english_root.glob("text/**/*.html")):
        relative = english_page.relative_to(english_root)
        german_page = german_root / relative
        if not german_page.exists():
            continue
        german = help_paragraphs(german_page.read_text(encoding="utf-8"))
        for key, e in help_paragraphs(english_page.read_text(encoding="utf-8")).items():
            if key in german:
                for en, de in split_sentences(e, german[key]):
                    yield Pair(en, de, "lohelp", relative.parts[1])


# --- building, splitting, files -----------------------------------------------------------

READERS = {"ding": read_ding, "wesnoth": read_wesnoth, "lohelp": read_lohelp,
           "gettext": read_gettext}


def clean_pairs(rows: Iterable[Pair]) -> Iterator[Pair]:
    """Applies `keep_pair` and drops case-insensitive duplicates (the first one wins)."""
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.english.strip().lower(), row.german.strip().lower())
        if key not in seen and keep_pair(row.english, row.german):
            seen.add(key)
            yield row


def fetch_source(source: str, cache_dir: Path) -> Path:
    """Downloads and unpacks the packages of `source`; returns the path its reader takes."""
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}; received {source!r}")
    inner, patterns = PATHS[source]
    return debian.fetch(PACKAGES[source], cache_dir, patterns) / inner


def build_corpus(sources: Iterable[str] = SOURCES, cache_dir: Path = Path("data_cache")
                 ) -> list[Pair]:
    """The cleaned, de-duplicated corpus of `sources`, fetching their packages as needed."""
    rows: list[Iterable[Pair]] = []
    for source in sources:
        rows.append(READERS[source](fetch_source(source, cache_dir)))
    return list(clean_pairs(row for source_rows in rows for row in source_rows))


def split_bucket(english: str) -> int:
    """The split bucket of an English sentence: sha1 of its stripped lowercase form, mod 20."""
    digest = hashlib.sha1(english.strip().lower().encode("utf-8")).hexdigest()
    return int(digest, 16) % 20


def split_pairs(rows: Iterable[Pair]) -> dict[str, list[Pair]]:
    """The fixed split: {"train", "dev", "test"} (see the module docstring)."""
    rows = list(rows)
    splits: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    held_out: set[str] = set()
    for row in rows:
        bucket = split_bucket(row.english) if row.source == "ding" else None
        if bucket in (0, 1):
            splits["test" if bucket == 0 else "dev"].append(row)
            held_out.add(row.english.strip().lower())
    for row in rows:
        if row.english.strip().lower() not in held_out:
            splits["train"].append(row)
    return splits


def _open(path: Path, mode: str):
    """`path` opened in `mode` ("r", "w", "rb"), through gzip for a `.gz` file; text as UTF-8."""
    path = Path(path)
    if "b" in mode:
        return (gzip.open if path.suffix == ".gz" else open)(path, mode)
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")


def read_pairs_tsv(path: Path) -> list[Pair]:
    """Reads `english<TAB>german[<TAB>source[<TAB>origin]]` lines (plain or `.gz`)."""
    rows = []
    with _open(path, "rb") as file:  # bytes: a line that is not UTF-8 is named
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{number}: not UTF-8 text; save the file as UTF-8") \
                    from None
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 2 or len(fields) > 4 or not fields[0] or not fields[1]:
                raise ValueError(
                    f"{path}:{number}: expected `english<TAB>german[<TAB>source[<TAB>origin]]`,"
                    f" got {len(fields)} field(s): {line[:60]!r}"
                )
            rows.append(Pair(*fields))
    return rows


def write_pairs_tsv(rows: Iterable[Pair], path: Path) -> int:
    """Writes `english<TAB>german<TAB>source<TAB>origin` lines (gzip if `path` ends in .gz);
    returns the number of rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with _open(path, "w") as file:
        for row in rows:
            file.write("\t".join(Pair(*row)) + "\n")
            count += 1
    return count


def prepare(out_dir: Path, sources: Iterable[str] = SOURCES,
            cache_dir: Path | None = None) -> dict[str, int]:
    """Builds the corpus into `out_dir`: `pairs.en-de.tsv.gz` and `{train,dev,test}.tsv`.

    Packages are cached in `cache_dir` (default `out_dir/packages`). Prints and returns the
    pair counts per source and per split."""
    out_dir = Path(out_dir)
    rows = build_corpus(sources, Path(cache_dir) if cache_dir else out_dir / "packages")
    write_pairs_tsv(rows, out_dir / "pairs.en-de.tsv.gz")
    counts = {source: sum(row.source == source for row in rows) for source in sources}
    for split, split_rows in split_pairs(rows).items():
        counts[split] = write_pairs_tsv(split_rows, out_dir / f"{split}.tsv")
    print(", ".join(f"{name}: {count:,}" for name, count in counts.items()))
    return counts
