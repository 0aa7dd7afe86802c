"""Utilities outside the model engine (Keras's ``keras.utils``)."""
from .sequence import pad_sequences

__all__ = ["pad_sequences"]
