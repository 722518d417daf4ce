"""Several recurrent layers run as one, with residual connections and dropout between them."""

import keras
from keras import ops

from nlpapps.layers.bidirectional import own_copy


@keras.saving.register_keras_serializable(package="nlpapps")
class StackedRNN(keras.layers.Layer):
    """A stack of recurrent layers: `x^(l+1) = f_l(drop(x^(l))) (+ x^(l) if residual)`.

    Every layer but the top one returns its whole sequence to the next. A residual connection
    adds a layer's input to its output where both have the same width (Wu et al. 2016);
    `dropout` is applied to the input of every layer above the first (Zaremba et al. 2014).

    Args:
        layers: list of nlpapps recurrent layers (`LSTM`, `GRU`, `SimpleRNN` or
            `Bidirectional` of them with merge mode concat/sum/ave/mul). The stack runs copies
            made from their configs (same names, fresh weights) that return their sequences and
            states; the layers handed in are never changed.
        residual: add residual connections between layers of equal width.
        dropout: fraction of units dropped between layers in training.
        return_sequences: return the top layer's whole sequence (else its last output).
        return_state: also return the final states of every layer, bottom to top.
        seed: seed of the dropout between layers.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: optional `(batch, time)` bool.
        initial_state: optional list with one list of states per layer (or None for a layer).
        training: whether dropout is active.

    Example:
        >>> stack = StackedRNN([LSTM(64), LSTM(64), LSTM(64)], residual=True, dropout=0.2)
        >>> stack(keras.ops.ones((2, 7, 64))).shape
        (2, 7, 64)
    """

    def __init__(self, layers, residual=False, dropout=0.0, return_sequences=True,
                 return_state=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not layers:
            raise ValueError(f"`layers` must hold at least one layer. Received: layers={layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        layers = [keras.saving.deserialize_keras_object(layer) if isinstance(layer, dict)
                  else layer for layer in layers]
        # The stack runs its own copies (every one returns its sequence and its states to the
        # next); the layers handed in are never changed.
        self.layers = [_returning_everything(layer) for layer in layers]
        self.residual = residual
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.seed = seed
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed)
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        shape = sequences_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            output_shape = layer.compute_output_shape(shape)[0]
            shape = tuple(shape[:-1]) + (output_shape[-1],)
        self.built = True

    def call(self, sequences, initial_state=None, mask=None, training=False):
        x = sequences
        all_states = []
        for index, layer in enumerate(self.layers):
            layer_inputs = x
            if index > 0 and self.dropout > 0:
                x = self.dropout_layer(x, training=training)
            state = initial_state[index] if initial_state is not None else None
            output, *states = layer(x, initial_state=state, mask=mask, training=training)
            x = with_residual(output, layer_inputs) if self.residual else output
            all_states.append(states)  # x: (batch, time, units)
        if not self.return_sequences:
            x = _last_real_output(x, mask)
        return [x, all_states] if self.return_state else x

    def step(self, inputs, states, training=False):
        """One time step of the whole stack, the function decoders call: `(batch, features)`
        inputs and one list of states per layer -> `(output (batch, units), new states)`.
        The same function as `call` on a sequence of length one (for layers that are not
        `Bidirectional`, which cannot step)."""
        if any(hasattr(layer, "forward_layer") for layer in self.layers):
            raise ValueError("A stack with a `Bidirectional` layer cannot run one step at a "
                             "time: its backward direction reads the whole sequence first.")
        dropout = (lambda x: self.dropout_layer(x, training=training)) if self.dropout else None
        return stacked_step([layer.cell for layer in self.layers], states, inputs=inputs,
                            between=dropout, residual=self.residual)

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask, None] if self.return_state else output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = tuple(sequences_shape)
        all_states = []
        for layer in self.layers:
            output_shape, *state_shapes = layer.compute_output_shape(shape)
            shape = shape[:-1] + (output_shape[-1],)
            all_states.append(state_shapes)
        output = shape if self.return_sequences else (shape[0], shape[-1])
        return [output, all_states] if self.return_state else output

    def get_config(self):
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(layer) for layer in self.layers],
            "residual": self.residual,
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "seed": self.seed,
        }


def with_residual(output, inputs):
    """`output + inputs` where their widths agree (a residual connection, Wu et al. 2016),
    else `output`: the one residual rule of every stack, over a sequence or one step."""
    return output + inputs if output.shape[-1] == inputs.shape[-1] else output


def stacked_step(cells, states, inputs=None, projected=None, between=None, residual=True):
    """One step through stacked cells of ours: `x^(l+1) = h_l + x^(l)` where widths agree.

    Args:
        cells: the cells, bottom first (each with `project_inputs` and `step`).
        states: one list of states per cell.
        inputs: `(batch, features)`, the bottom cell's input; or
        projected: the bottom cell's input already projected (`(batch, gates * units)`),
            for a decoder that adds more to it (a context); the bottom cell then has no
            residual connection.
        between: applied to the input of every cell above the bottom one (dropout), never to
            the residual path.
        residual: whether to add residual connections.

    Returns:
        `(output (batch, units), new states)`: the top cell's output, one list per cell.
    """
    x = inputs
    new_states = []
    for index, (cell, cell_states) in enumerate(zip(cells, states)):
        if index == 0 and projected is not None:
            h, cell_states = cell.step(projected, list(cell_states))
            x = h
        else:
            fed = between(x) if between is not None and index > 0 else x
            h, cell_states = cell.step(cell.project_inputs(fed), list(cell_states))
            x = with_residual(h, x) if residual else h  # (batch, units)
        new_states.append(cell_states)
    return x, new_states


def _returning_everything(layer):
    """A copy of `layer` (or of both directions of a `Bidirectional`) that returns its whole
    sequence and its states."""
    if hasattr(layer, "forward_layer"):
        config = keras.saving.serialize_keras_object(layer)
        for direction in ("layer", "backward_layer"):
            config["config"][direction]["config"].update(return_sequences=True,
                                                         return_state=True)
        return keras.saving.deserialize_keras_object(config)
    return own_copy(layer, return_sequences=True, return_state=True)


def _last_real_output(sequence, mask):
    """The output at each sequence's last real step: `(batch, time, units) -> (batch, units)`."""
    if mask is None:
        return sequence[:, -1]
    last = ops.sum(ops.cast(mask, "int32"), axis=1) - 1  # (batch,)
    last = ops.maximum(last, 0)
    return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
