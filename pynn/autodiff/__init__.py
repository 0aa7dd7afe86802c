"""Reverse-mode automatic differentiation for custom code (issue 21's op path).

:class:`~.tape.Tensor` wraps a NumPy array; the functions of :mod:`.numpy_ops` (also
reachable as ``pynn.ops.<name>``, with ``keras.ops``'s names and arguments) compute on
NumPy and, when an input is a :class:`Tensor` recorded on an active :class:`Tape`,
record a vector-Jacobian product. :func:`~.tape.gradients` runs them backwards.
Built-in layers called inside recorded code run their own compiled forward and
backward passes as one tape entry each.
"""
from .gradient_tape import GradientTape
from .tape import Tape, Tensor, gradients, is_tensor, unwrap

__all__ = ["Tape", "Tensor", "GradientTape", "gradients", "is_tensor", "unwrap"]
