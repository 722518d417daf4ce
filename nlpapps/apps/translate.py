"""Running an exported translator: translate lines, evaluate BLEU/chrF, plot attention."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlpapps.apps.model_folder_reader import expect_kind, load_saved_model
from nlpapps.decoding_limits import DEFAULT_ALPHA, MAX_SOURCE_TOKENS
from nlpapps.text_bytes import to_utf8
from nlpapps.tokenizer import EOS_ID, Tokenizer

KIND = "translator"


@dataclass
class Translation:
    outputs: list[str]  # best first
    scores: list[float]  # normalized log-probabilities, same order
    source_ids: list[int]
    target_ids: list[list[int]]
    attention: np.ndarray  # (beam, steps, src_len) of the best-first hypotheses


class SavedTranslator:
    """A translator folder (SavedModel + config.json + tokenizer.model), ready to translate."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        expect_kind(self.folder, KIND)  # the kind is named before the tokenizer is read
        self.tokenizer = Tokenizer.load(self.folder / "tokenizer.model")
        self.module = load_saved_model(self.folder, KIND)

    def translate(self, lines: Sequence[bytes | str], beam_size: int = 1,
                  alpha: float = DEFAULT_ALPHA) -> list[Translation]:
        """Translations of a batch of lines, each with `beam_size` hypotheses."""
        import tensorflow as tf

        data = [to_utf8(line) for line in lines]
        result = self.module.translate(inputs=tf.constant(data, tf.string),
                                       beam_size=tf.constant(beam_size, tf.int32),
                                       alpha=tf.constant(alpha, tf.float32))
        outputs = result["outputs"].numpy()
        translations = []
        for row in range(len(data)):
            source = [int(i) for i in result["source_ids"][row].numpy() if i]
            translations.append(Translation(
                outputs=[text.decode("utf-8", "replace") for text in outputs[row]],
                scores=[float(s) for s in result["scores"][row].numpy()],
                source_ids=source,
                target_ids=[_until_eos(ids) for ids in result["target_ids"][row].numpy()],
                attention=result["attention"][row].numpy()[:, :, :len(source)]))
        return translations

    def too_long(self, line: bytes | str) -> bool:
        """Whether the line is cut to the model's longest source before translating."""
        return len(self.tokenizer.encode(line)) >= MAX_SOURCE_TOKENS


def warn_truncated(line_number: int) -> None:
    print(f"warning: line {line_number} is longer than {MAX_SOURCE_TOKENS} tokens; only its "
          "beginning is translated", file=sys.stderr)


def _until_eos(ids: np.ndarray) -> list[int]:
    ids = ids.tolist()
    return ids[:ids.index(EOS_ID) + 1] if EOS_ID in ids else [i for i in ids if i]


def batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def translate_stream(translator: SavedTranslator, lines: Iterable[bytes], out, beam_size: int,
                     nbest: int, alpha: float, batch_size: int, with_scores: bool) -> int:
    """Writes one line per input line, in order: the translation, or with `nbest` > 1 the
    n best separated by tabs (each followed by its score with `with_scores`)."""
    count = 0
    for batch in batches(lines, batch_size):
        for line in batch:
            count += 1
            if translator.too_long(line):
                warn_truncated(count)
        for translation in translator.translate(batch, max(beam_size, nbest), alpha):
            fields = []
            for text, score in list(zip(translation.outputs, translation.scores))[:nbest]:
                fields += [text, f"{score:.4f}"] if with_scores else [text]
            out.write("\t".join(fields) + "\n")
        out.flush()
    return count


def evaluate(translator: SavedTranslator, pairs: Sequence[tuple[str, str]], beam_sizes=(1, 5),
             alpha: float = DEFAULT_ALPHA, batch_size: int = 64,
             outputs: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """BLEU and chrF (sacrebleu defaults) of greedy and beam translations of `pairs`, by
    decoding name ("greedy", "beam5"); `outputs`, if given, receives the translations under
    the same names."""
    import sacrebleu

    references = [[target for _, target in pairs]]
    report = {}
    for beam in beam_sizes:
        name = "greedy" if beam == 1 else f"beam{beam}"
        hypotheses: list[str] = []
        for start in range(0, len(pairs), batch_size):
            chunk = [source for source, _ in pairs[start:start + batch_size]]
            hypotheses += [t.outputs[0] for t in translator.translate(chunk, beam, alpha)]
        if outputs is not None:
            outputs[name] = hypotheses
        bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
        report[name] = {
            "bleu": round(bleu.corpus_score(hypotheses, references).score, 2),
            "chrf": round(chrf.corpus_score(hypotheses, references).score, 2),
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
            "sentences": len(pairs),
        }
    return report


def plot_attention(translator: SavedTranslator, translation: Translation, path: Path) -> None:
    """Draws the best hypothesis's attention (target rows, source columns) to an image file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pieces = translator.tokenizer.id_to_piece
    source = [pieces(i) for i in translation.source_ids]
    target = [pieces(i) for i in translation.target_ids[0]]
    weights = translation.attention[0][:len(target), :len(source)]
    figure, axes = plt.subplots(figsize=(1 + 0.45 * len(source), 1 + 0.4 * len(target)))
    axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=90)
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
