"""Opening an exported file in LiteRT with the TF Text tokenizer ops, and the small helpers
the runners share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nlpapps.apps.saved_model import ModelError


def open_interpreter(path: Path, num_threads: int | None = None):
    """A LiteRT interpreter of the file at `path` with the TF Text tokenizer ops registered;
    ModelError for a missing or unusable file."""
    import tensorflow_text as tf_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    if not Path(path).is_file():
        raise ModelError(f"TFLite file {path} does not exist")
    try:
        return InterpreterWithCustomOps(
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=Path(path).read_bytes(), num_threads=num_threads)
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{path} is not a usable TFLite file: {first_line(error)}") from None


def numpy_function(signature) -> Callable[..., dict[str, np.ndarray]]:
    """A SavedModel signature taking and returning numpy arrays, as a LiteRT runner does."""
    import tensorflow as tf

    def call(**inputs):
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}
    return call


def utf8(text: str | bytes) -> bytes:
    """The bytes a file reads: text as UTF-8 (lone surrogates kept), bytes as they are."""
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
