"""Running a translator's LiteRT file (`nlpapps.export.tflite`): one call, or step-wise with
the decoding loop driven from Python.

    LiteRTTranslator("saved_models/translator-en-de.dynamic.tflite").translate("Hello.")
    LiteRTTranslator("saved_models/translator-en-de.dynamic.tflite").translate("Hello.", beam=True)
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nlpapps.apps.saved_model import ModelError
from nlpapps.apps.translate import DEFAULT_ALPHA
from nlpapps.decoding_limits import MIN_DECODING_LENGTH
from nlpapps.export.litert import numpy_function, open_interpreter
from nlpapps.text_bytes import to_utf8
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID

STEP_SIGNATURES = ("encode", "decode_step", "detokenize")


def greedy_steps(encoded: dict[str, np.ndarray], decode_step: Callable[..., dict],
                 on_step: Callable[[dict], None] | None = None) -> list[int] | None:
    """Greedy decoding driven from Python over the step-wise signatures (LiteRT signature
    runners, or anything taking and returning numpy dicts the same way), from the outputs of
    `encode`.

    Returns the chosen ids (eos included), or None for an input with no token, which
    translates to "". As in the file's own loops, eos is not chosen before
    MIN_DECODING_LENGTH tokens. `on_step` sees each step's inputs.
    """
    source = encoded["source_ids"][0]  # (src_len,)
    if np.all((source == PAD_ID) | (source == EOS_ID)):
        return None
    inputs = {"token": np.array([BOS_ID], np.int32), "state": encoded["state"],
              "values": encoded["values"], "keys": encoded["keys"], "mask": encoded["mask"]}
    ids = []
    for step in range(2 * len(source) + 10):  # as TranslatorModule's loop
        if on_step is not None:
            on_step(dict(inputs))
        outputs = decode_step(**inputs)
        logits = outputs["logits"][0].copy()
        if step < MIN_DECODING_LENGTH:
            logits[EOS_ID] = -np.inf
        token = int(np.argmax(logits))  # first of equals, as tf.argmax
        ids.append(token)
        if token == EOS_ID:
            break
        inputs.update(token=np.array([token], np.int32), state=outputs["state"])
    return ids


class LiteRTTranslator:
    """A translator `.tflite` file (one call or step-wise) run with LiteRT and the TF Text ops.

    Example:
    ```python
    translator = LiteRTTranslator("saved_models/translator-en-de.dynamic.tflite")
    translator.translate("Where is the station?")  # greedy, as the SavedModel's
    translator.translate("Where is the station?", beam=True)  # beam search (one-call files)
    ```
    """

    def __init__(self, path: Path, num_threads: int | None = None):
        self.path = Path(path)
        self.interpreter = open_interpreter(self.path, num_threads)
        signatures = self.interpreter.get_signature_list()
        if set(STEP_SIGNATURES) <= set(signatures):
            self.stepwise = True
            self._encode, self._step, self._detokenize = (
                self.interpreter.get_signature_runner(name) for name in STEP_SIGNATURES)
        elif "serving_default" in signatures and set(signatures) <= {"serving_default", "beam"}:
            self.stepwise = False
            self._one = self.interpreter.get_signature_runner("serving_default")
            self._beam = self.interpreter.get_signature_runner("beam") \
                if "beam" in signatures else None
        else:
            raise ModelError(f"{self.path} is not an nlpapps translator TFLite file "
                             f"(its signatures: {', '.join(signatures) or 'none'})")
        self.has_beam = not self.stepwise and self._beam is not None

    def translate(self, text: str | bytes, beam: bool = False,
                  alpha: float = DEFAULT_ALPHA) -> str:
        """The translation of one sentence (invalid UTF-8 reads as unknown): greedy, or with
        `beam` the best of the file's beam search, with length penalty `alpha`."""
        return self.run(text, beam, alpha)[0]

    def run(self, text: str | bytes, beam: bool = False,
            alpha: float = DEFAULT_ALPHA) -> tuple[str, bool]:
        """`(translation, truncated)`: `translate`'s text, and whether the sentence was longer
        than the file reads (`MAX_SOURCE_TOKENS`), so that only its beginning is translated
        (always False for a file written before it said so)."""
        inputs = np.array([to_utf8(text)], dtype=object)
        if beam:
            if not self.has_beam:
                raise ModelError(f"{self.path} has no beam signature (a step-wise file's loop "
                                 "runs in the app; export a one-call file)")
            outputs = self._beam(inputs=inputs, alpha=np.array(alpha, np.float32))
        elif not self.stepwise:
            outputs = self._one(inputs=inputs)
        else:
            encoded = self._encode(inputs=inputs)
            ids = greedy_steps(encoded, self._step)
            outputs = {"outputs": [b""] if ids is None else
                       self._detokenize(ids=np.array([ids], np.int32))["outputs"],
                       "truncated": encoded.get("truncated", [False])}
        return (outputs["outputs"][0].decode("utf-8", "replace"),
                bool(outputs.get("truncated", [False])[0]))


# -- int8 calibration (`nlpapps.export.tflite`) ---------------------------------------------

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
