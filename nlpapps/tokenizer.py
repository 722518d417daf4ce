r"""The one tokenizer of nlpapps: SentencePiece, in Python and in the TensorFlow graph.

`Tokenizer` trains, saves (one `.model` file: the SentencePiece model proto), encodes and
decodes in Python, without TensorFlow; `nlpapps.graph_tokenizer.GraphTokenizer` gives the same
ids in tf.data, SavedModels and LiteRT, with `tensorflow_text.FastSentencepieceTokenizer`
(LiteRT custom ops in `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`) and otherwise
LiteRT builtins only.

Special ids are fixed: pad 0, unk 1, bos 2, eos 3. With `keep_newlines=True` the model keeps
all whitespace and normalizes "\n" to the piece "␤" (id 4), which decodes back to "\n";
otherwise "\n", "\t" and runs of spaces become single spaces.

Bad input never raises, and gives the same ids in Python and in the graph:
- "" gives no ids, and so does whitespace-only text unless the model keeps newlines;
- characters the model never saw (other scripts, emoji, NUL) give one unk per run;
- invalid UTF-8 gives unk: `bytes` reach SentencePiece as they are and a `str` is encoded by
  `nlpapps.text_bytes.to_utf8` (bytes escaped with "surrogateescape" come back as they were,
  lone surrogates become invalid bytes). Decoding with errors="replace" would not do:
  nmt_nfkc turns U+FFFD into a space, and the graph's `tf.strings.unicode_transcode` has no
  LiteRT kernel;
- `max_length` keeps the first text ids so that bos + text + eos has at most that many;
- decoding reads ids outside [0, vocab_size) as unk (" ⁇ ") and skips pad, bos and eos.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast, overload

import numpy as np
import sentencepiece as spm
from google.protobuf.message import DecodeError
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from nlpapps.errors import ModelError
from nlpapps.text_bytes import to_utf8

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
NEWLINE_PIECE = "\u2424"  # "␤": stands for "\n" in models trained with keep_newlines
MODEL_TYPES = ("unigram", "bpe", "char")
GRAPH_MODEL_TYPES = ("unigram", "char")  # the graph op segments by Viterbi, not BPE merges
# Rules that normalize "\t", "\r" and "\n" before the graph op sees them: the op escapes every
# ASCII whitespace as "▁", where Python SentencePiece keeps "\t" and "\n" as characters.
NORMALIZATION_RULES = ("nmt_nfkc", "nmt_nfkc_cf")
_TRAIN_CHUNK_CHARS = 4096  # longer lines are cut into training sentences of this length


def text_budget(max_length: int | None, add_bos: bool, add_eos: bool) -> int | None:
    """How many text ids fit in `max_length` beside the requested bos/eos (None: all)."""
    if max_length is None:
        return None
    reserved = int(add_bos) + int(add_eos)
    if max_length <= reserved:
        raise ValueError(f"max_length must exceed the {reserved} bos/eos ids, got {max_length}")
    return max_length - reserved


def _map_newline(charsmap: bytes) -> bytes:
    """Returns the precompiled normalization `charsmap` with "\\n" mapped to NEWLINE_PIECE.

    A charsmap is a little-endian uint32 trie size, a darts-clone double-array trie of source
    strings, then the NUL-terminated replacements that its leaves index. Leaves are shared by
    sources with equal replacements ("\\n", "\\t", NBSP, ... all share " "), so the "\\n" node
    is pointed at a new leaf block appended to the trie instead of its leaf being rewritten.
    """
    size = int.from_bytes(charsmap[:4], "little")
    units = np.frombuffer(charsmap[4 : 4 + size], dtype="<u4").astype(np.int64)
    replacements = charsmap[4 + size :]

    def offset(unit: int) -> int:
        return int((unit >> 10) << ((unit & (1 << 9)) >> 6))

    def label(position: int) -> int:
        return int(units[position] & ((1 << 31) | 0xFF)) if position < len(units) else -1

    node = offset(units[0]) ^ ord("\n")  # the root's child labelled "\n"
    if label(node) != ord("\n") or not (units[node] >> 8) & 1:
        raise ValueError("the normalization rule has no entry for a newline")
    children = node ^ offset(units[node])
    if any(label(children ^ byte) == byte for byte in range(1, 256)):
        raise ValueError("the normalization rule has entries that start with a newline")
    base = -(-len(units) // 256) * 256  # a 256-aligned block past the end: no label matches
    if (node ^ base) >= 1 << 21:
        raise ValueError("the normalization trie is too large to extend")
    block = np.zeros(base + 256 - len(units), dtype=np.int64)
    block[base - len(units)] = (1 << 31) | len(replacements)  # leaf: where the new string is
    units = np.concatenate([units, block])
    units[node] = ((node ^ base) << 10) | (units[node] & 0x1FF)  # keep label and leaf flag
    trie = units.astype("<u4").tobytes()
    return len(trie).to_bytes(4, "little") + trie + replacements + NEWLINE_PIECE.encode() + b"\0"


def _sentences(texts: Iterable[str], keep_newlines: bool) -> Iterator[str]:
    """The training sentences: lines (ending in NEWLINE_PIECE if kept), cut to size."""
    for text in texts:
        lines = text.split("\n")
        for index, line in enumerate(lines):
            if keep_newlines and index < len(lines) - 1:
                line += NEWLINE_PIECE
            for start in range(0, len(line), _TRAIN_CHUNK_CHARS):
                yield line[start : start + _TRAIN_CHUNK_CHARS]


class Tokenizer:
    """SentencePiece tokenizer with fixed special ids, saved as one `.model` file.

    Args:
        model_proto: a serialized SentencePiece `ModelProto` (a `.model` file's bytes) with
            pad 0, unk 1, bos 2, eos 3.

    Example:
    ```python
    tokenizer = Tokenizer.train(lines, vocab_size=8000)
    ids = tokenizer.encode("Who's there?", add_eos=True)  # [..., 3]
    tokenizer.decode(ids)  # "Who's there?"
    ```
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model_proto: bytes) -> None:
        self._proto = model_pb2.ModelProto.FromString(model_proto)
        spec = self._proto.trainer_spec
        specials = (spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id)
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(f"special ids (pad, unk, bos, eos) must be (0, 1, 2, 3), "
                             f"got {specials}")
        self._bytes = bytes(model_proto)
        self._processor = spm.SentencePieceProcessor(model_proto=self._bytes)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        model_type: str = "unigram",
        keep_newlines: bool = False,
        normalization_rule_name: str = "nmt_nfkc",
        character_coverage: float = 1.0,
        byte_fallback: bool = False,
        max_sentences: int = 2_000_000,
        num_threads: int | None = None,
    ) -> Tokenizer:
        """Trains a model on the lines of `texts`.

        Args:
            texts: strings of any length (one string is one text); long lines are cut.
            vocab_size: wanted size; a corpus too small for it gives a smaller vocabulary.
            model_type: "unigram", "bpe" or "char"; `GraphTokenizer` takes unigram and char.
            keep_newlines: keep "\\n" (as the piece "␤") and other whitespace, for language
                models of multi-line text ("\\r" still becomes a space, a literal "␤" a newline).
            normalization_rule_name: "nmt_nfkc" (NFKC) or "nmt_nfkc_cf" (NFKC, case folded).
            character_coverage: share of characters in the vocabulary: 1.0 for small
                alphabets, about 0.9995 for CJK.
            byte_fallback: spell unknown characters as UTF-8 byte pieces instead of unk;
                Python only (`GraphTokenizer` refuses such models).
            max_sentences: training samples at most this many sentences (lines), shuffled.
            num_threads: trainer threads; defaults to the CPU count (at most 16).
        """
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
        if normalization_rule_name not in NORMALIZATION_RULES:
            raise ValueError(f"normalization_rule_name must be one of {NORMALIZATION_RULES}, "
                             f"got {normalization_rule_name!r}")
        if vocab_size < 8:
            raise ValueError(f"vocab_size must be at least 8, got {vocab_size}")
        options: dict[str, Any] = dict(
            model_type=model_type, vocab_size=vocab_size, hard_vocab_limit=False,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            normalization_rule_name=normalization_rule_name, byte_fallback=byte_fallback,
            character_coverage=character_coverage,
            input_sentence_size=max_sentences, shuffle_input_sentence=True,
            max_sentence_length=4 * _TRAIN_CHUNK_CHARS,  # in bytes
            num_threads=num_threads or min(16, os.cpu_count() or 1), minloglevel=1,
        )
        texts = [texts] if isinstance(texts, str) else texts
        sentences = _sentences(texts, keep_newlines)
        first = next((sentence for sentence in sentences if sentence.strip()), None)
        if first is None:
            raise ValueError("there is no text to train a tokenizer on")
        writer = io.BytesIO()
        with tempfile.TemporaryDirectory() as folder:
            if keep_newlines:
                # "␤" decodes to "\n" by SentencePiece's own denormalization rule, so that the
                # .model file alone round-trips line breaks.
                rule = Path(folder) / "denormalization.tsv"
                rule.write_text(f"{ord(NEWLINE_PIECE):04X}\t000A\n")
                options.update(
                    user_defined_symbols=[NEWLINE_PIECE], denormalization_rule_tsv=str(rule),
                    remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                )
            spm.SentencePieceTrainer.train(
                sentence_iterator=itertools.chain([first], sentences), model_writer=writer,
                **options,
            )
        proto = model_pb2.ModelProto.FromString(writer.getvalue())
        if keep_newlines:
            normalizer = proto.normalizer_spec
            normalizer.precompiled_charsmap = _map_newline(normalizer.precompiled_charsmap)
            proto.denormalizer_spec.ClearField("normalization_rule_tsv")
        return cls(proto.SerializeToString())

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> Tokenizer:
        return cls(model_proto)

    def to_bytes(self) -> bytes:
        """The serialized model proto: the content of the `.model` file."""
        return self._bytes

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """The tokenizer saved at `path`; ModelError if the file is missing or not one."""
        try:
            return cls(Path(path).read_bytes())
        except FileNotFoundError:
            raise ModelError(f"{path} is missing; the model folder is incomplete, re-export "
                             "it or pick another folder") from None
        except (OSError, ValueError, RuntimeError, DecodeError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ModelError(f"{path} is not a usable tokenizer ({first_line}); re-export the "
                             "model or pick another folder") from None

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_bytes(self._bytes)

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    @property
    def model_type(self) -> str:
        """"unigram", "bpe", "char" or "word"."""
        return model_pb2.TrainerSpec.ModelType.Name(self._proto.trainer_spec.model_type).lower()

    @property
    def newline_id(self) -> int | None:
        """The id of "␤" if the model keeps newlines, else None."""
        newline = self._processor.piece_to_id(NEWLINE_PIECE)
        return None if newline == UNK_ID else newline

    def id_to_piece(self, id: int) -> str:
        """The piece of `id` ("▁" marks a word start); IndexError outside the vocabulary."""
        return self._processor.id_to_piece(id)

    def piece_to_id(self, piece: str) -> int:
        return self._processor.piece_to_id(piece)

    @overload
    def encode(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: first wins
        self, text: str | bytes, *, add_bos: bool = ..., add_eos: bool = ...,
        max_length: int | None = ..., alpha: float = ...) -> list[int]: ...

    @overload
    def encode(self, text: Sequence[str | bytes], *, add_bos: bool = ..., add_eos: bool = ...,
               max_length: int | None = ..., alpha: float = ...) -> list[list[int]]: ...

    def encode(self, text: str | bytes | Sequence[str | bytes], *, add_bos: bool = False,
               add_eos: bool = False, max_length: int | None = None, alpha: float = 0.0
               ) -> list[int] | list[list[int]]:
        """Ids of one text (a list) or of a batch of texts (a list of lists).

        `max_length` keeps the first text ids so that bos + text + eos has at most that many.
        With `alpha` > 0 (unigram models) each text's segmentation is drawn from the model's
        distribution over segmentations, flattened by `alpha` (subword regularization, Kudo
        2018), instead of being the most likely one; the ids still decode to the same text.
        Once `sentencepiece.set_random_generator_seed(s)` is called, every call draws with
        seed `s` afresh (the same texts, the same draws); before, the draws are random.
        """
        if alpha and (self.model_type != "unigram" or not 0.0 < alpha <= 1.0):
            raise ValueError(f"subword sampling needs a unigram model and alpha in (0, 1], got "
                             f"a {self.model_type} model and alpha={alpha}")
        keep = text_budget(max_length, add_bos, add_eos)
        batch = not isinstance(text, (str, bytes))
        texts = [text] if isinstance(text, (str, bytes)) else list(text)
        # One thread: the draws then follow the seed alone.
        sampling: dict[str, Any] = {"enable_sampling": True, "alpha": alpha, "nbest_size": -1,
                                    "num_threads": 1} if alpha else {}
        rows = self._processor.encode([to_utf8(item) for item in texts], **sampling) \
            if texts else []
        rows = [[BOS_ID] * add_bos + row[:keep] + [EOS_ID] * add_eos for row in rows]
        return rows if batch else rows[0]

    def decode(self, ids: Sequence[int] | Sequence[Sequence[int]] | np.ndarray) -> str | list[str]:
        """Text of one id sequence, or texts of a batch (a list of rows or a padded array)."""
        ids = ids.tolist() if isinstance(ids, np.ndarray) else ids
        batch = len(ids) > 0 and not isinstance(ids[0], (int, np.integer))
        size = self.vocab_size
        given = cast(Sequence[Sequence[int]], ids if batch else [ids])
        rows = [[int(i) if 0 <= i < size else UNK_ID for i in row] for row in given]
        texts = self._processor.decode(rows)
        if self._proto.normalizer_spec.add_dummy_prefix:
            # As in the graph op, a leading unk loses the dummy prefix's space too.
            firsts = [next((i for i in row if i == UNK_ID or i > EOS_ID), None) for row in rows]
            texts = [text[1:] if first == UNK_ID else text for text, first in zip(texts, firsts)]
        return texts if batch else texts[0]


@overload
def line_start_ids(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: first wins
    tokenizer: Tokenizer, text: str) -> list[int]: ...


@overload
def line_start_ids(tokenizer: Tokenizer, text: Sequence[str]) -> list[list[int]]: ...


def line_start_ids(tokenizer: Tokenizer, text: str | Sequence[str]) -> list[int] | list[list[int]]:
    """Ids of `text` (or of each text of a list) read from the start of a line.

    SentencePiece starts every encoded string with a word boundary "▁" (its dummy prefix),
    which a line inside the training stream does not have. Encoding "\\n" + text and dropping
    the ids of "\\n" gives the ids the text has after a line break.
    """
    skip = len(tokenizer.encode("\n"))
    if isinstance(text, str):
        return tokenizer.encode("\n" + text)[skip:]
    return [row[skip:] for row in tokenizer.encode(["\n" + item for item in text])]
