"""Utilities outside the model engine (Keras's ``keras.utils``)."""
from .py_dataset import PyDataset, Sequence
from .sequence import pad_sequences

__all__ = ["pad_sequences", "PyDataset", "Sequence"]
