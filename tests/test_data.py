"""Tests for the translation pipeline's batches: bucketing, padding, and the data order a
resumed run goes on with."""

import numpy as np
import pytest

from nlpapps.data import encode_pairs, translation_dataset
from nlpapps.tokenizer import BOS_ID, EOS_ID, Tokenizer


@pytest.fixture(scope="module")
def pairs_and_tokenizer(en_de_pairs):
    pairs = [(p.english, p.german) for p in en_de_pairs]
    tokenizer = Tokenizer.train([text for pair in pairs for text in pair], 200)
    return pairs, tokenizer


def batches(dataset, count):
    return [tuple(np.asarray(t) for t in (s, ti, to))
            for (s, ti), to in dataset.take(count)]


def test_skipping_batches_goes_on_where_an_uninterrupted_run_is(pairs_and_tokenizer):
    pairs, tokenizer = pairs_and_tokenizer
    # 460 pairs in batches of 32: the 20 batches cross the second pass over the data.
    whole = batches(translation_dataset(pairs, tokenizer, 32, repeat=True, seed=3), 20)
    resumed = batches(translation_dataset(pairs, tokenizer, 32, repeat=True, seed=3,
                                          skip_batches=12), 8)
    for a, b in zip(whole[12:], resumed, strict=True):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other_seed = batches(translation_dataset(pairs, tokenizer, 32, repeat=True, seed=4), 1)
    assert not np.array_equal(other_seed[0][0], whole[0][0])


def test_batches_are_bucketed_padded_and_shifted(pairs_and_tokenizer):
    pairs, tokenizer = pairs_and_tokenizer
    for source, target_in, target_out in batches(
            translation_dataset(pairs, tokenizer, 16, max_length=24, shuffle=False), 10):
        assert source.shape[0] == target_in.shape[0] <= 16
        assert (target_in[:, 0] == BOS_ID).all()
        np.testing.assert_array_equal(target_in[:, 1:], target_out[:, :-1])
        lengths = (target_out != 0).sum(axis=1)
        assert (target_out[np.arange(len(lengths)), lengths - 1] == EOS_ID).all()
        assert source.shape[1] <= 25 and target_out.shape[1] <= 25


@pytest.mark.parametrize("shuffle", [False, True])
def test_subword_sampling_draws_new_segmentations_each_pass(pairs_and_tokenizer, shuffle):
    """Each pass over the pairs draws new segmentations; every iterator over the dataset (a
    new one, or a second over the same dataset, as Keras's `fit` opens under a distribution
    strategy) reads the same batches, and a resumed run skips to where it was."""
    pairs, tokenizer = pairs_and_tokenizer
    pairs = list(dict.fromkeys(pairs[:40]))  # 200 tokens: no pair is cut

    n = len(pairs)

    # Batches of one pair: each comes out as it is drawn, so pass k is batches k n .. k n + n
    # (larger batches wait in their length's bucket, across passes).
    def dataset(**changes):
        return translation_dataset(pairs, tokenizer, 1, 200, shuffle=shuffle, repeat=True,
                                   subword_alpha=0.2, **changes)

    def segmentations(read):
        """{(english, german): {(source ids, target ids)}} of the rows in batches `read`."""
        rows: dict = {}
        for source, target_in, target_out in read:
            assert (target_in[:, 0] == BOS_ID).all()
            for s, t in zip(source, target_out):
                s, t = tuple(int(i) for i in s if i), tuple(int(i) for i in t if i)
                assert s[-1] == EOS_ID and t[-1] == EOS_ID
                rows.setdefault((tokenizer.decode(s[:-1]), tokenizer.decode(t[:-1])),
                                set()).add((s, t))
        return rows

    data = dataset()
    read = batches(data, 3 * n)  # three passes
    drawn = segmentations(read)
    assert set(drawn) == set(pairs)
    assert set(segmentations(read[:n])) == set(pairs)  # every pair, once a pass
    assert sum(len(seen) > 1 for seen in drawn.values()) > len(pairs) // 2  # new each pass
    best = dict(zip(pairs, zip(*(map(tuple, ids) for ids in encode_pairs(pairs, tokenizer, 200)))))
    assert sum(best[pair] not in seen for pair, seen in drawn.items()) > len(pairs) // 2

    def same(a, b):
        return len(a) == len(b) and all(np.array_equal(x, y) for p, q in zip(a, b)
                                        for x, y in zip(p, q))

    # Another iterator over the same dataset, and a new pipeline, read the same batches.
    assert same(batches(data, 3 * n), read) and same(batches(dataset(), 3 * n), read)
    assert not same(batches(dataset(seed=1), 3 * n), read)
    # A run resumed a pass and then some in reads what the whole run read.
    assert same(batches(dataset(skip_batches=n + 7), n), read[n + 7:2 * n + 7])


def test_a_bad_subword_alpha_fails_at_once(pairs_and_tokenizer):
    pairs, tokenizer = pairs_and_tokenizer
    with pytest.raises(ValueError, match="alpha"):
        translation_dataset(pairs, tokenizer, 32, subword_alpha=2.0)
