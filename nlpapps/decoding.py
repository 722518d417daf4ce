"""In-graph decoding: samplers and the loops that call a model's one-step function.

A one-step function maps `(token_ids (batch,), states) -> (logits (batch, vocab), states,
extra)` where `states` is any nest of `(batch, ...)` tensors and `extra` a `(batch, ...)` tensor
to record per step (attention weights) or None. Models do not know how they are decoded; these
loops do not know what model they drive. Every loop is one `tf.while_loop`, so it compiles into
a SavedModel or TFLite graph.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from nlpapps.tokenizer import EOS_ID, PAD_ID

StepFn = Callable[[tf.Tensor, object], tuple[tf.Tensor, object, tf.Tensor | None]]
Sampler = Callable[[tf.Tensor], tf.Tensor]


def greedy_sampler(logits: tf.Tensor) -> tf.Tensor:
    """The most probable token: `(batch, vocab) -> (batch,)` int32."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def decode(step_fn: StepFn, first_tokens: tf.Tensor, states, max_length,
           sampler: Sampler = greedy_sampler, eos_id: int = EOS_ID, extra_shape=None):
    """Runs `step_fn` from `first_tokens` until every row has produced eos or `max_length`.

    Args:
        step_fn: the one-step function.
        first_tokens: `(batch,)` int32, usually bos.
        states: the initial states nest.
        max_length: int or scalar tensor, the most tokens to produce.
        sampler: `(batch, vocab) logits -> (batch,)` next tokens.
        extra_shape: the shape of `extra` per row (e.g. `(src_len,)`), or None if not recorded.

    Returns:
        `(ids, scores, extras)`: ids `(batch, steps)` int32 with eos included and 0 after it;
        scores `(batch,)`, the sum of the chosen tokens' log-probabilities; extras
        `(batch, steps, *extra_shape)` or None.
    """
    batch = tf.shape(first_tokens)[0]
    max_length = tf.convert_to_tensor(max_length, tf.int32)
    ids_ta = tf.TensorArray(tf.int32, size=max_length, element_shape=first_tokens.shape)
    extras_ta = tf.TensorArray(tf.float32, size=max_length,
                               element_shape=first_tokens.shape + tuple(extra_shape or ()))

    def body(t, tokens, states, finished, scores, ids_ta, extras_ta):
        logits, states, extra = step_fn(tokens, states)
        log_probs = tf.nn.log_softmax(logits)  # (batch, vocab)
        next_tokens = tf.where(finished, PAD_ID, sampler(logits))
        chosen = tf.gather(log_probs, next_tokens, batch_dims=1)  # (batch,)
        scores += tf.where(finished, 0.0, chosen)
        ids_ta = ids_ta.write(t, next_tokens)
        if extra_shape is not None:
            extras_ta = extras_ta.write(t, tf.cast(extra, tf.float32))
        finished = finished | tf.equal(next_tokens, eos_id)
        return t + 1, next_tokens, states, finished, scores, ids_ta, extras_ta

    steps, _, _, _, scores, ids_ta, extras_ta = tf.while_loop(
        lambda t, tokens, states, finished, *_: (t < max_length)
        & tf.logical_not(tf.reduce_all(finished)),
        body,
        (tf.constant(0), first_tokens, states, tf.zeros([batch], tf.bool),
         tf.zeros([batch], tf.float32), ids_ta, extras_ta),
        maximum_iterations=max_length)
    ids = tf.transpose(ids_ta.stack()[:steps], (1, 0))  # (batch, steps)
    extras = None
    if extra_shape is not None:
        extras = extras_ta.stack()[:steps]  # (steps, batch, *extra_shape)
        extras = tf.transpose(extras, (1, 0, *range(2, 2 + len(extra_shape))))
    return ids, scores, extras


def tile_beams(nest, beam_size: int):
    """Repeats every `(batch, ...)` tensor of a nest to `(batch * beam_size, ...)`, each row's
    copies adjacent, for the step function of `beam_search`."""
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), nest)


def length_penalty(length, alpha: float):
    """GNMT length normalization `((5 + length) / 6) ** alpha` (Wu et al. 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def beam_search(step_fn: StepFn, first_tokens: tf.Tensor, states, beam_size: int, max_length,
                alpha: float = 0.6, eos_id: int = EOS_ID, extra_shape=None):
    """Beam search with length normalization, keeping `beam_size` hypotheses per row.

    `first_tokens` is `(batch,)`; `states` and whatever `step_fn` closes over must already be
    tiled to `batch * beam_size` rows (`tile_beams`). A hypothesis that produced eos stays in
    its beam and only grows padding, so finished and unfinished ones compete on the same
    normalized score `log p(y) / length_penalty(|y|, alpha)`. With `beam_size=1` this is greedy.

    Returns:
        `(ids, scores, extras)`: ids `(batch, beam_size, steps)` best first, eos included and
        0 after it; scores `(batch, beam_size)` normalized log-probabilities, descending;
        extras `(batch, beam_size, steps, *extra_shape)` or None.
    """
    batch = tf.shape(first_tokens)[0]
    k = beam_size
    max_length = tf.convert_to_tensor(max_length, tf.int32)
    positions = tf.range(max_length)[None, None, :]  # (1, 1, max_length)
    extra_shape = None if extra_shape is None else tuple(extra_shape)

    # Only beam 0 is alive at first, so the k first choices differ.
    log_probs = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], 0)[None], [batch, 1])
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
        # A finished hypothesis may only add padding, at no cost.
        pad_only = tf.one_hot(PAD_ID, vocab, on_value=0.0, off_value=-1e9)[None, None]
        step_log_probs = tf.where(finished[..., None], pad_only, step_log_probs)
        candidates = log_probs[..., None] + step_log_probs  # (batch, k, vocab)
        new_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
        normalized = candidates / length_penalty(new_lengths, alpha)[..., None]
        _, top = tf.math.top_k(tf.reshape(normalized, [batch, -1]), k=k)  # (batch, k)
        beam, token = top // vocab, top % vocab
        log_probs = tf.gather(tf.reshape(candidates, [batch, -1]), top, batch_dims=1)
        lengths = tf.gather(new_lengths, beam, batch_dims=1)
        was_finished = tf.gather(finished, beam, batch_dims=1)
        finished = was_finished | tf.equal(token, eos_id)
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
