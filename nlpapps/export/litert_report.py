"""How exported LiteRT files compare with the SavedModel they come from, in one process:
size, quality (BLEU/chrF of a translator, bits per character of a language model), agreement
of the outputs and latency, one input at a time. `nlpapps export --report` prints these tables.

    rows = compare_translator("saved_models/translator-en-de", {"dynamic": path}, pairs)
    print(format_report(rows))
    rows = compare_language_model("saved_models/shakespeare", {"dynamic": path}, text, prompts)
    print(format_report(rows, LANGUAGE_MODEL_COLUMNS, language_model_footer(rows)))
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nlpapps.apps.model_folder_reader import ModelError, load_saved_model
from nlpapps.decoding_limits import BEAM_ONE_SIZE, DEFAULT_ALPHA
from nlpapps.errors import ExportError
from nlpapps.export.tflite import numpy_function
from nlpapps.serving.litert_language_model import (LiteRTLanguageModel, sampling_inputs,
                                                   total_log_prob)
from nlpapps.serving.litert_translator import LiteRTTranslator
from nlpapps.text_bytes import to_utf8
from nlpapps.tokenizer import Tokenizer, line_start_ids

LANGUAGE_MODEL_COLUMNS = ("size_bytes", "bits_per_char", "bpc_change", "exact_match",
                          "median_ms")


def compare_translator(model_dir: Path, files: dict[str, Path],
                       pairs: Sequence[tuple[str, str]], beam: bool = False) -> dict[str, dict]:
    """Size, quality and speed of LiteRT `files` (name -> path) against the SavedModel.

    Every sentence is translated alone by the SavedModel's `translate_one` and by each file
    (greedy), or with `beam` by `translate_beam_one` and each file's `beam` signature (length
    penalty DEFAULT_ALPHA), in this one process. Returns, per row ("savedmodel", then each name):
    `size_bytes` (the folder's for the SavedModel), `bleu`, `chrf` (sacrebleu defaults),
    `median_ms` per sentence and, for the files, `bleu_change` and `chrf_change` against the
    SavedModel and `exact_match`, the share of outputs equal to the SavedModel's.
    """
    import sacrebleu
    import tensorflow as tf

    model_dir = Path(model_dir)
    sources = [to_utf8(source) for source, _ in pairs]
    references = [[target for _, target in pairs]]
    loaded = load_saved_model(model_dir, "translator")
    signature_name = "translate_beam_one" if beam else "translate_one"
    if signature_name not in loaded.signatures:
        raise ExportError(f"{model_dir} has no {signature_name} signature; re-export it")
    signature = loaded.signatures[signature_name]
    options = {"alpha": tf.constant(DEFAULT_ALPHA)} if beam else {}

    def saved_model(data: bytes) -> str:
        outputs = signature(inputs=tf.constant([data]), **options)["outputs"]
        return outputs.numpy()[0].decode("utf-8", "replace")

    def scores(hypotheses: list[str]) -> dict:
        return {"bleu": round(sacrebleu.BLEU().corpus_score(hypotheses, references).score, 2),
                "chrf": round(sacrebleu.CHRF().corpus_score(hypotheses, references).score, 2)}

    baseline, median = timed(saved_model, sources)
    size = folder_size(model_dir)
    decoding = f"beam {BEAM_ONE_SIZE}" if beam else "greedy"
    rows = {"savedmodel": {"size_bytes": size, **scores(baseline), "median_ms": round(median, 3),
                           "sentences": len(sources), "decoding": decoding}}
    for name, path in files.items():
        translator = LiteRTTranslator(path)
        outputs, median = timed(lambda data: translator.translate(data, beam), sources)  # noqa: B023
        row = {"size_bytes": Path(path).stat().st_size, **scores(outputs),
               "median_ms": round(median, 3), "sentences": len(sources), "decoding": decoding}
        row["bleu_change"] = round(row["bleu"] - rows["savedmodel"]["bleu"], 2)
        row["chrf_change"] = round(row["chrf"] - rows["savedmodel"]["chrf"], 2)
        same = sum(a == b for a, b in zip(outputs, baseline))
        row["exact_match"] = round(same / len(sources), 4) if sources else 1.0
        rows[name] = row
    return rows


def timed(run: Callable[[bytes], object], inputs: Sequence[bytes]) -> tuple[list, float]:
    """`(outputs, median milliseconds)` of `run` on each input, one at a time, after one
    untimed warm-up call."""
    run(inputs[0] if inputs else b"")
    outputs, times = [], []
    for data in inputs:
        start = time.perf_counter()
        outputs.append(run(data))
        times.append(time.perf_counter() - start)
    return outputs, 1000 * statistics.median(times) if times else 0.0


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


TRANSLATOR_COLUMNS = ("size_bytes", "bleu", "bleu_change", "chrf", "chrf_change", "exact_match",
                      "median_ms")


def format_report(rows: dict[str, dict], columns: Sequence[str] = TRANSLATOR_COLUMNS,
                  footer: str | None = None) -> str:
    """The rows of a comparison as an aligned text table; the default footer is the
    translator's."""
    width = max(len(name) for name in [*rows, "variant"]) + 2
    widths = [max(13, len(column) + 2) for column in columns]
    lines = ["variant".ljust(width) + "".join(c.rjust(w) for c, w in zip(columns, widths))]
    for name, row in rows.items():
        cells = [str(row.get(column, "-")).rjust(w) for column, w in zip(columns, widths)]
        lines.append(name.ljust(width) + "".join(cells))
    if footer is None:
        first = next(iter(rows.values())) if rows else {}
        sentences, decoding = first.get("sentences", 0), first.get("decoding", "greedy")
        footer = (f"({sentences} sentences, one at a time, {decoding}; exact_match against the "
                  "SavedModel's outputs)")
    lines.append(footer)
    return "\n".join(lines)


def compare_language_model(model_dir: Path, files: dict[str, Path], text: str,
                           prompts: Sequence[str], max_new_tokens: int = 32) -> dict[str, dict]:
    """Size, bits per character of `text`, greedy agreement and latency of language-model
    LiteRT `files` (name -> path) against the SavedModel, in this one process.

    Returns, per row ("savedmodel", then each name): `size_bytes`, `bits_per_char` of `text`
    (read from the start of a line), `median_ms` per prompt for `max_new_tokens` greedy
    tokens, and for the files `bpc_change` and `exact_match`, the share of prompts whose
    greedy ids equal the SavedModel's.
    """
    import tensorflow as tf

    model_dir = Path(model_dir)
    loaded = load_saved_model(model_dir, "language_model")
    if "generate_one" not in loaded.signatures:
        raise ModelError(f"{model_dir} has no generate_one signature; re-export it")
    tokenizer = Tokenizer.load(model_dir / "tokenizer.model")
    ids = line_start_ids(tokenizer, text)
    bits = 1 / (math.log(2) * max(len(text), 1))
    generate_one = loaded.signatures["generate_one"]
    score = numpy_function(loaded.signatures["score"])
    width = int(loaded.signatures["score"].structured_input_signature[1]["states"].shape[1])
    data = [to_utf8(prompt) for prompt in prompts]

    options = {name: tf.constant(value) for name, value in
               sampling_inputs(max_new_tokens).items()}

    def saved_generate(prompt: bytes) -> list[int]:
        return generate_one(inputs=tf.constant([prompt]), **options)["ids"].numpy()[0].tolist()

    baseline, median = timed(saved_generate, data)
    saved_bpc = -total_log_prob(score, ids, width) * bits
    rows = {"savedmodel": {"size_bytes": folder_size(model_dir),
                           "bits_per_char": round(saved_bpc, 4), "median_ms": round(median, 3),
                           "prompts": len(data), "characters": len(text),
                           "new_tokens": max_new_tokens}}
    for name, path in files.items():
        model = LiteRTLanguageModel(path)
        outputs, median = timed(lambda prompt: model.generate(prompt, max_new_tokens)[1],  # noqa: B023
                                data)
        bpc = -model.log_prob(ids) * bits
        same = sum(a == b for a, b in zip(outputs, baseline))
        rows[name] = {"size_bytes": Path(path).stat().st_size, "bits_per_char": round(bpc, 4),
                      "bpc_change": round(bpc - saved_bpc, 4),
                      "exact_match": round(same / len(data), 4) if data else 1.0,
                      "median_ms": round(median, 3)}
    return rows


def language_model_footer(rows: dict[str, dict]) -> str:
    first = rows["savedmodel"]
    return (f"(bits per character of {first['characters']} characters; {first['prompts']} "
            f"prompts, one at a time, {first['new_tokens']} greedy tokens each; exact_match: "
            "the share of prompts whose ids equal the SavedModel's)")
