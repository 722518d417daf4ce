"""The norm of dL_T/dh_{T-k} against k, taken with `tf.GradientTape` on the real layers.

The adding model's recurrence is run step by step with its own cell (`project_inputs` once,
then `step` per time step, exactly what `nlpapps.layers.RNN` does in its loop), and an offset
`delta_t`, zero, is added to the hidden state h_t after step t. Then dL/d delta_t = dL/dh_t:
the gradient of the last step's loss with respect to the state that the step t hands on
(through every later step: for an LSTM, h_t, with the cell state c_t a separate path).

Gradients that shrink or grow geometrically leave float32's range within a few hundred steps
(below 1e-45 they are 0; a ReLU state growing as 1.5^t overflows), so `in_float64` copies a
trained model into float64 for the measurement.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def in_float64(model: keras.Model, cell: str) -> keras.Model:
    """A float64 copy of the adding model `model` of `cell`, with its weights."""
    from nlpapps.gradients.cells import adding_model

    copy = adding_model(cell, recurrence_of(model).units, dtype="float64")
    copy.set_weights([weight.astype(np.float64) for weight in model.get_weights()])
    return copy


def recurrence_of(model: keras.Model) -> keras.layers.Layer:
    """The sequence layer of an adding model (`cells.adding_model`)."""
    return next(layer for layer in model.layers if hasattr(layer, "cell"))


def loss_with_offsets(model: keras.Model, inputs, targets, offsets):
    """Per-example squared error of `model` on `inputs` `(batch, T, 2)` against `targets`
    `(batch, 1)`, with `offsets[t]` `(batch, units)` added to h_t after step t; `(batch,)`."""
    layer, readout = recurrence_of(model), model.get_layer("readout")
    cell = layer.cell
    inputs = tf.convert_to_tensor(inputs, dtype=layer.compute_dtype)
    projected = cell.project_inputs(tf.transpose(inputs, (1, 0, 2)))  # (T, batch, gates*units)
    states = layer.get_initial_state(tf.shape(inputs)[0])
    for t in range(projected.shape[0]):
        _, states = cell.step(projected[t], states)
        states = [states[0] + offsets[t], *states[1:]]  # h_t + delta_t; c_t untouched
    prediction = readout(states[0])  # (batch, 1)
    return tf.reduce_sum(tf.square(prediction - tf.cast(targets, prediction.dtype)), axis=-1)


def state_gradients(model: keras.Model, inputs, targets) -> np.ndarray:
    """dL_T/dh_t for every step t and example: `(T, batch, units)`, where L_T is each
    example's squared error at the last step (examples do not interact, so one gradient of
    their sum gives each example's own)."""
    layer = recurrence_of(model)
    batch, steps = np.shape(inputs)[:2]
    offsets = tf.zeros((steps, batch, layer.units), dtype=layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(offsets)
        loss = tf.reduce_sum(loss_with_offsets(model, inputs, targets, offsets))
    return tape.gradient(loss, offsets).numpy()


def gradient_norms(model: keras.Model, inputs, targets) -> np.ndarray:
    """`(T,)`: at index k, the mean over examples of ||dL_T/dh_{T-k}|| (k = 0 is the last
    step)."""
    gradients = state_gradients(model, inputs, targets)  # (T, batch, units)
    norms = np.linalg.norm(gradients, axis=-1).mean(axis=-1)  # (T,)
    return norms[::-1].copy()
