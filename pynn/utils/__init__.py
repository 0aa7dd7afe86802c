"""Utilities outside the model engine (Keras's ``keras.utils``)."""
from .numerical_utils import normalize, to_categorical
from .py_dataset import PyDataset, Sequence
from .rng_utils import set_random_seed
from .sequence import pad_sequences

__all__ = ["pad_sequences", "PyDataset", "Sequence", "to_categorical", "normalize",
           "set_random_seed"]
