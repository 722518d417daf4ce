r"""Text as the bytes a model reads: the one rule by which a `str` becomes UTF-8 everywhere in
nlpapps (the tokenizer, the SavedModel and LiteRT runners, the commands). It imports nothing,
so the LiteRT path stays free of TensorFlow.
"""

from __future__ import annotations


def to_utf8(text: str | bytes) -> bytes:
    r"""The UTF-8 bytes of `text`, never raising for odd text; `bytes` come back as they are.

    A `str` is encoded so that the model reads what the user gave:
    - the bytes of a command-line argument (or any text decoded with "surrogateescape", as
      Python decodes argv and file names) come back as they were, invalid UTF-8 included;
    - a lone surrogate given from Python, which no byte was decoded to, is written as its
      UTF-8 form ("surrogatepass"), three invalid bytes that the tokenizer reads as unknown.
    A text holding both kinds is encoded the second way throughout.

    Examples:
        >>> to_utf8("Straße")
        b'Stra\xc3\x9fe'
        >>> to_utf8(b"caf\xe9")  # bytes: as they are
        b'caf\xe9'
        >>> to_utf8(b"caf\xe9".decode("utf-8", "surrogateescape"))  # argv's "caf\udce9"
        b'caf\xe9'
        >>> to_utf8("\ud800")
        b'\xed\xa0\x80'

    Raises:
        TypeError: for anything but `str` or `bytes`.
    """
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte was decoded to
        return text.encode("utf-8", "surrogatepass")
