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
