"""Tests for nlpapps.export.litert_report's table: every column readable, whatever its name's
length."""

from nlpapps.export.litert_report import (LANGUAGE_MODEL_COLUMNS, TRANSLATOR_COLUMNS,
                                          format_report)


def test_columns_stay_apart_and_aligned():
    rows = {"savedmodel": {"size_bytes": 40397371, "bits_per_char": 1.891},
            "tflite-dynamic": {"size_bytes": 5374888, "bits_per_char": 1.8912,
                               "bpc_change": 0.0002, "exact_match": 0.55, "median_ms": 3.926}}
    for columns in (LANGUAGE_MODEL_COLUMNS, TRANSLATOR_COLUMNS):
        lines = format_report(rows, columns, footer="(footer)").splitlines()
        assert lines[0].split() == ["variant", *columns]
        assert all(len(line.split()) == len(columns) + 1 for line in lines[1:3])
        assert len({len(line) for line in lines[:3]}) == 1  # right-aligned to the same width
        assert lines[-1] == "(footer)"
    table = format_report(rows, LANGUAGE_MODEL_COLUMNS).splitlines()
    assert table[2].split()[1:3] == ["5374888", "1.8912"]
    assert table[1].split()[3:] == ["-", "-", "-"]
