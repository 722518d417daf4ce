"""Running a translator's LiteRT file (written by `nlpapps.export.tflite`): one call, or
step-wise with the decoding loop driven from Python. Imports no TensorFlow.

    LiteRTTranslator("saved_models/translator-en-de.dynamic.tflite").translate("Hello.")
    LiteRTTranslator("saved_models/translator-en-de.dynamic.tflite").translate("Hello.", beam=True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nlpapps.decoding_limits import DEFAULT_ALPHA, MIN_DECODING_LENGTH
from nlpapps.errors import ModelError
from nlpapps.serving.litert_interpreter import open_interpreter
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
