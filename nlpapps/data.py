"""tf.data pipelines: tokenized, length-bucketed, padded batches for the apps."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nlpapps.tokenizer import BOS_ID, EOS_ID, Tokenizer

BUCKET_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)


def encode_pairs(pairs: Sequence[tuple[str, str]], tokenizer: Tokenizer, max_length: int,
                 alpha: float = 0.0) -> tuple[list[list[int]], list[list[int]]]:
    """Source ids (text + eos) and target ids (bos + text + eos), each cut to `max_length`;
    with `alpha` > 0, sampled segmentations (`Tokenizer.encode`)."""
    sources = tokenizer.encode([s for s, _ in pairs], add_eos=True, max_length=max_length,
                               alpha=alpha)
    targets = tokenizer.encode([t for _, t in pairs], add_bos=True, add_eos=True,
                               max_length=max_length + 1, alpha=alpha)
    return sources, targets

# Held while a pass is drawn: two iterators drawing at once (Keras's `fit` under a strategy
# leaves one prefetching) would interleave their draws from SentencePiece's one generator.
_SAMPLING = threading.Lock()


def translation_dataset(pairs: Sequence[tuple[str, str]], tokenizer: Tokenizer,
                        batch_size: int, max_length: int = 64, shuffle: bool = True,
                        repeat: bool = False, seed: int = 0, skip_batches: int = 0,
                        subword_alpha: float = 0.0) -> tf.data.Dataset:
    """Batches of `((source, target_input), target_output)`, padded with 0 and bucketed by
    length so that a batch holds sentences of similar length.

    `target_input` is bos + text, `target_output` is text + eos; `batch_size` counts pairs.
    The order depends only on `seed`, the same for every iterator over the dataset:
    `skip_batches=n` starts at the batch that an uninterrupted run's step n reads, so a resumed
    run sees the data it would have seen.
    With `subword_alpha` > 0 every pass over the pairs draws new segmentations of them
    (subword regularization), seeded by `seed` and the pass's index within the iterator (so
    that every iterator over the dataset reads the same data, as every worker of a
    multi-worker run must; a resumed run skips through the passes it had read).
    """
    spec = tf.TensorSpec([None], tf.int32)
    if subword_alpha:
        import sentencepiece

        tokenizer.encode("", alpha=subword_alpha)  # a bad alpha or model fails here, not later

        def generate(pass_index):
            # A seed of its own for every pass, of its order and of its draws: they differ
            # from pass to pass and are the same in every run and every iterator.
            pass_seed = seed * 1_000_003 + int(pass_index)
            order = list(pairs)
            if shuffle:
                random.Random(pass_seed).shuffle(order)
            with _SAMPLING:  # SentencePiece's generator is one per process
                sentencepiece.set_random_generator_seed(pass_seed)
                encoded = encode_pairs(order, tokenizer, max_length, subword_alpha)
            return zip(*encoded)
    else:
        sources, targets = encode_pairs(pairs, tokenizer, max_length)

        def generate():
            return zip(sources, targets)

    def one_pass(index):  # subword sampling: each pass knows its index in the iterator
        return tf.data.Dataset.from_generator(generate, args=(index,),
                                              output_signature=(spec, spec))

    def batches(_):
        if subword_alpha:
            dataset = tf.data.Dataset.range(2 ** 62 if repeat else 1).flat_map(one_pass)
        else:
            dataset = tf.data.Dataset.from_generator(generate, output_signature=(spec, spec))
            if shuffle:
                dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                dataset = dataset.repeat()
        dataset = dataset.bucket_by_sequence_length(
            lambda source, target: tf.maximum(tf.shape(source)[0], tf.shape(target)[0]),
            bucket_boundaries=[b for b in BUCKET_BOUNDARIES if b < max_length + 2],
            bucket_batch_sizes=[batch_size] * (1 + sum(b < max_length + 2
                                                       for b in BUCKET_BOUNDARIES)),
            pad_to_bucket_boundary=False,
        )
        return dataset.skip(skip_batches) if skip_batches else dataset

    # Built anew for every iterator (a one-element flat_map), so that each iterator starts from
    # the seed: a shuffle built once gives each new iterator a new order, and Keras's `fit`
    # under a distribution strategy opens one iterator to build the model before the one it
    # trains from (the workers then read other batches than one process).
    dataset = tf.data.Dataset.range(1).flat_map(batches)
    return dataset.map(_split_target, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _split_target(source, target):
    return (source, target[:, :-1]), target[:, 1:]


def pad_batch(rows: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
    """Right-pads id lists with 0 into an int32 array `(batch, length)`."""
    length = length or max((len(row) for row in rows), default=1) or 1
    batch = np.zeros((len(rows), length), dtype=np.int32)
    for index, row in enumerate(rows):
        batch[index, :min(len(row), length)] = row[:length]
    return batch


__all__ = ["BOS_ID", "EOS_ID", "encode_pairs", "translation_dataset", "pad_batch"]
