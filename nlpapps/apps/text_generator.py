"""The text-generator app: continue prompts with a trained language model, all at once or
streamed as the tokens come.

`TextGenerator` drives a `LanguageModelModule` (`nlpapps.serving.language_model_module`), in
memory or loaded from a SavedModel folder. Both ways run the same two compiled functions:
`prefill` reads the prompts, `extend` draws tokens in one `tf.while_loop`. `generate` calls
`extend` once for all the tokens; `stream` calls it once per chunk, going on from the states,
last tokens and step count of the chunk before, so that with the same seed it yields exactly
the text `generate` returns. Many prompts go through in batches of at most `BATCH_ROWS` rows
(prompts times beams), so that memory stays bounded however many prompts a file holds (the
attentive model carries 3 MB of states per row).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nlpapps.apps.model_folder_reader import ModelError, expect_kind, load_saved_model
from nlpapps.serving.generation_config import GenerationConfig
from nlpapps.serving.prompt_warnings import prompt_warnings
from nlpapps.text_bytes import to_utf8
from nlpapps.tokenizer import Tokenizer

if TYPE_CHECKING:
    import tensorflow as tf

STREAM_CHUNK_TOKENS = 8  # tokens per compiled call when streaming
BATCH_ROWS = 64  # rows (prompts times beams) of one compiled call


def prompt_batches(count: int, beam: int) -> list[range]:
    """The ranges of prompt indices run together: `BATCH_ROWS // beam` prompts (at least
    one) at a time."""
    size = max(1, BATCH_ROWS // max(1, beam))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


class TextGenerator:
    """Continues prompts with a `LanguageModelModule` or a SavedModel of one.

    Args:
        module: a `LanguageModelModule`, or the SavedModel loaded from one.
        tokenizer: the model's `Tokenizer`.
        context_tokens: the most prompt tokens the module reads.

    Example:
    ```python
    generator = TextGenerator.load("saved_models/shakespeare")
    [text] = generator.generate(["ROMEO:\\n"], GenerationConfig(temperature=0.7, seed=1))
    for pieces in generator.stream(["ROMEO:\\n"], GenerationConfig(seed=1)):
        print(pieces[0], end="", flush=True)
    ```
    """

    def __init__(self, module, tokenizer: Tokenizer, context_tokens: int):
        self.module, self.tokenizer, self.context_tokens = module, tokenizer, context_tokens

    @classmethod
    def load(cls, folder: Path) -> TextGenerator:
        """A SavedModel folder of `nlpapps lm train`; ModelError if it is not one."""
        from nlpapps.apps.language_model import KIND

        folder = Path(folder)
        config = expect_kind(folder, KIND)  # the kind is named before the tokenizer is read
        tokenizer = Tokenizer.load(folder / "tokenizer.model")
        module = load_saved_model(folder, KIND)
        try:
            return cls(module, tokenizer, int(config["seq_len"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{folder} has no usable tokenizer.model or config.json "
                             f"({error}); re-export the model") from None

    def warnings(self, prompt: str) -> list[str]:
        """What a user should know about how the model reads `prompt`."""
        return prompt_warnings(self.tokenizer, self.context_tokens, prompt)

    def generate(self, prompts: Sequence[str],
                 options: GenerationConfig = GenerationConfig()  # noqa: B008 (frozen)
                 ) -> list[str]:
        """The continuation of each prompt (without the prompt), cut before a stop string."""
        import tensorflow as tf  # here: the options and prompt notes above need no TensorFlow

        if not prompts:
            return []
        batches = prompt_batches(len(prompts), options.beam)
        if len(batches) > 1:
            return [text for batch in batches
                    for text in self.generate([prompts[i] for i in batch], options)]
        state, rows = self._prefill(prompts, options)
        if options.beam > 1:
            ids = self.module.beam_search(
                inputs=_strings(prompts), max_new_tokens=tf.constant(options.max_new_tokens),
                beam_size=tf.constant(options.beam))["ids"]
        else:
            ids = self._extend(state, options, 0, options.max_new_tokens)["ids"]
        return [row.final(row_ids) for row, row_ids in zip(rows, ids.numpy().tolist())]

    def stream(self, prompts: Sequence[str],
               options: GenerationConfig = GenerationConfig(),  # noqa: B008 (frozen)
               chunk_tokens: int = STREAM_CHUNK_TOKENS) -> Iterator[list[str]]:
        """Yields, as the tokens come, one new piece of text per prompt (often ""); the pieces
        of a prompt join into its `generate` text. Beam search cannot stream: with
        `options.beam > 1` the whole texts come in one piece."""
        if not prompts:
            return
        batches = prompt_batches(len(prompts), options.beam)
        if len(batches) > 1:  # the first batch streamed, each later one when done
            first, count = batches[0], len(prompts)
            for pieces in self.stream([prompts[i] for i in first], options, chunk_tokens):
                yield pieces + [""] * (count - len(first))
            for batch in batches[1:]:
                texts = self.generate([prompts[i] for i in batch], options)
                yield [""] * batch.start + texts + [""] * (count - batch.stop)
            return
        if options.beam > 1:
            yield self.generate(prompts, options)
            return
        state, rows = self._prefill(prompts, options)
        drawn = 0
        while drawn < options.max_new_tokens and not all(row.done for row in rows):
            count = min(chunk_tokens, options.max_new_tokens - drawn)
            state = self._extend(state, options, drawn, count)
            drawn += count
            yield [row.add(ids) for row, ids in zip(rows, state["ids"].numpy().tolist())]
        yield [row.add([], last=True) for row in rows]

    def _prefill(self, prompts: Sequence[str], options: GenerationConfig
                 ) -> tuple[dict, list[_Continuation]]:
        """The module's `prefill` of the prompts, and one `_Continuation` per prompt over the
        ids the module read of it."""
        state = dict(self.module.prefill(inputs=_strings(prompts)))
        contexts = state["context_ids"].numpy().tolist()
        lengths = state["context_lengths"].numpy().tolist()
        return state, [_Continuation(self.tokenizer, ids[:length], options.stop)
                       for ids, length in zip(contexts, lengths)]

    def _extend(self, state: dict, options: GenerationConfig, start_step: int, count: int
                ) -> dict:
        """`count` more tokens after `state` (from `prefill` or the previous `_extend`)."""
        import tensorflow as tf

        tokens = state["tokens"] if "tokens" in state else state["ids"][:, -1]
        result = self.module.extend(
            tokens=tokens, states=state["states"], max_new_tokens=tf.constant(count),
            start_step=tf.constant(start_step), temperature=tf.constant(options.temperature,
                                                                       tf.float32),
            top_k=tf.constant(options.top_k), top_p=tf.constant(options.top_p, tf.float32),
            seed=tf.constant(options.seed))
        return dict(result)


class _Continuation:
    """One prompt's generated text: the decoded ids after its context, cut before the first
    stop string. `add` returns only text that no stop string can still take back."""

    def __init__(self, tokenizer: Tokenizer, context: list[int], stop: tuple[str, ...]):
        self.tokenizer, self.context, self.stop = tokenizer, context, stop
        self.prefix = len(tokenizer.decode(context))
        self.ids: list[int] = []
        self.sent = 0  # characters already returned
        self.done = False
        self.holdback = max((len(s) for s in stop), default=1) - 1

    def text(self) -> tuple[str, bool]:
        """The text so far, cut before the first stop string, and whether one was found."""
        text = self.tokenizer.decode(self.context + self.ids)[self.prefix:]
        found = [index for index in (text.find(s) for s in self.stop) if index >= 0]
        return (text[:min(found)], True) if found else (text, False)

    def add(self, ids: list[int], last: bool = False) -> str:
        if self.done:
            return ""
        self.ids += ids
        text, stopped = self.text()
        self.done = stopped or last
        end = len(text) if self.done else max(self.sent, len(text) - self.holdback)
        piece, self.sent = text[self.sent:end], end
        return piece

    def final(self, ids: list[int]) -> str:
        self.ids = list(ids)
        return self.text()[0]


def _strings(prompts: Sequence[str]) -> tf.Tensor:
    import tensorflow as tf

    return tf.constant([to_utf8(prompt) for prompt in prompts], tf.string)


SEPARATOR = "\n---\n"  # printed between the texts of several prompts


def write_texts(generator: TextGenerator, prompts: Sequence[str], options: GenerationConfig,
                out) -> None:
    """Prints each prompt followed by its continuation, SEPARATOR between them."""
    texts = generator.generate(prompts, options)
    out.write(SEPARATOR.join(prompt + text for prompt, text in zip(prompts, texts)) + "\n")
    out.flush()


def write_stream(generator: TextGenerator, prompts: Sequence[str], options: GenerationConfig,
                 out, separator: str = SEPARATOR) -> None:
    """As `write_texts`, the first prompt's continuation printed as it comes and the others
    (generated in the same batch) when done: the same text, as the same seed gives."""
    texts = [[] for _ in prompts]
    out.write(prompts[0])
    out.flush()
    for pieces in generator.stream(prompts, options):
        for text, piece in zip(texts, pieces):
            text.append(piece)
        if pieces[0]:
            out.write(pieces[0])
            out.flush()
    for prompt, text in zip(prompts[1:], texts[1:]):
        out.write(separator + prompt + "".join(text))
    out.write("\n")
    out.flush()


def print_warnings(generator, prompts: Sequence[str]) -> None:
    """Prints each prompt's `generator.warnings` (a `TextGenerator`, or a LiteRT runner that
    has them) to stderr."""
    for index, prompt in enumerate(prompts):
        for note in generator.warnings(prompt):
            where = f"prompt {index + 1}: " if len(prompts) > 1 else ""
            print(f"warning: {where}{note}", file=sys.stderr)

