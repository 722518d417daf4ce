"""Jane Austen's six novels, read from Debian's `r-cran-janeaustenr` without R.

The package keeps its data in an R lazy-load database, `janeaustenr/data/Rdata.rdx` (index)
and `Rdata.rdb` (objects). The index is a gzip-compressed R serialization of
`list(variables = list(<name> = c(offset, length), ...), references, compressed)`; the
object at `offset` in the `.rdb` is a 4-byte big-endian length followed by a zlib stream of
the serialized object. Each novel is a character vector, one element per line of text.

Fixed split, by novel (the two shortest, published together in 1817, are held out):
test = persuasion, dev = northangerabbey, train = the other four.

`RReader` reads the XDR ("X") serialization format (version 2 or 3) far enough for such
data: character, logical, integer and double vectors, lists and data frames (lists with
`names`, `class` and `row.names` attributes), pairlists, and the symbols and references
between them. A factor comes as its integer codes with a `levels` attribute.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path

from nlpapps.corpora import debian

PACKAGE = "r-cran-janeaustenr"
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
NOVELS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice",
          "sensesensibility")
SPLIT = {"test": ("persuasion",), "dev": ("northangerabbey",)}  # train: the other novels

# SEXP types of the R serialization format (R Internals, "Serialization Formats").
_SYMSXP, _LISTSXP, _CHARSXP, _LGLSXP, _INTSXP, _REALSXP = 1, 2, 9, 10, 13, 14
_STRSXP, _VECSXP = 16, 19
_REFSXP, _NILVALUE_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _GLOBALENV_SXP = 255, 254, 242, 241, 253
_NA_INTEGER = -(2**31)


class RVector(list):
    """An R vector as a Python list, with its R attributes (`names`, `class`, ...)."""

    def __init__(self, values=(), attributes: dict | None = None) -> None:
        super().__init__(values)
        self.attributes = attributes or {}


class RReader:
    """Reads one object from R's binary XDR serialization (`serialize()`, `saveRDS()`)."""

    def __init__(self, data: bytes) -> None:
        if data[:2] != b"X\n":
            raise ValueError(f"not an XDR R serialization (starts with {data[:2]!r})")
        self.data, self.pos, self.refs = data, 2, []
        version = self._int()
        self.pos += 8  # the writer's R version and the oldest R that can read the data
        if version == 3:
            encoding_length = self._int()  # then the native encoding's name, e.g. "UTF-8"
            self.pos += encoding_length
        elif version != 2:
            raise ValueError(f"unsupported R serialization version {version}")

    def _unpack(self, fmt: str, size: int) -> tuple:
        values = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def _int(self) -> int:
        return self._unpack("i", 4)[0]

    def _length(self) -> int:
        length = self._int()
        if length == -1:  # a long vector: the length follows as two 32-bit halves
            upper, lower = self._unpack("II", 8)
            length = (upper << 32) + lower
        return length

    def read(self):
        """Returns the next object: `RVector`, `str`, `None` (NULL or NA) or a nested mix."""
        flags = self._int()
        sexp_type, has_attributes, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if sexp_type in (_NILVALUE_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _GLOBALENV_SXP):
            return None
        if sexp_type == _REFSXP:
            index = flags >> 8 or self._int()
            return self.refs[index - 1]
        if sexp_type == _SYMSXP:
            name = self.read()
            self.refs.append(name)
            return name
        if sexp_type == _CHARSXP:
            length = self._int()
            if length == -1:
                return None
            text = self.data[self.pos: self.pos + length]
            self.pos += length
            latin1 = flags & (1 << 14)  # LATIN1_MASK among the "levels" bits
            return text.decode("latin-1" if latin1 else "utf-8", "replace")
        if sexp_type == _LISTSXP:
            return self._pairlist(has_attributes, has_tag)
        if sexp_type in (_LGLSXP, _INTSXP):
            n = self._length()
            values = [None if v == _NA_INTEGER else v for v in self._unpack(f"{n}i", 4 * n)]
        elif sexp_type == _REALSXP:
            n = self._length()
            values = list(self._unpack(f"{n}d", 8 * n))
        elif sexp_type in (_STRSXP, _VECSXP):
            values = [self.read() for _ in range(self._length())]
        else:
            raise ValueError(f"R object type {sexp_type} is not supported by this reader")
        attributes = self._pairlist_as_dict(self.read()) if has_attributes else {}
        return RVector(values, attributes)

    def _pairlist(self, has_attributes: int, has_tag: int) -> RVector:
        """A pairlist as an RVector of values whose `names` attribute holds the tags."""
        if has_attributes:
            self.read()
        tag = self.read() if has_tag else None
        head = self.read()
        tail = self.read()
        values, names = [head], [tag or ""]
        if isinstance(tail, RVector):
            values += tail
            names += tail.attributes.get("names", [""] * len(tail))
        return RVector(values, {"names": names})

    @staticmethod
    def _pairlist_as_dict(pairlist) -> dict:
        if not isinstance(pairlist, RVector):
            return {}
        return dict(zip(pairlist.attributes["names"], pairlist))


def named(vector: RVector) -> dict:
    """{name: element} of an R vector with a `names` attribute (a named list, data frame)."""
    return dict(zip(vector.attributes.get("names", []), vector))


def _decompress(blob: bytes, compression) -> bytes:
    if compression in (2, 3):  # bzip2 / xz: after the length, one byte names the method
        method, blob = blob[4:5], blob[5:]
        return {b"2": bz2.decompress, b"X": lzma.decompress, b"Z": zlib.decompress,
                b"0": bytes}[method](blob)
    return zlib.decompress(blob[4:])


def read_lazy_load_db(data_dir: Path, name: str = "Rdata") -> dict:
    """{variable: object} of the R lazy-load database `<data_dir>/<name>.rdx/.rdb`."""
    packed = (Path(data_dir) / f"{name}.rdx").read_bytes()
    unpacked = gzip.decompress(packed) if packed[:2] == b"\x1f\x8b" else zlib.decompress(packed)
    index = named(RReader(unpacked).read())
    compression = (index.get("compressed") or [1])[0]
    database = (Path(data_dir) / f"{name}.rdb").read_bytes()
    objects = {}
    for variable, (offset, length) in named(index["variables"]).items():
        blob = database[offset: offset + length]
        objects[variable] = RReader(_decompress(blob, compression)).read()
    return objects


def read_novels(data_dir: Path) -> dict[str, list[str]]:
    """{novel: lines} of the six novels (`emma`, ..., `sensesensibility`), NA lines empty."""
    objects = read_lazy_load_db(data_dir)
    missing = [n for n in NOVELS if n not in objects]
    if missing:
        raise ValueError(f"{data_dir} lacks the novels {missing}")
    return {novel: [line or "" for line in objects[novel]] for novel in NOVELS}


def join_novels(novels: dict[str, list[str]]) -> str:
    """Novels in the given order as one text, an empty line between novels."""
    return "\n\n".join("\n".join(lines) for lines in novels.values()) + "\n"


def austen_text(data_dir: Path) -> str:
    """The six novels in alphabetical order as one text, an empty line between novels."""
    return join_novels(read_novels(data_dir))


def split_novels(novels: dict[str, list[str]]) -> dict[str, str]:
    """{"train", "dev", "test": text} by `SPLIT`, each novel whole, in alphabetical order."""
    held_out = {novel for names in SPLIT.values() for novel in names}
    names = {"train": [n for n in novels if n not in held_out], "dev": SPLIT["dev"],
             "test": SPLIT["test"]}
    return {split: join_novels({n: novels[n] for n in sorted(members)})
            for split, members in names.items()}


def prepare(out_dir: Path, cache_dir: Path | None = None) -> Path:
    """Downloads `r-cran-janeaustenr` (not installed) and writes the six novels to
    `out_dir/austen.txt.gz` and the fixed split to `out_dir/{train,dev,test}.txt`; returns the
    first."""
    out_dir = Path(out_dir)
    root = debian.fetch([PACKAGE], cache_dir or out_dir / "packages", (f"{DATA_DIR}/Rdata.*",))
    novels = read_novels(root / DATA_DIR)
    text = join_novels(novels)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "austen.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(text)
    counts = [f"austen: {text.count(chr(10)):,} lines -> {path}"]
    for split, split_text in split_novels(novels).items():
        (out_dir / f"{split}.txt").write_text(split_text, encoding="utf-8")
        counts.append(f"{split}: {split_text.count(chr(10)):,}")
    print(", ".join(counts))
    return path
