import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpapps.layers.attention import BahdanauAttention, LuongAttention

from helpers import tflite_outputs

BATCH, SRC_LEN, TGT_LEN, QUERY_DIM, VALUE_DIM, UNITS = 2, 6, 3, 4, 5, 7
LENGTHS = (6, 3)  # the second source is padded after 3 positions


def make_inputs(query_dim=QUERY_DIM, value_dim=VALUE_DIM, seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(BATCH, TGT_LEN, query_dim)).astype("float32")
    values = rng.normal(size=(BATCH, SRC_LEN, value_dim)).astype("float32")
    mask = np.arange(SRC_LEN)[None, :] < np.array(LENGTHS)[:, None]
    return query, values, mask


LAYERS = {
    "bahdanau": lambda: BahdanauAttention(UNITS, name="attention"),
    "bahdanau_bias": lambda: BahdanauAttention(UNITS, use_bias=True, bias_initializer="ones"),
    "luong_general": lambda: LuongAttention(name="attention"),
    "luong_dot": lambda: LuongAttention(score="dot"),
}


def make_layer(kind, seed=1):
    keras.utils.set_random_seed(seed)
    layer = LAYERS[kind]()
    value_dim = QUERY_DIM if kind == "luong_dot" else VALUE_DIM
    query, values, mask = make_inputs(value_dim=value_dim)
    layer.build(query.shape, values.shape)
    return layer, (query, values, mask)


def reference(layer, query, values, mask):
    """NumPy attention over a (batch, tgt_len, query_dim) query."""
    w = {v.name: np.asarray(v) for v in layer.weights}
    if isinstance(layer, BahdanauAttention):
        keys = values @ w["key_kernel"] + w.get("bias", 0.0)
        hidden = np.tanh((query @ w["query_kernel"])[:, :, None] + keys[:, None])
        scores = hidden @ w["score_kernel"]
    else:
        keys = values @ w["kernel"] if layer.score == "general" else values
        scores = query @ keys.transpose(0, 2, 1)
    scores = np.where(mask[:, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ values, weights


@pytest.mark.parametrize("kind", list(LAYERS))
def test_matches_numpy_reference_with_mask(kind):
    layer, (query, values, mask) = make_layer(kind)
    context, weights = layer(query, values, mask=mask)
    ref_context, ref_weights = reference(layer, query, values, mask)
    assert context.shape == (BATCH, TGT_LEN, values.shape[-1])
    assert weights.shape == (BATCH, TGT_LEN, SRC_LEN)
    weights = np.asarray(weights)
    assert np.all(weights[1, :, LENGTHS[1]:] == 0.0)
    assert np.all(weights[1, :, : LENGTHS[1]] > 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_precomputed_keys_and_single_steps_agree(kind):
    layer, (query, values, mask) = make_layer(kind)
    context, weights = layer(query, values, mask=mask)
    keys = layer.precompute_keys(values)
    assert keys.shape == (BATCH, SRC_LEN, layer.units or query.shape[-1])
    for t in range(TGT_LEN):
        step_context, step_weights = layer(query[:, t], values, keys=keys, mask=mask)
        assert step_context.shape == (BATCH, values.shape[-1])
        assert step_weights.shape == (BATCH, SRC_LEN)
        np.testing.assert_allclose(step_context, context[:, t], atol=1e-6)
        np.testing.assert_allclose(step_weights, weights[:, t], atol=1e-6)


def test_without_mask_every_position_is_attended():
    layer, (query, values, _) = make_layer("bahdanau")
    _, weights = layer(query, values)
    _, ref_weights = reference(layer, query, values, np.ones((BATCH, SRC_LEN), bool))
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_config_round_trip(kind):
    layer, (query, values, mask) = make_layer(kind)
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(query.shape, values.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(query, values, mask=mask)[0],
                               layer(query, values, mask=mask)[0])


@pytest.mark.parametrize("kind", ["bahdanau", "luong_general"])
def test_keras_save_load_round_trip(kind, tmp_path):
    keras.utils.set_random_seed(2)
    query_in = keras.Input((QUERY_DIM,))
    values_in = keras.Input((SRC_LEN, VALUE_DIM))
    mask_in = keras.Input((SRC_LEN,), dtype="bool")
    outputs = LAYERS[kind]()(query_in, values_in, mask=mask_in)
    model = keras.Model([query_in, values_in, mask_in], outputs)
    query, values, mask = make_inputs()
    inputs = [query[:, 0], values, mask]
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("attention")) is type(model.get_layer("attention"))
    for expected, actual in zip(model(inputs), loaded(inputs)):
        np.testing.assert_array_equal(expected, actual)


@pytest.mark.parametrize("kind", ["bahdanau_bias", "luong_general"])
def test_gradients_reach_every_weight(kind):
    layer, (query, values, mask) = make_layer(kind)
    with tf.GradientTape() as tape:
        context, _ = layer(query, values, mask=mask)
        loss = tf.reduce_sum(context * np.arange(values.shape[-1], dtype="float32"))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == (4 if kind == "bahdanau_bias" else 1)
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, weight.name
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), weight.name


@pytest.mark.parametrize("kind,single_step", [("bahdanau_bias", True), ("luong_general", False)])
def test_tflite_builtins_match_keras(kind, single_step):
    layer, (query, values, mask) = make_layer(kind)
    query, values = (x[:1] for x in (query, values))
    if single_step:
        query = query[:, 0]
    mask = np.array([[True, True, False, True, False, False]])  # holes too, not just a tail
    inputs = {"query": query, "values": values, "mask": mask}
    results = tflite_outputs(lambda query, values, mask: layer(query, values, mask=mask),
                             inputs, layer)
    context, weights = layer(query, values, mask=mask)
    assert results[0].shape == context.shape
    np.testing.assert_allclose(results[0], context, atol=1e-5)
    np.testing.assert_allclose(results[1], weights, atol=1e-5)
    assert np.all(results[1][..., ~mask[0]] == 0.0)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: BahdanauAttention(0), "units"),
        (lambda: BahdanauAttention(4.0), "units"),
        (lambda: BahdanauAttention(True), "units"),
        (lambda: BahdanauAttention(4, use_bias="yes"), "use_bias"),
        (lambda: BahdanauAttention(4, kernel_initializer="no_such_init"), "kernel_initializer"),
        (lambda: LuongAttention(score="concat"), "score"),
        (lambda: LuongAttention(units=-2), "units"),
        (lambda: LuongAttention(units=4, score="dot"), "units"),
        (lambda: LuongAttention(units=3).build((None, 4), (None, 6, 5)), "units"),
        (lambda: LuongAttention(score="dot").build((None, 4), (None, 6, 5)), "query_dim"),
        (lambda: BahdanauAttention(4).build((None, 2, 3, 4), (None, 6, 5)), "query"),
        (lambda: BahdanauAttention(4).build((None, 4), (None, 5)), "values"),
        (lambda: BahdanauAttention(4).precompute_keys(np.zeros((1, 6, 5))), "build"),
    ],
)
def test_bad_arguments_raise(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
