"""`nlpapps export`: SavedModel and LiteRT files of either app, with a report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nlpapps.apps.registry import app_of
from nlpapps.commands.common import DEFAULT_TRANSLATOR, UserError, log, read_pairs, read_text
from nlpapps.runtime import folder_file_name


def cmd_export(args) -> int:
    from nlpapps.export import tflite

    if args.format not in ("savedmodel", "tflite"):
        raise UserError(f"unknown --format {args.format!r}; use savedmodel or tflite")
    modes = list(tflite.QUANTIZATIONS) if args.quantize == "all" else \
        [mode.strip() for mode in args.quantize.split(",")]
    unknown = [mode for mode in modes if mode not in tflite.QUANTIZATIONS]
    if unknown or not modes:
        raise UserError(f"unknown --quantize {','.join(unknown) or args.quantize!r}; use "
                        f"{', '.join(tflite.QUANTIZATIONS)}, a comma-separated list "
                        "or all")
    model = Path(args.model)
    kind = tflite.model_kind(model)
    reads = app_of(kind).reads  # "pairs" (a translator) or "text" (a language model)
    if args.format == "savedmodel":
        if modes != ["none"] or args.report or args.stepwise or args.beam:
            raise UserError("--quantize, --stepwise, --report and --beam apply to --format "
                            "tflite")
        out = Path(args.output) if args.output else model.parent / f"{model.name}-savedmodel"
        from nlpapps.export.model_folder import export_model_folder

        export_model_folder(kind, model, out)
        print(f"SavedModel written to {out}", file=sys.stderr)
        return 0
    if args.beam and (args.stepwise or reads != "pairs" or not args.report):
        raise UserError("--beam reports a translator's one-call files' beam search: use it "
                        "with --report, without --stepwise")
    if args.in_folder and (args.output or args.stepwise):
        raise UserError("--in-folder writes one-call files into the model folder: give it "
                        "without --output and --stepwise")
    if args.in_folder:
        for mode in modes:
            folder_file_name(mode)  # the modes a folder holds, before anything is converted
    if args.output and len(modes) > 1:
        raise UserError("--output names one file; leave it out to export several "
                        "quantizations beside the model")
    test = _export_test_data(args, reads) if args.report else None
    texts = _calibration_texts(args, reads) if "int8" in modes else None
    files = {}
    for mode in modes:
        out = Path(args.output) if args.output else \
            model / folder_file_name(mode) if args.in_folder else \
            tflite.default_output(model, mode, args.stepwise)
        start = time.perf_counter()
        tflite.export_tflite(model, out, mode, texts, args.stepwise)
        log.info("%s written in %.1f s", out, time.perf_counter() - start)
        print(f"{out} ({out.stat().st_size} bytes)", file=sys.stderr)
        files[f"tflite-{mode}"] = out
    if test is not None and reads == "pairs":  # test is None unless --report
        from nlpapps.export import litert_report as report

        print(report.format_report(report.compare_translator(
            model, files, test, beam=args.beam)))
    elif test is not None:
        from nlpapps.export import litert_report as report

        text, prompts = test
        rows = report.compare_language_model(model, files, text, prompts)
        print(report.format_report(rows, report.LANGUAGE_MODEL_COLUMNS,
                                   report.language_model_footer(rows)))
    return 0


def cmd_average(args) -> int:
    from nlpapps import averaging

    paths = averaging.average_run(Path(args.run), Path(args.output), args.last)
    epochs = ", ".join(path.name.split(".")[0] for path in paths)
    print(f"{args.output} written: the mean of {epochs}", file=sys.stderr)
    return 0


def _export_test_data(args, reads: str):
    """What --report measures on: a translator's test pairs (`reads` "pairs"); a language
    model's test text (its first --limit characters) and prompts (its first 20 non-empty
    lines)."""
    if reads == "pairs":
        if not args.pairs:
            raise UserError("--report needs --pairs TEST.tsv to measure quality on")
        pairs = [(r.english, r.german) for r in read_pairs(args.pairs)]
        return pairs[:args.limit] if args.limit else pairs
    if not args.text:
        raise UserError("--report needs --text TEST.txt to measure bits per character on")
    text = read_text(args.text)
    text = text[:args.limit] if args.limit else text
    prompts = [line for line in text.splitlines() if line.strip()][:20]
    if not prompts:
        raise UserError(f"{args.text} has no text to measure on")
    return text, prompts


def _calibration_texts(args, reads: str) -> list[str]:
    """int8 calibration: English sources of a TSV for a translator (`reads` "pairs"), lines of
    a text file for a language model."""
    if not args.calibrate:
        what = "TRAIN.tsv (source sentences" if reads == "pairs" else \
            "TRAIN.txt (lines of training text"
        raise UserError(f"--quantize int8 needs --calibrate {what} to calibrate the int8 "
                        "ranges on)")
    if reads == "pairs":
        return [r.english for r in read_pairs(args.calibrate)][:args.calibrate_limit]
    lines = [line for line in read_text(args.calibrate).splitlines() if line.strip()]
    return lines[:args.calibrate_limit]


def add_parsers(sub) -> None:
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
    p.add_argument("--in-folder", action="store_true",
                   help="write the files into the model folder, where translate, generate and "
                        "lm score run them by default (--runtime auto)")
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
    p.add_argument("--beam", action="store_true",
                   help="--report the one-call files' beam search (translator) instead of "
                        "greedy decoding")
    p.add_argument("--pairs", help="test pairs for --report (translator)")
    p.add_argument("--text", help="test text for --report (language model)")
    p.add_argument("--limit", type=int, default=0,
                   help="only the first N pairs (translator) or characters (language model) "
                        "for --report")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("average", help="a model folder whose weights average the last epochs "
                                       "of a training run (checkpoint averaging)")
    p.add_argument("--run", required=True, help="training folder (translate-train/lm train --out)")
    p.add_argument("--last", type=int, default=5, help="average this many last epochs")
    p.add_argument("--output", required=True, help="model folder to write")
    p.set_defaults(func=cmd_average)
