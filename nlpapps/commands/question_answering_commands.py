"""`nlpapps qa train`, `qa evaluate` and `qa answer`: question answering on the bAbI tasks."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from nlpapps.commands.common import (PACKAGE_ROOT, UserError, add_config_arguments,
                                     check_file, config_from_args, log)

DEFAULT_QA = PACKAGE_ROOT / "saved_models" / "babi-qa"


def read_tasks(folder: str, split: str) -> dict:
    """{task: questions} of `split` in a bAbI folder; UserError for a missing folder or a
    malformed file (with its line)."""
    from nlpapps.corpora import babi

    try:
        tasks = babi.read_folder(Path(folder))
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    except babi.BabiFormatError as error:
        raise UserError(str(error)) from None
    found = {task: splits[split] for task, splits in tasks.items() if split in splits}
    missing = sorted(set(tasks) - set(found))
    if missing:
        print(f"note: no {split} file for task{'s' if len(missing) > 1 else ''} "
              f"{', '.join(map(str, missing))}; left out", file=sys.stderr)
    if not found:
        raise UserError(f"{folder} holds no bAbI {split} file")
    return found


def cmd_qa_train(args) -> int:
    from nlpapps.apps import question_answering as qa

    try:
        config = config_from_args(qa.QAConfig, args)
    except ValueError as error:
        raise UserError(str(error)) from None
    tasks = read_tasks(args.data, "train")
    log.info("config: %s", json.dumps(dataclasses.asdict(config)))
    out = Path(args.out)
    try:
        model, vocab = qa.train(config, tasks, out)
    except ValueError as error:
        raise UserError(str(error).splitlines()[0]) from None
    from nlpapps.export.question_answering_folder import export_qa

    export_qa(model, vocab, config, out, Path(args.export) if args.export else None)
    print(f"model written to {out}" + (f" and {args.export}" if args.export else ""),
          file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("qa", help="question answering on the bAbI tasks (memory network)")
    qa_sub = p.add_subparsers(dest="qa_command", required=True)
    t = qa_sub.add_parser("train", help="train jointly on every task with a training file")
    t.add_argument("--data", required=True,
                   help="folder of bAbI files (qaN_<name>_train.txt[.gz]), e.g. from "
                        "`nlpapps data prepare --corpus babi`")
    t.add_argument("--out", required=True, help="training folder (a killed run resumes)")
    t.add_argument("--export", default="",
                   help="also write a folder with only what answering needs")
    add_config_arguments(t, "nlpapps.apps.question_answering:QAConfig")
    t.set_defaults(func=cmd_qa_train)
    add_use_parsers(qa_sub)


def cmd_qa_evaluate(args) -> int:
    from nlpapps.apps.question_answering_inference import SavedQA, evaluate

    tasks = read_tasks(args.data, "test")
    if args.task:
        if args.task not in tasks:
            raise UserError(f"{args.data} has no test file for task {args.task}; it has tasks "
                            f"{', '.join(map(str, tasks))}")
        tasks = {args.task: tasks[args.task]}
    folders = args.model or [str(DEFAULT_QA)]
    reports = {folder: evaluate(SavedQA(Path(folder)), tasks) for folder in folders}
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    names = [Path(folder).name for folder in folders]
    width = max(12, *(len(n) for n in names))
    print(f"{'task':<28}{'questions':>10}" + "".join(f"{n:>{width + 2}}" for n in names))
    for task, row in next(iter(reports.values()))["tasks"].items():
        print(f"{task:>2} {row['name']:<25}{row['questions']:>10}" + "".join(
            f"{100 * reports[f]['tasks'][task]['accuracy']:>{width + 1}.1f}"
            + ("%" if reports[f]["tasks"][task]["trained"] else "*") for f in folders))
    print(f"{'mean':<28}{'':>10}" + "".join(
        f"{100 * reports[f]['mean_accuracy']:>{width + 1}.1f}%"
        if reports[f]["mean_accuracy"] is not None else f"{'-':>{width + 2}}" for f in folders))
    if any(not r["trained"] for report in reports.values() for r in report["tasks"].values()):
        print("* a task the model was not trained on; not in the mean")
    return 0


def cmd_qa_answer(args) -> int:
    from nlpapps.apps.question_answering_inference import SavedQA, story_lines

    if not args.story:
        raise UserError("a question needs a story: give it with --story FILE (one sentence "
                        "a line; - for stdin)")
    if args.story == "-":
        text = sys.stdin.read()
    else:
        check_file(Path(args.story), "story file")
        text = Path(args.story).read_text(encoding="utf-8", errors="replace")
    sentences = story_lines(text)
    if not sentences:
        raise UserError(f"story {args.story} is empty; give its sentences one a line")
    question = " ".join(args.question).strip()
    if not question:
        raise UserError('give a question, e.g. "Where is the football?"')
    model = SavedQA(Path(args.model))
    unknown = model.unknown_words(question)
    if unknown:
        raise UserError(f"the question has {'words' if len(unknown) > 1 else 'a word'} the "
                        f"model does not know: {', '.join(unknown)}; ask with the words of the "
                        "bAbI tasks")
    unknown = sorted({w for s in sentences for w in model.unknown_words(s)})
    if unknown:
        print(f"warning: the story's words {', '.join(unknown)} are unknown to the model and "
              "left out", file=sys.stderr)
    memory = model.config.memory_size
    if len(sentences) > memory:
        print(f"warning: the story has {len(sentences)} sentences; the memory keeps the last "
              f"{memory}", file=sys.stderr)
    reply = model.attend("\n".join(sentences), question)
    print(reply.answer)
    if model.config.model == "memn2n":
        for hop, weights in enumerate(reply.attention, start=1):
            best = int(weights.argmax())
            print(f"  hop {hop}: {weights[best]:.2f}  {reply.sentences[best]}")
    if args.plot_attention:
        if model.config.model != "memn2n":
            raise UserError(f"{args.model} is an LSTM reader, which has no attention to plot")
        from nlpapps.apps.question_answering_figure import plot_attention

        plot_attention(reply, question, Path(args.plot_attention))
        print(f"attention figure written to {args.plot_attention}", file=sys.stderr)
    return 0


def add_use_parsers(qa_sub) -> None:
    e = qa_sub.add_parser("evaluate", help="accuracy on each task's test questions, and the "
                                           "mean; several --model side by side")
    e.add_argument("--data", required=True, help="folder of bAbI files (qaN_<name>_test.txt)")
    e.add_argument("--model", action="append",
                   help=f"model folder (repeat to compare; default {DEFAULT_QA})")
    e.add_argument("--task", type=int, help="only this task (1-20)")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=cmd_qa_evaluate)
    a = qa_sub.add_parser("answer", help="answer a question about a story, with the sentences "
                                         "each hop attended to")
    a.add_argument("question", nargs="*", help='e.g. "Where is the football?"')
    a.add_argument("--story", help="the story: a file of sentences, one a line (- for stdin)")
    a.add_argument("--model", default=str(DEFAULT_QA), help="model folder")
    a.add_argument("--plot-attention", metavar="PNG",
                   help="also write a figure of each hop's attention over the sentences")
    a.set_defaults(func=cmd_qa_answer)
