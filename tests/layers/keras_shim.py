"""`keras.src.layers` with the recurrent layers and cells of nlpapps in place of Keras's.

Keras's own tests of its RNN layers import `from keras.src import layers`; pointed at this
module instead, they exercise ours (`test_keras_suite.py`). Every other name (`Input`,
`Dense`, ...) is Keras's.
"""

from keras.src import layers as _keras_layers

from nlpapps.layers import (
    GRU,
    LSTM,
    Bidirectional,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
)

__all__ = ["GRU", "LSTM", "Bidirectional", "GRUCell", "LSTMCell", "SimpleRNN",
           "SimpleRNNCell"]


def __getattr__(name):
    return getattr(_keras_layers, name)
