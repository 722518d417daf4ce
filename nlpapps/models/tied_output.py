"""The output layer tied to the input embedding: logits = features @ embeddings^T + bias."""

import tensorflow as tf


def tied_logits(features, embeddings, bias):
    """`(..., dim) -> (..., vocab)` logits from the `(vocab, dim)` embedding matrix.

    One 2-D matmul that transposes the matrix inside the op, rather than a transposed copy of
    it: an exported graph then holds the matrix once, shared by the embedding lookup and the
    output layer (LiteRT's FULLY_CONNECTED takes its weights as `(out, in)`), and quantizes it
    once.
    """
    shape = tf.shape(features)
    flat = tf.reshape(features, [-1, features.shape[-1]])  # (n, dim)
    logits = tf.matmul(flat, embeddings, transpose_b=True) + bias  # (n, vocab)
    return tf.reshape(logits, tf.concat([shape[:-1], tf.shape(embeddings)[:1]], axis=0))
