"""What converting a translator's SavedModel to LiteRT needs beside `nlpapps.export.tflite`
(the registry's `tflite` of the translator): which SavedModel signature becomes which of the
file's, and the inputs that int8 calibration runs them on."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import numpy as np

from nlpapps.decoding_limits import DEFAULT_ALPHA
from nlpapps.export.tflite import numpy_function
from nlpapps.serving.litert_translator import STEP_SIGNATURES, greedy_steps
from nlpapps.tokenizer import EOS_ID

SIGNATURES = {  # (SavedModel signature, the file's signature) of a one-call / step-wise file
    False: (("translate_one", "serving_default"), ("translate_beam_one", "beam")),
    True: tuple((name, name) for name in STEP_SIGNATURES),
}


def representative_samples(loaded, texts: list[bytes], stepwise: bool
                           ) -> Callable[[], Iterator[tuple[str, dict]]]:
    """The inputs that int8 calibration runs the file's signatures on."""
    return step_samples(loaded, texts) if stepwise else one_call_samples(texts)


def one_call_samples(texts: list[bytes]) -> Callable[[], Iterator[tuple[str, dict]]]:
    """Both signatures' inputs: each text greedy and in beam search."""
    def samples():
        for text in texts:
            inputs = np.array([text], dtype=object)
            yield "serving_default", {"inputs": inputs}
            yield "beam", {"inputs": inputs, "alpha": np.array(DEFAULT_ALPHA, np.float32)}
    return samples


def step_samples(loaded, texts: list[bytes]) -> Callable[[], Iterator[tuple[str, dict]]]:
    """Every signature's inputs as the float SavedModel's greedy loop meets them.

    The calibrator sizes a signature's inputs once, from its first sample, so every
    `decode_step` sample must have the same source length: those of the length that gives
    the most steps are kept. (Padding to one length would not do: the masked attention
    scores, -1e9, would set the range of a tensor that real runs never fill with them.)
    """
    encode = numpy_function(loaded.signatures["encode"])
    decode_step = numpy_function(loaded.signatures["decode_step"])
    steps_by_length: dict[int, list[dict]] = collections.defaultdict(list)
    last_ids = [EOS_ID]
    for text in texts:
        steps: list[dict] = []
        encoded = encode(inputs=np.array([text], dtype=object))
        last_ids = greedy_steps(encoded, decode_step, on_step=steps.append) or last_ids
        for inputs in steps:
            steps_by_length[inputs["mask"].shape[1]].append(inputs)
    steps = max(steps_by_length.values(), key=len, default=[])

    def samples():
        for text in texts:
            yield "encode", {"inputs": np.array([text], dtype=object)}
        for inputs in steps:
            yield "decode_step", inputs
        yield "detokenize", {"ids": np.array([last_ids], np.int32)}
    return samples
