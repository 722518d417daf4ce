"""Attention over an encoded source: additive (Bahdanau) and multiplicative (Luong).

Both layers share one call contract, built for a decoder that attends once per step:

    keys = attention.precompute_keys(values)             # once per source
    context, weights = attention(query, values, keys=keys, mask=mask)

`query` is the decoder state, either one step `(batch, query_dim)` or every step at once
`(batch, tgt_len, query_dim)` (teacher forcing); `values` are the encoder outputs
`(batch, src_len, value_dim)` and `mask` marks the real (not padded) source positions.
"""

import keras
from keras import ops


def _get_initializer(name, identifier):
    try:
        return keras.initializers.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must name a Keras initializer; received {name}={identifier!r}"
        ) from error


def _check_units(units, allow_none=False):
    if units is None and allow_none:
        return
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"`units` must be a positive integer; received units={units!r}")


class _Attention(keras.layers.Layer):
    """The shared call: scores -> masked softmax -> weighted sum of the values."""

    def precompute_keys(self, values):
        raise NotImplementedError

    def _score(self, query, keys):
        raise NotImplementedError

    def _check_shapes(self, query_shape, values_shape):
        if len(query_shape) not in (2, 3) or query_shape[-1] is None:
            raise ValueError(
                "`query` must be (batch, query_dim) or (batch, tgt_len, query_dim) with a "
                f"known query_dim; received query shape {tuple(query_shape)}"
            )
        if len(values_shape) != 3 or values_shape[-1] is None:
            raise ValueError(
                "`values` must be (batch, src_len, value_dim) with a known value_dim; "
                f"received values shape {tuple(values_shape)}"
            )

    def call(self, query, values, keys=None, mask=None):
        self._check_shapes(query.shape, values.shape)
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)  # (batch, 1, query_dim)
        if keys is None:
            keys = self.precompute_keys(values)  # (batch, src_len, units)
        scores = self._score(query, keys)  # (batch, tgt_len, src_len)
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), 1)  # (batch, 1, src_len)
            # Far enough below any real score that exp() underflows to exactly 0,
            # yet finite, so a fully padded row gives uniform weights rather than NaN.
            large_negative = -65504.0 if scores.dtype == "float16" else -1e9
            scores = ops.where(mask, scores, ops.cast(large_negative, scores.dtype))
        weights = ops.softmax(scores, axis=-1)  # (batch, tgt_len, src_len)
        context = ops.matmul(weights, values)  # (batch, tgt_len, value_dim)
        if single_step:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def compute_mask(self, query, previous_mask=None):
        # `mask` describes the source, not the outputs: nothing to pass on.
        return None


@keras.saving.register_keras_serializable(package="nlpapps")
class BahdanauAttention(_Attention):
    """Additive attention (Bahdanau et al., 2015).

    With decoder state `s_i` (`query`) and encoder outputs `h_j` (`values`):

        k_j     = h_j U (+ b)                      # keys, precompute_keys(values)
        e_ij    = v . tanh(s_i W + k_j)
        alpha_i = softmax_j(e_ij), e_ij = -1e9 where mask[j] is False
        c_i     = sum_j alpha_ij h_j

    `W` is `query_kernel`, `U` is `key_kernel`, `v` is `score_kernel`, `b` is `bias`.
    Masked positions get weight exactly 0; a row with every position masked gets
    uniform weights.

    Args:
        units: size of the hidden scoring space (columns of `W` and `U`).
        use_bias: whether to add `b` inside the tanh.
        kernel_initializer: initializer for `W`, `U` and `v`.
        bias_initializer: initializer for `b`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch, query_dim)` for one decoder step, or
            `(batch, tgt_len, query_dim)` for every step at once.
        values: `(batch, src_len, value_dim)`.
        keys: optional `(batch, src_len, units)` from `precompute_keys(values)`.
        mask: optional `(batch, src_len)` bool, True at real source positions.

    Returns:
        `(context, weights)`: `(batch, value_dim)` and `(batch, src_len)` for a
        single-step query, `(batch, tgt_len, value_dim)` and
        `(batch, tgt_len, src_len)` for a sequence query.

    Example:

    >>> attention = BahdanauAttention(8)
    >>> values = np.random.rand(2, 5, 6).astype("float32")
    >>> state = np.random.rand(2, 4).astype("float32")
    >>> attention.build((None, 4), (None, 5, 6))
    >>> keys = attention.precompute_keys(values)  # (2, 5, 8), once per source
    >>> context, weights = attention(state, values, keys=keys)  # (2, 6), (2, 5)

    Reference: Bahdanau, Cho, Bengio, "Neural Machine Translation by Jointly Learning
    to Align and Translate", ICLR 2015.
    """

    def __init__(
        self,
        units,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_units(units)
        if not isinstance(use_bias, bool):
            raise ValueError(f"`use_bias` must be a bool; received use_bias={use_bias!r}")
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = _get_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = _get_initializer("bias_initializer", bias_initializer)

    def build(self, query_shape, values_shape):
        self._check_shapes(query_shape, values_shape)
        self.query_kernel = self.add_weight(
            name="query_kernel",
            shape=(query_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",
            shape=(values_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.score_kernel = self.add_weight(
            name="score_kernel", shape=(self.units,), initializer=self.kernel_initializer
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer
            )

    def precompute_keys(self, values):
        """`h_j U (+ b)` for every source position: `(batch, src_len, units)`."""
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built: call it once or "
                "build(query_shape, values_shape) before precompute_keys()"
            )
        keys = ops.matmul(values, self.key_kernel)
        if self.bias is not None:
            keys = keys + self.bias
        return keys

    def _score(self, query, keys):
        projected = ops.matmul(query, self.query_kernel)  # (batch, tgt_len, units)
        hidden = ops.tanh(
            ops.expand_dims(projected, 2) + ops.expand_dims(keys, 1)
        )  # (batch, tgt_len, src_len, units)
        return ops.sum(hidden * self.score_kernel, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="nlpapps")
class LuongAttention(_Attention):
    """Multiplicative attention (Luong et al., 2015), "general" or "dot" score.

    With decoder state `s_i` (`query`) and encoder outputs `h_j` (`values`):

        k_j     = h_j W        ("general")   or   k_j = h_j   ("dot")
        e_ij    = s_i . k_j
        alpha_i = softmax_j(e_ij), e_ij = -1e9 where mask[j] is False
        c_i     = sum_j alpha_ij h_j

    `W` is `kernel`, `(value_dim, units)`; `k_j` comes from `precompute_keys(values)`.
    "dot" has no weights and needs `query_dim == value_dim`. Masked positions get
    weight exactly 0; a row with every position masked gets uniform weights.

    Args:
        units: size of the keys `k_j`, which must equal `query_dim`; None takes it
            from the query when the layer is built. Only for "general".
        score: "general" (`s_i W^T h_j`) or "dot" (`s_i . h_j`).
        kernel_initializer: initializer for `W`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments and returns are those of `BahdanauAttention`, with `keys` of
    shape `(batch, src_len, query_dim)`.

    Example:

    >>> attention = LuongAttention()
    >>> values = np.random.rand(2, 5, 6).astype("float32")
    >>> states = np.random.rand(2, 3, 4).astype("float32")  # teacher forcing
    >>> context, weights = attention(states, values)  # (2, 3, 6), (2, 3, 5)

    Reference: Luong, Pham, Manning, "Effective Approaches to Attention-based Neural
    Machine Translation", EMNLP 2015.
    """

    SCORES = ("general", "dot")

    def __init__(self, units=None, score="general", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if score not in self.SCORES:
            raise ValueError(f"`score` must be one of {self.SCORES}; received score={score!r}")
        _check_units(units, allow_none=True)
        if score == "dot" and units is not None:
            raise ValueError(
                "`units` must be None for score='dot' (keys are the values); "
                f"received units={units!r}"
            )
        self.units = units
        self.score = score
        self.kernel_initializer = _get_initializer("kernel_initializer", kernel_initializer)

    def build(self, query_shape, values_shape):
        self._check_shapes(query_shape, values_shape)
        query_dim, value_dim = query_shape[-1], values_shape[-1]
        self.kernel = None
        if self.score == "dot":
            if query_dim != value_dim:
                raise ValueError(
                    "score='dot' needs query_dim == value_dim; received query shape "
                    f"{tuple(query_shape)} and values shape {tuple(values_shape)}"
                )
            return
        if self.units is not None and self.units != query_dim:
            raise ValueError(
                f"`units` must equal query_dim={query_dim}; received units={self.units}"
            )
        self.kernel = self.add_weight(
            name="kernel", shape=(value_dim, query_dim), initializer=self.kernel_initializer
        )

    def precompute_keys(self, values):
        """`h_j W` ("general") or `h_j` ("dot"): `(batch, src_len, query_dim)`."""
        if self.score == "dot":
            return values
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built: call it once or "
                "build(query_shape, values_shape) before precompute_keys()"
            )
        return ops.matmul(values, self.kernel)

    def _score(self, query, keys):
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "score": self.score,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
