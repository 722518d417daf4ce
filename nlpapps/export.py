"""Exporters: a string-in/string-out SavedModel for serving, and what TFLite needs.

The SavedModel holds the tokenizer (`tensorflow_text.FastSentencepieceTokenizer`), the
weights and the decoding loops, so it runs with `tensorflow` and `tensorflow_text` alone:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    model = tf.saved_model.load("saved_models/translator-en-de")
    model.signatures["serving_default"](inputs=tf.constant(["Where is the station?"]))
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from nlpapps import decoding
from nlpapps.tokenizer import BOS_ID, EOS_ID, GraphTokenizer, Tokenizer

MAX_SOURCE_TOKENS = 128  # longer inputs are cut to this many tokens (eos included)


class TranslatorModule(tf.Module):
    """A translator as a `tf.Module` with string signatures.

    Signatures:
        serving_default(inputs: string[batch]) -> {outputs: string[batch], scores: float[batch]}
            greedy translation; scores are the log-probability of each output.
        translate(inputs: string[batch], beam_size: int32, alpha: float32) ->
            {outputs: string[batch, beam], scores, target_ids: int32[batch, beam, steps],
             source_ids: int32[batch, src_len], attention: float[batch, beam, steps, src_len]}
            beam search, best first (beam_size 1 is greedy), with what a plot needs.
    """

    def __init__(self, model, tokenizer: Tokenizer):
        super().__init__(name="translator")
        self.model = model
        self.tokenizer = GraphTokenizer(tokenizer)

    def _source_ids(self, inputs):
        ids = self.tokenizer.tokenize(inputs, add_eos=True, max_length=MAX_SOURCE_TOKENS)
        return tf.ensure_shape(ids.to_tensor(), [None, None])  # (batch, src_len), 0-padded

    def _beam(self, source_ids, beam_size, alpha):
        memory, states = self.model.encode(source_ids)
        batch, src_len = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        memory = decoding.tile_beams(memory, beam_size)
        states = decoding.tile_beams(states, beam_size)
        return decoding.beam_search(
            lambda tokens, s: self.model.decode_step(tokens, s, memory),
            tf.fill([batch], BOS_ID), states, beam_size, 2 * src_len + 10, alpha=alpha,
            extra_shape=(src_len,))

    def _detokenize(self, ids, source_ids):
        texts = self.tokenizer.detokenize(_cut_at_eos(ids))
        # An input with no token (empty, only spaces) translates to an empty string.
        empty = tf.reduce_all((source_ids == 0) | (source_ids == EOS_ID), axis=1)
        return tf.where(empty, "", texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serving_default(self, inputs):
        source_ids = self._source_ids(inputs)
        memory, states = self.model.encode(source_ids)
        batch, src_len = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        ids, scores, _ = decoding.decode(
            lambda tokens, s: self.model.decode_step(tokens, s, memory),
            tf.fill([batch], BOS_ID), states, 2 * src_len + 10)
        return {"outputs": self._detokenize(ids, source_ids), "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)])
    def translate(self, inputs, beam_size, alpha):
        source_ids = self._source_ids(inputs)
        ids, scores, attention = self._beam(source_ids, beam_size, alpha)
        batch = tf.shape(ids)[0]
        flat = tf.reshape(ids, [batch * beam_size, -1])
        texts = self._detokenize(flat, tf.repeat(source_ids, beam_size, axis=0))
        return {"outputs": tf.reshape(texts, [batch, beam_size]), "scores": scores,
                "target_ids": ids, "source_ids": source_ids, "attention": attention}


def _cut_at_eos(ids):
    """Zeroes every id from the first eos on: `(batch, steps)`."""
    after_eos = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1) > 0
    return tf.where(after_eos, 0, ids)


def write_savedmodel(module: tf.Module, out_dir: Path, extra_files: dict[str, bytes]) -> None:
    """Writes a SavedModel (with its signatures) and extra files to a temporary folder beside
    `out_dir`, then swaps it in, so a failure never leaves a half-written model."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        signatures = {name: getattr(module, name) for name in ("serving_default", "translate")
                      if hasattr(module, name)}
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
