"""The recurrences whose gradients are compared, all built from `nlpapps.layers`, and the
model that reads the adding problem with one of them."""

from __future__ import annotations

import keras

from nlpapps.layers import GRU, LSTM, SimpleRNN
from nlpapps.layers.initializers import Identity

# name: what it is, in words (the order of the tables and figures)
CELLS = {
    "tanh": "SimpleRNN, tanh, orthogonal recurrent kernel",
    "irnn": "SimpleRNN, ReLU, recurrent kernel 1.0 x identity (IRNN)",
    "irnn1.5": "SimpleRNN, ReLU, recurrent kernel 1.5 x identity",
    "lstm": "LSTM, forget-gate bias 1",
    "gru": "GRU, reset gate after the recurrent matmul (reset_after=True, cuDNN's form)",
    "gru-textbook": "GRU, reset gate before the recurrent matmul (reset_after=False)",
}


def recurrent_layer(cell: str, units: int, dtype=None) -> keras.layers.Layer:
    """The sequence layer named `cell` (a key of `CELLS`), returning its last output."""
    if cell == "tanh":
        return SimpleRNN(units, name="tanh", dtype=dtype)
    if cell in ("irnn", "irnn1.5"):
        gain = 1.5 if cell == "irnn1.5" else 1.0
        # Le et al. 2015: input weights N(0, 0.001), biases 0, recurrent weights gain * I.
        return SimpleRNN(units, activation="relu", recurrent_initializer=Identity(gain),
                         kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                         name=cell.replace(".", "_"), dtype=dtype)
    if cell == "lstm":
        return LSTM(units, name="lstm", dtype=dtype)
    if cell in ("gru", "gru-textbook"):
        return GRU(units, reset_after=cell == "gru", name=cell.replace("-", "_"), dtype=dtype)
    raise ValueError(f"unknown cell {cell!r}; use one of {', '.join(CELLS)}")


def adding_model(cell: str, units: int, dtype=None) -> keras.Model:
    """`(batch, time, 2) -> (batch, 1)`: the recurrence (layer "recurrence"'s cell), then a
    linear read-out ("readout") of its last output. Weights are drawn from Keras's global seed
    (set it first); `dtype` (e.g. "float64") is the layers' dtype."""
    inputs = keras.Input((None, 2), dtype=dtype)
    layer = recurrent_layer(cell, units, dtype)
    outputs = keras.layers.Dense(1, name="readout", dtype=dtype)(layer(inputs))
    return keras.Model(inputs, outputs, name=f"adding_{cell}")
