"""What converting a language model's SavedModel to LiteRT needs beside
`nlpapps.export.tflite` (the registry's `tflite` of the language model): which SavedModel
signature becomes which of the file's, which models convert, the metadata the runner reads,
and the inputs that int8 calibration runs the signatures on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nlpapps.apps.model_folder_reader import read_kind
from nlpapps.export.tflite import numpy_function
from nlpapps.serving.litert_interpreter import CONTEXT_METADATA, TOKENIZER_METADATA
from nlpapps.serving.litert_language_model import greedy_steps, sampling_inputs

CALIBRATION_TOKENS = 64  # greedy tokens per calibration prompt

SIGNATURES = {  # (SavedModel signature, the file's signature) of a one-call / step-wise file
    False: (("generate_one", "serving_default"), ("score", "score")),
    True: (("prefill_one", "prefill"), ("step_one", "step"), ("detokenize", "detokenize")),
}


def file_metadata(model_dir: Path) -> dict[str, bytes]:
    """What the runner needs beside the graph to warn about a prompt: the tokenizer and the
    context length the model was trained on."""
    _, config = read_kind(Path(model_dir))
    return {TOKENIZER_METADATA: (Path(model_dir) / "tokenizer.model").read_bytes(),
            CONTEXT_METADATA: str(int(config["seq_len"])).encode()}


def representative_samples(loaded, texts: list[bytes], stepwise: bool
                           ) -> Callable[[], Iterator[tuple[str, dict]]]:
    """int8 calibration inputs for every signature of a file, as the float SavedModel meets
    them: the texts as prompts and scored windows, and the steps of their greedy
    continuations."""
    prefill = numpy_function(loaded.signatures["prefill_one"])
    step = numpy_function(loaded.signatures["step_one"])

    def samples():
        for text in texts:
            if stepwise:
                yield "prefill", {"inputs": np.array([text], dtype=object)}
                steps: list[dict] = []
                ids = greedy_steps(prefill, step, text, CALIBRATION_TOKENS, steps.append)
                for inputs in steps:
                    yield "step", inputs
                yield "detokenize", {"ids": np.array([ids], np.int32)}
            else:
                yield "serving_default", {"inputs": np.array([text], dtype=object),
                                          **sampling_inputs(CALIBRATION_TOKENS)}
                start = prefill(inputs=np.array([text], dtype=object))
                ids = greedy_steps(prefill, step, text, CALIBRATION_TOKENS)
                yield "score", {"tokens": np.array([[int(start["token"][0]), *ids]], np.int32),
                                "states": start["states"]}
    return samples
