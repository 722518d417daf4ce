"""`nlpapps translate`, `translate-train` and `translate-eval`."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

from nlpapps.commands.common import (DEFAULT_TRANSLATOR, UserError, add_config_arguments,
                                     check_output_file, config_from_args, iter_lines, log,
                                     read_pairs, reads_a_terminal)
from nlpapps.decoding_limits import BEAM_ONE_SIZE, DEFAULT_ALPHA, MAX_BEAM
from nlpapps.runtime import Runtime, add_runtime_argument, announce, choose, choose_for_file


def cmd_translate(args) -> int:
    check_beam(args.beam, "--beam")
    check_beam(args.nbest, "--nbest")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_alpha(args.alpha)
    runtime = translation_runtime(args)
    announce(runtime)
    if runtime.name == "litert":
        return translate_with_litert(args, runtime.path)
    from nlpapps.apps import translate

    if args.plot_attention:  # before translating, not after
        check_output_file(Path(args.plot_attention), "--plot-attention")
    start = time.perf_counter()
    lines = iter_lines(args)
    translator = translate.SavedTranslator(Path(args.model))
    interactive = reads_a_terminal(args)
    if interactive:  # each line is translated as it is entered
        print("Type English sentences, one per line; Ctrl-D ends.", file=sys.stderr)
    first = next(lines, None)  # kept for --plot-attention
    count = translate.translate_stream(
        translator, [] if first is None else itertools.chain([first], lines), sys.stdout,
        args.beam, args.nbest, args.alpha, 1 if interactive else args.batch_size, args.scores)
    log.info("translated %d lines in %.1f s", count, time.perf_counter() - start)
    if args.plot_attention:
        if first is None:
            raise UserError("--plot-attention needs a sentence to translate")
        translation = translator.translate([first], args.beam, args.alpha)[0]
        try:
            translate.plot_attention(translator, translation, Path(args.plot_attention))
        except (OSError, ValueError) as error:  # unwritable, or a format matplotlib lacks
            raise UserError(f"--plot-attention {args.plot_attention}: "
                            f"{str(error).splitlines()[0]}") from None
        print(f"attention of the first sentence drawn to {args.plot_attention}",
              file=sys.stderr)
    return 0


def check_beam(beam: int, flag: str) -> None:
    if not 1 <= beam <= MAX_BEAM:
        raise UserError(f"{flag} must be between 1 and {MAX_BEAM}, got {beam}")


def check_alpha(alpha: float) -> None:
    if not alpha >= 0 or alpha == float("inf"):
        raise UserError(f"--alpha (the length penalty exponent) must be 0 or more, got {alpha}")


def translation_runtime(args) -> Runtime:
    """The runtime `translate` runs in: a `.tflite` model's LiteRT, or as `--runtime` says for
    a folder (its LiteRT file runs greedy and beam search of the size it was exported with,
    one translation per line)."""
    if Path(args.model).suffix == ".tflite":
        runtime = choose_for_file(Path(args.model), args.runtime)
        if args.nbest > 1 or args.scores or args.plot_attention:
            raise UserError("a TFLite file gives one translation per line: --nbest, --scores "
                            "and --plot-attention need a translator folder")
        return runtime
    unsupported = []
    if args.beam not in (1, BEAM_ONE_SIZE):
        unsupported.append(f"--beam {args.beam} (the file's beam is {BEAM_ONE_SIZE})")
    if args.nbest > 1:
        unsupported.append(f"--nbest {args.nbest}")
    if args.scores:
        unsupported.append("--scores")
    if args.plot_attention:
        unsupported.append("--plot-attention")
    return choose(Path(args.model), args.runtime, unsupported)


def translate_with_litert(args, path: Path) -> int:
    """Each line through a translator's LiteRT file, at batch 1, as a phone would run it
    (greedy, or the file's own beam search)."""
    from nlpapps.apps.translate import warn_truncated
    from nlpapps.serving.litert_translator import LiteRTTranslator

    translator = LiteRTTranslator(path)
    beam = args.beam > 1 and translator.has_beam
    if args.beam > 1 and not beam:
        print(f"warning: {path} has no beam search; translating greedily",
              file=sys.stderr)
    for number, line in enumerate(iter_lines(args), 1):
        text, truncated = translator.run(line, beam=beam, alpha=args.alpha)
        if truncated:
            warn_truncated(number)
        print(text, flush=True)
    return 0


def cmd_translate_train(args) -> int:
    import random

    from nlpapps.apps import translator

    config = config_from_args(translator.TranslatorConfig, args)
    if args.data:
        train_rows = read_pairs(f"{args.data}/train.tsv")
        dev_rows = read_pairs(f"{args.data}/dev.tsv")
    elif args.pairs:
        train_rows = read_pairs(args.pairs)
        if args.dev:
            dev_rows = read_pairs(args.dev)
        else:  # hold out a seeded 5% (at most 1000 pairs) for dev
            random.Random(config.seed).shuffle(train_rows)
            held = min(1000, max(1, len(train_rows) // 20))
            dev_rows, train_rows = train_rows[:held], train_rows[held:]
    else:
        raise UserError("give --data DIR (from `nlpapps data prepare`) or --pairs TSV")
    if not train_rows:
        raise UserError(f"{args.pairs} holds too few pairs to keep some for dev; give more "
                        "pairs or --dev DEV.tsv")
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    try:
        result = translator.train(config, [(r.english, r.german, r.source) for r in train_rows],
                                  [(r.english, r.german) for r in dev_rows], out)
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None
    export_translator(result, out)
    print(f"model written to {out}", file=sys.stderr)
    return 0


def export_translator(result, out: Path) -> None:
    """Writes the trained translator's SavedModel, config and tokenizer at `out`'s root,
    beside the run's checkpoints, epoch weights and logs. The SavedModel holds the weights of
    a copy of the model that was never compiled, so no optimizer state is saved beside them."""
    from nlpapps.apps.translator import Translator
    from nlpapps.export.saved_model_writer import write_savedmodel_into
    from nlpapps.serving.translator_module import TranslatorModule

    clean = Translator.create(result.config, result.tokenizer).model
    clean.set_weights(result.model.get_weights())
    write_savedmodel_into(TranslatorModule(clean, result.tokenizer), out, {
        "config.json": (out / "config.json").read_bytes(),
        "tokenizer.model": result.tokenizer.to_bytes(),
    })


def cmd_translate_eval(args) -> int:
    from nlpapps.apps import translate

    check_beam(args.beam, "--beam")
    if args.limit < 0:
        raise UserError(f"--limit must be 0 (every pair) or more, got {args.limit}")
    check_alpha(args.alpha)
    translator = translate.SavedTranslator(Path(args.model))
    pairs = [(r.english, r.german) for r in read_pairs(args.pairs)]
    if args.limit:
        pairs = pairs[:args.limit]
    outputs: dict[str, list[str]] = {}
    report = translate.evaluate(translator, pairs, beam_sizes=(1, args.beam), alpha=args.alpha,
                                outputs=outputs)
    print(json.dumps(report, indent=2))
    if args.output:
        write_translations(Path(args.output), pairs, outputs)
        print(f"translations written to {args.output}", file=sys.stderr)
    return 0


def write_translations(path: Path, pairs, outputs: dict[str, list[str]]) -> None:
    """A TSV with a header: english, reference, then each decoding's translation."""
    def clean(text: str) -> str:  # one field: no tab or line break inside
        return " ".join(text.split())

    with path.open("w", encoding="utf-8", errors="surrogateescape") as file:
        file.write("\t".join(["english", "reference", *outputs]) + "\n")
        for row, (source, target) in enumerate(pairs):
            fields = [source, target, *(hypotheses[row] for hypotheses in outputs.values())]
            file.write("\t".join(clean(field) for field in fields) + "\n")


def add_parsers(sub) -> None:
    p = sub.add_parser("translate", help="translate English to German")
    p.add_argument("text", nargs="*", help="sentences (default: one per line from --file/stdin)")
    p.add_argument("--file", help="read one sentence per line from this file ('-': stdin)")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR),
                   help="translator folder, or a .tflite file of `nlpapps export` run in LiteRT")
    p.add_argument("--beam", type=int, default=5,
                   help="beam size (1: greedy; a .tflite file's beam search has the size it "
                        "was exported with)")
    p.add_argument("--nbest", type=int, default=1, help="translations per line, tab-separated")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="length penalty exponent")
    p.add_argument("--scores", action="store_true", help="print each translation's score")
    p.add_argument("--batch-size", type=int, default=32,
                   help="lines translated together (1: each line as soon as it is read, as at "
                        "a terminal; for a program that waits for each answer)")
    p.add_argument("--plot-attention", metavar="FILE.png",
                   help="draw the first sentence's attention matrix")
    add_runtime_argument(p)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("translate-train", help="train a translator on sentence pairs")
    p.add_argument("--data", help="folder with train.tsv and dev.tsv (nlpapps data prepare)")
    p.add_argument("--pairs", help="a TSV of english<TAB>german pairs")
    p.add_argument("--dev", help="a TSV of dev pairs (default: 5%% of --pairs)")
    p.add_argument("--out", required=True, help="model folder (training resumes if it exists)")
    add_config_arguments(p, "nlpapps.apps.translator:TranslatorConfig")
    p.set_defaults(func=cmd_translate_train)

    p = sub.add_parser("translate-eval", help="BLEU and chrF on a test TSV, greedy and beam")
    p.add_argument("--model", default=str(DEFAULT_TRANSLATOR), help="translator folder")
    p.add_argument("--pairs", required=True, help="test pairs (e.g. DIR/test.tsv)")
    p.add_argument("--beam", type=int, default=5, help="beam size of the second decoding")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="length penalty exponent")
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    p.add_argument("--output", help="also write every translation to this TSV (english, "
                                    "reference, greedy, beam)")
    p.set_defaults(func=cmd_translate_eval)
