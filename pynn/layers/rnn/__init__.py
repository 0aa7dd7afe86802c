"""Recurrent layers (Keras 3's ``layers/rnn``)."""
from .base_rnn import BaseRNN
from .bidirectional import Bidirectional
from .gru import GRU
from .lstm import LSTM
from .simple_rnn import SimpleRNN
from .time_distributed import TimeDistributed

__all__ = ["BaseRNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed"]
