"""`TranslatorModule`: the translator as a string-in/string-out graph, which the SavedModel
serves and TFLite converts.

The SavedModel holds the tokenizer (`tensorflow_text.FastSentencepieceTokenizer`), the
weights and the decoding loops, so it runs with `tensorflow` and `tensorflow_text` alone:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    model = tf.saved_model.load("saved_models/translator-en-de")
    model.signatures["serving_default"](inputs=tf.constant(["Where is the station?"]))

Its batch-1 signatures (`translate_one`, `translate_beam_one`, and `encode` / `decode_step` /
`detokenize` for apps that drive the loop themselves) have static shapes but the lengths,
which is what TFLite needs: `nlpapps.export.tflite` converts them from the SavedModel folder
alone. `nlpapps.export.translator_folder` writes the SavedModel of a trained translator.
"""

from __future__ import annotations

import tensorflow as tf

from nlpapps import decoding
from nlpapps.decoding_limits import BEAM_ONE_SIZE, MAX_SOURCE_TOKENS
from nlpapps.graph_tokenizer import GraphTokenizer
from nlpapps.models.seq2seq import output_length_limit
from nlpapps.tokenizer import BOS_ID, EOS_ID, Tokenizer


class TranslatorModule(tf.Module):
    """A translator as a `tf.Module` with string signatures.

    Signatures:
        serving_default(inputs: string[batch]) -> {outputs: string[batch], scores: float[batch],
            truncated: bool[batch]}
            greedy translation; scores are the log-probability of each output; truncated says
            which inputs were longer than MAX_SOURCE_TOKENS tokens (eos included), of which
            only the beginning is translated.
        translate(inputs: string[batch], beam_size: int32, alpha: float32) ->
            {outputs: string[batch, beam], scores, target_ids: int32[batch, beam, steps],
             source_ids: int32[batch, src_len], attention: float[batch, beam, steps, src_len],
             truncated}
            beam search, best first (beam_size 1 is greedy), with what a plot needs;
            beam_size must be in [1, decoding.MAX_BEAM] and alpha finite and >= 0 (an
            InvalidArgumentError says which otherwise).

    An empty batch gives an empty batch. A translation holds at least `decoding.MIN_DECODING_LENGTH`
    tokens before eos, in every signature, so an input with text never comes back empty
    (an input without a token, "" or spaces, translates to "").
        translate_one(inputs: string[1]) -> {outputs: string[1], scores: float[1],
            truncated: bool[1]}
            greedy translation of one sentence, the same as serving_default; every shape is
            static but the lengths, so it converts to TFLite.
        translate_beam_one(inputs: string[1], alpha: float32) -> {outputs: string[1],
            scores: float[1], truncated: bool[1]}
            the best of a beam search of BEAM_ONE_SIZE hypotheses, the same as `translate`'s
            first output at that beam; static shapes too.

    And one step at a time, for an app that runs the decoding loop itself (batch 1; `S` is the
    number of decoder states, `units` the model width, `K` the attention key width):

        encode(inputs: string[1]) -> {source_ids: int32[1, src_len],
            values: float[1, src_len, units], keys: float[1, src_len, K],
            mask: bool[1, src_len], state: float[1, S, units], truncated: bool[1]}
        decode_step(token: int32[1], state, values, keys, mask) ->
            {logits: float[1, vocab], state: float[1, S, units], attention: float[1, src_len]}
            starting from bos (id 2) and the state of `encode`, feeding back the chosen token
            and the new state until eos (id 3);
        detokenize(ids: int32[1, steps]) -> {outputs: string[1]}
            the text of the chosen ids (those from the first eos on are dropped).
    """

    SIGNATURES = ("serving_default", "translate", "translate_one", "translate_beam_one",
                  "encode", "decode_step", "detokenize")

    def __init__(self, model, tokenizer: Tokenizer):
        super().__init__(name="translator")
        self.model = model
        self.tokenizer = GraphTokenizer(tokenizer)
        # Traced here, where the model's sizes are known, so that the signature's shapes are
        # static: S states (the cells' and the attention context) of `units` each.
        units, states = model.units, len(model.state_sizes) + 1
        key_width = model.attention_units if model.attention_type == "bahdanau" else units
        self.decode_step = tf.function(self._decode_step, input_signature=[
            tf.TensorSpec([1], tf.int32, name="token"),
            tf.TensorSpec([1, states, units], tf.float32, name="state"),
            tf.TensorSpec([1, None, units], tf.float32, name="values"),
            tf.TensorSpec([1, None, key_width], tf.float32, name="keys"),
            tf.TensorSpec([1, None], tf.bool, name="mask")])

    def _sources(self, inputs):
        """`(ids, truncated)` of one tokenization: ragged `(batch, None)` source ids (text +
        eos, at most MAX_SOURCE_TOKENS) and `(batch,)` bool, whether the text alone had
        MAX_SOURCE_TOKENS tokens or more, so that with eos it is cut."""
        text_ids = self.tokenizer.tokenize(inputs)
        splits = text_ids.row_splits  # lengths from the row splits: LiteRT builtins only
        truncated = splits[1:] - splits[:-1] >= MAX_SOURCE_TOKENS
        return self.tokenizer.frame(text_ids, add_eos=True, max_length=MAX_SOURCE_TOKENS), \
            truncated

    def _source_ids(self, inputs):
        ids, truncated = self._sources(inputs)
        # (batch, src_len), 0-padded
        return tf.ensure_shape(ids.to_tensor(), [None, None]), truncated

    def _one_source_ids(self, inputs):
        # One row needs no padding, so the ragged ids' flat values are the row (and the
        # ragged-to-dense op, which has no LiteRT builtin, is not needed).
        ids, truncated = self._sources(inputs)
        return ids.flat_values[tf.newaxis], truncated  # (1, src_len), (1,)

    def _greedy(self, source_ids, first_tokens, batched=False):
        memory, states = self.model.encode(source_ids)
        if batched:  # TensorFlow only: the batch-1 signatures are converted to LiteRT
            memory = self.model.with_output_kernel(memory)
        ids, scores, _ = decoding.decode(
            lambda tokens, s: self.model.decode_step(tokens, s, memory),
            first_tokens, states, output_length_limit(source_ids),
            min_length=decoding.MIN_DECODING_LENGTH)
        return ids, scores

    def _beam(self, source_ids, first_tokens, beam_size, alpha, attention=True, batched=False):
        memory, states = self.model.encode(source_ids)
        memory = decoding.tile_beams(memory, beam_size)
        states = decoding.tile_beams(states, beam_size)
        if batched:  # TensorFlow only: the batch-1 signatures are converted to LiteRT
            memory = self.model.with_output_kernel(memory)
        return decoding.beam_search(
            lambda tokens, s: self.model.decode_step(tokens, s, memory),
            first_tokens, states, beam_size, output_length_limit(source_ids), alpha=alpha,
            extra_shape=(tf.shape(source_ids)[1],) if attention else None,
            min_length=decoding.MIN_DECODING_LENGTH)

    def _detokenize(self, ids, source_ids):
        # An input with no token (empty, only spaces) translates to an empty string. The ids
        # are cleared rather than the strings: LiteRT has no select on strings.
        empty = tf.reduce_all((source_ids == 0) | (source_ids == EOS_ID), axis=1)
        ids = tf.where(empty[:, tf.newaxis], 0, _cut_at_eos(ids))
        return self.tokenizer.detokenize(ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serving_default(self, inputs):
        def greedy():
            source_ids, truncated = self._source_ids(inputs)
            ids, scores = self._greedy(source_ids, tf.fill([tf.shape(source_ids)[0]], BOS_ID),
                                       batched=True)
            return {"outputs": self._detokenize(ids, source_ids), "scores": scores,
                    "truncated": truncated}

        def empty():  # the decoding loop's buffers cannot be stacked for no row
            return {"outputs": tf.zeros([0], tf.string), "scores": tf.zeros([0]),
                    "truncated": tf.zeros([0], tf.bool)}

        return tf.cond(tf.size(inputs) > 0, greedy, empty)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)])
    def translate(self, inputs, beam_size, alpha):
        checks = [
            tf.debugging.assert_greater_equal(beam_size, 1, message="beam_size must be >= 1"),
            tf.debugging.assert_less_equal(beam_size, decoding.MAX_BEAM,
                                           message=f"beam_size must be <= {decoding.MAX_BEAM}"),
            tf.debugging.assert_equal(tf.math.is_finite(alpha) & (alpha >= 0.0), True,
                                      message="alpha must be finite and >= 0"),
        ]

        def search():
            source_ids, truncated = self._source_ids(inputs)
            ids, scores, attention = self._beam(
                source_ids, tf.fill([tf.shape(source_ids)[0]], BOS_ID), beam_size, alpha,
                batched=True)
            batch = tf.shape(ids)[0]
            flat = tf.reshape(ids, [batch * beam_size, -1])
            texts = self._detokenize(flat, tf.repeat(source_ids, beam_size, axis=0))
            return {"outputs": tf.reshape(texts, [batch, beam_size]), "scores": scores,
                    "target_ids": ids, "source_ids": source_ids, "attention": attention,
                    "truncated": truncated}

        def empty():
            return {"outputs": tf.zeros([0, beam_size], tf.string),
                    "scores": tf.zeros([0, beam_size]),
                    "target_ids": tf.zeros([0, beam_size, 0], tf.int32),
                    "source_ids": tf.zeros([0, 0], tf.int32),
                    "attention": tf.zeros([0, beam_size, 0, 0]),
                    "truncated": tf.zeros([0], tf.bool)}

        with tf.control_dependencies(checks):
            return tf.cond(tf.size(inputs) > 0, search, empty)

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string)])
    def translate_one(self, inputs):
        source_ids, truncated = self._one_source_ids(inputs)
        # A constant first token keeps the batch static (1) through the loop, so the loop's
        # buffers have a fixed element shape.
        ids, scores = self._greedy(source_ids, tf.constant([BOS_ID]))
        return {"outputs": self._detokenize(ids, source_ids), "scores": scores,
                "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string), tf.TensorSpec([], tf.float32)])
    def translate_beam_one(self, inputs, alpha):
        source_ids, truncated = self._one_source_ids(inputs)
        ids, scores, _ = self._beam(source_ids, tf.constant([BOS_ID]), BEAM_ONE_SIZE, alpha,
                                    attention=False)  # ids (1, beam, steps), best first
        return {"outputs": self._detokenize(ids[:, 0], source_ids), "scores": scores[:, 0],
                "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string)])
    def encode(self, inputs):
        source_ids, truncated = self._one_source_ids(inputs)
        memory, states = self.model.encode(source_ids)
        return {"source_ids": source_ids, "values": memory["values"], "keys": memory["keys"],
                "mask": memory["mask"], "state": tf.stack(states, axis=1),  # (1, S, units)
                "truncated": truncated}

    def _decode_step(self, token, state, values, keys, mask):
        memory = {"values": values, "keys": keys, "mask": mask}
        logits, states, attention = self.model.decode_step(
            token, tf.unstack(state, axis=1), memory)
        return {"logits": logits, "state": tf.stack(states, axis=1), "attention": attention}

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32, name="ids")])
    def detokenize(self, ids):
        return {"outputs": self.tokenizer.detokenize(_cut_at_eos(ids))}


def _cut_at_eos(ids):
    """Zeroes every id from the first eos on: `(batch, steps)`."""
    after_eos = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1) > 0
    return tf.where(after_eos, 0, ids)
