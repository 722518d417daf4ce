"""Tests for nlpapps.text_bytes: the one rule by which text becomes the bytes a model reads."""

import doctest

import pytest

from nlpapps import text_bytes
from nlpapps.text_bytes import to_utf8


def test_plain_text_is_its_utf8():
    assert to_utf8("Where is the station?") == b"Where is the station?"
    assert to_utf8("Straße 😀") == "Straße 😀".encode()
    assert to_utf8("") == b""


def test_bytes_pass_through_unchanged():
    for data in (b"", b"plain", b"Who\xff\xfe is there", b"cut \xe2\x96"):
        assert to_utf8(data) is data


def test_an_escaped_invalid_byte_comes_back_as_that_byte():
    # How Python hands over an argument holding invalid UTF-8 (argv, os.fsdecode).
    argument = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    assert argument == "caf\udce9 \udcff"
    assert to_utf8(argument) == b"caf\xe9 \xff"


def test_a_lone_surrogate_becomes_its_utf8_form():
    assert to_utf8("\ud800") == b"\xed\xa0\x80"
    assert to_utf8("low \udfff") == b"low \xed\xbf\xbf"
    # with one, an escaped byte beside it is written the same way rather than raising
    assert to_utf8("\ud800\udcff") == "\ud800\udcff".encode("utf-8", "surrogatepass")


def test_anything_else_is_a_type_error():
    with pytest.raises(TypeError, match="text must be str or bytes, got int"):
        to_utf8(3)
    with pytest.raises(TypeError, match="got bytearray"):
        to_utf8(bytearray(b"x"))


def test_the_docstring_examples_hold():
    assert doctest.testmod(text_bytes).failed == 0
