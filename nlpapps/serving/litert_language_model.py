"""Running a language model's LiteRT file: generation and scoring, without TensorFlow.

    nlpapps export --model saved_models/shakespeare --format tflite --quantize dynamic
    LiteRTLanguageModel("saved_models/shakespeare.dynamic.tflite").generate("ROMEO:\\n", 50)

The files' signatures are those of `nlpapps.serving.language_model_module.LanguageModelModule`
at batch 1: one call, `serving_default` (= `generate_one`) and `score`; step-wise, `prefill`,
`step` (= `step_one`) and `detokenize`. Conversion is `nlpapps.export.tflite.convert` (with
`nlpapps.export.language_model_conversion`); `nlpapps.export.litert_report` compares a file
with its SavedModel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from nlpapps.errors import ModelError
from nlpapps.serving.litert_interpreter import (CONTEXT_METADATA, TOKENIZER_METADATA,
                                                open_interpreter, read_metadata)
from nlpapps.text_bytes import to_utf8
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

ONE_CALL = ("score", "serving_default")
STEPWISE = ("detokenize", "prefill", "step")
NOT_TEXT = (PAD_ID, UNK_ID, BOS_ID, EOS_ID)  # ids a generator never draws
SCORE_WINDOW = 256  # tokens per `score` call


def sampling_inputs(max_new_tokens: int, temperature: float = 0.0, top_k: int = 0,
                    top_p: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """The scalar inputs of `generate_one` / a file's `serving_default`."""
    return {"max_new_tokens": np.array(max_new_tokens, np.int32),
            "temperature": np.array(temperature, np.float32),
            "top_k": np.array(top_k, np.int32), "top_p": np.array(top_p, np.float32),
            "seed": np.array(seed, np.int32)}


def score_windows(ids: Sequence[int], window: int = SCORE_WINDOW) -> Iterator[np.ndarray]:
    """`(1, n)` token windows of bos + `ids` for `score`, each starting with the last token
    of the one before: each scores `window` tokens (the last fewer), as `lm evaluate` reads a
    text in windows of as many, so that an attention block sees the same positions."""
    tokens = [BOS_ID, *ids]
    for start in range(0, len(tokens) - 1, window):
        yield np.array([tokens[start:start + window + 1]], np.int32)


def total_log_prob(score: Callable[..., dict], ids: Sequence[int], state_width: int) -> float:
    """Sum of log p(ids[i] | bos, ids[:i]) by a `score` function, window by window."""
    states = np.zeros([1, state_width], np.float32)
    total = 0.0
    for tokens in score_windows(ids):
        outputs = score(tokens=tokens, states=states)
        total += float(np.sum(outputs["log_probs"], dtype=np.float64))
        states = outputs["states"]
    return total


def greedy_steps(prefill: Callable[..., dict], step: Callable[..., dict], prompt: bytes,
                 max_new_tokens: int, on_step: Callable[[dict], None] | None = None
                 ) -> list[int]:
    """Greedy generation driven from Python over the step-wise signatures (LiteRT signature
    runners, or anything taking and returning numpy dicts the same way); `on_step` sees each
    step's inputs."""
    outputs = prefill(inputs=np.array([prompt], dtype=object))
    inputs = {"token": outputs["token"], "states": outputs["states"]}
    ids = []
    for _ in range(max_new_tokens):
        if on_step is not None:
            on_step(dict(inputs))
        outputs = step(**inputs)
        logits = outputs["logits"][0].copy()
        logits[list(NOT_TEXT)] = -np.inf
        token = int(np.argmax(logits))  # first of equals, as tf.argmax
        ids.append(token)
        inputs = {"token": np.array([token], np.int32), "states": outputs["states"]}
    return ids


class LiteRTLanguageModel:
    """A language-model `.tflite` file (one call or step-wise) run with LiteRT and the TF
    Text ops.

    Example:
    ```python
    model = LiteRTLanguageModel("saved_models/shakespeare.float32.tflite")
    model.generate("ROMEO:\\n", 50, temperature=0.8, top_p=0.95)
    model.log_prob(ids)  # ids as `line_start_ids` gives them
    ```
    """

    def __init__(self, path: Path, num_threads: int | None = None):
        self.path, self.num_threads = Path(path), num_threads
        # Generation keeps every tensor (`open_interpreter`'s `preserve_tensors`): the
        # loop's per-token IF stops allocating its subgraph at every token, 1.23-1.30x faster.
        self.interpreter = open_interpreter(self.path, num_threads, preserve_tensors=True)
        signatures = self.interpreter.get_signature_list()
        runners = {name: self.interpreter.get_signature_runner(name) for name in signatures}
        self.stepwise = tuple(sorted(signatures)) == STEPWISE
        if not self.stepwise and tuple(sorted(signatures)) != ONE_CALL:
            raise ModelError(f"{self.path} is not an nlpapps language-model TFLite file "
                             f"(its signatures: {', '.join(signatures) or 'none'})")
        self._runners = runners
        detail = runners["step" if self.stepwise else "score"].get_input_details()["states"]
        self.state_width = int(detail["shape"][1])
        self.tokenizer, self.context_tokens = self._read_tokenizer()

    def _read_tokenizer(self):
        """`(Tokenizer, context_tokens)` from the file's metadata, `(None, None)` for a file
        written before it held them."""
        from nlpapps.tokenizer import Tokenizer

        try:
            metadata = read_metadata(self.path.read_bytes())
        except Exception:  # noqa: BLE001  (a file LiteRT runs but flatbuffers cannot read)
            return None, None
        if TOKENIZER_METADATA not in metadata or CONTEXT_METADATA not in metadata:
            return None, None
        try:
            return (Tokenizer(metadata[TOKENIZER_METADATA]),
                    int(metadata[CONTEXT_METADATA].decode("ascii")))
        except Exception as error:  # noqa: BLE001  (protobuf's and int's errors)
            raise ModelError(f"{self.path} holds a corrupt tokenizer ({error}); export it "
                             "again") from None

    def warnings(self, prompt: str) -> list[str]:
        """What a user should know about how the file reads `prompt` (the same notes as a
        folder's `TextGenerator.warnings`); none for a file without its tokenizer."""
        from nlpapps.serving.prompt_warnings import prompt_warnings

        if self.tokenizer is None:
            return []
        return prompt_warnings(self.tokenizer, self.context_tokens, prompt)

    def generate(self, prompt: str | bytes, max_new_tokens: int, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> tuple[str, list[int]]:
        """`(text, ids)`: the drawn ids and their text, after the prompt as read for a one-call
        file, alone for a step-wise file (which this runner drives greedily only)."""
        data = to_utf8(prompt)
        if self.stepwise:
            if temperature > 0:
                raise ValueError("a step-wise file samples in the app; this runner is greedy")
            ids = greedy_steps(self._runners["prefill"], self._runners["step"], data,
                               max_new_tokens)
            text = self._runners["detokenize"](ids=np.array([ids], np.int32))["outputs"][0]
            return text.decode("utf-8", "replace"), ids
        outputs = self._one_call(data, max_new_tokens, temperature, top_k, top_p, seed)
        ids = [i for i in outputs["ids"][0].tolist() if i != PAD_ID]  # [0] stands for none
        return outputs["text"][0].decode("utf-8", "replace"), ids

    def _one_call(self, prompt: bytes, max_new_tokens: int, temperature: float = 0.0,
                  top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
        """The outputs of a one-call file's generation signature."""
        return self._runners["serving_default"](
            inputs=np.array([prompt], dtype=object),
            **sampling_inputs(max_new_tokens, temperature, top_k, top_p, seed))

    def continuation(self, prompt: str | bytes, max_new_tokens: int, temperature: float = 0.0,
                     top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> str:
        """The text drawn after `prompt`, alone: `generate`'s text past the prompt as the
        file read it (a one-call file says how it read it; one exported before it did is
        asked again with no token to draw)."""
        if self.stepwise:
            return self.generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)[0]
        data = to_utf8(prompt)
        outputs = self._one_call(data, max_new_tokens, temperature, top_k, top_p, seed)
        read = outputs["prompt"] if "prompt" in outputs else self._one_call(data, 0)["text"]
        return outputs["text"][0][len(read[0]):].decode("utf-8", "replace")

    def log_prob(self, ids: Sequence[int]) -> float:
        """log p(ids) read after bos, in natural log units."""
        if self.stepwise:
            states = np.zeros([1, self.state_width], np.float32)
            token, total = np.array([BOS_ID], np.int32), 0.0
            for next_id in ids:
                outputs = self._runners["step"](token=token, states=states)
                logits = outputs["logits"][0].astype(np.float64)
                top = logits.max()
                total += logits[next_id] - top - math.log(np.exp(logits - top).sum())
                token, states = np.array([next_id], np.int32), outputs["states"]
            return total
        return total_log_prob(self._score, ids, self.state_width)

    @functools.cached_property
    def _score(self) -> Callable[..., dict]:
        """A one-call file's `score` signature, in an interpreter of its own whose tensors
        share memory: kept tensors would cost scoring 3,000 tokens 87 MB more, and make it no
        faster."""
        return open_interpreter(self.path, self.num_threads).get_signature_runner("score")
