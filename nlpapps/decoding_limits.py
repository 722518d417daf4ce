"""The limits and defaults of decoding that the TensorFlow loops, the exported files and the
commands share: numbers and checks that import nothing, so that a command checks its flags,
and runs a LiteRT file, without importing TensorFlow (`nlpapps.decoding` has the loops)."""

from __future__ import annotations

# The translator's `min_length` in every loop (OpenNMT-tf's `minimum_decoding_length`): a text
# never translates to an empty line because eos was the first choice.
MIN_DECODING_LENGTH = 1
# The widest beam the apps and their signatures run: memory and time grow with the beam, and
# past a few dozen hypotheses the results do not improve.
MAX_BEAM = 64
MAX_SOURCE_TOKENS = 128  # a translator's longer inputs are cut to this many tokens (eos included)
BEAM_ONE_SIZE = 5  # the beam of `translate_beam_one` (static, as TFLite's shapes must be)
MAX_NEW_TOKENS_ONE = 1024  # the most tokens a language model's `generate_one` draws in one call
# Length-penalty exponent of a translator's beam search: BLEU on the dev split was highest at
# 1.0 among 0.3, 0.6, 1.0, 1.5 and 2.0 for the shipped translator.
DEFAULT_ALPHA = 1.0


def check_sampling(temperature=1.0, top_k=0, top_p=1.0) -> None:
    """Raises ValueError for sampling options out of range (tensors are not checked)."""
    if isinstance(temperature, (int, float)) and not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be 0 (greedy) or positive, got {temperature}")
    if isinstance(top_k, int) and top_k < 0:
        raise ValueError(f"top_k must be 0 (off) or positive, got {top_k}")
    if isinstance(top_p, (int, float)) and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
