"""Causal single-head self-attention over the current window and a memory of past windows."""

import keras
from keras import initializers, ops
from keras.src.utils.tracking import no_automatic_dependency_tracking

NEG_INF = -1e9  # added to the scores of the positions a query may not see


@keras.saving.register_keras_serializable(package="nlpapps")
class CausalSelfAttention(keras.layers.Layer):
    """Single-head causal self-attention whose keys and values are the states themselves,
    over the current window and a memory of the states of the windows before (after the
    attention of SHA-RNN, Merity 2019, with the memory of Transformer-XL, Dai et al. 2019).

    With the window `x_1 .. x_T` `(batch, T, d)`, the memory `m_1 .. m_M` `(batch, M, d)`
    (oldest first) and its validity `v_1 .. v_M` (1 where a slot holds a state, 0 where it is
    still empty), `sg` the stop-gradient:

        s       = [sg(m_1) .. sg(m_M), x_1 .. x_T]              values, (M + T, d)
        k_j     = s_j, or s_{j-1} with `previous_keys`          keys
        q_t     = x_t W_q + b_q                                 query, (d,)
        e_tj    = q_t . k_j / sqrt(d)
        allowed = v_j for a memory slot j; j <= t and x_j real for window position j
                  (with `previous_keys`, also s_{j-1} real: the oldest slot is a key only)
        a_tj    = softmax_j(e_tj over the allowed j)
        o_t     = (sum_j a_tj s_j) W_o + b_o                    (output_dim,)
        m'      = sg(the last M real entries of s)              the memory after the window

    Only the query and the output are projected: a key projection `W_k` would add nothing the
    bilinear form `x_t W_q s_j^T` lacks, and keys that are the states themselves make the
    memory cost no matmul per window. The causal mask lets position t see itself and the
    positions before it, never a later one; the memory holds only earlier windows. Masked
    positions of the window are neither attended nor written to the memory (their outputs are
    zeros), so a padded batch leaves in its memory what its real tokens alone would.

    With `previous_keys`, the key of a position is the state before it and its value the state
    at it: a query finds the places where a context like its own occurred and reads what came
    next there, as a neural cache does (Grave et al. 2017) and as an induction head of two
    attention layers learns to. A mask is taken to be right padding (real positions first,
    as in the language model's batches): the key of a position is the entry of `s` before it.

    The memory is the layer's state, passed and returned as the recurrent layers pass theirs:
    reading a text window by window with `initial_state` = the state the previous window
    returned gives the outputs of one pass over the whole text while at most M states are
    behind the window. With `stateful=True` the layer carries it itself from call to call
    (a fixed batch size), and `reset_state()` empties it.

    Args:
        memory_length: M, the states of earlier windows kept (0: the window alone).
        output_dim: width of `o_t`; the input width d by default.
        dropout: fraction of the attention weights `a_tj` dropped in training.
        return_state: also return the memory after the window.
        previous_keys: key each position with the state before it (see above).
        stateful: carry the memory from one call to the next in non-trainable variables.
        kernel_initializer: of `W_q`.
        output_initializer: of `W_o`; "zeros" makes a residual block start as the identity.
        seed: seed of the dropout.

    Call arguments:
        inputs: `(batch, T, d)`.
        initial_state: optional `[memory (batch, M, d), validity (batch, M)]`; an empty
            memory (`get_initial_state`) by default.
        mask: optional `(batch, T)` bool, True at real positions.
        training: whether dropout is active.
        return_attention: also return the weights `a` `(batch, T, M + T)`, memory slots first.

    Returns:
        `o` `(batch, T, output_dim)`; with `return_state`, `[o, memory, validity]`; the
        attention weights last where asked for.

    Example:
        >>> layer = CausalSelfAttention(memory_length=1024, return_state=True)
        >>> out, memory, valid = layer(keras.ops.ones((2, 64, 32)))
        >>> out, memory, valid = layer(keras.ops.ones((2, 64, 32)),
        ...                            initial_state=[memory, valid])  # the next window

    Reference: Merity, "Single Headed Attention RNN: Stop Thinking With Your Head", 2019;
    Dai et al., "Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context",
    ACL 2019.
    """

    def __init__(self, memory_length, output_dim=None, dropout=0.0, return_state=False,
                 stateful=False, kernel_initializer="glorot_uniform",
                 output_initializer="glorot_uniform", seed=None, previous_keys=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(memory_length, bool) or not isinstance(memory_length, int) \
                or memory_length < 0:
            raise ValueError("`memory_length` must be a non-negative integer. Received: "
                             f"memory_length={memory_length!r}")
        if output_dim is not None and (not isinstance(output_dim, int) or output_dim < 1):
            raise ValueError("`output_dim` must be a positive integer or None. Received: "
                             f"output_dim={output_dim!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.memory_length = memory_length
        self.output_dim = output_dim
        self.dropout = dropout
        self.return_state = return_state
        self.stateful = stateful
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.output_initializer = initializers.get(output_initializer)
        self.seed = seed
        self.previous_keys = previous_keys
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self._set_states(None)

    @no_automatic_dependency_tracking
    def _set_states(self, states):
        # Untracked, as the recurrent layers' carried states: not weights.
        self.states = states

    def build(self, input_shape):
        d = input_shape[-1]
        self.units = d
        out = self.output_dim or d
        self.query_kernel = self.add_weight(name="query_kernel", shape=(d, d),
                                            initializer=self.kernel_initializer)
        self.query_bias = self.add_weight(name="query_bias", shape=(d,), initializer="zeros")
        self.output_kernel = self.add_weight(name="output_kernel", shape=(d, out),
                                             initializer=self.output_initializer)
        self.output_bias = self.add_weight(name="output_bias", shape=(out,),
                                           initializer="zeros")
        if self.stateful:
            if input_shape[0] is None:
                raise ValueError(f"{self.name}: stateful=True needs a fixed batch size; "
                                 f"received input shape {tuple(input_shape)}")
            self._set_states([keras.Variable(state, trainable=False, name="memory")
                              for state in self.get_initial_state(input_shape[0])])
        self.built = True

    def get_initial_state(self, batch_size):
        """An empty memory: `[zeros (batch, M, d), zeros (batch, M)]`."""
        return [ops.zeros((batch_size, self.memory_length, self.units), self.compute_dtype),
                ops.zeros((batch_size, self.memory_length), self.compute_dtype)]

    def reset_state(self):
        """Empties the memory of a stateful layer (nothing otherwise)."""
        for state in self.states or []:
            state.assign(ops.zeros_like(state.value))

    def call(self, inputs, initial_state=None, mask=None, training=False,
             return_attention=False):
        outputs, new_state, weights = self._window(inputs, initial_state, mask, training)
        self._keep(new_state)
        result = [outputs, *new_state] if self.return_state else [outputs]
        if return_attention:
            result.append(weights)
        return result[0] if len(result) == 1 else result

    def _initial(self, initial_state, batch):
        if initial_state is not None:
            return initial_state
        return self.states if self.states is not None else self.get_initial_state(batch)

    def _keep(self, new_state):
        """A stateful layer's memory := `new_state`."""
        if self.states is not None:
            for variable, state in zip(self.states, new_state):
                variable.assign(state)

    def _window(self, inputs, initial_state, mask=None, training=False):
        """`(outputs, new memory, attention weights)` of a window."""
        batch, time = ops.shape(inputs)[0], ops.shape(inputs)[1]
        # Without a memory given or kept, it is empty: only the window is read (the same
        # weights, those of the empty slots being 0), as a prompt's first window is.
        empty = initial_state is None and self.states is None
        initial_state = self._initial(initial_state, batch)
        memory, valid = (ops.cast(state, self.compute_dtype) for state in initial_state)
        real = ops.ones((batch, time), self.compute_dtype) if mask is None \
            else ops.cast(mask, self.compute_dtype)  # (batch, T)
        sources = ops.concatenate([ops.stop_gradient(memory), inputs], axis=1)  # (b, M + T, d)
        source_valid = ops.concatenate([valid, real], axis=1)  # (batch, M + T)
        read, read_valid, slots = (inputs, real, 0) if empty \
            else (sources, source_valid, self.memory_length)

        queries = ops.matmul(inputs, self.query_kernel) + self.query_bias  # (batch, T, d)
        scores = ops.einsum("btd,bsd->bts", queries, read) \
            / ops.sqrt(ops.cast(self.units, self.compute_dtype))  # (batch, T, slots + T)
        key_valid = read_valid
        if self.previous_keys:
            # Each position keyed by the one before it: q_t . s_{j-1} is the score of j - 1
            # moved one place on, so the shifted keys are never built (M + T rows of d).
            scores = ops.concatenate([ops.zeros_like(scores[..., :1]), scores[..., :-1]], -1)
            key_valid = read_valid * ops.concatenate(
                [ops.zeros_like(read_valid[:, :1]), read_valid[:, :-1]], axis=1)
        # Window position j is visible from t when j <= t; memory slots always are.
        causal = ops.arange(time)[:, None] >= ops.arange(time)[None, :]  # (T, T)
        causal = ops.concatenate([ops.ones((time, slots), "bool"), causal], 1)
        allowed = ops.logical_and(causal[None], ops.cast(key_valid[:, None, :], "bool"))
        weights = ops.softmax(ops.where(allowed, scores, NEG_INF), axis=-1)
        weights = weights * ops.cast(allowed, weights.dtype)
        dropped = weights
        if training and self.dropout > 0:
            dropped = keras.random.dropout(weights, self.dropout, seed=self.seed_generator)
        context = ops.einsum("bts,bsd->btd", dropped, read)  # (batch, T, d)
        outputs = (ops.matmul(context, self.output_kernel) + self.output_bias) * real[..., None]
        if empty:  # the weights of the memory's slots, all 0
            weights = ops.concatenate(
                [ops.zeros((batch, time, self.memory_length), weights.dtype), weights], -1)
        return outputs, self._next_memory(sources, source_valid, mask is not None), weights

    def _next_memory(self, sources, source_valid, masked):
        """The last M real entries of `sources` (oldest first) and their validity."""
        m = self.memory_length
        if masked:
            # Real entries last, each group in its order: the keys are distinct, so any sort
            # keeps the order.
            length = ops.shape(sources)[1]
            order = ops.argsort(source_valid * ops.cast(length, source_valid.dtype)
                                + ops.cast(ops.arange(length), source_valid.dtype), axis=-1)
            order = order[:, length - m:] if m else order[:, :0]
            sources = ops.take_along_axis(sources, order[..., None], axis=1)
            source_valid = ops.take_along_axis(source_valid, order, axis=1)
            memory, valid = sources, source_valid
            memory = memory * valid[..., None]  # empty slots hold zeros, not padding
        else:  # the window is all real, and the memory's empty slots already hold zeros
            # Counted from the end: LiteRT copies a slice whose start is known only when it
            # runs twenty times slower than one with a constant start.
            memory = sources[:, -m:] if m else sources[:, :0]
            valid = source_valid[:, -m:] if m else source_valid[:, :0]
        # M rows whatever the window's length: a static shape, so that a decoding loop that
        # starts from this memory carries a tensor of static shape (LiteRT runs a loop
        # variable of unknown shape as a dynamic tensor, reallocated at every step).
        batch, _, d = ops.shape(sources)
        memory, valid = ops.reshape(memory, (batch, m, d)), ops.reshape(valid, (batch, m))
        return [ops.stop_gradient(memory), ops.stop_gradient(valid)]

    def step(self, inputs, initial_state=None, litert=False):
        """One position per row, for decoding loops: `inputs` `(batch, d)` and the memory
        `[memory (batch, M, d), validity (batch, M)]` -> `(outputs (batch, output_dim),
        [memory, validity])`, the memory after the position: `call` on a window of one
        unmasked position (without dropout), whatever `return_state`.

        Two computations of it, each the faster where it runs (measured at the language
        model's M = 1024, d = 768, batch 1; docs/benchmarks.md): by default the window's,
        which TensorFlow runs faster; with `litert`, one for a graph converted to LiteRT. It
        builds neither the `M + 1` sources `[m_1 .. m_M, x]` nor their scores: the memory is
        scored where it is, the context is a broadcast multiply and a sum over rows (LiteRT's
        BATCH_MATMUL would copy the memory, a right operand it does not take transposed, into
        a transposed buffer at every call), and the memory after the step is built once.
        With `previous_keys`, `m_i` keys `m_{i+1}` and `m_M` keys `x`: the score `q . m_i` is
        that of the value after slot i, so the values are the memory after the step,
        `[m_2 .. m_M, x]`; the oldest slot is a key only.
        """
        batch, m, d = ops.shape(inputs)[0], self.memory_length, self.units
        if not litert or m == 0:
            outputs, new_state, _ = self._window(inputs[:, None], initial_state)
            self._keep(new_state)
            return outputs[:, 0], new_state
        memory, valid = (ops.cast(state, self.compute_dtype)
                         for state in self._initial(initial_state, batch))
        memory = ops.stop_gradient(ops.reshape(memory, (batch, m, d)))
        valid = ops.reshape(valid, (batch, m))
        ones = ops.ones((batch, 1), self.compute_dtype)
        scale = ops.sqrt(ops.cast(self.units, self.compute_dtype))

        queries = ops.matmul(inputs, self.query_kernel) + self.query_bias  # (batch, d)
        # q . m_i: the memory is the transposed operand of the matmul, read where it is
        memory_scores = ops.einsum("btd,bsd->bts", queries[:, None], memory)[:, 0] / scale
        new_state = [ops.stop_gradient(ops.concatenate([memory[:, 1:], inputs[:, None]], 1)),
                     ops.concatenate([valid[:, 1:], ones], axis=1)]
        if self.previous_keys:
            # Score i belongs to the value after m_i: row i of the memory after the step.
            scores, allowed = memory_scores, valid * new_state[1]  # (batch, M)
        else:
            input_scores = ops.sum(queries * inputs, axis=-1, keepdims=True) / scale
            scores = ops.concatenate([memory_scores, input_scores], axis=1)  # (batch, M + 1)
            allowed = ops.concatenate([valid, ones], axis=1)
        weights = ops.softmax(ops.where(ops.cast(allowed, "bool"), scores, NEG_INF), axis=-1)
        weights = weights * allowed
        if self.previous_keys:
            context = ops.sum(weights[..., None] * new_state[0], axis=1)  # (batch, d)
        else:
            context = ops.sum(weights[:, :-1, None] * memory, axis=1) + weights[:, -1:] * inputs
        # As the window's product (batch, 1, d) x (d, out): LiteRT then keeps one copy of W_o.
        outputs = ops.matmul(context[:, None], self.output_kernel)[:, 0] + self.output_bias
        self._keep(new_state)
        return outputs, new_state

    def block_step(self, inputs, memory_state, block, filled):
        """`step` for a decoding loop that keeps the memory in blocks, which LiteRT runs
        faster than one that rewrites the memory at every step: the memory is only read, and
        the positions read since it was last rewritten are kept in a small block, written into
        the memory once per block (`merge_block`).

        With the memory `m_1 .. m_M`, the block `b_1 .. b_K` of which the first `n = filled`
        rows are positions already read, and `x` written at row `n + 1`, the entries
        `s = [m_1 .. m_M, b_1 .. b_K]` hold the memory before the step in `s_{n+1} .. s_{M+n}`
        (validity: `m`'s own, then 1) and `x` in `s_{M+n+1}`. The step attends over those
        entries as `step` does over `[m_1 .. m_M, x]` (`previous_keys`: key `s_j`, value
        `s_{j+1}`): the same outputs, without building `s`; the scores and the context are
        taken from `m` and `b` apart.

        The memory may be given as its last `V <= M` slots when the slots before them are
        empty (`filled_part`): empty slots get no weight, so they need not be read.

        Args:
            inputs: `(batch, d)`.
            memory_state: `[memory (batch, V, d), validity (batch, V)]`, only read.
            block: `(batch, K, d)`; its rows from `filled` on are unused.
            filled: scalar int32 in `[0, K)`, the positions read since the memory was
                written.

        Returns:
            `(outputs (batch, output_dim), block)` with `inputs` at row `filled`.
        """
        batch, d = ops.shape(inputs)[0], self.units
        k = ops.shape(block)[1]
        memory, valid = (ops.cast(state, self.compute_dtype) for state in memory_state)
        memory = ops.stop_gradient(memory)
        v = ops.shape(memory)[1]
        here = ops.equal(ops.arange(k), filled)  # (K,)
        block = ops.where(here[None, :, None], inputs[:, None], block)
        scale = ops.sqrt(ops.cast(d, self.compute_dtype))

        queries = ops.matmul(inputs, self.query_kernel) + self.query_bias  # (batch, d)
        # q . s_j as a broadcast multiply and a sum over features, which LiteRT runs faster
        # than a matmul over the memory (docs/benchmarks.md).
        scores = ops.concatenate([ops.sum(memory * queries[:, None], axis=-1),
                                  ops.sum(block * queries[:, None], axis=-1)], axis=1) / scale
        # s_j's validity: the memory's own from slot n + 1 on (slot M - V + 1 is the view's
        # first), then the block's rows up to x.
        index = ops.arange(v + k)
        window = (index >= filled - (self.memory_length - v)) & (index <= v + filled)
        entries = ops.concatenate([valid, ops.ones((batch, k), self.compute_dtype)], axis=1)
        entries = entries * ops.cast(window, self.compute_dtype)[None]
        if self.previous_keys:  # s_j is a key where s_{j + 1} is a value too
            allowed = entries * ops.concatenate([entries[:, 1:], entries[:, :1] * 0], 1)
        else:
            allowed = entries
        weights = ops.softmax(ops.where(ops.cast(allowed, "bool"), scores, NEG_INF), axis=-1)
        weights = weights * allowed
        if self.previous_keys:  # the weight of key s_j goes to the value s_{j + 1}
            weights = ops.concatenate([weights[:, :1] * 0, weights[:, :-1]], axis=1)
        context = ops.sum(weights[:, :v, None] * memory, axis=1) \
            + ops.sum(weights[:, v:, None] * block, axis=1)  # (batch, d)
        outputs = ops.matmul(context[:, None], self.output_kernel)[:, 0] + self.output_bias
        return outputs, block

    def filled_part(self, memory_state, granule):
        """The memory's last slots from its first filled one, that position rounded down to a
        multiple of `granule` (so that the length changes seldom), for `block_step`: a memory
        fills from its end (the slots before its states are empty)."""
        memory, valid = memory_state
        empty = self.memory_length - ops.cast(ops.max(ops.sum(valid, axis=1)), "int32")
        # A gather: LiteRT copies a slice whose start is known only when it runs twenty times
        # slower.
        rows = ops.arange(empty // granule * granule, self.memory_length)
        return [ops.take(memory, rows, axis=1), ops.take(valid, rows, axis=1)]

    def merge_block(self, memory_state, block, filled):
        """The memory after the `filled` positions of `block` (`block_step`): the last M of
        `[m_1 .. m_M, b_1 .. b_filled]` and their validity, as `[memory, validity]`."""
        memory, valid = memory_state
        batch, k = ops.shape(block)[0], ops.shape(block)[1]
        written = ops.cast(ops.arange(k) < filled, valid.dtype)[None]  # (1, K)
        rows = filled + ops.arange(self.memory_length)  # the M entries kept
        memory = ops.take(ops.concatenate([memory, ops.cast(block, memory.dtype)], 1), rows,
                          axis=1)
        valid = ops.take(ops.concatenate([valid, ops.tile(written, (batch, 1))], 1), rows,
                         axis=1)
        return [memory, valid]

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, time, d = inputs_shape
        output = (batch, time, self.output_dim or d)
        if not self.return_state:
            return output
        return [output, (batch, self.memory_length, d), (batch, self.memory_length)]

    def compute_mask(self, inputs, mask=None):
        return [mask, None, None] if self.return_state else mask

    def get_config(self):
        return {**super().get_config(), "memory_length": self.memory_length,
                "output_dim": self.output_dim, "dropout": self.dropout,
                "return_state": self.return_state, "stateful": self.stateful,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "output_initializer": initializers.serialize(self.output_initializer),
                "seed": self.seed, "previous_keys": self.previous_keys}
