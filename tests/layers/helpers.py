"""Shared by the layer tests: inputs, comparisons, the layer contract and a builtins-only
TFLite round trip."""

import json

import keras
import numpy as np
import tensorflow as tf


def make_sequences(batch=3, time=6, features=5, lengths=(6, 4, 2), seed=0):
    """A `(batch, time, features)` float32 batch and its `(batch, time)` mask: row i has
    `lengths[i]` real steps, then right padding."""
    rng = np.random.default_rng(seed)
    sequences = rng.normal(size=(batch, time, features)).astype("float32")
    mask = np.arange(time)[None, :] < np.array(lengths)[:, None]
    return sequences, mask


def flat(outputs):
    """A layer's outputs (a tensor or a nested list of them) as a flat list of arrays."""
    return [np.asarray(x) for x in keras.tree.flatten(outputs)]


def assert_all_close(actual, expected, atol=1e-5):
    """Two (nested) lists of outputs have the same structure, shapes and values."""
    actual, expected = flat(actual), flat(expected)
    shapes, expected_shapes = [a.shape for a in actual], [e.shape for e in expected]
    assert shapes == expected_shapes, f"shapes {shapes} != {expected_shapes}"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=0)


def _assert_same_config(config, expected):
    # Compared as they read back from a file: JSON has lists where Python had tuples.
    config, expected = json.loads(json.dumps(config)), json.loads(json.dumps(expected))
    differing = sorted(key for key in config.keys() | expected.keys()
                       if config.get(key) != expected.get(key))
    assert not differing, f"config entries differ: {differing}"


def _shape_list(shapes):
    # compute_output_shape returns a shape tuple or a (nested) list of them.
    if isinstance(shapes, tuple) and all(d is None or isinstance(d, int) for d in shapes):
        return [shapes]
    return [shape for item in shapes for shape in _shape_list(item)]


def check_layer_contract(make_layer, sequences, mask, tmp_path, make_reference=None):
    """Checks the contract of every nlpapps layer on `sequences` and its `mask`.

    `make_layer()` gives outputs of the shapes its `compute_output_shape` promises; it has the
    weights (count, order, shapes) of `make_reference()` (a Keras built-in), takes them and
    then gives the same outputs; `get_config`/`from_config` round-trips; in a functional model
    it survives `.keras` save/load (into `tmp_path`) with identical outputs; one training step
    gives a finite loss and changes every weight.
    """
    keras.utils.set_random_seed(0)
    layer = make_layer()
    outputs = flat(layer(sequences, mask=mask))
    shapes = [x.shape for x in outputs]
    expected_shapes = [tuple(s) for s in
                       _shape_list(layer.compute_output_shape(sequences.shape))]
    assert shapes == expected_shapes, f"shapes {shapes} != compute_output_shape {expected_shapes}"

    if make_reference is not None:
        reference = make_reference()
        reference_outputs = reference(sequences, mask=mask)
        weights = [tuple(w.shape) for w in layer.weights]
        reference_weights = [tuple(w.shape) for w in reference.weights]
        assert weights == reference_weights, f"weights {weights} != {reference_weights}"
        layer.set_weights(reference.get_weights())
        outputs = flat(layer(sequences, mask=mask))
        assert_all_close(outputs, reference_outputs, atol=1e-5)

    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(sequences, mask=mask)
    _assert_same_config(clone.get_config(), config)
    clone.set_weights(layer.get_weights())
    assert_all_close(clone(sequences, mask=mask), outputs, atol=1e-7)

    keras.utils.set_random_seed(1)
    sequences_in = keras.Input(sequences.shape[1:], name="sequences")
    mask_in = keras.Input(mask.shape[1:], dtype="bool", name="mask")
    model_layer = make_layer()
    model = keras.Model([sequences_in, mask_in], model_layer(sequences_in, mask=mask_in))
    inputs = [sequences, mask]
    expected = flat(model(inputs))
    assert [x.shape for x in expected] == [x.shape for x in outputs], "functional shapes"
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.get_layer(model_layer.name)
    assert type(loaded_layer) is type(model_layer), type(loaded_layer)
    _assert_same_config(loaded_layer.get_config(), model_layer.get_config())
    for actual, saved in zip(flat(loaded(inputs)), expected, strict=True):
        np.testing.assert_array_equal(actual, saved)

    model.compile("adam", "mse")
    before = [np.array(w) for w in model.trainable_weights]
    targets = [np.random.default_rng(2).normal(size=x.shape).astype("float32")
               for x in expected]
    loss = model.train_on_batch(inputs, targets if len(targets) > 1 else targets[0])
    assert np.all(np.isfinite(loss)), f"loss {loss}"
    assert len(before) == len(model_layer.trainable_weights) > 0, "no trainable weights"
    for weight, old in zip(model.trainable_weights, before):
        assert np.any(np.array(weight) != old), f"{weight.path} did not change"


def _builtin_op_names(flatbuffer):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    ops = set()
    for code in model.operatorCodes:  # every subgraph's ops, the while loop's bodies too
        if code.customCode is not None:
            ops.add(code.customCode.decode() if isinstance(code.customCode, bytes)
                    else code.customCode)
        else:
            ops.add(names[max(code.builtinCode, code.deprecatedBuiltinCode)])
    return ops


def tflite_outputs(function, inputs, trackable):
    """Converts `function(**inputs)` at the inputs' static shapes to a TFLite model of builtin
    ops only, runs it in LiteRT on `inputs` and returns its outputs as a list of arrays.

    Asserts that no op of the model, in any subgraph, is a Flex or custom op.
    """
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    names = list(inputs)  # also the input names of the TFLite signature
    signature = [tf.TensorSpec(np.shape(value), tf.as_dtype(np.asarray(value).dtype), name=name)
                 for name, value in inputs.items()]
    traced = tf.function(lambda *args: function(**dict(zip(names, args))),
                         input_signature=signature, autograph=False)
    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    ops = _builtin_op_names(flatbuffer)
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    results = interpreter.get_signature_runner()(**inputs)
    return [results[f"output_{index}"] for index in range(len(results))]
