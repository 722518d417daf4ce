"""Every entry point, fuzzed: a fixed, seeded set of odd inputs through the commands, the
SavedModel signatures and the LiteRT files, with one table of what came back.

    python scripts/fuzz.py                                  (the shipped models, every input)
    python scripts/fuzz.py --quick --translator DIR --language-model DIR
    python scripts/fuzz.py --translator-tflite T.tflite --lm-tflite L.tflite

Inputs: empty lines, whitespace only, a 6,000-character line, a 1 MB line, 10,000 lines,
invalid UTF-8, lone surrogates, NUL and other control characters, emoji and combining marks,
right-to-left text, a BOM, CRLF line ends. Each command runs in its own process (a crash is a
non-zero exit other than 2, a signal or a timeout; a traceback is one on stderr); an exit of 2
with one `error: ...` line is a clear refusal. A line-oriented command (translate, lm score,
generate --stop '\\n' with one prompt per line) must print one line per line read.
Signatures and LiteRT runners are called in this process: an exception other than
TensorFlow's InvalidArgumentError for an argument out of range counts as a traceback.

Exit status 0 when the bar holds: no traceback, no crash, lines out = lines in.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("the", "station", "is", "where", "we", "all", "go", "tomorrow", "morning", "please",
         "close", "window", "book", "house", "Tom", "reads", "a", "long", "letter", "to", "his",
         "friend", "in", "Berlin")
TIMEOUT_S = 900  # one command on one input; past it, a hang


@dataclasses.dataclass
class Case:
    name: str
    lines: list[bytes]
    line_end: bytes = b"\n"
    prefix: bytes = b""  # e.g. a BOM before the first line

    def data(self) -> bytes:
        if not self.lines:
            return self.prefix
        return self.prefix + self.line_end.join(self.lines) + self.line_end


def sentence(rng: random.Random, words: int) -> bytes:
    return " ".join(rng.choice(WORDS) for _ in range(words)).encode()


def make_cases(quick: bool, seed: int = 0) -> list[Case]:
    """The fixed inputs; `quick` shrinks the big ones (a 200,000-character line instead of
    1 MB, 100 lines instead of 10,000) for a test."""
    rng = random.Random(seed)
    big = 200_000 if quick else 1_000_000
    many = 100 if quick else 10_000
    long_line = sentence(rng, 1200)[:6000]
    huge = (sentence(rng, big // 4) * 2)[:big]
    return [
        Case("plain", [b"Where is the station?", b"hi", b"Good morning."]),
        Case("empty lines", [b"", b"", b"hi", b""]),
        Case("whitespace only", [b" ", b"\t\t", b"  \t ", "\u00a0\u2003\u3000".encode()]),
        Case("6,000 characters", [long_line, b"hi"]),
        Case(f"{big:,}-char line", [b"hi", huge, b"Good morning."]),
        Case(f"{many:,} lines", [sentence(rng, rng.randint(1, 6)) for _ in range(many)]),
        Case("invalid UTF-8", [b"caf\xe9 au lait", b"\xff\xfe\xfd", b"ab\xc3", b"\xc0\x80x",
                               b"\xf4\x90\x80\x80"]),
        Case("lone surrogates", ["\ud800 high".encode("utf-8", "surrogatepass"),
                                 "low \udfff".encode("utf-8", "surrogatepass"),
                                 "\udcff".encode("utf-8", "surrogatepass")]),
        Case("control characters", [b"a\x00b", b"\x00", b"\x01\x02\x07\x08\x1b[31mred\x1b[0m",
                                    b"tab\there\x0bvt\x0cff", b"\x1c\x1d\x1e\x7f",
                                    "next\u0085line\u2028sep\u2029".encode()]),
        Case("emoji and combining", ["\U0001f44d\U0001f3fd family "
                                     "\U0001f468\u200d\U0001f469\u200d\U0001f467".encode(),
                                     "e\u0301\u0301\u0301 t\u0336e\u0336s\u0336t".encode(),
                                     "\U0001f1e9\U0001f1ea \u0915\u094d\u0937".encode(),
                                     ("\u0300" * 50).encode()]),
        Case("right-to-left", ["\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd".encode(),
                               "\u0645\u0631\u062d\u0628\u0627 hello".encode(),
                               "\u202eevil\u202c and \u200f".encode()]),
        Case("BOM", [b"Hello world.", b"\xef\xbb\xbfagain"], prefix=b"\xef\xbb\xbf"),
        Case("CRLF line ends", [b"Where is the station?", b"", b"hi\r", b"Good night."],
             line_end=b"\r\n"),
    ]


def combined(cases: list[Case]) -> Case:
    """One input holding every case's lines, each case's BOM and CRLF ends kept: one run of
    a command instead of one per case."""
    lines: list[bytes] = []
    for case in cases:
        ending = case.line_end[:-1]  # b"\r" of a CRLF case
        case_lines = [line + ending for line in case.lines]
        if case_lines:
            case_lines[0] = case.prefix + case_lines[0]
        lines += case_lines
    return Case("every input in one", lines)


def lines_read(data: bytes) -> int:
    """Lines a line reader finds: each b"\\n" ends one, and a last line without one counts."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@dataclasses.dataclass
class Row:
    """One entry point's results over the inputs."""

    name: str
    line_oriented: bool
    tried: int = 0
    tracebacks: int = 0
    crashes: int = 0
    refused: int = 0  # a clear one-line error (exit 2, or InvalidArgumentError)
    lines_in: int = 0
    lines_out: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.tracebacks and not self.crashes and \
            (not self.line_oriented or self.lines_in == self.lines_out)


# -- commands, each in its own process ---------------------------------------------------------

IN_PROCESS = False  # run the commands in this process (faster; a crash is not caught)


def run_command(argv: list[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """`(exit status, stdout, stderr)` of `python -m nlpapps.cli ARGV`; a timeout is -9."""
    if IN_PROCESS:
        return run_in_process(argv, stdin)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run([sys.executable, "-m", "nlpapps.cli", *argv], input=stdin,
                              capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired as expired:
        return -9, expired.stdout or b"", (expired.stderr or b"") + b"\n(timed out)"
    return done.returncode, done.stdout, done.stderr


def run_in_process(argv: list[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """`run_command` through `nlpapps.cli.main` in this process, with the standard streams
    swapped for buffers; an exception out of `main` is a traceback on stderr, status 1."""
    import io

    from nlpapps.cli import main

    streams = [io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")] + \
        [io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape",
                          write_through=True) for _ in range(2)]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        status = main(["-v", *argv])  # -v: main leaves file descriptor 2 alone
    except SystemExit as error:  # argparse's
        status = error.code if isinstance(error.code, int) else 2
    except Exception:  # noqa: BLE001
        traceback.print_exc(file=streams[2])
        status = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return status, streams[1].buffer.getvalue(), streams[2].buffer.getvalue()


def tally(row: Row, case: Case, status: int, out: bytes, err: bytes, count_out) -> None:
    row.tried += 1
    text = err.decode("utf-8", "replace")
    if "Traceback (most recent call last)" in text:
        row.tracebacks += 1
        row.notes.append(f"{case.name}: traceback: {text.strip().splitlines()[-1][:160]}")
    if status == 2:
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        row.refused += 1
        row.notes.append(f"{case.name}: refused: {(errors or ['?'])[0][:160]}")
    elif status != 0:
        row.crashes += 1
        row.notes.append(f"{case.name}: exit {status}: {text.strip()[-160:]}")
    if row.line_oriented:
        row.lines_in += lines_read(case.data())
        row.lines_out += count_out(out) if status == 0 else 0


def command_entry(name: str, argv: Callable[[Path], list[str]], line_oriented: bool,
                  count_out=lambda out: out.count(b"\n")) -> Callable[[list[Case], Path], Row]:
    """An entry point run as `nlpapps ARGV(file)` on each input written to a file."""
    def run(cases: list[Case], folder: Path) -> Row:
        row = Row(name, line_oriented)
        for index, case in enumerate(cases):
            path = folder / f"input-{index}.txt"
            path.write_bytes(case.data())
            status, out, err = run_command(argv(path))
            tally(row, case, status, out, err, count_out)
        return row
    run.entry_name = name  # type: ignore[attr-defined]
    return run


def generated_texts(out: bytes) -> int:
    """Texts printed by `generate` (joined by its separator); none for no output."""
    from nlpapps.apps.text_generator import SEPARATOR

    return len(out[:-1].split(SEPARATOR.encode())) if out else 0


# -- signatures and runners, in this process ---------------------------------------------------

def call_entry(name: str, setup: Callable[[], Callable[[list[bytes]], list]],
               limit: int | None = None) -> Callable[[list[Case], Path], Row]:
    """An entry point called in this process: `setup()` returns a function from a batch of
    lines to one result per line. `limit` takes only each input's first lines (a runner of
    one line at a time)."""
    def run(cases: list[Case], folder: Path) -> Row:
        import tensorflow as tf

        row = Row(name, line_oriented=True)
        try:
            call = setup()
        except Exception as error:  # noqa: BLE001
            row.notes.append(f"not run: {type(error).__name__}: {error}")
            return row
        for case in [Case("empty batch", []), *cases]:
            lines = case.lines[:limit] if limit else case.lines
            row.tried += 1
            row.lines_in += len(lines)
            try:
                row.lines_out += len(call(lines))
            except tf.errors.InvalidArgumentError as error:
                row.refused += 1
                row.notes.append(f"{case.name}: refused: {error.message.splitlines()[0][:160]}")
            except Exception:  # noqa: BLE001
                row.tracebacks += 1
                row.notes.append(f"{case.name}: {traceback.format_exc().strip().splitlines()[-1]}")
        return row
    run.entry_name = name  # type: ignore[attr-defined]
    return run


def argument_entry(name: str, setup: Callable[[], list[tuple[str, Callable[[], object]]]]
                   ) -> Callable[[list[Case], Path], Row]:
    """Arguments out of range through a signature: each must raise InvalidArgumentError
    (refused); one that returns counts as a crash, any other exception as a traceback."""
    def run(cases: list[Case], folder: Path) -> Row:
        import tensorflow as tf

        row = Row(name, line_oriented=False)
        for label, call in setup():
            row.tried += 1
            try:
                call()
                row.crashes += 1
                row.notes.append(f"{label}: accepted")
            except tf.errors.InvalidArgumentError:
                row.refused += 1
            except Exception:  # noqa: BLE001
                row.tracebacks += 1
                row.notes.append(f"{label}: {traceback.format_exc().strip().splitlines()[-1]}")
        return row
    run.entry_name = name  # type: ignore[attr-defined]
    return run


def translator_signatures(folder: Path):
    import tensorflow as tf

    from nlpapps.apps.model_folder_reader import load_saved_model

    module = load_saved_model(folder, "translator")

    def chunks(lines, size, call):
        return [row for start in range(0, len(lines), size)
                for row in call(lines[start:start + size])] if lines else \
            list(call([]))

    def greedy(lines):
        return chunks(lines, 256, lambda chunk: module.signatures["serving_default"](
            inputs=tf.constant(chunk, tf.string))["outputs"].numpy())

    def beam(lines):
        return chunks(lines, 64, lambda chunk: module.signatures["translate"](
            inputs=tf.constant(chunk, tf.string), beam_size=tf.constant(5),
            alpha=tf.constant(1.0))["outputs"].numpy())

    def one(lines):
        return [module.signatures["translate_beam_one"](
            inputs=tf.constant([line]), alpha=tf.constant(1.0))["outputs"].numpy()[0]
            for line in lines]

    def bad_arguments():
        translate = module.signatures["translate"]
        inputs = tf.constant([b"hi"])
        return [(f"beam_size {size}, alpha {alpha}",
                 lambda size=size, alpha=alpha: translate(inputs=inputs,
                                                          beam_size=tf.constant(size),
                                                          alpha=tf.constant(alpha)))
                for size, alpha in ((0, 1.0), (-3, 1.0), (100_000, 1.0), (5, float("nan")),
                                    (5, float("inf")), (5, -1.0))]

    return greedy, beam, one, bad_arguments


def language_model_signatures(folder: Path):
    import tensorflow as tf

    from nlpapps.apps.model_folder_reader import load_saved_model

    from nlpapps.apps.text_generator import prompt_batches

    module = load_saved_model(folder, "language_model")

    # In the batches `nlpapps generate` uses: a row of the attentive model carries 3 MB of
    # states, so a batch of thousands of prompts needs more memory than a machine may have.
    def generate(lines):  # an empty batch too, as one call
        return [row for batch in prompt_batches(max(1, len(lines)), 1)
                for row in module.signatures["generate"](
                    inputs=tf.constant(lines[batch.start:batch.stop], tf.string),
                    max_new_tokens=tf.constant(8), temperature=tf.constant(0.8),
                    top_k=tf.constant(0), top_p=tf.constant(0.95),
                    seed=tf.constant(7))["outputs"].numpy()]

    def beam(lines):
        return [row for batch in prompt_batches(max(1, len(lines)), 3)
                for row in module.signatures["beam_search"](
                    inputs=tf.constant(lines[batch.start:batch.stop], tf.string),
                    max_new_tokens=tf.constant(4),
                    beam_size=tf.constant(3))["outputs"].numpy().tolist()]

    def bad_arguments():
        signature = module.signatures["generate"]
        inputs = tf.constant([b"ROMEO:"])

        def generate_with(**changes):
            values = {"max_new_tokens": 8, "temperature": 0.8, "top_k": 0, "top_p": 0.95,
                      "seed": 1}
            values.update(changes)
            return lambda: signature(inputs=inputs, **{
                key: tf.constant(value, tf.float32 if isinstance(value, float) else tf.int32)
                for key, value in values.items()})
        return [("max_new_tokens -1", generate_with(max_new_tokens=-1)),
                ("temperature -1", generate_with(temperature=-1.0)),
                ("top_p 0", generate_with(top_p=0.0)), ("top_p 2", generate_with(top_p=2.0)),
                ("top_k -1", generate_with(top_k=-1)),
                ("beam_size 0", lambda: module.signatures["beam_search"](
                    inputs=inputs, max_new_tokens=tf.constant(4), beam_size=tf.constant(0))),
                ("beam_size 100000", lambda: module.signatures["beam_search"](
                    inputs=inputs, max_new_tokens=tf.constant(4),
                    beam_size=tf.constant(100_000)))]

    return generate, beam, bad_arguments


def litert_translator(path: Path):
    from nlpapps.serving.litert_translator import LiteRTTranslator

    translator = LiteRTTranslator(path)
    return lambda lines: [translator.run(line, beam=translator.has_beam)[0] for line in lines]


def litert_language_model(path: Path):
    from nlpapps.serving.litert_language_model import LiteRTLanguageModel

    model = LiteRTLanguageModel(path)
    return lambda lines: [model.generate(line, 8, temperature=0.0 if model.stepwise else 0.8,
                                         seed=3)[0] for line in lines]


# -- the table ---------------------------------------------------------------------------------

def entry_points(args) -> list[tuple[str, Callable[[list[Case], Path], Row]]]:
    tr, lm = str(args.translator), str(args.language_model)
    entries = [
        ("translate", command_entry("translate (folder, beam 5)", lambda path: [
            "translate", "--model", tr, "--file", str(path)], True)),
        ("generate", command_entry("generate --file (folder)", lambda path: [
            "generate", "--model", lm, "--file", str(path), "--max-new-tokens", "8",
            "--stop", "\\n", "--seed", "1"], True, generated_texts)),
        ("generate", command_entry("generate --beam 3 --file", lambda path: [
            "generate", "--model", lm, "--file", str(path), "--max-new-tokens", "4",
            "--beam", "3", "--stop", "\\n"], True, generated_texts)),
        ("lm score", command_entry("lm score --file", lambda path: [
            "lm", "score", "--model", lm, "--file", str(path)], True)),
        ("lm evaluate", command_entry("lm evaluate FILE", lambda path: [
            "lm", "evaluate", str(path), "--model", lm], False)),
    ]
    greedy, beam, one, bad = (None,) * 4

    def translator_part(index):
        def setup():
            nonlocal greedy, beam, one, bad
            if greedy is None:
                greedy, beam, one, bad = translator_signatures(args.translator)
            return (greedy, beam, one, bad)[index]
        return setup

    entries += [
        ("signatures", call_entry("translator serving_default", translator_part(0))),
        ("signatures", call_entry("translator translate (beam 5)", translator_part(1))),
        ("signatures", call_entry("translator translate_beam_one", translator_part(2),
                                  limit=20)),
        ("signatures", argument_entry("translator bad arguments",
                                      lambda: translator_part(3)()())),
    ]
    lm_parts: list = []

    def lm_part(index):
        def setup():
            if not lm_parts:
                lm_parts.extend(language_model_signatures(args.language_model))
            return lm_parts[index]
        return setup

    entries += [
        ("signatures", call_entry("language model generate", lm_part(0))),
        ("signatures", call_entry("language model beam_search", lm_part(1))),
        ("signatures", argument_entry("language model bad arguments",
                                      lambda: lm_part(2)()())),
    ]
    if args.translator_tflite:
        entries += [
            ("tflite", call_entry("LiteRT translator file", lambda: litert_translator(
                args.translator_tflite), limit=args.litert_lines)),
            ("tflite", command_entry("translate --model FILE.tflite", lambda path: [
                "translate", "--model", str(args.translator_tflite), "--file", str(path)],
                True)),
        ]
    if args.lm_tflite:
        entries += [
            ("tflite", call_entry("LiteRT language-model file", lambda: litert_language_model(
                args.lm_tflite), limit=args.litert_lines)),
            ("tflite", command_entry("generate --model FILE.tflite", lambda path: [
                "generate", "--model", str(args.lm_tflite), "--file", str(path),
                "--max-new-tokens", "8",
                "--stop", "\\n"], True, generated_texts)),
        ]
    # Last: one call per line, the slowest (the path of a program waiting for each answer).
    entries.append(("translate", command_entry("translate --beam 1 --batch-size 1", lambda path: [
        "translate", "--model", tr, "--file", str(path), "--beam", "1", "--batch-size", "1"],
        True)))
    if args.qa:
        entries.append(("qa", command_entry("qa answer --story FILE", lambda path: [
            "qa", "answer", "Where is the football?", "--model", str(args.qa), "--story",
            str(path)], False)))
    return entries


def format_table(rows: list[Row]) -> str:
    header = ("entry point", "inputs", "tracebacks", "crashes", "refused", "lines in",
              "lines out")
    cells = [header] + [(row.name, str(row.tried), str(row.tracebacks), str(row.crashes),
                         str(row.refused), str(row.lines_in) if row.line_oriented else "-",
                         str(row.lines_out) if row.line_oriented else "-") for row in rows]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(header))]
    lines = ["  ".join(cell[i].ljust(widths[i]) if i == 0 else cell[i].rjust(widths[i])
                       for i in range(len(header))) for cell in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from nlpapps.commands.common import DEFAULT_GENERATOR, DEFAULT_TRANSLATOR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--translator", type=Path, default=DEFAULT_TRANSLATOR)
    parser.add_argument("--language-model", type=Path, default=DEFAULT_GENERATOR)
    parser.add_argument("--translator-tflite", type=Path, help="a translator .tflite file")
    parser.add_argument("--lm-tflite", type=Path, help="a language-model .tflite file")
    parser.add_argument("--qa", type=Path, help="a question-answering model folder")
    parser.add_argument("--quick", action="store_true",
                        help="smaller big inputs (200,000 characters, 100 lines)")
    parser.add_argument("--only", action="append", default=[],
                        help="only these groups: translate, generate, lm score, lm evaluate, "
                             "signatures, tflite, qa (repeatable)")
    parser.add_argument("--cases", help="only inputs whose name holds one of these "
                                        "comma-separated words")
    parser.add_argument("--combined", action="store_true",
                        help="every input in one file (one run of each command)")
    parser.add_argument("--litert-lines", type=int, default=40,
                        help="lines of each input run through a LiteRT file in this process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-process", action="store_true",
                        help="run the commands in this process: faster, but a crash of the "
                             "process is not caught")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every note")
    args = parser.parse_args(argv)
    global IN_PROCESS
    IN_PROCESS = args.in_process

    cases = make_cases(args.quick, args.seed)
    if args.cases:
        words = [word.strip().lower() for word in args.cases.split(",")]
        cases = [case for case in cases if any(word in case.name.lower() for word in words)]
    if args.combined:
        cases = [combined(cases)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nlpapps-fuzz.") as folder:
        for group, run in entry_points(args):
            if args.only and group not in args.only:
                continue
            row = run(cases, Path(folder))
            rows.append(row)
            print(f"{row.name}: {'ok' if row.ok else 'FAILS'} ({row.tried} inputs, "
                  f"{row.tracebacks} tracebacks, {row.crashes} crashes, {row.refused} refused, "
                  f"lines {row.lines_in} in, {row.lines_out} out)", file=sys.stderr, flush=True)
            for note in row.notes if (args.verbose or not row.ok) else []:
                print(f"    {note}", file=sys.stderr)
    print(format_table(rows))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
