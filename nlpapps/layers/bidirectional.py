"""Bidirectional wrapper: one recurrent layer reading forwards, a copy reading backwards."""

import keras
from keras import ops

MERGE_MODES = ("concat", "sum", "ave", "mul", None)


@keras.saving.register_keras_serializable(package="nlpapps")
class Bidirectional(keras.layers.Layer):
    """Runs `layer` forwards and a copy of it backwards and merges their outputs.

    With `->h_t` the forward output and `<-h_t` the backward output at position t (the
    backward layer reads x_T .. x_1; its outputs are flipped back to line up with the inputs):

        concat: [->h_t ; <-h_t]    sum: ->h_t + <-h_t    ave: (->h_t + <-h_t) / 2
        mul: ->h_t * <-h_t         None: the list [->h_t, <-h_t]

    On a right-padded masked batch the backward direction starts at each sequence's last real
    token (the padding it meets first is skipped), and padded positions of a returned sequence
    are zeros. The weights are the forward layer's, then the backward layer's, as in
    `keras.layers.Bidirectional`, so the two take each other's `get_weights()`.

    Under a mixed-precision policy the merged output is in this layer's compute dtype (the
    states are as the directions return them), as in Keras.

    Args:
        layer: an nlpapps recurrent layer (`LSTM`, `GRU`, `SimpleRNN`).
        merge_mode: one of "concat", "sum", "ave", "mul" or None.
        weights: optional list of initial weights, the forward layer's then the backward
            layer's, set when the layer is built.
        backward_layer: optional layer for the backward direction (default: `layer` with
            `go_backwards` flipped).

    The wrapper runs its own copies of `layer` and `backward_layer`, made from their configs
    (named `forward_<name>` and `backward_<name>`, with fresh weights): the layers handed in
    are never changed, as in `keras.layers.Bidirectional`.

    With a stateful `layer` (`stateful=True`), both directions carry their states from batch
    to batch and `reset_state()` resets both.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: optional `(batch, time)` bool.
        initial_state: optional list: the forward layer's states, then the backward layer's.
        training: whether dropout is active.

    Returns:
        The merged output; with `return_state`, followed by the forward then backward states.

    Example:
        >>> encoder = Bidirectional(LSTM(64, return_sequences=True), merge_mode="concat")
        >>> encoder(keras.ops.ones((2, 7, 16))).shape
        (2, 7, 128)

    Reference: Schuster & Paliwal, "Bidirectional Recurrent Neural Networks", 1997.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"`merge_mode` must be one of {MERGE_MODES}. Received: merge_mode={merge_mode}")
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if isinstance(backward_layer, dict):
            backward_layer = keras.saving.deserialize_keras_object(backward_layer)
        # Both directions are this wrapper's own copies, built from the given layers' configs:
        # the layers handed in are left as they were (as keras.layers.Bidirectional does).
        if backward_layer is None:
            backward_layer = own_copy(layer, go_backwards=not layer.go_backwards,
                                      name="backward_" + layer.name.removeprefix("backward_"))
        else:
            backward_layer = own_copy(
                backward_layer, name="backward_" + backward_layer.name.removeprefix("backward_"))
        layer = own_copy(layer, name="forward_" + layer.name.removeprefix("forward_"))
        if backward_layer.go_backwards == layer.go_backwards:
            raise ValueError("`backward_layer` must read in the other direction than `layer` "
                             f"(go_backwards={layer.go_backwards} for both).")
        for name in ("stateful", "return_sequences", "return_state"):
            if getattr(layer, name) != getattr(backward_layer, name):
                raise ValueError(
                    f"`layer` and `backward_layer` must have the same `{name}`. Received: "
                    f"{getattr(layer, name)} and {getattr(backward_layer, name)}")
        self.forward_layer = layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.initial_weights = weights
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction.build(sequences_shape)
        if self.initial_weights:
            half = len(self.initial_weights) // 2
            self.forward_layer.set_weights(self.initial_weights[:half])
            self.backward_layer.set_weights(self.initial_weights[half:])
            self.initial_weights = None
        self.built = True

    @property
    def states(self):
        """The carried states of a stateful layer, forward then backward (else None)."""
        if self.forward_layer.states is None or self.backward_layer.states is None:
            return None
        return list(self.forward_layer.states) + list(self.backward_layer.states)

    def reset_state(self):
        """Sets the carried states of both directions to zeros."""
        if not self.stateful:
            raise AttributeError(f"{self.name}: reset_state() needs a stateful layer")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self):
        """`reset_state()`, by the name Keras 2 used."""
        self.reset_state()

    def call(self, sequences, initial_state=None, mask=None, training=False):
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        forward = self.forward_layer(
            sequences, initial_state=forward_state, mask=mask, training=training)
        backward = self.backward_layer(
            sequences, initial_state=backward_state, mask=mask, training=training)
        states = []
        if self.return_state:
            forward, *forward_states = forward
            backward, *backward_states = backward
            states = forward_states + backward_states
        # The directions compute in their own dtype; the merged output is in this layer's.
        forward = ops.cast(forward, self.compute_dtype)
        backward = ops.cast(backward, self.compute_dtype)
        if self.return_sequences:
            backward = ops.flip(backward, axis=1)  # (batch, time, units), aligned with inputs
        output = self._merge(forward, backward)
        if self.return_state:
            return (list(output) if self.merge_mode is None else [output]) + states
        return output

    def _merge(self, forward, backward):
        if self.merge_mode == "concat":
            return ops.concatenate([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "ave":
            return (forward + backward) / 2
        if self.merge_mode == "mul":
            return forward * backward
        return [forward, backward]

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        masks = [output_mask] * (2 if self.merge_mode is None else 1)
        if self.return_state:
            states = len(self.forward_layer.state_size) + len(self.backward_layer.state_size)
            masks += [None] * states
        return masks if len(masks) > 1 else masks[0]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        forward_shape = self.forward_layer.compute_output_shape(sequences_shape)
        backward_shape = self.backward_layer.compute_output_shape(sequences_shape)
        if self.return_state:
            forward_shape, *forward_states = forward_shape
            backward_shape, *backward_states = backward_shape
        if self.merge_mode == "concat":
            outputs = [forward_shape[:-1] + (forward_shape[-1] + backward_shape[-1],)]
        elif self.merge_mode is None:
            outputs = [forward_shape, backward_shape]
        else:
            outputs = [forward_shape]
        if self.return_state:
            return outputs + forward_states + backward_states
        return outputs if len(outputs) > 1 else outputs[0]

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.forward_layer),
            "backward_layer": keras.saving.serialize_keras_object(self.backward_layer),
            "merge_mode": self.merge_mode,
        }


def own_copy(layer, **config):
    """A new, unbuilt layer from `layer`'s config with the entries of `config` replaced."""
    serialized = keras.saving.serialize_keras_object(layer)
    serialized["config"].update(config)
    return keras.saving.deserialize_keras_object(serialized)
