"""Tensors, the tape that records what is computed on them, and the backward pass."""
from __future__ import annotations

import contextvars

import numpy as np

__all__ = ["Tensor", "Tape", "gradients", "is_tensor", "unwrap", "as_input", "record",
           "active_tape", "install_operators", "NonDifferentiableError"]

_TAPE = contextvars.ContextVar("pynn_tape", default=None)


class NonDifferentiableError(ValueError):
    """A non-differentiable op (argmax, an integer cast...) on a path being
    differentiated."""


class Tensor:
    """A NumPy array that the active :class:`Tape` may track.

    Supports NumPy's arithmetic operators, indexing, ``.shape``, ``.dtype``, ``.ndim``,
    ``.T`` and ``numpy()``; the math functions are in :mod:`pynn.ops`."""

    __slots__ = ("value", "tape", "index", "__weakref__")

    def __init__(self, value, tape=None, index=None):
        self.value = value
        self.tape = tape
        self.index = index  # position of the producing record on the tape (None: leaf)

    # -- array-like ---------------------------------------------------------------------
    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)

    def numpy(self):
        return np.array(self.value, copy=True)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value, dtype=dtype)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"<pynn Tensor shape={self.shape} dtype={self.dtype}>"

    @property
    def T(self):
        from . import numpy_ops
        return numpy_ops.transpose(self)

    def __getitem__(self, key):
        from . import numpy_ops
        return numpy_ops.take_index(self, key)

    def __bool__(self):
        return bool(self.value)

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __hash__(self):
        return id(self)


#: Python operator -> the pynn.ops function it means
_OPERATORS = (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "divide"),
              ("matmul", "matmul"), ("pow", "power"))


def install_operators(cls, comparisons=False):
    """Give ``cls`` NumPy's arithmetic operators as calls of :mod:`.numpy_ops` (for
    tensors, layer weights and symbolic tensors alike)."""
    def binary(fn_name, reflected):
        def method(self, other):
            from . import numpy_ops
            fn = getattr(numpy_ops, fn_name)
            return fn(other, self) if reflected else fn(self, other)
        return method

    def unary(fn_name):
        def method(self):
            from . import numpy_ops
            return getattr(numpy_ops, fn_name)(self)
        return method

    pairs = _OPERATORS + ((("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                           ("ge", "greater_equal")) if comparisons else ())
    for op, fn_name in pairs:
        setattr(cls, f"__{op}__", binary(fn_name, False))
        if (op, fn_name) in _OPERATORS:
            setattr(cls, f"__r{op}__", binary(fn_name, True))
    cls.__neg__ = unary("negative")
    cls.__abs__ = unary("absolute")
    cls.__array_priority__ = 1000  # NumPy defers to these operators


install_operators(Tensor, comparisons=True)


def is_tensor(x):
    return isinstance(x, Tensor)


def as_input(x):
    """``x`` as an op input: a :class:`Tensor` stays; an object with
    ``__pynn_tensor__`` (a layer weight) becomes the active tape's leaf for it (its
    value when nothing is recorded); anything else is taken as an array."""
    if isinstance(x, Tensor):
        return x
    hook = getattr(x, "__pynn_tensor__", None)
    if hook is not None:
        return hook()
    return x


def unwrap(x):
    """The NumPy value of a :class:`Tensor`, a weight, or anything array-like."""
    x = as_input(x)
    return x.value if isinstance(x, Tensor) else x


class Tape:
    """What one differentiated computation did: records of ``(inputs, vjp, name)``."""

    def __init__(self):
        self.records = []
        self.leaves = {}  # key -> leaf Tensor (weights, inputs)
        self._token = None

    def __enter__(self):
        self._token = _TAPE.set(self)
        return self

    def __exit__(self, *exc):
        _TAPE.reset(self._token)
        self._token = None

    def leaf(self, value, key=None):
        """A tracked input (``key``: e.g. a weight, so later uses share one leaf)."""
        if key is not None and key in self.leaves:
            return self.leaves[key]
        t = Tensor(value, self, None)
        if key is not None:
            self.leaves[key] = t
        return t


def active_tape():
    return _TAPE.get()


def record(name, value, inputs, vjp):
    """The result ``value`` of op ``name`` on ``inputs``: a :class:`Tensor` recorded on
    the tape when an input is tracked by it (``vjp(g)`` returns one gradient per input,
    ``None`` where none flows), else a plain array (or a constant Tensor when any
    input was a Tensor)."""
    tapes = {t.tape for t in inputs if isinstance(t, Tensor) and t.tape is not None}
    if not tapes:
        return Tensor(value) if any(isinstance(t, Tensor) for t in inputs) else value
    tape = tapes.pop()
    if tapes:
        raise ValueError(f"{name}: inputs come from different differentiated computations")
    tape.records.append((name, inputs, vjp))
    return Tensor(value, tape, len(tape.records) - 1)


def _accumulate(store, key, g):
    cur = store.get(key)
    store[key] = g if cur is None else cur + g


def gradients(outputs, output_grads, wrt):
    """d(sum of ``outputs * output_grads``)/d``wrt`` (Tensors of one tape): a list like
    ``wrt``, ``None`` where no path leads."""
    tape = None
    grads = {}
    for o, g in zip(outputs, output_grads):
        if not isinstance(o, Tensor) or o.tape is None or g is None:
            continue
        tape = o.tape
        _accumulate(grads, ("r", o.index) if o.index is not None else ("l", id(o)),
                    np.asarray(g, dtype=o.dtype).reshape(o.shape))
    if tape is None:
        return [None] * len(wrt)
    for i in range(len(tape.records) - 1, -1, -1):
        g = grads.pop(("r", i), None)
        if g is None:
            continue
        name, inputs, vjp = tape.records[i]
        for x, gx in zip(inputs, vjp(g)):
            if gx is None or not isinstance(x, Tensor) or x.tape is not tape:
                continue
            key = ("r", x.index) if x.index is not None else ("l", id(x))
            _accumulate(grads, key, gx)
    return [grads.get(("l", id(w)) if w.index is None else ("r", w.index)) for w in wrt]
