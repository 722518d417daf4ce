"""NTMCell and NTM: one step against a NumPy transcription of Graves et al. 2014's equations,
the sequence layer against stepping the cell, config and `.keras` round trips, and finite
gradients from the constant initial memory."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.layers import NTM, NTMCell

FEATURES, UNITS, N, WIDTH = 3, 4, 5, 3


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def reference_step(cell, x, states):
    """One step of the NTM for one sequence, written from the paper's equations location by
    location: LSTM controller on [x, r_prev], content addressing (cosine, softmax of beta K),
    interpolation, circular convolution with the shift weighting, sharpening, reading from the
    previous memory, then erase and add for each write head in turn."""
    eps, reads, writes = cell.epsilon, cell.read_heads, cell.write_heads
    controller = cell.controller_cell
    kernel, recurrent, bias = (np.asarray(w) for w in
                               (controller.kernel, controller.recurrent_kernel, controller.bias))
    previous, c_prev, memory, w_prev = (np.asarray(s, np.float64) for s in states)
    h_prev, r_prev = previous[:UNITS], previous[UNITS:]
    memory = memory.reshape(N, WIDTH)
    w_prev = w_prev.reshape(reads + writes, N)

    z = np.concatenate([x, r_prev]) @ kernel + bias + h_prev @ recurrent
    i, f, g_c, o = np.split(z, 4)
    c = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(g_c)
    h = sigmoid(o) * np.tanh(c)

    p = np.clip(h @ np.asarray(cell.head_kernel) + np.asarray(cell.head_bias),
                -cell.clip_value, cell.clip_value)
    size = WIDTH + 6
    weightings = []
    for head in range(reads + writes):
        q = p[head * size:(head + 1) * size]
        k, beta, g = np.tanh(q[:WIDTH]), softplus(q[WIDTH]), sigmoid(q[WIDTH + 1])
        s = softmax(q[WIDTH + 2:WIDTH + 5])  # s[0]: shift -1, s[1]: 0, s[2]: +1
        gamma = 1.0 + softplus(q[WIDTH + 5])
        similarity = np.array([k @ memory[j] / (np.linalg.norm(k) * np.linalg.norm(memory[j])
                                                 + eps) for j in range(N)])
        w_c = softmax(beta * similarity)
        w_g = g * w_c + (1 - g) * w_prev[head]
        shift = {-1: s[0], 0: s[1], 1: s[2]}
        w_tilde = np.array([sum(w_g[j] * shift.get((i - j + 1) % N - 1, 0.0) for j in range(N))
                            for i in range(N)])
        sharp = (w_tilde + eps) ** gamma
        weightings.append(sharp / sharp.sum())

    r = np.concatenate([weightings[head] @ memory for head in range(reads)])
    rest = p[(reads + writes) * size:]
    new_memory = memory.copy()
    for head in range(writes):
        e = sigmoid(rest[head * 2 * WIDTH:head * 2 * WIDTH + WIDTH])
        new_memory = new_memory * (1 - np.outer(weightings[reads + head], e))
    for head in range(writes):
        a = np.tanh(rest[head * 2 * WIDTH + WIDTH:(head + 1) * 2 * WIDTH])
        new_memory = new_memory + np.outer(weightings[reads + head], a)
    output = np.concatenate([h, r])
    return output, [output, c, new_memory.reshape(-1), np.concatenate(weightings)]


def random_cell(read_heads=1, write_heads=1, seed=0):
    keras.utils.set_random_seed(seed)
    cell = NTMCell(UNITS, memory_size=N, memory_width=WIDTH, read_heads=read_heads,
                   write_heads=write_heads)
    cell.build((None, FEATURES))
    rng = np.random.default_rng(seed)
    # Larger head parameters than the initializer gives, so that every gate and the shifts
    # are far from their defaults and sharpening is not ~1.
    cell.set_weights([rng.normal(scale=1.0, size=w.shape).astype("float32")
                      for w in cell.get_weights()])
    return cell


def random_states(cell, batch, seed=1):
    rng = np.random.default_rng(seed)
    heads = cell.read_heads + cell.write_heads
    weightings = rng.dirichlet(np.ones(N), size=(batch, heads)).reshape(batch, heads * N)
    return [rng.normal(size=(batch, cell.output_size)), rng.normal(size=(batch, UNITS)),
            rng.normal(size=(batch, N * WIDTH)), weightings]


@pytest.mark.parametrize("read_heads,write_heads", [(1, 1), (2, 2)])
def test_one_step_matches_the_papers_equations(read_heads, write_heads):
    cell = random_cell(read_heads, write_heads)
    batch = 3
    x = np.random.default_rng(2).normal(size=(batch, FEATURES))
    states = random_states(cell, batch)
    output, new_states = cell(x.astype("float32"),
                              [s.astype("float32") for s in states])
    for row in range(batch):
        expected, expected_states = reference_step(cell, x[row], [s[row] for s in states])
        np.testing.assert_allclose(np.asarray(output)[row], expected, atol=2e-5)
        for actual, wanted in zip(new_states, expected_states):
            np.testing.assert_allclose(np.asarray(actual)[row], wanted, atol=2e-5)
    weightings = np.asarray(new_states[-1]).reshape(batch, read_heads + write_heads, N)
    np.testing.assert_allclose(weightings.sum(-1), 1.0, atol=1e-5)


# A batch of 2 is projected before the loop, one of 10 step by step inside it (`rnn.py`).
@pytest.mark.parametrize("batch", [2, 10], ids=["projected-first", "projected-inside"])
def test_sequence_layer_steps_the_cell_from_its_learned_initial_states(batch):
    layer = NTM(UNITS, memory_size=N, memory_width=WIDTH, return_sequences=True,
                return_state=True)
    rng = np.random.default_rng(3)
    sequences = rng.normal(size=(batch, 6, FEATURES)).astype("float32")
    layer.build(sequences.shape)  # the controller's bias too, which starts at zero
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.weights])
    outputs, *final = layer(sequences)
    cell = layer.cell
    states = cell.get_initial_state(batch)
    # The initial memory is the constant; the read vectors and weightings are learned.
    np.testing.assert_allclose(np.asarray(states[2]), 1e-6)
    np.testing.assert_allclose(np.asarray(states[0])[:, UNITS:],
                               np.tanh(np.asarray(cell.initial_read)).reshape(1, -1)
                               .repeat(batch, 0), atol=1e-6)
    for t in range(6):
        output, states = cell(sequences[:, t], states)
        np.testing.assert_allclose(np.asarray(outputs)[:, t], np.asarray(output), atol=1e-5)
    for actual, wanted in zip(final, states):
        np.testing.assert_allclose(np.asarray(actual), np.asarray(wanted), atol=1e-5)


def test_config_round_trip_and_keras_file(tmp_path):
    cell = NTMCell(UNITS, memory_size=N, memory_width=WIDTH, read_heads=2, write_heads=1,
                   controller="gru", clip_value=10.0, memory_init=1e-5, epsilon=1e-7)
    config = cell.get_config()
    assert NTMCell.from_config(config).get_config() == config

    inputs = keras.Input((None, FEATURES))
    hidden = NTM(UNITS, memory_size=N, memory_width=WIDTH, read_heads=2, controller="gru",
                 return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    layer = model.layers[1]
    assert NTM.from_config(layer.get_config()).get_config() == layer.get_config()
    sequences = np.random.default_rng(4).normal(size=(2, 5, FEATURES)).astype("float32")
    model.save(tmp_path / "ntm.keras")
    loaded = keras.saving.load_model(tmp_path / "ntm.keras")
    np.testing.assert_allclose(np.asarray(loaded(sequences)), np.asarray(model(sequences)),
                               atol=1e-6)


def test_gradients_are_finite_from_the_constant_memory():
    # Every location of the initial memory is the same tiny vector: the cosine's norms are
    # ~1e-6 and, with sharp heads, weightings underflow to 0; the epsilons keep both finite.
    keras.utils.set_random_seed(0)
    layer = NTM(UNITS, memory_size=N, memory_width=WIDTH, return_sequences=True,
                kernel_initializer=keras.initializers.RandomNormal(stddev=30.0))
    sequences = np.random.default_rng(5).integers(0, 2, size=(4, 7, FEATURES)).astype("float32")
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer(sequences) ** 2)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)
    assert any(np.any(np.asarray(g) != 0) for g in gradients)


@pytest.mark.parametrize("argument", [dict(memory_size=2), dict(read_heads=0),
                                      dict(controller="transformer"), dict(epsilon=0.0)])
def test_bad_arguments_name_themselves(argument):
    name = next(iter(argument))
    with pytest.raises(ValueError, match=name):
        NTMCell(UNITS, **argument)


@pytest.mark.parametrize("layer", [NTMCell, NTM])
def test_recurrent_dropout_is_refused_when_built(layer):
    with pytest.raises(ValueError, match="recurrent_dropout=0.3"):
        layer(UNITS, memory_size=8, memory_width=4, recurrent_dropout=0.3)
    layer(UNITS, memory_size=8, memory_width=4, recurrent_dropout=0.0)  # as configs hold it
