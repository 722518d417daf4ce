"""Attention encoder-decoder for translation, built only from nlpapps layers."""

import keras
from keras import ops

from nlpapps.layers import (GRU, LSTM, BahdanauAttention, Bidirectional, GRUCell, LSTMCell,
                            LuongAttention, StackedRNN)
from nlpapps.layers.rnn import recurrence
from nlpapps.layers.stacked import stacked_step
from nlpapps.models.tied_output import tied_logits

CELLS = {"lstm": (LSTM, LSTMCell), "gru": (GRU, GRUCell)}
ATTENTIONS = {"bahdanau": BahdanauAttention, "luong": LuongAttention}


@keras.saving.register_keras_serializable(package="nlpapps")
class Seq2Seq(keras.Model):
    """Bidirectional recurrent encoder, attention decoder with input feeding.

    Encoder: `E x` -> `StackedRNN` of `Bidirectional` cells (`units / 2` per direction),
    giving the memory `h_j` (batch, src_len, units). The decoder's initial states are
    `tanh(W_b mean_j h_j)`.

    Decoder step i (Bahdanau, `attention="bahdanau"`), from the previous top state s_{i-1}:

        c_i, alpha_i = attention(s_{i-1}, h)       e_ij = v^T tanh(W s_{i-1} + U h_j)
        s_i = cell([E y_{i-1} ; c_i], s_{i-1})     (stacked cells, residual above the first)
        o_i = tanh(W_o [s_i ; c_i])                 readout, `embedding_dim` wide
        p(y_i) = softmax(o_i E^T + b)               output tied to the embedding E

    With `attention="luong"` the cell reads the previous context (input feeding) and the
    attention uses the new state: `s_i = cell([E y_{i-1} ; c_{i-1}], s_{i-1})`,
    `c_i = attention(s_i, h)`.

    Source and target share one vocabulary and one embedding (a joint SentencePiece model);
    id 0 is padding.

    Args:
        vocab_size: size of the joint vocabulary.
        embedding_dim: width of the embedding and of the readout.
        units: width of the encoder memory and of every decoder cell.
        encoder_layers, decoder_layers: depth of each side.
        cell: "lstm" or "gru".
        attention: "bahdanau" or "luong".
        attention_units: width of the additive attention's hidden layer.
        dropout: dropout on embeddings, between layers and before the readout.

    Call arguments:
        inputs: `(source_ids, target_input_ids)`, int `(batch, src_len)` and
            `(batch, tgt_len)`; the target input starts with bos.

    Returns:
        logits `(batch, tgt_len, vocab_size)`.

    Reference: Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to
    Align and Translate", 2015; Luong, Pham & Manning, "Effective Approaches to
    Attention-based Neural Machine Translation", 2015.
    """

    def __init__(self, vocab_size, embedding_dim=256, units=512, encoder_layers=1,
                 decoder_layers=1, cell="lstm", attention="bahdanau", attention_units=256,
                 dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {sorted(CELLS)}. Received: cell={cell!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"`attention` must be one of {sorted(ATTENTIONS)}. "
                             f"Received: attention={attention!r}")
        if units % 2:
            raise ValueError(f"`units` must be even (half per direction). Received: {units}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.cell = cell
        self.attention_type = attention
        self.attention_units = attention_units
        self.dropout = dropout

        layer_cls, cell_cls = CELLS[cell]
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.encoder = StackedRNN(
            [Bidirectional(layer_cls(units // 2, return_sequences=True), name=f"encoder_{i}")
             for i in range(encoder_layers)],
            residual=True, dropout=dropout, name="encoder")
        self.decoder_cells = [cell_cls(units, name=f"decoder_cell_{i}")
                              for i in range(decoder_layers)]
        self.state_sizes = [size for c in self.decoder_cells for size in c.state_size]
        self.bridge = keras.layers.Dense(sum(self.state_sizes), activation="tanh", name="bridge")
        # The context's share of the first cell's input projection.
        self.context_projection = keras.layers.Dense(
            self.decoder_cells[0].gates * units, use_bias=False, name="context_projection")
        self.attention = (BahdanauAttention(attention_units, name="attention")
                          if attention == "bahdanau" else LuongAttention(name="attention"))
        self.readout = keras.layers.Dense(embedding_dim, activation="tanh", name="readout")
        self.output_bias = self.add_weight(
            name="output_bias", shape=(vocab_size,), initializer="zeros")
        self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        self.encoder.build((None, None, self.embedding_dim))
        self.bridge.build((None, self.units))
        self.context_projection.build((None, self.units))
        self.decoder_cells[0].build((None, self.embedding_dim))
        for cell in self.decoder_cells[1:]:
            cell.build((None, self.units))
        self.attention.build((None, self.units), (None, None, self.units))
        self.readout.build((None, 2 * self.units))
        self.built = True

    # -- encoder ---------------------------------------------------------------------------

    def encode(self, source_ids, training=False):
        """Returns `(memory, states)`: the attention memory and the decoder's first states.

        memory: `{"values": (batch, src_len, units), "keys": (batch, src_len, attn),
        "mask": (batch, src_len) bool}`; states: the flat list of decoder states plus the
        zero context `(batch, units)` last.
        """
        mask = ops.not_equal(source_ids, 0)
        x = self.dropout_layer(self.embedding(source_ids), training=training)
        values = self.encoder(x, mask=mask, training=training)  # (batch, src_len, units)
        weights = ops.expand_dims(ops.cast(mask, values.dtype), -1)
        mean = ops.sum(values * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        states = ops.split(self.bridge(mean), len(self.state_sizes), axis=-1)
        memory = {"values": values, "keys": self.attention.precompute_keys(values),
                  "mask": mask}
        return memory, list(states) + [ops.zeros_like(values[:, 0])]

    # -- decoder ---------------------------------------------------------------------------

    def _decoder_step(self, embedded_projection, states, memory, training=False):
        """One decoder step from the first cell's projected embedding `(batch, gates*units)`.

        Returns `(features (batch, 2 units), attention weights (batch, src_len), new states)`.
        """
        *cell_states, previous_context = states
        if self.attention_type == "bahdanau":
            context, weights = self.attention(
                cell_states[len(self.decoder_cells[0].state_size) * (self.decoder_layers - 1)],
                memory["values"], keys=memory["keys"], mask=memory["mask"])
            fed = context
        else:
            fed = previous_context
        projected = embedded_projection + self.context_projection(fed)
        per_layer, offset = [], 0
        for cell in self.decoder_cells:  # the flat states, one list per layer
            per_layer.append(cell_states[offset:offset + len(cell.state_size)])
            offset += len(cell.state_size)
        # The stack's one step: dropout between layers, residual connections above the first.
        x, per_layer = stacked_step(
            self.decoder_cells, per_layer, projected=projected,
            between=lambda inputs: self.dropout_layer(inputs, training=training))
        new_states = [state for layer_states in per_layer for state in layer_states]
        if self.attention_type == "luong":
            context, weights = self.attention(
                x, memory["values"], keys=memory["keys"], mask=memory["mask"])
        return ops.concatenate([x, context], axis=-1), weights, new_states + [context]

    def _logits(self, features, training=False, output_kernel=None):
        readout = self.readout(self.dropout_layer(features, training=training))
        if output_kernel is not None:
            return ops.matmul(readout, output_kernel) + self.output_bias
        return tied_logits(readout, self.embedding.embeddings, self.output_bias)

    def with_output_kernel(self, memory):
        """`memory` (from `encode`, tiled or not) with the output layer's matrix transposed
        once, `E^T (embedding_dim, vocab)`, which `decode_step` then multiplies as it is.

        For batched decoding in TensorFlow: on CPU a matmul that transposes its operand costs
        more per step than the transposed copy costs once (3.7 against 2.3 ms for 32 rows and
        8,000 words). Not for a LiteRT graph, whose FULLY_CONNECTED takes the matrix as
        stored, and which would hold it twice."""
        return {**memory, "output_kernel": ops.transpose(self.embedding.embeddings)}

    def decode_step(self, token_ids, states, memory):
        """Inference step: `(batch,)` previous tokens -> `(logits (batch, vocab),
        new states, attention weights (batch, src_len))`."""
        embedded = self.embedding(token_ids)
        features, weights, states = self._decoder_step(
            self.decoder_cells[0].project_inputs(embedded), states, memory)
        return self._logits(features, output_kernel=memory.get("output_kernel")), states, \
            weights

    def call(self, inputs, training=False):
        source_ids, target_ids = inputs
        memory, states = self.encode(source_ids, training=training)
        embedded = self.dropout_layer(self.embedding(target_ids), training=training)
        projected = self.decoder_cells[0].project_inputs(embedded)  # (batch, tgt, gates*units)
        projected = ops.transpose(projected, (1, 0, 2))  # (tgt, batch, gates*units)
        # Teacher forcing: the one time loop of the recurrent layers, over the decoder's step.
        _, features, _ = recurrence(
            lambda p, s: self._decoder_step(p, s, memory, training=training)[::2],
            projected, states, return_sequences=True, output_size=2 * self.units)
        return self._logits(ops.transpose(features, (1, 0, 2)), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "cell": self.cell,
            "attention": self.attention_type,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
        }


def output_length_limit(source_ids):
    """Each row's longest translation: twice its real source tokens plus 10, `(batch,)`."""
    source_length = ops.sum(ops.cast(ops.not_equal(source_ids, 0), "int32"), axis=1)
    return 2 * source_length + 10


