"""Tests for nlpapps.decoding: the greedy/sampler loop, beam search and its length penalty,
checked against NumPy on a fixed table of logits and on a tiny Seq2Seq."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps import decoding
from nlpapps.models.seq2seq import Seq2Seq
from nlpapps.tokenizer import BOS_ID, EOS_ID, PAD_ID

VOCAB = 8


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def random_table(seed, scale=1.5):
    """Logits `(VOCAB, VOCAB, VOCAB)` indexed by the two previous tokens."""
    return (scale * np.random.default_rng(seed).normal(size=(VOCAB,) * 3)).astype("float32")


def table_step(table):
    """A step function reading `table[previous_previous, previous]`; its state is the
    token before the previous one, so a beam search that reorders states wrongly reads
    the wrong row."""
    table = tf.constant(table)

    def step(tokens, before):
        logits = tf.gather_nd(table, tf.stack([before, tokens], axis=-1))  # (batch, vocab)
        return logits, tokens, None

    return step


def path_log_probs(table, first, ids):
    """NumPy: the log-probability of each token of `ids` (up to eos) after `first`."""
    before, previous, result = 0, first, []
    for token in ids:
        result.append(log_softmax(table[before, previous])[token])
        before, previous = previous, token
        if token == EOS_ID:
            break
    return np.array(result)


def numpy_decode(table, first_tokens, max_length, choose=np.argmax):
    """NumPy twin of `decode`: `(ids (batch, steps) 0-padded, scores (batch,))`."""
    rows, scores = [], []
    for first in first_tokens:
        before, previous, row, score = 0, first, [], 0.0
        while len(row) < max_length:
            log_probs = log_softmax(table[before, previous])
            token = int(choose(log_probs))
            row.append(token)
            score += log_probs[token]
            before, previous = previous, token
            if token == EOS_ID:
                break
        rows.append(row)
        scores.append(score)
    ids = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = row
    return ids, np.array(scores)


def run_decode(table, first_tokens, max_length, **kwargs):
    first = tf.constant(first_tokens, tf.int32)
    ids, scores, extras = decoding.decode(table_step(table), first, tf.zeros_like(first),
                                          max_length, **kwargs)
    assert extras is None
    return ids.numpy(), scores.numpy()


def run_beam(table, first_tokens, beam_size, max_length, alpha):
    first = tf.constant(first_tokens, tf.int32)
    states = decoding.tile_beams(tf.zeros_like(first), beam_size)
    ids, scores, extras = decoding.beam_search(table_step(table), first, states, beam_size,
                                               max_length, alpha=alpha)
    assert extras is None
    return ids.numpy(), scores.numpy()


def lengths(ids):
    """Tokens up to and including the first eos (all of them if none), per row."""
    return np.array([list(row).index(EOS_ID) + 1 if EOS_ID in row else len(row)
                     for row in ids])


FIRST = [BOS_ID, 4, 5, 6, 7]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_matches_numpy_argmax_loop(seed):
    table = random_table(seed)
    ids, scores = run_decode(table, FIRST, 12)
    expected_ids, expected_scores = numpy_decode(table, FIRST, 12)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_rows_stop_at_eos_and_are_padded_after():
    table = random_table(0)
    ids, scores = run_decode(table, FIRST, 12)
    ends = lengths(ids)
    # The table makes rows end at different steps, one of them before any other.
    assert len(set(ends)) > 1 and ends.min() < ids.shape[1]
    for row, end in zip(ids, ends):
        if EOS_ID in row:
            assert row[end - 1] == EOS_ID
            assert np.all(row[end:] == PAD_ID)
        assert EOS_ID not in row[:end - 1]
    # The loop stops as soon as every row is done.
    assert ids.shape[1] == ends.max()
    # The score counts each row's own tokens only, not the padding after eos.
    for first, row, end, score in zip(FIRST, ids, ends, scores):
        np.testing.assert_allclose(score, path_log_probs(table, first, row[:end]).sum(),
                                   rtol=1e-5)


def test_max_length_cuts_rows_without_eos():
    table = random_table(0)
    table[..., EOS_ID] = -30.0  # eos never wins
    ids, scores = run_decode(table, FIRST, 5)
    assert ids.shape == (len(FIRST), 5)
    assert EOS_ID not in ids
    _, expected_scores = numpy_decode(table, FIRST, 5)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_per_row_limits_make_each_row_independent_of_its_batch():
    table = random_table(0)
    table[..., EOS_ID] = -30.0  # eos never wins, so only the limits end the rows
    table[..., PAD_ID] = -30.0  # nor padding, so the produced tokens can be counted
    limits = tf.constant([2, 5, 3, 1, 4])
    ids, _ = run_decode(table, FIRST, limits)
    produced = (ids != PAD_ID).sum(axis=1)
    np.testing.assert_array_equal(produced, limits.numpy())
    for index, first in enumerate(FIRST):
        alone, _ = run_decode(table, [first], int(limits[index]))
        np.testing.assert_array_equal(ids[index, :limits[index]], alone[0])
    beam_ids, _ = run_beam(table, FIRST, 3, limits, alpha=0.0)
    np.testing.assert_array_equal((beam_ids[:, 0] != PAD_ID).sum(axis=1), limits.numpy())


def test_decode_uses_the_sampler():
    table = random_table(1)
    ids, scores = run_decode(table, FIRST, 6, sampler=lambda logits: tf.argmin(
        logits, axis=-1, output_type=tf.int32))
    expected_ids, expected_scores = numpy_decode(table, FIRST, 6, choose=np.argmin)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_decode_runs_in_a_compiled_graph():
    table = random_table(2)
    step = table_step(table)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def greedy(first, max_length):
        ids, scores, _ = decoding.decode(step, first, tf.zeros_like(first), max_length)
        return ids, scores

    ids, scores = greedy(tf.constant(FIRST), tf.constant(9))
    expected_ids, expected_scores = numpy_decode(table, FIRST, 9)
    np.testing.assert_array_equal(ids.numpy(), expected_ids)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-5)


def test_length_penalty_values():
    np.testing.assert_allclose(decoding.length_penalty(7, 0.0).numpy(), 1.0)
    np.testing.assert_allclose(decoding.length_penalty(1, 1.0).numpy(), 1.0)
    np.testing.assert_allclose(decoding.length_penalty(7, 0.6).numpy(), 2.0 ** 0.6, rtol=1e-6)
    np.testing.assert_allclose(
        decoding.length_penalty(tf.constant([1, 3, 13]), 0.5).numpy(),
        np.sqrt([1.0, 8 / 6, 3.0]), rtol=1e-6)


def test_tile_beams_repeats_each_row_adjacently():
    nest = {"a": tf.constant([[1, 2], [3, 4]]), "b": [tf.constant([5, 6])]}
    tiled = decoding.tile_beams(nest, 3)
    np.testing.assert_array_equal(tiled["a"].numpy(), [[1, 2]] * 3 + [[3, 4]] * 3)
    np.testing.assert_array_equal(tiled["b"][0].numpy(), [5, 5, 5, 6, 6, 6])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_of_one_is_greedy(seed):
    table = random_table(seed)
    ids, scores = run_beam(table, FIRST, 1, 12, alpha=0.6)
    greedy_ids, greedy_scores = numpy_decode(table, FIRST, 12)
    np.testing.assert_array_equal(ids[:, 0], greedy_ids)
    # Beam scores are normalized by the GNMT penalty of each hypothesis's length.
    penalty = ((5.0 + lengths(greedy_ids)) / 6.0) ** 0.6
    np.testing.assert_allclose(scores[:, 0], greedy_scores / penalty, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_beam_hypotheses_are_sorted_and_scored_by_their_own_tokens(alpha):
    table = random_table(3)
    ids, scores = run_beam(table, FIRST, 4, 10, alpha=alpha)
    assert ids.shape[:2] == scores.shape == (len(FIRST), 4)
    assert np.all(np.diff(scores, axis=1) <= 0)
    for first, row_ids, row_scores in zip(FIRST, ids, scores):
        assert len({tuple(h) for h in row_ids}) == 4  # four different hypotheses
        for hypothesis, score in zip(row_ids, row_scores):
            end = lengths([hypothesis])[0]
            assert np.all(hypothesis[end:] == PAD_ID)
            log_prob = path_log_probs(table, first, hypothesis[:end]).sum()
            np.testing.assert_allclose(score, log_prob / ((5.0 + end) / 6.0) ** alpha,
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_four_scores_at_least_greedy_without_length_penalty(seed):
    # Not a theorem of beam search, but holds on these tables; a beam that loses its
    # hypotheses or misorders states falls below greedy here.
    table = random_table(seed, scale=2.0)
    ids, scores = run_beam(table, FIRST, 4, 10, alpha=0.0)
    _, greedy_scores = numpy_decode(table, FIRST, 10)
    assert np.all(scores[:, 0] >= greedy_scores - 1e-5)
    assert np.any(scores[:, 0] > greedy_scores + 1e-3)  # and beats it somewhere


def test_beam_finds_the_better_sequence_greedy_misses():
    """bos -> A (0.6) or B (0.4); A -> eos (0.4), A (0.3), B (0.3); B -> eos (0.9), A (0.1).
    Greedy takes A then eos: 0.6 * 0.4 = 0.24; the best sequence is B eos: 0.4 * 0.9 = 0.36."""
    a, b = 4, 5
    probs = np.full((VOCAB, VOCAB), 1e-6)
    probs[BOS_ID, [a, b]] = [0.6, 0.4]
    probs[a, [EOS_ID, a, b]] = [0.4, 0.3, 0.3]
    probs[b, [EOS_ID, a]] = [0.9, 0.1]
    probs[[PAD_ID, EOS_ID], PAD_ID] = 1.0
    table = np.broadcast_to(np.log(probs), (VOCAB, VOCAB, VOCAB)).astype("float32")

    greedy_ids, greedy_scores = run_decode(table, [BOS_ID], 5)
    np.testing.assert_array_equal(greedy_ids, [[a, EOS_ID]])
    np.testing.assert_allclose(greedy_scores, [np.log(0.24)], rtol=1e-4)

    ids, scores = run_beam(table, [BOS_ID], 2, 5, alpha=0.0)
    np.testing.assert_array_equal(ids[0], [[b, EOS_ID], [a, EOS_ID]])
    np.testing.assert_allclose(scores[0], np.log([0.36, 0.24]), rtol=1e-4)


def test_beam_search_runs_rows_independently():
    table = random_table(4)
    ids, scores = run_beam(table, FIRST, 3, 10, alpha=0.6)
    for index, first in enumerate(FIRST):
        row_ids, row_scores = run_beam(table, [first], 3, 10, alpha=0.6)
        steps = row_ids.shape[2]
        np.testing.assert_array_equal(ids[index, :, :steps], row_ids[0])
        assert np.all(ids[index, :, steps:] == PAD_ID)
        np.testing.assert_allclose(scores[index], row_scores[0], rtol=1e-5)


# -- on a tiny Seq2Seq -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def seq2seq():
    keras.utils.set_random_seed(0)
    model = Seq2Seq(vocab_size=20, embedding_dim=8, units=8, attention_units=6, dropout=0.0)
    model.build()
    # Weights far from their small initial values, so that every logit depends strongly on
    # the state and the attention is sharp: a state swapped between hypotheses shows.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.7, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


SOURCES = np.array([[5, 9, 12, 7, EOS_ID], [8, 11, EOS_ID, 0, 0], [EOS_ID, 0, 0, 0, 0]],
                   np.int32)


def test_greedy_on_seq2seq_matches_an_eager_loop_and_records_attention(seq2seq):
    memory, states = seq2seq.encode(SOURCES)
    batch, max_length = len(SOURCES), 7
    ids, scores, attention = decoding.decode(
        lambda tokens, s: seq2seq.decode_step(tokens, s, memory),
        tf.fill([batch], BOS_ID), states, max_length, extra_shape=(SOURCES.shape[1],))
    ids, scores, attention = ids.numpy(), scores.numpy(), attention.numpy()
    assert attention.shape == ids.shape + (SOURCES.shape[1],)

    # The same model driven one step at a time from Python, choosing with NumPy.
    tokens, done = np.full(batch, BOS_ID, np.int32), np.zeros(batch, bool)
    expected_ids, expected_scores, expected_attention = [], np.zeros(batch), []
    for _ in range(ids.shape[1]):
        logits, states, weights = seq2seq.decode_step(tf.constant(tokens), states, memory)
        log_probs = log_softmax(logits.numpy().astype("float64"))
        tokens = np.where(done, PAD_ID, log_probs.argmax(-1)).astype(np.int32)
        expected_scores += np.where(done, 0.0, log_probs[np.arange(batch), tokens])
        expected_ids.append(tokens)
        expected_attention.append(weights.numpy())
        done |= tokens == EOS_ID
    np.testing.assert_array_equal(ids, np.stack(expected_ids, 1))
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attention, np.stack(expected_attention, 1), atol=1e-6)

    # Attention weights are a distribution over the real source tokens only.
    source_mask = SOURCES != 0
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert np.all(attention[~np.broadcast_to(source_mask[:, None], attention.shape)] == 0)


def test_beam_on_seq2seq_reorders_states_with_its_hypotheses(seq2seq):
    """Every hypothesis's score equals its log-probability recomputed step by step along its
    own tokens, which only holds if each state follows the hypothesis it belongs to."""
    beam, alpha = 3, 0.6
    memory, states = seq2seq.encode(SOURCES)
    tiled_memory = decoding.tile_beams(memory, beam)
    ids, scores, attention = decoding.beam_search(
        lambda tokens, s: seq2seq.decode_step(tokens, s, tiled_memory),
        tf.fill([len(SOURCES)], BOS_ID), decoding.tile_beams(states, beam), beam, 6,
        alpha=alpha, extra_shape=(SOURCES.shape[1],))
    ids, scores, attention = ids.numpy(), scores.numpy(), attention.numpy()
    assert attention.shape == ids.shape + (SOURCES.shape[1],)
    assert np.all(np.diff(scores, axis=1) <= 0)

    flat = ids.reshape(-1, ids.shape[-1])  # (batch * beam, steps)
    row_states = decoding.tile_beams(states, beam)
    tokens = np.full(len(flat), BOS_ID, np.int32)
    log_prob, weights_seen = np.zeros(len(flat)), []
    done = np.zeros(len(flat), bool)
    for t in range(flat.shape[1]):
        logits, row_states, weights = seq2seq.decode_step(tf.constant(tokens), row_states,
                                                          tiled_memory)
        step_log_probs = log_softmax(logits.numpy().astype("float64"))
        log_prob += np.where(done, 0.0, step_log_probs[np.arange(len(flat)), flat[:, t]])
        weights_seen.append(weights.numpy())
        done |= flat[:, t] == EOS_ID
        tokens = flat[:, t]
    penalty = ((5.0 + lengths(flat)) / 6.0) ** alpha
    np.testing.assert_allclose(scores.reshape(-1), log_prob / penalty, rtol=1e-4, atol=1e-5)
    # The recorded attention is that of each hypothesis's own steps (until it ends).
    seen = np.stack(weights_seen, 1).reshape(attention.shape)
    for row, end in enumerate(lengths(flat)):
        np.testing.assert_allclose(attention[row // beam, row % beam, :end],
                                   seen[row // beam, row % beam, :end], atol=1e-5)


def test_beam_of_one_on_seq2seq_is_greedy_with_the_same_attention(seq2seq):
    memory, states = seq2seq.encode(SOURCES)
    step = lambda tokens, s: seq2seq.decode_step(tokens, s, memory)  # noqa: E731
    first = tf.fill([len(SOURCES)], BOS_ID)
    greedy_ids, _, greedy_attention = decoding.decode(step, first, states, 6,
                                                      extra_shape=(SOURCES.shape[1],))
    ids, _, attention = decoding.beam_search(step, first, states, 1, 6,
                                             extra_shape=(SOURCES.shape[1],))
    np.testing.assert_array_equal(ids.numpy()[:, 0], greedy_ids.numpy())
    np.testing.assert_allclose(attention.numpy()[:, 0], greedy_attention.numpy(), atol=1e-6)


def test_portable_uniforms_follow_park_miller_and_look_uniform():
    from nlpapps.decoding import MINSTD, portable_uniforms

    m, a = MINSTD[0], MINSTD[1]
    x = 7 % (m - 1) + 1
    expected = []
    for step in range(8 + 5):
        x = a * x % m
        if step >= 8:
            expected.append(x / m)
    np.testing.assert_allclose(portable_uniforms(7, 5).numpy(), expected, rtol=1e-6)
    # Compiled, as in an exported file (eager, the loop's 20,000 steps take a minute).
    draws = tf.function(portable_uniforms)(123, 20000).numpy()
    assert 0 < draws.min() and draws.max() < 1
    counts, _ = np.histogram(draws, bins=10, range=(0, 1))
    assert counts.min() > 1800 and counts.max() < 2200


def test_inverse_cdf_sample_picks_by_cumulative_probability():
    from nlpapps.decoding import inverse_cdf_sample

    logits = tf.math.log(tf.constant([[0.2, 0.0, 0.5, 0.3]]))  # token 1 has probability 0
    picks = [int(inverse_cdf_sample(logits, u)[0]) for u in (0.1, 0.2001, 0.69, 0.71, 0.999)]
    assert picks == [0, 2, 2, 3, 3]


def eos_first_table(seed=0):
    """A random table where, after any two tokens, eos has the highest logit by far."""
    table = random_table(seed)
    table[..., EOS_ID] = 10.0
    return table


@pytest.mark.parametrize("min_length", [1, 3])
def test_min_length_holds_eos_back_in_greedy_sampling_and_beam(min_length):
    table = eos_first_table()
    ids, scores = run_decode(table, FIRST, 12)
    np.testing.assert_array_equal(ids[:, 0], EOS_ID)  # without it, every row ends at once

    ids, scores = run_decode(table, FIRST, 12, min_length=min_length)
    np.testing.assert_array_equal(lengths(ids), min_length + 1)  # the tokens, then eos
    assert EOS_ID not in ids[:, :min_length]
    # The tokens are the most probable but eos, and scored by the model's own log-probs.
    expected = table.copy()
    before, previous = np.zeros(len(FIRST), int), np.array(FIRST)
    for t in range(min_length):
        step = expected[before, previous].copy()
        step[:, EOS_ID] = -np.inf
        np.testing.assert_array_equal(ids[:, t], step.argmax(-1))
        before, previous = previous, ids[:, t]
    for first, row, score in zip(FIRST, ids, scores):
        np.testing.assert_allclose(score, path_log_probs(table, first, row).sum(), rtol=1e-5)

    sampler = decoding.make_sampler(temperature=1.0, seed=3)
    sampled, _ = run_decode(table, FIRST, 12, sampler=sampler, min_length=min_length)
    assert EOS_ID not in sampled[:, :min_length]

    first = tf.constant(FIRST, tf.int32)
    beam_ids, _, _ = decoding.beam_search(
        table_step(table), first, decoding.tile_beams(tf.zeros_like(first), 3), 3, 12,
        alpha=0.6, min_length=min_length)
    for row in beam_ids.numpy().reshape(-1, beam_ids.shape[-1]):
        assert EOS_ID not in row[:min_length] and row[min_length] == EOS_ID


def test_the_eos_mask_stays_inside_the_logits_range():
    """eos is set just below the row's lowest logit, not to a large constant that would set
    an int8 file's calibrated range of the logits."""
    logits = tf.constant(random_table(1)[0, :3])  # (3, VOCAB)
    masked = decoding.forbid_early_eos(logits, 0, 1).numpy()
    lowest = logits.numpy().min(axis=-1)
    np.testing.assert_allclose(masked[:, EOS_ID], lowest - 1.0)
    others = np.arange(VOCAB) != EOS_ID
    np.testing.assert_array_equal(masked[:, others], logits.numpy()[:, others])
    assert (masked.argmax(-1) != EOS_ID).all()
    np.testing.assert_array_equal(decoding.forbid_early_eos(logits, 1, 1), logits)


def test_min_length_holds_eos_back_from_a_random_sampler():
    """With every logit equal, eos one below the rest keeps about 5% of the probability; a
    draw of it before min_length is replaced."""
    def step(tokens, states):
        return tf.zeros([tf.shape(tokens)[0], VOCAB]), states, None

    first = tf.fill([400], BOS_ID)
    sampler = decoding.make_sampler(temperature=1.0, seed=0)
    ids, _, _ = decoding.decode(step, first, tf.zeros([400]), 1, sampler=sampler, min_length=1)
    drawn = ids.numpy()[:, 0]
    assert EOS_ID not in drawn
    assert len(set(drawn)) == VOCAB - 1  # a random draw, not the greedy choice


def test_min_length_changes_nothing_when_eos_comes_later():
    table = random_table(0)
    table[0, :, EOS_ID] = -30.0  # the first step reads table[0, first]: eos never first
    ids = run_decode(table, FIRST, 12)[0]
    assert 1 < lengths(ids).min() < 12 and EOS_ID in ids  # yet rows do end with eos
    np.testing.assert_array_equal(run_decode(table, FIRST, 12, min_length=1)[0], ids)
    beam, beam_min = (run_beam(table, FIRST, 3, 12, 0.6),
                      decoding.beam_search(table_step(table), tf.constant(FIRST),
                                           decoding.tile_beams(tf.zeros(5, tf.int32), 3), 3,
                                           12, alpha=0.6, min_length=1))
    np.testing.assert_array_equal(beam[0], beam_min[0].numpy())
    np.testing.assert_allclose(beam[1], beam_min[1].numpy(), rtol=1e-6)


@pytest.fixture(scope="module")
def attentive_model():
    from nlpapps.models.language_model_network import LanguageModel

    keras.utils.set_random_seed(3)
    model = LanguageModel(VOCAB * 4, embedding_dim=6, units=8, num_layers=2,
                          attention_memory=10)
    model(np.zeros((1, 2), "int32"))
    # A gate and query far from their initial values, so that the attention matters.
    rng = np.random.default_rng(4)
    model.attention_gate.assign(2.0)
    for weight in model.attention.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("sampled", [False, True])
@pytest.mark.parametrize("block", [1, 4, 7])
def test_decoding_in_blocks_draws_what_step_by_step_decoding_draws(attentive_model, block,
                                                                   sampled):
    """`decode_in_blocks` over the language model's `block_step` (its memory merged every
    `block` steps, each block reading only the memory's filled part) against `decode` over
    its `step`: the same tokens, the same final states and memory, for rows of different
    prompts and row limits, over more steps than the memory holds; and the scores."""
    model = attentive_model
    prompts = np.array([[5, 9, 3, 12, 7, 2], [0, 0, 0, 0, 11, 4]], "int32")
    mask = prompts > 0
    mask[0, :] = True
    *layers, memory = model.advance(tf.constant(prompts), mask=tf.constant(mask))
    first = tf.constant([6, 13], tf.int32)
    limits = tf.constant([25, 17], tf.int32)
    uniforms = decoding.portable_uniforms(5, 25)
    sampler = decoding.make_sampler(temperature=1.0, uniforms=uniforms) if sampled \
        else decoding.greedy_sampler

    def step(tokens, states):
        logits, states = model.step(tokens, states)
        return logits, states, None

    def block_step(tokens, states, read, filled):
        logits, states = model.block_step(tokens, states, read, filled)
        return logits, states, None

    ids, scores, _, states = decoding.decode(step, first, [*layers, memory], limits,
                                             sampler=sampler, eos_id=-1, return_state=True)
    rows = tf.zeros([2, block, memory[0].shape[-1]])
    got_ids, got_scores, got_states, got_memory = decoding.decode_in_blocks(
        block_step, model.merge_block, first, [*layers, rows], memory, block, limits,
        sampler=sampler, eos_id=-1, return_state=True,
        read_fn=lambda memory: model.filled_memory(memory, 2))
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got_scores, scores, atol=1e-4)
    for got, want in zip(tf.nest.flatten([*got_states[:-1], got_memory]),
                         tf.nest.flatten(states)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert ids.shape == (2, 25) and np.all(ids.numpy()[1, 17:] == PAD_ID)
    _, no_scores = decoding.decode_in_blocks(
        block_step, model.merge_block, first, [*layers, rows], memory, block, limits,
        sampler=sampler, eos_id=-1, with_scores=False)
    assert no_scores is None


def test_decoding_in_blocks_stops_a_row_at_eos(attentive_model):
    model = attentive_model
    *layers, memory = model.initial_states(2)
    first = tf.constant([BOS_ID, 9], tf.int32)

    def step(tokens, states):
        logits, states = model.step(tokens, states)
        return logits, states, None

    ids, _, _ = decoding.decode(step, first, [*layers, memory], 12)
    eos = int(ids[0, 3])  # the fourth token of the first row ends it
    ids, _, _ = decoding.decode(step, first, [*layers, memory], 12, eos_id=eos)
    rows = tf.zeros([2, 4, memory[0].shape[-1]])
    got, _ = decoding.decode_in_blocks(
        lambda tokens, states, read, filled: (*model.block_step(tokens, states, read, filled),
                                              None),
        model.merge_block, first, [*layers, rows], memory, 4, 12, eos_id=eos)
    np.testing.assert_array_equal(got, ids)
    row = list(got.numpy()[0])
    end = row.index(eos)
    assert end <= 3 and row[end + 1:] == [PAD_ID] * (len(row) - end - 1)
    assert PAD_ID not in got.numpy()[1]  # the other row goes on to the limit
