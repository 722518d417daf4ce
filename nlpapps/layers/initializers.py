"""Initializers the layers of nlpapps take beyond Keras's own."""

import keras


@keras.saving.register_keras_serializable(package="nlpapps")
class Identity(keras.initializers.Identity):
    """`gain * I`: the identity recurrent initialisation of the IRNN (a ReLU `SimpleRNN` whose
    recurrent kernel starts at the identity, so that it first carries its state unchanged).

    The same matrix as `keras.initializers.Identity(gain)`, whose `get_config` (Keras 3.15)
    is empty, so a layer rebuilt from its config gets gain 1; this one keeps its gain.

    Args:
        gain: the factor on the identity; above 1 the recurrence grows by up to `gain` per step.

    Example:
        >>> layer = SimpleRNN(8, activation="relu", recurrent_initializer=Identity(1.5))

    Reference: Le, Jaitly and Hinton, "A Simple Way to Initialize Recurrent Networks of
    Rectified Linear Units", 2015.
    """

    def __init__(self, gain=1.0):
        super().__init__(gain=float(gain))

    def get_config(self):
        return {"gain": self.gain}
