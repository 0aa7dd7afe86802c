"""``pynn.preprocessing.sequence.pad_sequences``: the legacy path of
:func:`pynn.utils.pad_sequences`."""
from ..utils.sequence import pad_sequences

__all__ = ["pad_sequences"]
