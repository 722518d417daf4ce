"""A tiny language model on the committed Shakespeare excerpts, shared by the tests of the
language-model apps: the texts, its config, training it, `lm evaluate` on the test excerpt,
and a NumPy log-softmax."""

from pathlib import Path

import numpy as np

from nlpapps.apps import language_model as lm

SHAKESPEARE = Path(__file__).parent.parent / "fixtures" / "shakespeare"
TINY = dict(vocab_size=200, embedding_dim=16, units=32, layers=2, dropout=0.0, seq_len=32,
            batch_size=16, learning_rate=1e-2, epochs=3, steps_per_epoch=20, patience=0)


def text(split: str) -> str:
    return (SHAKESPEARE / f"{split}.txt").read_text(encoding="utf-8")


def tiny_config(**changes) -> lm.LanguageModelConfig:
    return lm.LanguageModelConfig(**{**TINY, **changes})


def train_tiny(out_dir: Path, **changes):
    """`(model, tokenizer)` of a tiny model trained on the train excerpt in `out_dir`."""
    return lm.train(tiny_config(**changes), text("train"), text("dev"), out_dir)


def evaluate_test_text(model_dir: Path, *flags: str) -> int:
    """`nlpapps -v lm evaluate` of the test excerpt with the model in `model_dir` and `flags`;
    its exit code (the report is on stdout)."""
    from nlpapps.cli import main

    return main(["-v", "lm", "evaluate", str(SHAKESPEARE / "test.txt"), "--model",
                 str(model_dir), *flags])


def log_softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
