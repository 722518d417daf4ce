"""Runs an `nlpapps` command on a pseudo-terminal, as a user typing at it would."""

import os
import pty
import select
import sys
import time
from collections.abc import Callable


def answer_at_terminal(argv: list[str], ready: str, line: str, answered: Callable[[str], bool],
                       seconds: float = 240) -> str:
    """Starts `python -m nlpapps.cli *argv` on a terminal, waits for `ready` in its output,
    types `line` and waits (at most 90 s) until what comes after it is `answered`; then types
    Ctrl-D and checks that the command ends with 0. Returns what came after the line."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: nlpapps on the terminal's end
        os.execv(sys.executable, [sys.executable, "-m", "nlpapps.cli", *argv])
    seen, done = b"", 0

    def after_line() -> str:
        return seen.split(line.encode())[-1].decode("utf-8", "replace")

    def read_until(found, limit: float) -> bool:
        nonlocal seen
        deadline = time.monotonic() + limit
        while not found() and time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                seen += os.read(terminal, 4096)
        return found()

    try:
        assert read_until(lambda: ready.encode() in seen, seconds), seen
        os.write(terminal, line.encode() + b"\n")
        assert read_until(lambda: answered(after_line()), 90), seen
        os.write(terminal, b"\x04")  # Ctrl-D: the end of the input
        for _ in range(60):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(1)
        assert done and os.waitstatus_to_exitcode(status) == 0, seen
        return after_line()
    finally:
        if not done:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(terminal)
