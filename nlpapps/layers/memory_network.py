"""End-to-end memory network (MemN2N): a question reads a memory of sentences over K hops."""

import keras
from keras import initializers, ops


@keras.saving.register_keras_serializable(package="nlpapps")
class MemoryNetwork(keras.layers.Layer):
    """End-to-end memory network with adjacent weight tying (Sukhbaatar et al. 2015).

    A story is `memory_size` sentences `x_i` of word ids `x_ij` (id 0 pads words and empty
    sentences; sentences in story order, the last real one the most recent), the question is
    word ids `q_j`. With embedding matrices `E_0 .. E_K` `(vocab_size, embedding_dim)` and
    temporal matrices `T_0 .. T_K` `(memory_size, embedding_dim)`, hop k = 1..K uses
    `A^k = E_{k-1}`, `C^k = E_k` (adjacent tying: `A^{k+1} = C^k`, the question's `B = A^1`):

        u^1   = sum_j l_j * B q_j                                  question
        m_i^k = sum_j l_j * A^k x_ij + T_{k-1}(r_i)                memory keys
        c_i^k = sum_j l_j * C^k x_ij + T_k(r_i)                    memory values
        p^k   = softmax_i(u^k . m_i^k)                             over real sentences
        o^k   = sum_i p_i^k c_i^k
        u^k+1 = u^k + o^k

    and the layer returns `u^{K+1}` (the answer layer `softmax(W u^{K+1})` is the model's)
    and the attention `p^1 .. p^K`.

    Position encoding (`position_encoding=True`, else `l_j = 1`) weighs word j of a sentence
    of J words, in embedding dimension k of d, by `l_kj = (1 - j/J) - (k/d)(1 - 2j/J)`
    (j, k from 1), so word order matters. Temporal encoding (`temporal_encoding=True`) adds
    the row `r_i` of T, `r_i` the sentence's age (0 for the most recent sentence). Random
    noise (`random_noise=p`, training only) ages every sentence by the empty memories that
    would be inserted after it, one after each sentence with probability p, so that T does
    not overfit exact ages (the inserted memories themselves are not attended).

    Linear start: while `softmax_enabled` is False, `p^k = u^k . m_i^k` on real sentences
    (no softmax); training starts so with `linear_start=True` and turns the softmax back on
    (`layer.softmax_enabled = True`) when the validation loss stops falling. The switch is a
    non-trainable weight, so it is saved with the weights and a resumed run keeps it.

    Args:
        vocab_size: word ids are in `[0, vocab_size)`, 0 the padding.
        embedding_dim: d.
        hops: K, at least 1.
        memory_size: sentences in the memory (rows of T).
        position_encoding: weigh words by position (else a bag of words).
        temporal_encoding: add T by the sentence's age.
        random_noise: probability of an empty memory after each sentence in training.
        linear_start: start with the softmax removed from the hops.
        embeddings_initializer: of E and T; the paper's N(0, 0.1) by default.

    Call arguments:
        inputs: `[story, question]`, int `(batch, memory_size, words)` and `(batch, q_words)`.
        training: applies the random noise.

    Returns:
        `(u, attention)`: `(batch, embedding_dim)` and `(batch, hops, memory_size)`.

    Example:
        >>> layer = MemoryNetwork(vocab_size=20, embedding_dim=8, hops=3, memory_size=10)
        >>> u, attention = layer([keras.ops.ones((2, 10, 6), "int32"),
        ...                       keras.ops.ones((2, 5), "int32")])

    Reference: Sukhbaatar, Szlam, Weston & Fergus, "End-To-End Memory Networks", NeurIPS 2015.
    """

    def __init__(self, vocab_size, embedding_dim, hops=3, memory_size=50,
                 position_encoding=True, temporal_encoding=True, random_noise=0.0,
                 linear_start=False, embeddings_initializer=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("hops", hops), ("memory_size", memory_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= random_noise < 1:
            raise ValueError(f"random_noise must be in [0, 1), got {random_noise!r}")
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.hops, self.memory_size = hops, memory_size
        self.position_encoding, self.temporal_encoding = position_encoding, temporal_encoding
        self.random_noise, self.linear_start = random_noise, linear_start
        self.embeddings_initializer = initializers.get(
            embeddings_initializer or initializers.RandomNormal(stddev=0.1))
        self.noise_seed = keras.random.SeedGenerator(0)

    def build(self, input_shape=None):
        self.embeddings = [
            self.add_weight(name=f"embedding_{k}", shape=(self.vocab_size, self.embedding_dim),
                            initializer=self.embeddings_initializer)
            for k in range(self.hops + 1)]
        self.temporal = [
            self.add_weight(name=f"temporal_{k}", shape=(self.memory_size, self.embedding_dim),
                            initializer=self.embeddings_initializer)
            for k in range(self.hops + 1)] if self.temporal_encoding else []
        self.softmax_switch = self.add_weight(
            name="softmax_switch", shape=(), initializer=initializers.Constant(
                0.0 if self.linear_start else 1.0), trainable=False)
        self.built = True

    @property
    def softmax_enabled(self) -> bool:
        return bool(ops.convert_to_numpy(self.softmax_switch) > 0.5)

    @softmax_enabled.setter
    def softmax_enabled(self, value: bool) -> None:
        self.softmax_switch.assign(1.0 if value else 0.0)

    def _bags(self, ids):
        """`(a, b)`, each `(..., vocab_size)`: the sentences `ids` `(..., words)` as weighted
        bags of words, so that `sum_j l_j * E x_j = a E + (k/d) * b E`.

        Position encoding splits as `l_kj = a_j + (k/d) b_j` with `a_j = 1 - j/J` and
        `b_j = 2j/J - 1` (a bag of words: `a_j = 1`, no b); two matmuls with E then replace
        gathering every word's vector (the vocabularies are small, a scatter of the word
        weights is cheap and a matmul's gradient is dense and fast)."""
        leading, words = ops.shape(ids)[:-1], ops.shape(ids)[-1]
        flat = ops.reshape(ids, (-1, words))  # (sentences, words)
        word_mask = ops.cast(ops.not_equal(flat, 0), self.compute_dtype)
        if self.position_encoding:
            length = ops.maximum(ops.sum(word_mask, axis=-1, keepdims=True), 1.0)
            j = ops.cast(ops.arange(1, words + 1), self.compute_dtype)
            weights = ops.stack([1 - j / length, 2 * j / length - 1], axis=-1)
        else:
            weights = ops.ones_like(word_mask)[..., None]
        weights = weights * word_mask[..., None]  # (sentences, words, 1 or 2)
        sentences = ops.shape(flat)[0]
        rows = ops.repeat(ops.arange(sentences), words)
        indices = ops.stack([rows, ops.reshape(flat, (-1,))], axis=-1)
        channels = ops.shape(weights)[-1]
        bags = ops.scatter(indices, ops.reshape(weights, (-1, channels)),
                           (sentences, self.vocab_size, channels))
        bags = ops.reshape(bags, (*leading, self.vocab_size, channels))
        return bags[..., 0], (bags[..., 1] if self.position_encoding else None)

    def _encode(self, embedding, bags):
        """`sum_j l_j * E x_j` of the sentences whose `_bags` are `bags` -> `(..., d)`."""
        a, b = bags
        if b is None:
            return ops.matmul(a, embedding)
        k = ops.cast(ops.arange(1, self.embedding_dim + 1), self.compute_dtype) \
            / self.embedding_dim
        return ops.matmul(a, embedding) + k * ops.matmul(b, embedding)

    def call(self, inputs, training=False):
        story, question = inputs
        story, question = ops.cast(story, "int32"), ops.cast(question, "int32")
        memory_mask = ops.any(ops.not_equal(story, 0), axis=-1)  # (batch, memory)
        if self.temporal_encoding:
            # A sentence's age: the real sentences after it (plus the noise's empty memories).
            later = ops.cast(memory_mask, "int32")
            if training and self.random_noise:
                noise = keras.random.uniform(ops.shape(later), seed=self.noise_seed) \
                    < self.random_noise
                later = later + ops.cast(noise, "int32") * later
            age = ops.flip(ops.cumsum(ops.flip(later, axis=1), axis=1), axis=1) - later
            age = ops.clip(age, 0, self.memory_size - 1)  # (batch, memory)
        story_bags = self._bags(story)  # (batch, memory, vocab) each
        u = self._encode(self.embeddings[0], self._bags(question))  # (batch, d)
        keys = self._encode(self.embeddings[0], story_bags)  # (batch, memory, d)
        if self.temporal_encoding:
            keys = keys + ops.take(self.temporal[0], age, axis=0)
        logit_mask = ops.where(memory_mask, 0.0, -1e9)
        attention = []
        for k in range(1, self.hops + 1):
            values = self._encode(self.embeddings[k], story_bags)  # (batch, memory, d)
            if self.temporal_encoding:
                values = values + ops.take(self.temporal[k], age, axis=0)
            scores = ops.einsum("bd,bmd->bm", u, keys)
            soft = ops.softmax(scores + logit_mask, axis=-1)
            linear = scores * ops.cast(memory_mask, scores.dtype)
            p = self.softmax_switch * soft + (1 - self.softmax_switch) * linear
            u = u + ops.einsum("bm,bmd->bd", p, values)
            attention.append(p)
            keys = values  # adjacent tying: A^{k+1} = C^k, T_A^{k+1} = T_C^k
        return u, ops.stack(attention, axis=1)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        return (batch, self.embedding_dim), (batch, self.hops, self.memory_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "hops": self.hops,
                "memory_size": self.memory_size, "position_encoding": self.position_encoding,
                "temporal_encoding": self.temporal_encoding, "random_noise": self.random_noise,
                "linear_start": self.linear_start,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer)}
