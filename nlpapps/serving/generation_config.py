"""`GenerationConfig`: how a language model continues a prompt (the `nlpapps generate` flags and
the options of `LanguageModelModule`'s `serving_default`). It imports no TensorFlow, so a
command checks its flags before anything loads."""

from __future__ import annotations

import dataclasses

from nlpapps.decoding_limits import MAX_BEAM, check_sampling

INT32_MAX = 2**31 - 1  # the signatures take 32-bit integers


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """How to continue a prompt; the `nlpapps generate` flags map one to one onto it."""

    max_new_tokens: int = 200  # tokens generated after the prompt
    temperature: float = 0.8  # softmax temperature; 0 is greedy
    top_k: int = 0  # draw among the k most probable tokens only (0: all of them)
    top_p: float = 1.0  # draw from the nucleus of this much probability (1: all of it)
    beam: int = 1  # beam search with this many hypotheses (1: sample as above)
    seed: int = 0  # seed of the draws: the same seed and prompts give the same text
    stop: tuple[str, ...] = ()  # the text ends before the first of these strings

    def __post_init__(self):
        check_sampling(self.temperature, self.top_k, self.top_p)
        if not 0 <= self.max_new_tokens <= INT32_MAX:
            raise ValueError(f"max_new_tokens must be in [0, {INT32_MAX}], got "
                             f"{self.max_new_tokens}")
        if not 1 <= self.beam <= MAX_BEAM:
            raise ValueError(f"beam must be between 1 and {MAX_BEAM}, got {self.beam}")
        if not -INT32_MAX - 1 <= self.seed <= INT32_MAX:
            raise ValueError(f"seed must fit in 32 bits ({-INT32_MAX - 1} to {INT32_MAX}), "
                             f"got {self.seed}")
        if self.top_k > INT32_MAX:
            raise ValueError(f"top_k must be at most {INT32_MAX}, got {self.top_k}")
        if any(not stop for stop in self.stop):
            raise ValueError("a stop string must not be empty")
