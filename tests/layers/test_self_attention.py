"""CausalSelfAttention: a window over a memory against a NumPy transcription of its equations,
causality by perturbing the future (in the window and across the memory), windows with the
memory carried against one long window, masking, stateful use, and the layer contract."""

import keras
import numpy as np
import pytest

from nlpapps.layers import CausalSelfAttention
from tests.layers.helpers import (assert_all_close, check_layer_contract, make_sequences,
                                  tflite_outputs)

D, M = 5, 4


def make_layer(memory_length=M, **kwargs):
    keras.utils.set_random_seed(0)
    layer = CausalSelfAttention(memory_length, return_state=True, **kwargs)
    layer.build((None, None, D))
    # Non-zero biases, so that a transcription that forgot one would differ.
    rng = np.random.default_rng(7)
    layer.query_bias.assign(rng.normal(size=layer.query_bias.shape).astype("float32"))
    layer.output_bias.assign(rng.normal(size=layer.output_bias.shape).astype("float32"))
    return layer


def steps_and_memories(memory_length, steps, seed):
    """Inputs `(3, steps, D)` and the memories of three rows: empty, half full and full."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, steps, D)).astype("float32")
    memory = rng.normal(size=(3, memory_length, D)).astype("float32")
    valid = np.zeros((3, memory_length), "float32")
    valid[1, memory_length // 2:] = 1
    valid[2] = 1
    return x, memory * valid[..., None], valid


def numpy_attention(x, memory, valid, real, Wq, bq, Wo, bo, previous_keys=False):
    """The docstring's equations, one row and one query at a time."""
    outputs = np.zeros((*x.shape[:2], Wo.shape[1]))
    new_memory, new_valid = np.zeros_like(memory), np.zeros_like(valid)
    for b in range(x.shape[0]):
        sources = np.concatenate([memory[b], x[b]])
        source_valid = np.concatenate([valid[b], real[b]])
        for t in range(x.shape[1]):
            if not real[b, t]:
                continue
            q = x[b, t] @ Wq + bq
            allowed = [j for j in range(len(sources))
                       if source_valid[j] and (j < len(memory[b]) or j - len(memory[b]) <= t)
                       and (not previous_keys or (j > 0 and source_valid[j - 1]))]
            if not allowed:  # nothing to attend to: the output is the bias
                outputs[b, t] = bo
                continue
            keys = [sources[j - 1] if previous_keys else sources[j] for j in allowed]
            e = np.array([q @ k / np.sqrt(x.shape[-1]) for k in keys])
            a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            outputs[b, t] = sum(a_j * sources[j] for a_j, j in zip(a, allowed)) @ Wo + bo
        kept = [j for j in range(len(sources)) if source_valid[j]][-len(memory[b]):]
        start = len(memory[b]) - len(kept)
        new_memory[b, start:] = sources[kept]
        new_valid[b, start:] = 1
    return outputs, new_memory, new_valid


@pytest.mark.parametrize("previous_keys", [False, True])
def test_a_window_over_a_memory_matches_numpy(previous_keys):
    layer = make_layer(previous_keys=previous_keys)
    x, real = make_sequences(batch=3, time=6, features=D, lengths=(6, 4, 2))
    rng = np.random.default_rng(1)
    memory = rng.normal(size=(3, M, D)).astype("float32")
    valid = np.array([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]], "float32")
    memory *= valid[..., None]
    out, new_memory, new_valid = layer(x, initial_state=[memory, valid], mask=real)
    expected = numpy_attention(x, memory, valid, real, *[w.numpy() for w in layer.weights],
                               previous_keys=previous_keys)
    np.testing.assert_allclose(out, expected[0], atol=1e-5)
    np.testing.assert_allclose(new_memory, expected[1], atol=1e-6)
    np.testing.assert_array_equal(new_valid, expected[2])


def test_previous_keys_read_what_followed_a_repeated_state():
    # A sharp identity query at a repeated state reads the state that followed it before.
    sharp = CausalSelfAttention(0, kernel_initializer="identity", output_initializer="identity",
                                previous_keys=True)
    a, b, c = np.eye(D, dtype="float32")[:3] * 30
    out = sharp(np.stack([a, b, c, a])[None])
    np.testing.assert_allclose(out[0, 3], b, atol=1e-3)


def read_in_windows(layer, x, window):
    """The outputs of `x` read `window` steps at a time, the memory carried along."""
    state, outputs = layer.get_initial_state(x.shape[0]), []
    for start in range(0, x.shape[1], window):
        out, *state = layer(x[:, start:start + window], initial_state=state)
        outputs.append(np.asarray(out))
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("previous_keys", [False, True])
def test_windows_with_the_memory_carried_give_one_long_window(previous_keys):
    layer = make_layer(memory_length=14, previous_keys=previous_keys)  # all but the last
    x = np.random.default_rng(2).normal(size=(2, 15, D)).astype("float32")
    whole, _, _ = layer(x)
    for window in (1, 3, 5, 7):
        np.testing.assert_allclose(read_in_windows(layer, x, window), whole, atol=1e-5)


def test_the_memory_keeps_only_the_last_memory_length_states():
    layer = make_layer(memory_length=3)
    x = np.random.default_rng(3).normal(size=(1, 9, D)).astype("float32")
    _, memory, valid = layer(x[:, :4])
    np.testing.assert_allclose(memory[0], x[0, 1:4])
    np.testing.assert_array_equal(valid, [[1, 1, 1]])
    # Reading 8 steps in windows of 4 sees 3 earlier states at the next window's start, as a
    # window of 3 states then 4 does.
    out, _, _ = layer(x[:, 4:8], initial_state=[memory, valid])
    short, _, _ = layer(x[:, 1:8])
    np.testing.assert_allclose(out, short[:, 3:], atol=1e-5)


@pytest.mark.parametrize("previous_keys", [False, True])
@pytest.mark.parametrize("position", [0, 3, 5, 6, 10, 13])
def test_a_change_of_the_future_never_changes_an_earlier_output(position, previous_keys):
    """Windows of 5 with a memory of 6: the perturbed step is in the first window, a later
    window, or only in the memory of the windows after it."""
    layer = make_layer(memory_length=6, previous_keys=previous_keys)
    x = np.random.default_rng(4).normal(size=(2, 15, D)).astype("float32")
    changed = x.copy()
    changed[:, position] += 3.0
    before, after = read_in_windows(layer, x, 5), read_in_windows(layer, changed, 5)
    np.testing.assert_array_equal(after[:, :position], before[:, :position])
    # The perturbation does reach its own output and, through the memory, the first output
    # of the next window (so the test can fail); with previous keys the first step has
    # nothing to attend to.
    reached = [t for t in (position, (position // 5 + 1) * 5)
               if t < x.shape[1] and not (previous_keys and t == 0)]
    assert np.abs(after[:, reached] - before[:, reached]).max(axis=-1).min() > 1e-4


def test_masked_steps_are_neither_attended_nor_remembered():
    layer = make_layer(memory_length=5)
    x, real = make_sequences(batch=2, time=6, features=D, lengths=(6, 3))
    noisy = x.copy()
    noisy[~real] = 100.0  # whatever the padding holds
    out, memory, valid = layer(noisy, mask=real)
    alone, alone_memory, alone_valid = layer(x[1:, :3])
    np.testing.assert_allclose(out[1, :3], alone[0], atol=1e-5)
    np.testing.assert_array_equal(out[1, 3:], 0.0)
    np.testing.assert_allclose(memory[1], alone_memory[0], atol=1e-6)
    np.testing.assert_array_equal(valid[1], alone_valid[0])
    np.testing.assert_array_equal(valid[1], [0, 0, 1, 1, 1])
    # A left-padded row (holes anywhere) keeps its real steps in order.
    hole = np.array([[False, True, True, False, True, False]])
    _, memory, valid = layer(noisy[:1], mask=hole)
    np.testing.assert_allclose(memory[0, 2:], x[0, [1, 2, 4]])
    np.testing.assert_array_equal(valid, [[0, 0, 1, 1, 1]])


def test_the_memory_stops_the_gradient():
    import tensorflow as tf

    layer = make_layer()
    x = tf.constant(np.random.default_rng(5).normal(size=(1, 3, D)).astype("float32"))
    memory = tf.constant(np.random.default_rng(6).normal(size=(1, M, D)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, memory])
        out, _, _ = layer(x, initial_state=[memory, tf.ones((1, M))])
        loss = tf.reduce_sum(out ** 2)
    assert tape.gradient(loss, memory) is None
    assert tape.gradient(loss, x) is not None


def test_the_attention_weights_are_causal_distributions():
    layer = make_layer()
    x = np.random.default_rng(7).normal(size=(1, 4, D)).astype("float32")
    memory, valid = np.ones((1, M, D), "float32"), np.array([[0, 1, 1, 1]], "float32")
    _, _, _, weights = layer(x, initial_state=[memory, valid], return_attention=True)
    weights = np.asarray(weights)[0]  # (T, M + T)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert np.all(weights[:, 0] == 0)  # the empty memory slot
    assert np.all(np.triu(weights[:, M:], k=1) == 0)  # the future of the window
    assert np.all(weights[:, 1:M] > 0) and np.all(np.diag(weights[:, M:]) > 0)


def test_a_stateful_layer_carries_its_memory_until_reset():
    x = np.random.default_rng(8).normal(size=(2, 6, D)).astype("float32")
    layer = make_layer(memory_length=8)
    whole, _, _ = layer(x)
    stateful = CausalSelfAttention(8, stateful=True)
    stateful.build((2, None, D))
    stateful.set_weights(layer.get_weights())
    first, second = stateful(x[:, :2]), stateful(x[:, 2:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(x[:, :2]), whole[:, :2], atol=1e-6)


def test_config_round_trip_and_the_layer_contract(tmp_path):
    layer = CausalSelfAttention(3, output_dim=4, dropout=0.1, return_state=True, seed=5,
                                output_initializer="zeros", name="attention")
    clone = CausalSelfAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    sequences, mask = make_sequences(features=D)
    check_layer_contract(lambda: CausalSelfAttention(3, output_dim=4), sequences, mask,
                         tmp_path)


@pytest.mark.parametrize("kwargs", [{"memory_length": -1}, {"memory_length": 2.0},
                                    {"memory_length": 2, "dropout": 1.0},
                                    {"memory_length": 2, "output_dim": 0}])
def test_bad_arguments_are_refused_by_name(kwargs):
    with pytest.raises(ValueError, match=[k for k in kwargs if k != "memory_length"][0]
                       if len(kwargs) > 1 else "memory_length"):
        CausalSelfAttention(**kwargs)


@pytest.mark.parametrize("masked", [False, True])
def test_tflite_builtins_give_the_same_window_and_memory(masked):
    layer = make_layer()
    x = np.random.default_rng(9).normal(size=(1, 3, D)).astype("float32")
    memory = np.random.default_rng(10).normal(size=(1, M, D)).astype("float32")
    valid = np.array([[0, 1, 1, 1]], "float32")
    inputs = dict(x=x, memory=memory, valid=valid)
    if masked:
        inputs["mask"] = np.array([[True, False, True]])
    expected = layer(x, initial_state=[memory, valid], mask=inputs.get("mask"))
    got = tflite_outputs(lambda x, memory, valid, mask=None: layer(
        x, initial_state=[memory, valid], mask=mask), inputs, layer)
    assert_all_close(got, expected, atol=1e-5)


@pytest.mark.parametrize("previous_keys", [False, True])
@pytest.mark.parametrize("memory_length", [0, 1, M])
def test_a_step_equals_a_window_of_one_over_a_memory_that_fills_and_wraps(previous_keys,
                                                                        memory_length):
    """`step`, also as LiteRT runs it (without building the sources), against `call` on a
    window of one position: from an empty memory, one half full and one full, for more steps
    than the memory holds, so that it fills and its oldest states are dropped; and against
    the NumPy transcription."""
    layer = make_layer(memory_length=memory_length, previous_keys=previous_keys)
    x, memory, valid = steps_and_memories(memory_length, 3 * memory_length + 4, seed=11)
    weights = [w.numpy() for w in layer.weights]
    window_state = step_state = [memory, valid]
    for t in range(x.shape[1]):
        before = [np.asarray(state) for state in step_state]
        expected, *window_state = layer(x[:, t:t + 1], initial_state=window_state)
        default, _ = layer.step(x[:, t], step_state)
        out, step_state = layer.step(x[:, t], step_state, litert=True)
        np.testing.assert_allclose(out, expected[:, 0], atol=1e-5)
        np.testing.assert_allclose(default, expected[:, 0], atol=1e-5)
        for got, want in zip(step_state, window_state):
            assert tuple(got.shape) == tuple(want.shape)
            np.testing.assert_allclose(got, want, atol=1e-6)
        transcribed, *_ = numpy_attention(x[:, t:t + 1], *before, np.ones((3, 1)), *weights,
                                          previous_keys=previous_keys)
        np.testing.assert_allclose(out, transcribed[:, 0], atol=1e-5)
    assert window_state[1].shape == (3, memory_length)


def test_a_step_keeps_a_stateful_layer_s_memory():
    layer = make_layer(memory_length=4, previous_keys=True)  # all the steps but the last
    stateful = CausalSelfAttention(4, return_state=True, stateful=True, previous_keys=True)
    stateful.build((2, None, D))
    stateful.set_weights(layer.get_weights())
    x = np.random.default_rng(12).normal(size=(2, 5, D)).astype("float32")
    expected, _, _ = layer(x)
    for t in range(5):
        out, _ = stateful.step(x[:, t], litert=t % 2 == 0)
        np.testing.assert_allclose(out, expected[:, t], atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(stateful.step(x[:, 0], litert=True)[0], expected[:, 0],
                               atol=1e-5)


@pytest.mark.parametrize("litert", [False, True])
@pytest.mark.parametrize("previous_keys", [False, True])
def test_tflite_builtins_give_the_same_step(previous_keys, litert):
    layer = make_layer(previous_keys=previous_keys)
    x = np.random.default_rng(13).normal(size=(1, D)).astype("float32")
    memory = np.random.default_rng(14).normal(size=(1, M, D)).astype("float32")
    valid = np.array([[0, 1, 1, 1]], "float32")
    expected = layer.step(x, [memory, valid])
    got = tflite_outputs(lambda x, memory, valid: layer.step(x, [memory, valid],
                                                             litert=litert),
                         dict(x=x, memory=memory, valid=valid), layer)
    assert_all_close(got, expected, atol=1e-5)


def run_in_blocks(layer, x, memory_state, block, granule=None):
    """The outputs of `x` `(batch, T, d)` read with `block_step`, the memory merged every
    `block` steps (and after the last), each block reading `filled_part(granule)` of it."""
    memory_state = [np.asarray(state) for state in memory_state]
    outputs, filled = [], 0
    rows = np.zeros((x.shape[0], block, x.shape[2]), "float32")
    read = memory_state if granule is None else layer.filled_part(memory_state, granule)
    for t in range(x.shape[1]):
        out, rows = layer.block_step(x[:, t], read, rows, filled)
        outputs.append(np.asarray(out))
        filled += 1
        if filled == block or t == x.shape[1] - 1:
            memory_state = layer.merge_block(memory_state, rows, filled)
            read = memory_state if granule is None else layer.filled_part(memory_state,
                                                                          granule)
            filled = 0
    return np.stack(outputs, axis=1), memory_state


@pytest.mark.parametrize("granule", [None, 2, 4])
@pytest.mark.parametrize("previous_keys", [False, True])
def test_steps_in_blocks_equal_steps_over_a_memory_that_fills_and_wraps(previous_keys,
                                                                       granule):
    """`block_step` with `merge_block` every 3 steps (the last block partial), reading the
    whole memory or only its filled part, against `step`: rows with an empty, a half-full and
    a full memory, for more steps than the memory holds."""
    memory_length = 6
    layer = make_layer(memory_length=memory_length, previous_keys=previous_keys)
    x, memory, valid = steps_and_memories(memory_length, 2 * memory_length + 2, seed=21)
    state = [memory, valid]
    expected = []
    for t in range(x.shape[1]):
        out, state = layer.step(x[:, t], state)
        expected.append(np.asarray(out))
    got, merged = run_in_blocks(layer, x, [memory, valid], block=3, granule=granule)
    np.testing.assert_allclose(got, np.stack(expected, axis=1), atol=1e-5)
    for got_state, want in zip(merged, state):
        np.testing.assert_allclose(got_state, want, atol=1e-6)
    # A batch whose memories are all empty: the first block reads no slot of it.
    got, _ = run_in_blocks(layer, x[:1], [memory[:1], valid[:1]], block=3, granule=granule)
    np.testing.assert_allclose(got, np.stack(expected, axis=1)[:1], atol=1e-5)


def test_filled_part_is_every_filled_slot_from_a_granule_boundary():
    layer = make_layer(memory_length=8)
    memory = np.arange(2 * 8 * D, dtype="float32").reshape(2, 8, D)
    valid = np.zeros((2, 8), "float32")
    valid[0, 5:] = 1  # 3 filled
    valid[1, 6:] = 1  # 2 filled
    part, part_valid = layer.filled_part([memory, valid], 2)
    np.testing.assert_array_equal(part, memory[:, 4:])  # slot 5 rounded down to 4
    np.testing.assert_array_equal(part_valid, valid[:, 4:])
    part, _ = layer.filled_part([memory, np.ones((2, 8), "float32")], 4)
    np.testing.assert_array_equal(part, memory)
    part, _ = layer.filled_part([memory, np.zeros((2, 8), "float32")], 4)
    assert part.shape == (2, 0, D)  # an empty memory: nothing to read


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("previous_keys", [False, True])
def test_a_window_without_a_memory_reads_as_over_an_empty_one(previous_keys, masked):
    """Without an initial state only the window is read: the outputs, the memory after it
    and the attention weights (zeros over the memory's slots) are those of a window over an
    explicitly empty memory, which reads every slot."""
    layer = make_layer(previous_keys=previous_keys)
    x = np.random.default_rng(31).normal(size=(2, 6, D)).astype("float32")
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2], bool) if masked else None
    got = layer(x, mask=mask, return_attention=True)
    want = layer(x, initial_state=layer.get_initial_state(2), mask=mask,
                 return_attention=True)
    for a, b in zip(got, want):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.all(np.asarray(got[-1])[..., :M] == 0)


@pytest.mark.parametrize("previous_keys", [False, True])
def test_tflite_builtins_give_the_same_block_step(previous_keys):
    layer = make_layer(previous_keys=previous_keys)
    rng = np.random.default_rng(32)
    x = rng.normal(size=(1, D)).astype("float32")
    memory = rng.normal(size=(1, M, D)).astype("float32")
    valid = np.array([[0, 1, 1, 1]], "float32")
    rows = rng.normal(size=(1, 3, D)).astype("float32")
    for filled in (0, 2):
        expected = layer.block_step(x, [memory, valid], rows, filled)
        got = tflite_outputs(
            lambda x, memory, valid, rows, filled: layer.block_step(x, [memory, valid], rows,
                                                                    filled),
            dict(x=x, memory=memory, valid=valid, rows=rows, filled=np.int32(filled)), layer)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, atol=1e-5)
