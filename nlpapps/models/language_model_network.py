"""Recurrent language model over token ids, built only from nlpapps layers."""

import keras

from nlpapps.layers import GRU, LSTM, CausalSelfAttention, StackedRNN
from nlpapps.models.tied_output import tied_logits

CELLS = {"lstm": LSTM, "gru": GRU}


@keras.saving.register_keras_serializable(package="nlpapps")
class LanguageModel(keras.Model):
    """Embedding, a stack of recurrent layers and a softmax readout tied to the embedding.

    With `E` the embedding `(vocab_size, embedding_dim)` and `y_t` the token at position t:

        x_t = drop(E y_t)
        h_t = StackedRNN(x_1 .. x_t)               LSTM or GRU layers, residual between layers
                                                   of equal width, dropout between layers
        a_t = LN([h_t; E y_t])                     with `attention_memory`: the state and
                                                   the embedding of the token read
        h_t = h_t + g Attn(a_1 .. a_t)             causal self-attention over the window and
                                                   the memory of the a of earlier windows
        o_t = drop(h_t) P                          projection, only when tied and units differ
        logits_t = o_t E^T + b                     tied (`tie_embeddings`)
        logits_t = drop(h_t) W + b                 untied

    and `p(y_{t+1} | y_1 .. y_t) = softmax(logits_t)`. Tying the output to the embedding saves
    `vocab_size * embedding_dim` weights and regularizes (Press & Wolf 2017, Inan et al. 2017).

    The model reads text of any length in windows: `call` takes the states where the previous
    window stopped and returns the states it stops in (truncated backpropagation through time).
    `step` reads one token per row, for decoding loops.

    The attention block (`CausalSelfAttention`, as the attention of SHA-RNN, Merity 2019) sits
    after the top recurrent layer: layer norm, attention, a residual connection scaled by a
    learned scalar `g`. The block reads the top state and the embedding of the token read,
    side by side, and each position is keyed by the one before it (`previous_keys`): a query
    finds where a context like the current one occurred and reads the token that came next
    there, its embedding itself, which the readout tied to the embedding turns back into that
    token (a pointer, as a neural cache's, Grave et al. 2017, learned). The query projection
    starts as the identity, so the block starts by attending to the most similar contexts.
    The output projection `W_o` starts at zero and `g` at one, so a model warm-started from
    one without attention starts with that model's predictions, while `W_o` gets a gradient
    from the first step (a zero gate, as ReZero's, would leave the block's weights without one
    until the gate has moved). Its memory, the last `attention_memory` vectors `a`, is one more
    entry of the states: carried, reset and returned as the recurrent states are.

    Args:
        vocab_size: size of the vocabulary.
        embedding_dim: width of the embedding (and of the projection when tied).
        units: width of every recurrent layer.
        num_layers: depth of the stack.
        cell: "lstm" or "gru".
        dropout: dropout on the embeddings, between layers and before the readout.
        recurrent_dropout: variational dropout on each layer's previous output inside its
            recurrent matmul (one mask per window; Gal & Ghahramani 2016).
        tie_embeddings: use the embedding matrix as the output matrix.
        attention_memory: None for no attention block; else the memory length M of its
            self-attention (0: the current window alone).
        attention_dropout: dropout on the attention weights.

    Call arguments:
        token_ids: int `(batch, time)`.
        initial_state: optional states to start from (`initial_states(batch)` structure): one
            list per layer of `(batch, units)` tensors (h, and c for LSTM), then, with
            attention, `[memory (batch, M, units + embedding_dim), validity (batch, M)]`.
        mask: optional `(batch, time)` bool; at a masked position the states are carried over.
        training: whether dropout is active.
        return_state: also return the final states.

    Returns:
        logits `(batch, time, vocab_size)`; with `return_state`, `(logits, states)`.

    Example:
        >>> model = LanguageModel(vocab_size=50, embedding_dim=8, units=16, num_layers=2)
        >>> logits, states = model(ops.ones((2, 7), "int32"), return_state=True)
        >>> logits.shape
        (2, 7, 50)
        >>> logits, states = model(ops.ones((2, 7), "int32"), initial_state=states,
        ...                        return_state=True)  # the next window

    Reference: Zaremba, Sutskever & Vinyals, "Recurrent Neural Network Regularization", 2014;
    Press & Wolf, "Using the Output Embedding to Improve Language Models", 2017.
    """

    def __init__(self, vocab_size, embedding_dim=256, units=512, num_layers=2, cell="lstm",
                 dropout=0.2, tie_embeddings=True, recurrent_dropout=0.0, attention_memory=None,
                 attention_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {sorted(CELLS)}. Received: cell={cell!r}")
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.recurrent_dropout = recurrent_dropout
        self.attention_memory = attention_memory
        self.attention_dropout = attention_dropout

        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.rnn = StackedRNN([CELLS[cell](units, return_sequences=True,
                                           recurrent_dropout=recurrent_dropout,
                                           name=f"{cell}_{i}")
                               for i in range(num_layers)],
                              residual=True, dropout=dropout, return_state=True, name="rnn")
        self.attention = self.attention_norm = self.attention_gate = None
        if attention_memory is not None:
            self.attention_norm = keras.layers.LayerNormalization(name="attention_norm")
            self.attention = CausalSelfAttention(
                attention_memory, output_dim=units, dropout=attention_dropout,
                previous_keys=True,
                kernel_initializer="identity", output_initializer="zeros", return_state=True,
                name="attention")
            # A weight of the model itself: a reader that knows no attention block finds one
            # weight more than it expects and refuses the file instead of ignoring the block.
            self.attention_gate = self.add_weight(name="attention_gate", shape=(),
                                                  initializer="ones")
        self.projection = None
        if tie_embeddings and units != embedding_dim:
            self.projection = keras.layers.Dense(embedding_dim, name="projection")
        self.output_layer = None if tie_embeddings else keras.layers.Dense(
            vocab_size, name="output")
        self.output_bias = self.add_weight(
            name="output_bias", shape=(vocab_size,), initializer="zeros") \
            if tie_embeddings else None
        self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        self.rnn.build((None, None, self.embedding_dim))
        if self.attention is not None:
            width = self.units + self.embedding_dim  # a state and a token's embedding
            self.attention_norm.build((None, None, width))
            self.attention.build((None, None, width))
        if self.projection is not None:
            self.projection.build((None, self.units))
        if self.output_layer is not None:
            self.output_layer.build((None, self.units))
        self.built = True

    @property
    def cells(self):
        return [layer.cell for layer in self.rnn.layers]

    def initial_states(self, batch_size):
        """Zero states: one list per layer of `(batch, units)` tensors (and an empty
        attention memory)."""
        states = [cell.get_initial_state(batch_size) for cell in self.cells]
        if self.attention is not None:
            states.append(self.attention.get_initial_state(batch_size))
        return states

    def _recurrent(self, x, initial_state, mask=None, training=False):
        """The stack and the attention block: `(outputs (batch, time, units), states)`."""
        layers = None if initial_state is None else initial_state[:self.num_layers]
        outputs, states = self.rnn(x, initial_state=layers, mask=mask,
                                   training=training and self.rnn.trainable)
        if self.attention is None:
            return outputs, states
        memory = None if initial_state is None else initial_state[self.num_layers]
        attended, *memory = self.attention(self.attention_inputs(outputs, x),
                                           initial_state=memory, mask=mask, training=training)
        return outputs + self.attention_gate * attended, [*states, memory]

    def attention_inputs(self, outputs, embedded):
        """What the attention block reads and remembers: `LN([h; E y])`, the top states
        `(..., units)` beside the embeddings of the tokens read `(..., embedding_dim)`."""
        return self.attention_norm(keras.ops.concatenate([outputs, embedded], axis=-1))

    def readout(self, outputs, training=False):
        """Logits `(..., vocab_size)` of the top layer's outputs `(..., units)`."""
        outputs = self.dropout_layer(outputs, training=training)
        if self.output_layer is not None:
            return self.output_layer(outputs)
        if self.projection is not None:
            outputs = self.projection(outputs)  # (..., embedding_dim)
        return tied_logits(outputs, self.embedding.embeddings, self.output_bias)

    def call(self, token_ids, initial_state=None, mask=None, training=False, return_state=False):
        # A frozen stack runs as in inference, as a frozen BatchNormalization does in Keras:
        # the layers above it learn from the states they will meet at evaluation.
        x = self.dropout_layer(self.embedding(token_ids),
                               training=training and self.rnn.trainable)
        outputs, states = self._recurrent(x, initial_state, mask=mask, training=training)
        logits = self.readout(outputs, training=training)  # (batch, time, vocab_size)
        return (logits, states) if return_state else logits

    def features(self, token_ids, initial_state=None):
        """The top layer's outputs `(batch, time, units)`, which `readout` turns into logits,
        and the final states; no dropout."""
        return self._recurrent(self.embedding(token_ids), initial_state)

    def advance(self, token_ids, initial_state=None, mask=None):
        """The states after reading `token_ids` `(batch, time)` (masked positions skipped),
        without computing the logits: for a prompt before decoding."""
        _, states = self._recurrent(self.embedding(token_ids), initial_state, mask=mask)
        return states

    def step(self, token_ids, states, litert=False):
        """Reads one token per row: `(batch,)` ids and states -> `(logits (batch, vocab),
        new states)`. The same function as `call` on a window of length one.
        `litert`: computed as LiteRT runs it faster (see `CausalSelfAttention.step`)."""
        embedded = self.embedding(token_ids)  # (batch, embedding_dim)
        x, new_states = self.rnn.step(embedded, states[:self.num_layers])
        if self.attention is not None:
            attended, memory = self.attention.step(self.attention_inputs(x, embedded),
                                                   states[self.num_layers],
                                                   litert=litert)
            x = x + self.attention_gate * attended
            new_states.append(memory)
        return self.readout(x), new_states

    def block_step(self, token_ids, states, memory, filled):
        """`step(litert=True)` with the attention memory kept in blocks, for
        `decoding.decode_in_blocks`: `states` ends with the attention block `(batch, K,
        features)` in place of the memory, and `memory` (`[memory, validity]`) is only read
        (`CausalSelfAttention.block_step`). The same logits as `step` up to rounding."""
        embedded = self.embedding(token_ids)  # (batch, embedding_dim)
        x, new_states = self.rnn.step(embedded, states[:self.num_layers])
        attended, block = self.attention.block_step(self.attention_inputs(x, embedded), memory,
                                                    states[self.num_layers], filled)
        return self.readout(x + self.attention_gate * attended), [*new_states, block]

    def filled_memory(self, memory, granule):
        """The part of the attention memory `block_step` needs to read: its filled slots
        (`CausalSelfAttention.filled_part`)."""
        return self.attention.filled_part(memory, granule)

    def merge_block(self, memory, states, filled):
        """The attention memory after the `filled` positions of the block that ends
        `states` (see `block_step`)."""
        return self.attention.merge_block(memory, states[self.num_layers], filled)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings,
            "recurrent_dropout": self.recurrent_dropout,
            "attention_memory": self.attention_memory,
            "attention_dropout": self.attention_dropout,
        }
