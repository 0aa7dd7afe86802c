"""Merging layers (Keras 3's ``layers/merging``): combine a list of inputs.

Elementwise merges broadcast by Keras's rules (:mod:`.base_merge`); ``Concatenate``
joins along an axis; ``Dot`` takes per-sample dot products. Each layer has a
functional form (``add([a, b])`` is ``Add()([a, b])``).
"""
from .add import Add, add
from .average import Average, average
from .base_merge import Merge
from .concatenate import Concatenate, concatenate
from .dot import Dot, dot
from .maximum import Maximum, maximum
from .minimum import Minimum, minimum
from .multiply import Multiply, multiply
from .subtract import Subtract, subtract

__all__ = ["Merge", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "Dot", "add", "subtract", "multiply", "average", "maximum",
           "minimum", "concatenate", "dot"]
