"""In-graph decoding: samplers and the loops that call a model's one-step function.

A one-step function maps `(token_ids (batch,), states) -> (logits (batch, vocab), states,
extra)` where `states` is any nest of `(batch, ...)` tensors and `extra` a `(batch, ...)` tensor
to record per step (attention weights) or None. Models do not know how they are decoded; these
loops do not know what model they drive. Every loop is one `tf.while_loop`, so it compiles into
a SavedModel or TFLite graph.

A sampler maps `(batch, vocab)` logits to `(batch,)` int32 ids. A random sampler also takes
`step`, the index of the token being drawn, and draws with stateless random ops seeded by
`(seed, step)`: the same seed gives the same tokens, and a loop run in chunks (`start_step`)
draws exactly what one run draws. `make_sampler` composes temperature, top-k and top-p (nucleus)
filtering into one such sampler.

Both loops take `min_length`, OpenNMT-tf's `minimum_decoding_length`: eos cannot be chosen
before that many tokens have been produced, so a translator given text never returns an empty
line for it. Only the choice is constrained: the log-probabilities (the scores) are the
model's own, so every output that did not end that early is unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import tensorflow as tf

from nlpapps.decoding_limits import (MAX_BEAM, MIN_DECODING_LENGTH,  # noqa: F401  (imported from here too)
                                     check_sampling)
from nlpapps.tokenizer import EOS_ID, PAD_ID

StepFn = Callable[[tf.Tensor, object], tuple[tf.Tensor, object, tf.Tensor | None]]
Sampler = Callable[[tf.Tensor], tf.Tensor]


def greedy_sampler(logits: tf.Tensor) -> tf.Tensor:
    """The most probable token: `(batch, vocab) -> (batch,)` int32."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def apply_temperature(logits: tf.Tensor, temperature) -> tf.Tensor:
    """`logits / temperature`: below 1 sharpens the distribution, above 1 flattens it."""
    return logits / tf.cast(temperature, logits.dtype)


def top_k_filter(logits: tf.Tensor, k) -> tf.Tensor:
    """Keeps the `k` largest logits of each row, -inf elsewhere; `k <= 0` keeps them all.

    `(batch, vocab) -> (batch, vocab)`; a `k` above the vocabulary size keeps every token.
    """
    k = tf.convert_to_tensor(k, tf.int32)

    def keep_top_k():
        k_th = tf.math.top_k(logits, tf.minimum(k, tf.shape(logits)[-1])).values[:, -1:]
        return tf.where(logits < k_th, float("-inf"), logits)

    return tf.cond(k > 0, keep_top_k, lambda: logits)


def top_p_filter(logits: tf.Tensor, p) -> tf.Tensor:
    """Keeps the nucleus of each row: the fewest most probable tokens whose probabilities
    sum to at least `p`, -inf elsewhere (Holtzman et al. 2020); `p >= 1` keeps them all.

    `(batch, vocab) -> (batch, vocab)`; the most probable token is always kept.
    """
    p = tf.convert_to_tensor(p, logits.dtype)

    def keep_nucleus():
        sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
        # The probability of the tokens more probable than each one: it is kept while < p.
        before = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
        kept = tf.reduce_sum(tf.cast(before < p, tf.int32), axis=-1)  # (batch,)
        lowest = tf.gather(sorted_logits, tf.maximum(kept, 1) - 1, batch_dims=1)
        return tf.where(logits < lowest[:, None], float("-inf"), logits)

    return tf.cond(p < 1.0, keep_nucleus, lambda: logits)


def categorical_sample(logits: tf.Tensor, seed, step) -> tf.Tensor:
    """One draw per row from `softmax(logits)`, by stateless ops seeded with `(seed, step)`:
    `(batch, vocab) -> (batch,)` int32. A row's draw depends on its position in the batch."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.stateless_categorical(logits, 1, seed=key, dtype=tf.int32)[:, 0]


MINSTD = (2147483647, 16807, 127773, 2836)  # Park-Miller: modulus, multiplier, m // a, m % a


def _minstd_next(x):
    m, a, q, r = MINSTD
    x = a * tf.math.floormod(x, q) - r * tf.math.floordiv(x, q)  # Schrage: no product >= 2^31
    return tf.where(x <= 0, x + m, x)


def portable_uniforms(seed, count) -> tf.Tensor:
    """`(count,)` float32 uniforms in (0, 1) from the Park-Miller generator seeded by `seed`.

    Integer arithmetic that every runtime computes alike, in one WHILE loop of LiteRT builtins:
    LiteRT has no stateless random op, and its MULTINOMIAL draws the same value at every
    iteration of a loop.
    """
    m = MINSTD[0]
    x = tf.math.floormod(tf.cast(seed, tf.int32), m - 1) + 1
    for _ in range(8):  # small seeds give small first values
        x = _minstd_next(x)
    values = tf.TensorArray(tf.float32, size=count, element_shape=[])

    def body(i, x, values):
        x = _minstd_next(x)
        return i + 1, x, values.write(i, tf.cast(x, tf.float32) / float(m))

    _, _, values = tf.while_loop(lambda i, *_: i < count, body, (0, x, values))
    return tf.minimum(values.stack(), 1.0 - 2.0 ** -24)


def inverse_cdf_sample(logits: tf.Tensor, uniform) -> tf.Tensor:
    """The draw from `softmax(logits)` that the uniform `u` picks: the first token whose
    cumulative probability reaches `u`. `(batch, vocab)`, a scalar -> `(batch,)` int32; a token
    of probability 0 (a -inf logit) is never picked."""
    cdf = tf.cumsum(tf.nn.softmax(logits), axis=-1)
    below = tf.cast(cdf < uniform * cdf[:, -1:], tf.int32)
    return tf.minimum(tf.reduce_sum(below, axis=-1), tf.shape(logits)[-1] - 1)


def make_sampler(temperature=1.0, top_k=0, top_p=1.0, seed=0, uniforms=None) -> Sampler:
    """One sampler `(logits, step) -> ids` that scales by `temperature`, keeps the `top_k`
    most probable tokens, then the nucleus of mass `top_p`, and draws with `(seed, step)`.

    Temperature 0 is greedy (the filters never remove the most probable token); `top_k=0` and
    `top_p=1` turn those filters off. Every argument may be a Python number or a scalar tensor
    (as in an exported signature); numbers are checked here, tensors by the caller. With
    `uniforms` (`(steps,)`, e.g. `portable_uniforms(seed, steps)`), the token of step t is
    `inverse_cdf_sample(logits, uniforms[t])` in every row, with LiteRT builtins only.

    Example:
    ```python
    sampler = make_sampler(temperature=0.8, top_p=0.95, seed=7)
    ids, scores, _ = decode(step_fn, first_tokens, states, 100, sampler=sampler)
    ```
    """
    check_sampling(temperature, top_k, top_p)

    def sampler(logits, step):
        logits = tf.cast(logits, tf.float32)

        def draw():
            filtered = top_p_filter(top_k_filter(apply_temperature(logits, temperature), top_k),
                                    top_p)
            if uniforms is not None:
                return inverse_cdf_sample(filtered, tf.gather(uniforms, step))
            return categorical_sample(filtered, seed, step)

        return tf.cond(tf.convert_to_tensor(temperature, tf.float32) > 0, draw,
                       lambda: greedy_sampler(logits))

    return sampler


def _takes_step(sampler: Callable) -> bool:
    try:
        return "step" in inspect.signature(sampler).parameters
    except (TypeError, ValueError):
        return False


def forbid_early_eos(logits: tf.Tensor, step, min_length, eos_id: int = EOS_ID) -> tf.Tensor:
    """`logits` with eos's set one below the row's lowest logit while `step` (the index of the
    token being chosen) is below `min_length`; `(batch, vocab)` or `(batch, beam, vocab)`. No
    change for `eos_id < 0` (a loop without eos).

    An argmax, or a beam's top-k narrower than the vocabulary, then never picks eos. The value
    stays inside the logits' own range rather than being a large constant such as -1e9: an
    int8 file shares one quantization scale between the logits and this select's output, and
    calibrated on a range reaching -1e9 every real logit rounds to the same integer.
    """
    if eos_id < 0:
        return logits
    is_eos = tf.equal(tf.range(tf.shape(logits)[-1]), eos_id)  # (vocab,)
    lowest = tf.reduce_min(logits, axis=-1, keepdims=True) - 1.0  # (..., 1)
    return tf.where(_early(step, min_length) & is_eos, lowest, logits)


def _early(step, min_length) -> tf.Tensor:
    """Whether the token of index `step` comes before `min_length`: a scalar bool."""
    return tf.convert_to_tensor(step, tf.int32) < tf.convert_to_tensor(min_length, tf.int32)


def decode(step_fn: StepFn, first_tokens: tf.Tensor, states, max_length,
           sampler: Sampler = greedy_sampler, eos_id: int = EOS_ID, extra_shape=None,
           start_step=0, return_state: bool = False, min_length=0, with_scores: bool = True):
    """Runs `step_fn` from `first_tokens` until every row has produced eos or `max_length`.

    Args:
        step_fn: the one-step function.
        first_tokens: `(batch,)` int32, usually bos.
        states: the initial states nest.
        max_length: the most tokens to produce: an int or scalar tensor, or a `(batch,)`
            tensor with each row's own limit (a row stops there even without eos, so a
            row's output never depends on the other rows of its batch).
        sampler: `(batch, vocab) logits -> (batch,)` next tokens; one that takes `step` is
            given the index of each token drawn, counted from `start_step`.
        eos_id: the id that ends a row; -1 for none.
        extra_shape: the shape of `extra` per row (e.g. `(src_len,)`), or None if not recorded.
        start_step: int or scalar tensor, the index of the first token drawn here: a loop that
            goes on from where another stopped passes the number of tokens drawn before.
        return_state: also return the states after the last step, to go on from there.
        min_length: the fewest tokens before eos may be drawn (counted from step 0, as
            `start_step` counts); a row's limit still ends it sooner.
        with_scores: sum the chosen tokens' log-probabilities (a log-softmax per step).

    Returns:
        `(ids, scores, extras)`: ids `(batch, steps)` int32 with eos included and 0 after it;
        scores `(batch,)`, the sum of the chosen tokens' log-probabilities (None without
        `with_scores`); extras
        `(batch, steps, *extra_shape)` or None. With `return_state`, the final states nest
        follows.
    """
    batch = tf.shape(first_tokens)[0]
    row_limits, max_length = _limits(max_length, batch)
    ids_ta = tf.TensorArray(tf.int32, size=max_length, element_shape=first_tokens.shape)
    extras_ta = tf.TensorArray(tf.float32, size=max_length,
                               element_shape=first_tokens.shape + tuple(extra_shape or ()))

    choose = _chooser(sampler, eos_id, min_length, row_limits, start_step, with_scores)

    def body(t, tokens, states, finished, scores, ids_ta, extras_ta):
        logits, states, extra = step_fn(tokens, states)
        next_tokens, finished, scores = choose(logits, t, finished, scores)
        ids_ta = ids_ta.write(t, next_tokens)
        if extra_shape is not None:
            extras_ta = extras_ta.write(t, tf.cast(extra, tf.float32))
        return t + 1, next_tokens, states, finished, scores, ids_ta, extras_ta

    steps, _, states, _, scores, ids_ta, extras_ta = tf.while_loop(
        lambda t, tokens, states, finished, *_: (t < max_length)
        & tf.logical_not(tf.reduce_all(finished)),
        body,
        (tf.constant(0), first_tokens, states, tf.zeros([batch], tf.bool),
         tf.zeros([batch], tf.float32), ids_ta, extras_ta),
        maximum_iterations=max_length)
    ids = tf.transpose(ids_ta.stack()[:steps], (1, 0))  # (batch, steps)
    scores = scores if with_scores else None
    extras = None
    if extra_shape is not None:
        extras = extras_ta.stack()[:steps]  # (steps, batch, *extra_shape)
        extras = tf.transpose(extras, (1, 0, *range(2, 2 + len(extra_shape))))
    if return_state:
        return ids, scores, extras, states
    return ids, scores, extras


def _chooser(sampler: Sampler, eos_id: int, min_length, row_limits, start_step,
             with_scores: bool = True):
    """The choice of `decode`'s loops at step `t`: `(logits, t, finished, scores) ->
    (next_tokens, finished, scores)`, pad for a finished row; the scores are left as they are
    without `with_scores`."""
    draws_by_step = _takes_step(sampler)
    start_step = tf.convert_to_tensor(start_step, tf.int32)

    def choose(logits, t, finished, scores):
        allowed = forbid_early_eos(logits, start_step + t, min_length, eos_id)
        drawn = sampler(allowed, step=start_step + t) if draws_by_step else sampler(allowed)
        if eos_id >= 0:  # a random draw may still reach eos's small probability
            early_eos = _early(start_step + t, min_length) & tf.equal(drawn, eos_id)
            drawn = tf.where(early_eos, greedy_sampler(allowed), drawn)
        next_tokens = tf.where(finished, PAD_ID, drawn)
        if with_scores:
            log_probs = tf.nn.log_softmax(logits)  # (batch, vocab)
            chosen = tf.gather(log_probs, next_tokens, batch_dims=1)  # (batch,)
            scores += tf.where(finished, 0.0, chosen)
        finished = finished | tf.equal(next_tokens, eos_id) | (t + 1 >= row_limits)
        return next_tokens, finished, scores

    return choose


def decode_in_blocks(step_fn, merge_fn, first_tokens: tf.Tensor, states, memory, block: int,
                     max_length, sampler: Sampler = greedy_sampler, eos_id: int = EOS_ID,
                     start_step=0, return_state: bool = False, min_length=0, read_fn=None,
                     with_scores: bool = True):
    """`decode` for a model with a large state that changes in blocks (an attention memory,
    `CausalSelfAttention.block_step`): `memory` is read by every step and rewritten once
    every `block` steps, by two nested loops. An inner loop of at most `block` steps only
    reads it, so LiteRT neither copies nor rewrites it at every step; the outer loop merges
    the block into it.

    Args:
        step_fn: `(tokens (batch,), states, read, filled) -> (logits, states, extra)`,
            `read` what `read_fn` gives of the memory, `filled` (a scalar) the steps taken
            since `memory` was last merged; `extra` is not recorded.
        merge_fn: `(memory, states, filled) -> memory`, the memory after those steps.
        block: the most steps between two merges.
        read_fn: `memory -> ` what the steps of the next block read (the memory itself by
            default), computed once per block.
        with_scores: sum the chosen tokens' log-probabilities (a log-softmax per step);
            without, the scores are None.
        the rest: as `decode`.

    Returns:
        `(ids, scores)` as `decode`'s; with `return_state`, the final `states` and `memory`
        (merged) follow. The tokens are those `decode` draws with the equivalent one-step
        function.
    """
    batch = tf.shape(first_tokens)[0]
    row_limits, max_length = _limits(max_length, batch)
    ids_ta = tf.TensorArray(tf.int32, size=max_length, element_shape=first_tokens.shape)
    choose = _chooser(sampler, eos_id, min_length, row_limits, start_step, with_scores)

    def going_on(t, finished):
        return (t < max_length) & tf.logical_not(tf.reduce_all(finished))

    def inner(filled, t, tokens, states, finished, scores, ids_ta, read):
        logits, states, _ = step_fn(tokens, states, read, filled)
        next_tokens, finished, scores = choose(logits, t, finished, scores)
        return (filled + 1, t + 1, next_tokens, states, finished, scores,
                ids_ta.write(t, next_tokens), read)

    def outer(t, tokens, states, finished, scores, ids_ta, memory):
        # What the steps read is a variable of the inner loop: LiteRT's converter fails on an
        # inner loop that captures a tensor of the outer one.
        read = memory if read_fn is None else read_fn(memory)
        filled, t, tokens, states, finished, scores, ids_ta, _ = tf.while_loop(
            lambda filled, t, tokens, states, finished, *_: (filled < block)
            & going_on(t, finished),
            inner, (tf.constant(0), t, tokens, states, finished, scores, ids_ta, read),
            maximum_iterations=block)
        memory = merge_fn(memory, states, filled)
        return t, tokens, states, finished, scores, ids_ta, memory

    steps, _, states, _, scores, ids_ta, memory = tf.while_loop(
        lambda t, tokens, states, finished, *_: going_on(t, finished),
        outer,
        (tf.constant(0), first_tokens, states, tf.zeros([batch], tf.bool),
         tf.zeros([batch], tf.float32), ids_ta, memory))
    ids = tf.transpose(ids_ta.stack()[:steps], (1, 0))  # (batch, steps)
    scores = scores if with_scores else None
    if return_state:
        return ids, scores, states, memory
    return ids, scores


def tile_beams(nest, beam_size: int):
    """Repeats every `(batch, ...)` tensor of a nest to `(batch * beam_size, ...)`, each row's
    copies adjacent, for the step function of `beam_search`."""
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), nest)


def length_penalty(length, alpha: float):
    """GNMT length normalization `((5 + length) / 6) ** alpha` (Wu et al. 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def beam_search(step_fn: StepFn, first_tokens: tf.Tensor, states, beam_size: int, max_length,
                alpha: float = 0.6, eos_id: int = EOS_ID, extra_shape=None, min_length=0):
    """Beam search with length normalization, keeping `beam_size` hypotheses per row.

    `first_tokens` is `(batch,)`; `states` and whatever `step_fn` closes over must already be
    tiled to `batch * beam_size` rows (`tile_beams`). A hypothesis that produced eos stays in
    its beam and only grows padding, so finished and unfinished ones compete on the same
    normalized score `log p(y) / length_penalty(|y|, alpha)`. With `beam_size=1` this is greedy.
    No hypothesis ends with eos before `min_length` tokens.

    Returns:
        `(ids, scores, extras)`: ids `(batch, beam_size, steps)` best first, eos included and
        0 after it; scores `(batch, beam_size)` normalized log-probabilities, descending;
        extras `(batch, beam_size, steps, *extra_shape)` or None.
    """
    # A static batch (TFLite's batch-1 signatures) keeps every loop variable's shape static.
    batch = first_tokens.shape[0] if first_tokens.shape[0] is not None else \
        tf.shape(first_tokens)[0]
    k = beam_size
    row_limits, max_length = _limits(max_length, batch)
    positions = tf.range(max_length)[None, None, :]  # (1, 1, max_length)
    extra_shape = None if extra_shape is None else tuple(extra_shape)

    log_probs = tf.zeros([batch, k])  # every beam starts as a copy of the first
    ids = tf.zeros([batch, k, max_length], tf.int32)
    extras = tf.zeros([batch, k, max_length] + list(extra_shape or ()), tf.float32) \
        if extra_shape is not None else tf.zeros([batch, k, 0])
    lengths = tf.zeros([batch, k], tf.int32)
    finished = tf.zeros([batch, k], tf.bool)
    tokens = tf.repeat(first_tokens, k, axis=0)  # (batch * k,)

    def body(t, tokens, states, log_probs, ids, extras, lengths, finished):
        logits, states, extra = step_fn(tokens, states)
        vocab = tf.shape(logits)[-1]
        step_log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, k, vocab])
        step_log_probs = forbid_early_eos(step_log_probs, t, min_length, eos_id)
        # A finished hypothesis may only add padding, at no cost.
        is_pad = tf.equal(tf.range(vocab), PAD_ID)[None, None, :]  # (1, 1, vocab)
        step_log_probs = tf.where(finished[..., None] & is_pad, 0.0, step_log_probs)
        candidates = log_probs[..., None] + step_log_probs  # (batch, k, vocab)
        new_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
        normalized = candidates / length_penalty(new_lengths, alpha)[..., None]
        # Never chosen: a finished hypothesis's other tokens, and at the first step every beam
        # but the first (the copies), so that the k first choices differ. They score one below
        # the row's lowest rather than a large negative constant, which an int8 file's
        # calibration would take for the range of the scores (rounding them all to one value).
        barred = (finished[..., None] & tf.logical_not(is_pad)) \
            | (tf.equal(t, 0) & (tf.range(k) > 0))[None, :, None]
        floor = tf.reduce_min(normalized, axis=[1, 2], keepdims=True) - 1.0
        normalized = tf.where(barred, floor, normalized)
        _, top = tf.math.top_k(tf.reshape(normalized, [batch, -1]), k=k)  # (batch, k)
        beam, token = top // vocab, top % vocab
        log_probs = tf.gather(tf.reshape(candidates, [batch, -1]), top, batch_dims=1)
        lengths = tf.gather(new_lengths, beam, batch_dims=1)
        was_finished = tf.gather(finished, beam, batch_dims=1)
        finished = was_finished | tf.equal(token, eos_id) | (t + 1 >= row_limits[:, None])
        ids = tf.gather(ids, beam, batch_dims=1)
        ids = tf.where(tf.equal(positions, t), token[..., None], ids)
        if extra_shape is not None:
            extra = tf.reshape(tf.cast(extra, tf.float32), [batch, k, *extra_shape])
            extra = tf.gather(extra, beam, batch_dims=1)
            extras = tf.gather(extras, beam, batch_dims=1)
            at_t = tf.reshape(tf.equal(positions, t), [1, 1, -1] + [1] * len(extra_shape))
            extras = tf.where(at_t, extra[:, :, None], extras)
        flat_beam = tf.reshape(beam + k * tf.range(batch)[:, None], [-1])  # (batch * k,)
        states = tf.nest.map_structure(lambda s: tf.gather(s, flat_beam), states)
        return (t + 1, tf.reshape(token, [-1]), states, log_probs, ids, extras, lengths,
                finished)

    steps, _, _, log_probs, ids, extras, lengths, _ = tf.while_loop(
        lambda t, *loop: (t < max_length) & tf.logical_not(tf.reduce_all(loop[-1])),
        body,
        (tf.constant(0), tokens, states, log_probs, ids, extras, lengths, finished),
        maximum_iterations=max_length)
    scores = log_probs / length_penalty(lengths, alpha)
    scores, order = tf.math.top_k(scores, k=k)
    ids = tf.gather(ids, order, batch_dims=1)[:, :, :steps]
    if extra_shape is None:
        return ids, scores, None
    return ids, scores, tf.gather(extras, order, batch_dims=1)[:, :, :steps]


def _limits(max_length, batch):
    """`(row_limits (batch,), loop_limit scalar)` from a scalar or per-row `max_length`."""
    row_limits = tf.broadcast_to(tf.convert_to_tensor(max_length, tf.int32), [batch])
    return row_limits, tf.reduce_max(row_limits)
