"""Opening an exported file in LiteRT with the TF Text tokenizer ops, without importing
TensorFlow, and reading the metadata a file carries beside its graph (written by
`nlpapps.export.tflite`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nlpapps.errors import ModelError


# Threads LiteRT's kernels use by default. On a 2-core machine the attentive language model
# generates 1.23x faster with 2 than with LiteRT's default, which runs as one (1,457 against
# 1,187 tokens/s, medians of 9 alternate calls of 500 tokens; the same tokens); the translator
# runs as fast with either. More threads were not measured.
DEFAULT_THREADS = 2


def open_interpreter(path: Path, num_threads: int | None = None,
                     preserve_tensors: bool = False):
    """A LiteRT interpreter of the file at `path` with the TF Text tokenizer ops registered,
    running its kernels on `num_threads` threads (by default `DEFAULT_THREADS`, or fewer on a
    machine with fewer cores); ModelError for a missing or unusable file.

    `preserve_tensors` opens it with LiteRT's `experimental_preserve_all_tensors`. Every tensor
    then keeps memory of its own, and the `WHILE` and `IF` kernels keep their subgraphs'
    memory from one run to the next. Without it they release that memory after each run, and
    the next run allocates and prepares the subgraph again. A generation loop with an `IF`
    per token pays that at every token: the attentive language model's file draws 500 tokens
    at temperature 0.8 1.23-1.30x faster with it, the same tokens (`python
    scripts/benchmark.py kept-tensors`). The price is memory: a process's peak grows by 32 MB
    for those 500 tokens, and by 87 MB for the `score` signature over 3,000 tokens.
    """
    import warnings

    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    if num_threads is None:
        num_threads = min(DEFAULT_THREADS, os.cpu_count() or 1)

    if not Path(path).is_file():
        raise ModelError(f"TFLite file {path} does not exist")
    try:
        with warnings.catch_warnings():  # LiteRT's note that the option is for debugging
            warnings.simplefilter("ignore", UserWarning)
            return InterpreterWithCustomOps(custom_op_registerers=tokenizer_op_registerers(),
                                            model_content=Path(path).read_bytes(),
                                            num_threads=num_threads,
                                            experimental_preserve_all_tensors=preserve_tensors)
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{path} is not a usable TFLite file: {first_line(error)}") from None


def tokenizer_op_registerers() -> list:
    """tensorflow_text's LiteRT op registerers (`tflite_registrar.SELECT_TFTEXT_OPS`), read
    without importing TensorFlow.

    `import tensorflow_text` imports TensorFlow, seconds that running a file does not need:
    the registrar is a native module of its own that needs only TensorFlow's framework library,
    so that library is loaded and the module read from its file. Once tensorflow_text is
    imported, its own list is used.
    """
    import ctypes
    import importlib.util
    import sys

    name = "tensorflow_text.core.pybinds.tflite_registrar"
    registrar = sys.modules.get(name)
    if registrar is None and "tensorflow_text" not in sys.modules:
        try:
            tf_dir = importlib.util.find_spec("tensorflow").submodule_search_locations[0]
            # loaded local to itself: loaded global, a later `import tensorflow` crashes
            ctypes.CDLL(str(Path(tf_dir) / "libtensorflow_framework.so.2"))
            text_dir = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
            spec = importlib.util.spec_from_file_location(
                name, Path(text_dir) / "core" / "pybinds" / "tflite_registrar.so")
            registrar = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(registrar)
            sys.modules[name] = registrar
        except (OSError, ImportError, AttributeError, TypeError):  # another layout: import it
            registrar = None
    if registrar is None:
        import tensorflow_text

        return list(tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)
    return [getattr(registrar, entry) for entry in dir(registrar) if entry.startswith("Add")]


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name if it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# Metadata entries of a language model's file: its tokenizer.model and the most prompt tokens
# it reads, so that a runner warns of unknown characters and cut prompts as with the folder.
TOKENIZER_METADATA, CONTEXT_METADATA = "nlpapps.tokenizer", "nlpapps.context_tokens"


def read_metadata(model_bytes: bytes) -> dict[str, bytes]:
    """{name: bytes} of a file's metadata entries."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_bytes, 0)
    entries = {}
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        entries[entry.Name().decode("utf-8", "replace")] = \
            data.tobytes() if isinstance(data, np.ndarray) else b""
    return entries
