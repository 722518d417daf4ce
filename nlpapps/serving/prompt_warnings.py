"""What a user should know about how a language model reads a prompt: cut to its context,
characters it does not know. The SavedModel's `TextGenerator` and the LiteRT runner print the
same notes; it imports no TensorFlow."""

from __future__ import annotations

from nlpapps.tokenizer import UNK_ID, Tokenizer, line_start_ids


def prompt_warnings(tokenizer: Tokenizer, context_tokens: int, prompt: str) -> list[str]:
    """What a user should know about how a model of `context_tokens` reads `prompt`."""
    notes = []
    length = len(line_start_ids(tokenizer, prompt))
    if length > context_tokens:
        notes.append(f"the prompt is {length} tokens long, more than the model's context of "
                     f"{context_tokens}: only its last {context_tokens} are read")
    unknown = sorted({c for c in set(prompt) if UNK_ID in tokenizer.encode(c)})
    if unknown:
        shown = "".join(unknown[:10]) + ("..." if len(unknown) > 10 else "")
        notes.append(f"the prompt has characters the model does not know ({shown!r}); "
                     "it reads each run of them as one unknown token")
    return notes
