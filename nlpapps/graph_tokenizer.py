"""`GraphTokenizer`: the ids of `nlpapps.tokenizer.Tokenizer` in the TensorFlow graph (tf.data,
SavedModels and LiteRT files). Its own module, so that the Python tokenizer imports no
TensorFlow."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from nlpapps.tokenizer import (BOS_ID, EOS_ID, GRAPH_MODEL_TYPES, NEWLINE_PIECE,
                               NORMALIZATION_RULES, UNK_ID, Tokenizer, text_budget)


class GraphTokenizer(tf.Module):
    """In-graph twin of `Tokenizer` for tf.data, SavedModels and LiteRT.

    Takes unigram and char models whose normalization is in NORMALIZATION_RULES, without
    byte fallback (the op has no byte pieces); it refuses others with a ValueError. LiteRT
    models need the custom ops of `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`.

    Args:
        model: a `Tokenizer` or its `to_bytes()`.
        line_start: encode every text as if it started a line of a longer text (needs a
            model trained with `keep_newlines`): without SentencePiece's leading "▁".

    Example:
    ```python
    graph_tokenizer = GraphTokenizer(tokenizer)
    ids = graph_tokenizer.tokenize(tf.constant(["Who's there?"]))  # (1, None) int32
    graph_tokenizer.detokenize(ids)  # [b"Who's there?"]
    ```
    """

    def __init__(self, model: Tokenizer | bytes, name: str | None = None,
                 line_start: bool = False) -> None:
        super().__init__(name=name)
        tokenizer = model if isinstance(model, Tokenizer) else Tokenizer(model)
        proto = model_pb2.ModelProto.FromString(tokenizer.to_bytes())
        if tokenizer.model_type not in GRAPH_MODEL_TYPES:
            raise ValueError(f"GraphTokenizer takes models of type {GRAPH_MODEL_TYPES}, "
                             f"got {tokenizer.model_type!r}")
        if any(piece.type == piece.BYTE for piece in proto.pieces):
            raise ValueError("GraphTokenizer cannot use a model trained with byte_fallback")
        if proto.normalizer_spec.name not in NORMALIZATION_RULES:
            raise ValueError(f"GraphTokenizer takes the normalization rules {NORMALIZATION_RULES}, "
                             f"got {proto.normalizer_spec.name!r}")
        self.vocab_size = tokenizer.vocab_size
        encoder = model_pb2.ModelProto.FromString(tokenizer.to_bytes())
        # Without the dummy prefix "▁" that SentencePiece puts before every text, a text gets
        # the ids it has after a line break of a longer text (as `line_start_ids` of the
        # language model gives them in Python, by encoding "\n" + text).
        encoder.normalizer_spec.add_dummy_prefix = not line_start
        self._encoder = tf_text.FastSentencepieceTokenizer(encoder.SerializeToString())
        # The op ignores denormalization rules, so its decoder reads "␤" as "\n" directly.
        for piece in proto.pieces:
            if piece.piece == NEWLINE_PIECE:
                piece.piece = "\n"
        self._decoder = tf_text.FastSentencepieceTokenizer(proto.SerializeToString())

    def tokenize(self, strings: tf.Tensor, *, add_bos: bool = False, add_eos: bool = False,
                 max_length: int | None = None) -> tf.RaggedTensor:
        """(batch,) tf.string -> (batch, None) int32 ids; options as in `Tokenizer.encode`."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if strings.shape.rank != 1:
            raise ValueError(f"strings must have shape (batch,), got {strings.shape}")
        ids = self._encoder.tokenize(strings)  # (batch, None)
        return self.frame(ids, add_bos=add_bos, add_eos=add_eos, max_length=max_length)

    @staticmethod
    def frame(ids: tf.RaggedTensor, *, add_bos: bool = False, add_eos: bool = False,
              max_length: int | None = None) -> tf.RaggedTensor:
        """Text ids of `tokenize` (no option) cut and given bos/eos as `tokenize`'s options
        say, so that one tokenization can also tell how long each text was."""
        keep = text_budget(max_length, add_bos, add_eos)
        if keep is None and not (add_bos or add_eos):
            return ids
        # Rebuilt from flat values and row splits with LiteRT builtins only (ragged slicing
        # and concatenation lower to ops that are not).
        values, splits = ids.flat_values, tf.cast(ids.row_splits, tf.int32)
        lengths = splits[1:] - splits[:-1]
        if keep is not None:
            lengths = tf.minimum(lengths, keep)
        new_splits = tf.concat([[0], tf.cumsum(lengths + int(add_bos) + int(add_eos))], axis=0)
        count = tf.shape(values)[0]
        starts = splits[1:-1, tf.newaxis]  # each row start adds one to the row index
        row = tf.cumsum(tf.scatter_nd(starts, tf.ones_like(starts[:, 0]), [count + 1]))[:count]
        place = tf.range(count) - tf.gather(splits, row)  # each id's index in its row
        kept = place < tf.gather(lengths, row)
        targets = [tf.boolean_mask(tf.gather(new_splits, row) + int(add_bos) + place, kept)]
        updates = [tf.boolean_mask(values, kept)]
        for wanted, special, at in ((add_bos, BOS_ID, new_splits[:-1]),
                                    (add_eos, EOS_ID, new_splits[1:] - 1)):
            if wanted:
                targets.append(at)
                updates.append(tf.fill(tf.shape(at), special))
        flat = tf.scatter_nd(tf.concat(targets, 0)[:, tf.newaxis], tf.concat(updates, 0),
                             new_splits[-1:])
        return tf.RaggedTensor.from_row_splits(flat, new_splits, validate=False)

    def detokenize(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """(batch, None) ragged or (batch, length) padded ids -> (batch,) tf.string.

        Ids outside [0, vocab_size) decode as unk (" ⁇ "); pad, bos and eos are skipped.
        """
        if isinstance(ids, tf.RaggedTensor):
            values, splits = ids.flat_values, ids.row_splits
        else:
            ids = tf.convert_to_tensor(ids)  # (batch, length)
            values = tf.reshape(ids, [-1])
            splits = tf.range(tf.shape(ids)[0] + 1) * tf.shape(ids)[1]
        values, splits = tf.cast(values, tf.int32), tf.cast(splits, tf.int32)
        values = tf.where((values < 0) | (values >= self.vocab_size), UNK_ID, values)
        keep = (values == UNK_ID) | (values > EOS_ID)
        kept_before = tf.concat([[0], tf.cumsum(tf.cast(keep, tf.int32))], axis=0)
        ids = tf.RaggedTensor.from_row_splits(  # builtins only, as in tokenize
            tf.boolean_mask(values, keep), tf.gather(kept_before, splits), validate=False)
        return self._decoder.detokenize(ids)
