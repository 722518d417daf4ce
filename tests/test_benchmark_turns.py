"""Tests of how `scripts/benchmark.py layers` times its two sides: turns of calls in
alternation, and each side's mean seconds per call. The host's clock is replaced by one that
each call moves on by a known amount, so the figures are exact."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """`perf_counter` of a host where a call of `first` takes 2 s and one of `second` 5 s."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def perf_counter(self):
        return self.now

    def side(self, name, seconds):
        def call():
            self.calls.append(name)
            self.now += seconds
        return call


@pytest.mark.parametrize("calls, block, order", [
    (7, 3, "aaabbbaaabbbab"),
    (4, 1, "abababab"),
    (5, 8, "aaaaabbbbb"),
])
def test_the_two_sides_take_turns_of_block_calls(script, monkeypatch, calls, block, order):
    clock = Clock()
    monkeypatch.setattr(script.time, "perf_counter", clock.perf_counter)
    first_s, second_s = script._paired_seconds(clock.side("a", 2.0), clock.side("b", 5.0),
                                                  calls, block)
    assert "".join(clock.calls) == order
    assert (first_s, second_s) == (2.0, 5.0)


def test_each_side_is_timed_over_its_own_calls_only(script, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(script.time, "perf_counter", clock.perf_counter)
    durations = iter([1.0, 4.0, 3.0, 8.0])  # a, b, a, b: each side's mean is its own
    first, second = (lambda: setattr(clock, "now", clock.now + next(durations)),) * 2
    assert script._paired_seconds(first, second, 2) == (2.0, 6.0)
