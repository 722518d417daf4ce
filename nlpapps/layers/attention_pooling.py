"""Structured self-attentive pooling: r weighted sums of a sequence's states (Lin et al. 2017)."""

import keras
from keras import initializers, ops

NEG_INF = -1e9  # added to the scores of padded positions


@keras.saving.register_keras_serializable(package="nlpapps")
class AttentionPooling(keras.layers.Layer):
    """Additive self-attention pooling with `r` hops and a redundancy penalty (Lin et al. 2017).

    With the states `H` `(T, d)` of one sequence (rows `h_t`), `W1` `(attention_units, d)`
    and `W2` `(hops, attention_units)`:

        A = softmax(W2 tanh(W1 H^T))          (hops, T), each row over the real positions
        M = A H                               (hops, d), the sentence embedding
        P = || A A^T - I ||_F^2               the penalty, averaged over the batch

    Each of the `hops` rows of A is a distribution over the sequence's positions; the
    penalty pushes the rows to attend to different positions, each to few. `penalty * P` is
    added to the layer's `losses` (`add_loss`) on every call, so a model's training loss
    includes it (the paper's coefficient is 1.0; 0 adds nothing).

    Args:
        attention_units: `d_a`, the rows of `W1`.
        hops: `r`, the rows of A.
        penalty: coefficient of P in the loss.
        flatten: return M as `(batch, hops * d)` instead of `(batch, hops, d)`.
        kernel_initializer: of `W1` and `W2`.

    Call arguments:
        inputs: `(batch, T, d)`.
        mask: optional `(batch, T)` bool, True at real positions; a row with no real position
            gives zeros.

    Returns:
        `(M, A)`: `(batch, hops, d)` (or `(batch, hops * d)`) and `(batch, hops, T)`.

    Example:
        >>> pooling = AttentionPooling(attention_units=350, hops=30, penalty=1.0)
        >>> embedding, weights = pooling(keras.ops.ones((2, 7, 64)))
        >>> embedding.shape, weights.shape
        ((2, 30, 64), (2, 30, 7))

    Reference: Lin, Feng, dos Santos, Yu, Xiang, Zhou & Bengio, "A Structured Self-attentive
    Sentence Embedding", ICLR 2017.
    """

    def __init__(self, attention_units, hops=1, penalty=1.0, flatten=False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("attention_units", attention_units), ("hops", hops)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: "
                                 f"{name}={value!r}")
        if penalty < 0:
            raise ValueError(f"`penalty` must be >= 0. Received: penalty={penalty!r}")
        self.attention_units = attention_units
        self.hops = hops
        self.penalty = penalty
        self.flatten = flatten
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        d = input_shape[-1]
        self.w1 = self.add_weight(name="w1", shape=(d, self.attention_units),
                                  initializer=self.kernel_initializer)
        self.w2 = self.add_weight(name="w2", shape=(self.attention_units, self.hops),
                                  initializer=self.kernel_initializer)
        self.built = True

    def call(self, inputs, mask=None):
        hidden = ops.tanh(ops.matmul(inputs, self.w1))  # (batch, T, attention_units)
        scores = ops.transpose(ops.matmul(hidden, self.w2), (0, 2, 1))  # (batch, hops, T)
        if mask is not None:
            real = ops.cast(mask, "bool")[:, None, :]  # (batch, 1, T)
            scores = ops.where(real, scores, NEG_INF)
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * ops.cast(real, weights.dtype)  # a row with no real position
        pooled = ops.matmul(weights, inputs)  # (batch, hops, d)
        if self.penalty:
            self.add_loss(self.penalty * penalty_term(weights))
        if self.flatten:
            pooled = ops.reshape(pooled, (-1, self.hops * ops.shape(inputs)[-1]))
        return pooled, weights

    def compute_output_shape(self, input_shape):
        batch, time, d = input_shape
        pooled = (batch, self.hops * d) if self.flatten else (batch, self.hops, d)
        return pooled, (batch, self.hops, time)

    def compute_mask(self, inputs, mask=None):
        return [None, None]

    def get_config(self):
        return {**super().get_config(), "attention_units": self.attention_units,
                "hops": self.hops, "penalty": self.penalty, "flatten": self.flatten,
                "kernel_initializer": initializers.serialize(self.kernel_initializer)}


def penalty_term(weights):
    """`mean over the batch of ||A A^T - I||_F^2` of attention weights `(batch, hops, T)`."""
    gram = ops.matmul(weights, ops.transpose(weights, (0, 2, 1)))  # (batch, hops, hops)
    identity = ops.eye(ops.shape(weights)[1], dtype=weights.dtype)
    return ops.mean(ops.sum(ops.square(gram - identity), axis=(1, 2)))
