"""The recurrent layers and attention of nlpapps."""

from nlpapps.layers.attention import BahdanauAttention, LuongAttention
from nlpapps.layers.attention_pooling import AttentionPooling
from nlpapps.layers.bidirectional import Bidirectional
from nlpapps.layers.gru import GRU, GRUCell
from nlpapps.layers.lstm import LSTM, LSTMCell
from nlpapps.layers.memory_network import MemoryNetwork
from nlpapps.layers.ntm import NTM, NTMCell
from nlpapps.layers.rnn import RNN
from nlpapps.layers.self_attention import CausalSelfAttention
from nlpapps.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from nlpapps.layers.stacked import StackedRNN
