"""MemoryNetwork: one forward pass against a NumPy transcription of Sukhbaatar et al. 2015's
equations, masking, linear start, random noise, and the layer's config and saving."""

import keras
import numpy as np
import pytest

from nlpapps.layers import MemoryNetwork

VOCAB, D, HOPS, MEMORY, WORDS = 12, 6, 3, 5, 4


def make_inputs(seed=0):
    """A story batch with padded words and empty sentences at the end, and questions."""
    rng = np.random.default_rng(seed)
    story = rng.integers(1, VOCAB, size=(2, MEMORY, WORDS))
    story[0, 3:] = 0  # row 0: three sentences
    story[0, 1, 2:] = 0  # of which one has two words
    story[1, 2, 3] = 0  # row 1: five sentences, one of three words
    question = rng.integers(1, VOCAB, size=(2, 3))
    question[1, 2] = 0
    return story.astype("int32"), question.astype("int32")


def numpy_memn2n(story, question, E, T, softmax=True, position=True):
    """The paper's equations, sentence by sentence, word by word."""

    def encode(embedding, words):
        words = [w for w in words if w]
        J, out = len(words), np.zeros(D)
        for j, w in enumerate(words, start=1):
            k = np.arange(1, D + 1)
            l_j = (1 - j / J) - (k / D) * (1 - 2 * j / J) if position else np.ones(D)
            out += l_j * embedding[w]
        return out

    us, attentions = [], []
    for s, q in zip(story, question):
        sentences = [x for x in s if x.any()]
        n = len(sentences)
        u = encode(E[0], q)
        p_all = []
        for k in range(1, HOPS + 1):
            # A^k = E[k-1], C^k = E[k]; T_A^k = T[k-1], T_C^k = T[k]; age 0 = most recent
            m = np.array([encode(E[k - 1], x) + T[k - 1][n - 1 - i]
                          for i, x in enumerate(sentences)])
            c = np.array([encode(E[k], x) + T[k][n - 1 - i] for i, x in enumerate(sentences)])
            scores = m @ u
            p = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() \
                if softmax else scores
            u = u + p @ c
            p_all.append(np.concatenate([p, np.zeros(MEMORY - n)]))
        us.append(u)
        attentions.append(p_all)
    return np.array(us), np.array(attentions)


def weights_of(layer):
    E = [np.asarray(w) for w in layer.embeddings]
    T = [np.asarray(w) for w in layer.temporal]
    return E, T


@pytest.mark.parametrize("position", [True, False])
def test_forward_pass_matches_the_papers_equations(position):
    keras.utils.set_random_seed(0)
    layer = MemoryNetwork(VOCAB, D, HOPS, MEMORY, position_encoding=position,
                          embeddings_initializer="glorot_uniform")
    story, question = make_inputs()
    u, attention = layer([story, question])
    expected_u, expected_attention = numpy_memn2n(story, question, *weights_of(layer),
                                                  position=position)
    np.testing.assert_allclose(np.asarray(u), expected_u, atol=1e-5)
    np.testing.assert_allclose(np.asarray(attention), expected_attention, atol=1e-6)
    assert np.asarray(attention)[0, :, 3:].max() == 0  # empty sentences get no attention


def test_linear_start_drops_the_softmax_until_switched_on():
    keras.utils.set_random_seed(1)
    layer = MemoryNetwork(VOCAB, D, HOPS, MEMORY, linear_start=True,
                          embeddings_initializer="glorot_uniform")
    story, question = make_inputs(1)
    u, attention = layer([story, question])
    E, T = weights_of(layer)
    np.testing.assert_allclose(np.asarray(u), numpy_memn2n(story, question, E, T, False)[0],
                               atol=1e-5)
    assert not layer.softmax_enabled
    layer.softmax_enabled = True
    u, attention = layer([story, question])
    np.testing.assert_allclose(np.asarray(u), numpy_memn2n(story, question, E, T)[0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-6)


def test_padding_words_and_sentences_change_nothing():
    keras.utils.set_random_seed(2)
    layer = MemoryNetwork(VOCAB, D, HOPS, MEMORY + 2)
    story, question = make_inputs(2)
    wider = np.zeros((2, MEMORY + 2, WORDS + 3), "int32")
    wider[:, :MEMORY, :WORDS] = story
    longer_question = np.pad(question, ((0, 0), (0, 2)))
    u, _ = layer([np.pad(story, ((0, 0), (0, 2), (0, 0))), question])
    u_wide, _ = layer([wider, longer_question])
    np.testing.assert_allclose(np.asarray(u_wide), np.asarray(u), atol=1e-6)


def test_random_noise_ages_sentences_in_training_only():
    keras.utils.set_random_seed(3)
    layer = MemoryNetwork(VOCAB, D, HOPS, MEMORY, random_noise=0.5)
    story, question = make_inputs(3)
    plain = np.asarray(layer([story, question])[0])
    np.testing.assert_allclose(np.asarray(layer([story, question], training=False)[0]), plain)
    noisy = [np.asarray(layer([story, question], training=True)[0]) for _ in range(3)]
    assert any(np.abs(n - plain).max() > 1e-4 for n in noisy)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="hops"):
        MemoryNetwork(VOCAB, D, hops=0)
    with pytest.raises(ValueError, match="random_noise"):
        MemoryNetwork(VOCAB, D, random_noise=1.5)


def test_config_round_trip_and_keras_file(tmp_path):
    keras.utils.set_random_seed(4)
    layer = MemoryNetwork(VOCAB, D, HOPS, MEMORY, position_encoding=False, random_noise=0.1,
                          linear_start=True, name="memory")
    clone = MemoryNetwork.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    story, question = make_inputs(4)
    inputs = [keras.Input((MEMORY, WORDS), dtype="int32"), keras.Input((3,), dtype="int32")]
    u, attention = layer(inputs)
    model = keras.Model(inputs, [u, attention])
    layer.softmax_enabled = True
    expected = model.predict([story, question], verbose=0)
    model.save(tmp_path / "memory.keras")
    loaded = keras.saving.load_model(tmp_path / "memory.keras")
    for got, want in zip(loaded.predict([story, question], verbose=0), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert loaded.get_layer("memory").softmax_enabled  # the switch is saved with the weights
