"""`nlpapps lm train`, `lm evaluate`, `lm score` and `generate`."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

from nlpapps.commands.common import (DEFAULT_GENERATOR, UserError, add_config_arguments,
                                     config_from_args, iter_lines, lines_of, log, read_text,
                                     reads_a_terminal)
from nlpapps.decoding_limits import MAX_NEW_TOKENS_ONE
from nlpapps.errors import ModelError
from nlpapps.runtime import Runtime, add_runtime_argument, announce, choose, choose_for_file


def cmd_lm_train(args) -> int:
    from nlpapps.apps import language_model

    try:
        config = config_from_args(language_model.LanguageModelConfig, args)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.data:
        train_text = read_text(f"{args.data}/train.txt")
        dev_text = read_text(f"{args.data}/dev.txt")
    elif args.text:
        train_text = read_text(args.text)
        if args.dev:
            dev_text = read_text(args.dev)
        else:  # hold out the last 5% of the lines for dev
            lines = train_text.splitlines(keepends=True)
            held = max(1, len(lines) // 20) if len(lines) > 1 else 0
            train_text, dev_text = "".join(lines[:len(lines) - held]), \
                "".join(lines[len(lines) - held:])
    else:
        raise UserError("give --data DIR (from `nlpapps data prepare`) or --text FILE_OR_FOLDER")
    if not train_text.strip():
        raise UserError(f"{args.text or args.data + '/train.txt'} has no text to train on")
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
    with only what running it needs (SavedModel, config, tokenizer, dev metrics) at `export`:
    its SavedModel's variables hold each weight once. Both SavedModels hold the weights of a
    copy of `model` that was never compiled, so no optimizer state is saved beside them."""
    from nlpapps.apps.language_model import create_model
    from nlpapps.export.saved_model_writer import write_savedmodel, write_savedmodel_into
    from nlpapps.serving.language_model_module import LanguageModelModule

    clean = create_model(config, tokenizer.vocab_size)
    clean.set_weights(model.get_weights())
    module = LanguageModelModule(clean, tokenizer, config.seq_len)
    files = {"config.json": (out / "config.json").read_bytes(),
             "tokenizer.model": tokenizer.to_bytes()}
    write_savedmodel_into(module, out, files)
    if export:
        if (out / "metrics.json").exists():
            files["metrics.json"] = (out / "metrics.json").read_bytes()
        write_savedmodel(module, export, files)


def cmd_lm_evaluate(args) -> int:
    from nlpapps.apps import language_model
    from nlpapps.apps.dynamic_evaluation import Adaptation
    from nlpapps.apps.neural_cache import Cache

    adaptation, cache = None, None
    if args.adapt and args.cache:
        raise UserError("give --adapt or --cache, not both")
    try:
        if args.adapt:
            adaptation = Adaptation(learning_rate=args.adapt, window=args.adapt_window,
                                    decay=args.adapt_decay, clipnorm=args.adapt_clipnorm)
        if args.cache:
            cache = Cache(size=args.cache, theta=args.cache_theta, weight=args.cache_weight)
    except ValueError as error:
        raise UserError(str(error)) from None
    model, tokenizer, _ = language_model.load(Path(args.model))
    try:
        report = language_model.evaluate(model, tokenizer, read_text(args.file),
                                         adaptation=adaptation, progress=sys.stderr.isatty(),
                                         cache=cache)
    except ValueError as error:
        raise UserError(f"{args.file}: {error}") from None
    print(json.dumps(report, indent=2))
    return 0


def cmd_lm_score(args) -> int:
    lines = iter_lines(args)
    path = Path(args.model)
    runtime = choose_for_file(path, args.runtime) if path.suffix == ".tflite" else \
        choose(path, args.runtime, [])
    announce(runtime)
    interactive = reads_a_terminal(args)
    if interactive:  # each line is scored when it is entered; else in batches of 64
        print("Type lines to score, one per line; Ctrl-D ends.", file=sys.stderr)
    if runtime.name == "litert":
        return score_with_litert(runtime.path, lines)
    from nlpapps.apps import language_model

    model, tokenizer, _ = language_model.load(Path(args.model))
    size = 1 if interactive else 64
    while batch := list(itertools.islice(lines, size)):
        texts = [line.decode("utf-8", "surrogateescape") for line in batch]
        for value in language_model.score(model, tokenizer, texts, size):
            print(f"{value:.4f}", flush=True)
    return 0


def score_with_litert(path: Path, lines) -> int:
    """`lm score` of each line through a language model's LiteRT file at batch 1: the
    log-probability of the line read from the start of a line through its line break."""
    from nlpapps.serving.litert_language_model import LiteRTLanguageModel
    from nlpapps.tokenizer import line_start_ids

    model = LiteRTLanguageModel(path)
    if model.tokenizer is None:
        raise ModelError(f"{path} was written without its tokenizer; export it again or give "
                         "--runtime tf")
    for line in lines:
        ids = line_start_ids(model.tokenizer, line.decode("utf-8", "surrogateescape") + "\n")
        print(f"{model.log_prob(ids):.4f}", flush=True)
    return 0


def _unescape(text: str) -> str:
    r"""Reads "\n", "\t" and "\\" in a flag value as a line break, a tab and a backslash."""
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t") \
        .replace("\0", "\\")


def read_prompts(args) -> list[str]:
    """The prompt arguments, or the lines of `--file` (stdin for "-"), or one empty prompt."""
    if not args.file:
        return args.prompt or [""]
    if args.prompt:
        raise UserError("give prompts as arguments or with --file, not both")
    prompts = [line.decode("utf-8", "surrogateescape") for line in lines_of(args.file)]
    if not prompts:
        raise UserError(f"{args.file} holds no prompt; give one per line")
    return prompts


def cmd_generate(args) -> int:
    from nlpapps.apps import text_generator
    from nlpapps.serving.generation_config import GenerationConfig

    try:
        options = GenerationConfig(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_k=args.top_k, top_p=args.top_p, beam=args.beam, seed=args.seed,
            stop=tuple(_unescape(stop) for stop in args.stop))
    except ValueError as error:
        raise UserError(str(error)) from None
    log.info("generation: %s", json.dumps(dataclasses.asdict(options)))
    prompts = read_prompts(args)
    runtime = generation_runtime(args, options)
    announce(runtime)
    if runtime.name == "litert":
        return generate_with_litert(runtime.path, prompts, options)
    generator = text_generator.TextGenerator.load(Path(args.model))
    text_generator.print_warnings(generator, prompts)
    if options.beam > 1 and (options.top_k or options.top_p < 1.0):
        print("warning: beam search does not sample; --top-k and --top-p are not used",
              file=sys.stderr)
    stream = args.stream if args.stream is not None else sys.stdout.isatty()
    if stream:
        text_generator.write_stream(generator, prompts, options, sys.stdout)
    else:
        text_generator.write_texts(generator, prompts, options, sys.stdout)
    return 0


def generation_runtime(args, options) -> Runtime:
    """The runtime `generate` runs in: a `.tflite` model's LiteRT, or as `--runtime` says for
    a folder (its LiteRT file samples or decodes greedily at most MAX_NEW_TOKENS_ONE tokens and
    prints each text when it is done)."""
    if Path(args.model).suffix == ".tflite":
        return choose_for_file(Path(args.model), args.runtime)
    unsupported = []
    if options.beam > 1:
        unsupported.append(f"--beam {options.beam}")
    if options.max_new_tokens > MAX_NEW_TOKENS_ONE:
        unsupported.append(f"--max-new-tokens {options.max_new_tokens} (the file draws at most "
                           f"{MAX_NEW_TOKENS_ONE})")
    if args.stream:  # asked for; by default a terminal gets the file's text when it is done
        unsupported.append("--stream")
    return choose(Path(args.model), args.runtime, unsupported)


def generate_with_litert(path: Path, prompts: list[str], options) -> int:
    """Each prompt through a language model's LiteRT file at batch 1, as a phone would run
    it; the text is printed when done, cut before the first stop string."""
    from nlpapps.apps.text_generator import SEPARATOR, print_warnings
    from nlpapps.serving.litert_language_model import LiteRTLanguageModel

    if options.beam > 1:
        raise UserError("a TFLite file samples or decodes greedily: --beam needs a language "
                        "model folder")
    model = LiteRTLanguageModel(path)
    print_warnings(model, prompts)  # as with a folder, if the file holds its tokenizer
    if model.stepwise and options.temperature > 0:
        raise UserError(f"{path} is a step-wise file, which this command runs greedily only: "
                        "give --temperature 0, or export a one-call file")
    if options.max_new_tokens > MAX_NEW_TOKENS_ONE and not model.stepwise:
        print(f"warning: a one-call TFLite file draws at most {MAX_NEW_TOKENS_ONE} tokens",
              file=sys.stderr)
    print(SEPARATOR.join(litert_texts(model, prompts, options)))
    return 0


def litert_texts(model, prompts: list[str], options) -> list[str]:
    """Each prompt followed by its continuation by `model` (a `LiteRTLanguageModel`), cut
    before the first stop string: what `generate` prints once the file is open."""
    texts = []
    for prompt in prompts:
        text = model.continuation(prompt, options.max_new_tokens, options.temperature,
                                  options.top_k, options.top_p, options.seed)
        cuts = [index for index in (text.find(stop) for stop in options.stop) if index >= 0]
        texts.append(prompt + (text[:min(cuts)] if cuts else text))
    return texts


def add_parsers(sub) -> None:
    from nlpapps.serving.generation_config import GenerationConfig

    p = sub.add_parser("generate", help="continue prompts with a language model")
    generation = GenerationConfig()
    p.add_argument("prompt", nargs="*",
                   help="texts to continue, each read as the start of a line (none: generate "
                        "from the start)")
    p.add_argument("--file", help="prompts, one per line (- for stdin), instead of arguments")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR),
                   help="language model folder, or a .tflite file of `nlpapps export` run in "
                        "LiteRT (no beam search; the text comes when done)")
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
                        "terminal and TensorFlow runs; a LiteRT file prints it when done)")
    add_runtime_argument(p)
    p.set_defaults(func=cmd_generate)

    lm = sub.add_parser("lm", help="train, evaluate and score language models")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    p = lm_sub.add_parser("train", help="train a language model on plain text")
    p.add_argument("--data", help="folder with train.txt and dev.txt (nlpapps data prepare)")
    p.add_argument("--text", help="a plain-text file, or a folder of .txt files, to train on")
    p.add_argument("--dev", help="a plain-text dev file or folder (default: the last 5%% of "
                   "--text)")
    p.add_argument("--out", required=True, help="model folder (training resumes if it exists)")
    p.add_argument("--export", help="also write the runnable model alone to this folder")
    add_config_arguments(p, "nlpapps.apps.language_model:LanguageModelConfig")
    p.set_defaults(func=cmd_lm_train)

    p = lm_sub.add_parser("evaluate", help="bits per character and perplexity of a text")
    p.add_argument("file", help="a plain-text file (e.g. DIR/test.txt) or a folder of .txt "
                   "files")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR), help="language model folder")
    p.add_argument("--adapt", type=float, default=0.0, metavar="LR",
                   help="dynamic evaluation: after scoring each window, take a gradient step of "
                        "this learning rate on it (0: off, the default; 0.1 suits the shipped "
                        "model)")
    p.add_argument("--adapt-window", type=int, default=32, metavar="N",
                   help="tokens scored between two adaptation steps (default: 32)")
    p.add_argument("--adapt-decay", type=float, default=0.0, metavar="F",
                   help="after each step, move this fraction back to the trained weights "
                        "(default: 0)")
    p.add_argument("--adapt-clipnorm", type=float, default=10.0, metavar="NORM",
                   help="clip each step's gradient to this global norm (default: 10)")
    p.add_argument("--cache", type=int, default=0, metavar="N",
                   help="neural cache: mix the model with a cache of its states over the last N "
                        "positions read (0: off, the default; 20000 suits the shipped model)")
    p.add_argument("--cache-theta", type=float, default=1.0, metavar="T",
                   help="sharpness of the cache's match of states (default: 1)")
    p.add_argument("--cache-weight", type=float, default=0.25, metavar="L",
                   help="the cache's share of the mixed distribution (default: 0.25)")
    p.set_defaults(func=cmd_lm_evaluate)

    p = lm_sub.add_parser("score", help="the log-probability (natural log) of each line")
    p.add_argument("text", nargs="*", help="lines to score (default: --file or stdin)")
    p.add_argument("--file", help="read one line per line from this file ('-': stdin)")
    p.add_argument("--model", default=str(DEFAULT_GENERATOR),
                   help="language model folder, or a .tflite file of `nlpapps export` run in "
                        "LiteRT")
    add_runtime_argument(p)
    p.set_defaults(func=cmd_lm_score)
