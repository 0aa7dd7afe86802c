"""Argument checks and conversions shared by every backend.

Every backend's op starts with the same ``prep_<op>`` function, so an op's checks,
conversions, error types and messages are written once (see the conventions in
:mod:`pynn.backends.base`). The sections, each the one place for its decision:

* arrays: dtypes, shapes, layouts (inputs copied when needed, arrays used in place
  checked), class labels;
* hyper-parameters: :class:`Range`, :func:`check_hyper` and, per op,
  :data:`OP_HYPER` / :func:`op_hyper` (finite and in range, named in errors);
* aliasing: :data:`ALIASING` and :func:`check_aliasing` (what an op writes may be
  exactly one of its inputs only where declared; any other overlap is refused);
* the ``prep_<op>`` functions, which apply all three.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .activation_codes import (ACTIVATION_DEFAULT_ALPHA, NEEDS_INPUT_FOR_BACKWARD,
                               REFERENCE_ONLY, activation_code, activation_output_width)


# --------------------------------------------------------------------------
# argument checking shared by every backend
# --------------------------------------------------------------------------
def work_dtype(x, name="x"):
    """The float dtype an op computes in, given its primary input ``x``."""
    dt = np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if dt == np.float32 or dt == np.float64:
        return np.dtype(dt)
    if dt.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected a numeric array, got dtype {dt}")


def as_float(x, dtype, name, ndim=None):
    """``x`` as a C-contiguous, aligned array of ``dtype`` (copied only when needed)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    return _aligned(np.asarray(a, dtype=dtype, order="C"))


def _aligned(a):
    """``a``, or a copy when it lies at an address its dtype cannot be read from
    directly (e.g. a float32 view at an odd byte offset): as other layouts, copied."""
    return a if a.flags.aligned else a.copy()


def as_labels(y, n, n_classes, name="labels"):
    """Integer class labels of shape ``(n,)`` checked against ``n_classes``."""
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {np.shape(y)}")
    if a.dtype.kind == "f":
        if a.size and not np.all(np.floor(a) == a):
            raise ValueError(f"{name}: integer class labels expected, got non-integer floats")
    elif a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected integer labels, got dtype {a.dtype}")
    lo_hi = label_range(a, n_classes)
    if lo_hi is not None:
        raise ValueError(f"{name}: labels must be in [0, {n_classes}), got range "
                         f"[{lo_hi[0]}, {lo_hi[1]}]")
    return _aligned(np.ascontiguousarray(a, dtype=np.intp))


def label_range(labels, n_classes):
    """``None`` when every label (a numeric array, integral values) is in
    ``[0, n_classes)``, else the lowest and highest label as they were passed (2**40
    stays 2**40, an unsigned 2**64 - 1 or a float 1e30 is not wrapped or cast), as
    Python ints (floats for infinities)."""
    if not labels.size:
        return None
    lo, hi = labels.min(), labels.max()
    if lo >= 0 and hi < n_classes:
        return None
    return tuple(int(v) if math.isfinite(v) else float(v) for v in (lo, hi))


def check_out(out, shape, dtype, name="out"):
    """Validate a caller-supplied output buffer, or allocate one when ``None``."""
    shape = tuple(int(s) for s in shape)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    check_layout(out, name)
    if not out.flags.writeable:
        raise ValueError(f"{name}: must be writable")
    return out


def check_layout(a, name):
    """Refuse an array used in place (not copied) unless it is C-contiguous and
    aligned (at an address its dtype can be read and written at directly)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if not a.flags.aligned:
        raise ValueError(f"{name}: must be aligned (it starts at an address its dtype "
                         f"cannot be read or written at directly)")


def check_state(arr, shape, dtype, name):
    """Validate an array updated in place (parameters, optimizer state)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(arr).__name__}")
    return check_out(arr, shape, dtype, name)


def sample_weights(sample_weight, n, dtype=np.float64):
    """Per-sample weights of shape ``(n,)`` (float64) or ``None``."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), got {np.shape(sample_weight)}")
    return _aligned(np.ascontiguousarray(w, dtype=dtype))


def gemm_shapes(a, b, trans_a, trans_b):
    """``(m, k, n)`` of ``op(a) @ op(b)``, with a clear error when they don't fit."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is ({k2}, {n}) "
            f"(a {a.shape}, trans_a={trans_a}; b {b.shape}, trans_b={trans_b})"
        )
    return m, k, n


def check_bias(bias, n, dtype):
    """The bias vector of a product with ``n`` columns, as ``dtype``."""
    b = as_float(bias, dtype, "bias")
    if b.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {b.shape}")
    return b


# --------------------------------------------------------------------------
# hyper-parameters: finite and in range wherever they enter
# --------------------------------------------------------------------------
class Range(NamedTuple):
    """Where a hyper-parameter may lie: ``low``/``high`` bounds (``None``: none on
    that side; ``*_open``: the bound itself excluded), ``integer`` for counts,
    ``optional`` when ``None`` means "not set"."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def describe(self):
        """The range in words, e.g. ``'a finite number in [0, 1)'``."""
        what = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return what

    def contains(self, v):
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return self.high is None or not (v > self.high or (self.high_open and v == self.high))


FINITE = Range()
NONNEGATIVE = Range(0.0)
POSITIVE = Range(0.0, low_open=True)
UNIT = Range(0.0, 1.0)                      # [0, 1]
UNIT_OPEN = Range(0.0, 1.0, high_open=True)  # [0, 1)
COUNT = Range(0, integer=True)
STEP = Range(1, integer=True)


def check_hyper(name, value, where=FINITE):
    """``value`` checked against ``where`` (a :class:`Range`): a float (an int for
    an integer range; ``None`` when optional and not set). Raises ``TypeError``
    for a value that is not a real number (``bool`` included) and ``ValueError``
    for one that is not finite or out of range, both naming ``name`` and the value."""
    t = type(value)  # the common cases first: a Python float or int (no conversions)
    if t is float and not where.integer and value - value == 0.0 and where.contains(value):
        return value
    if t is int and where.contains(value):
        return value if where.integer else float(value)
    if value is None and where.optional:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {where.describe()}, got {value!r}")
    if where.integer:
        if not isinstance(value, numbers.Integral):
            if not (math.isfinite(value) and value == math.floor(value)):
                raise ValueError(f"{name}: expected {where.describe()}, got {value!r}")
        v = int(value)
    else:
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{name}: expected {where.describe()}, got {value!r}")
    if not where.contains(v):
        raise ValueError(f"{name}: expected {where.describe()}, got {value!r}")
    return v


#: The hyper-parameters of each op and where they may lie (checked by
#: :func:`op_hyper` before the op touches an array).
OP_HYPER = {
    "softmax_cross_entropy": {"label_smoothing": UNIT},
    "categorical_cross_entropy": {"epsilon": Range(0.0, 0.5, high_open=True)},
    "binary_cross_entropy": {"epsilon": Range(0.0, 0.5, high_open=True)},
    "dropout_forward": {"rate": UNIT_OPEN},
    "batchnorm_forward": {"momentum": UNIT, "epsilon": POSITIVE},
    "layernorm_forward": {"epsilon": POSITIVE},
    "l2_normalize_forward": {"epsilon": POSITIVE},
    "l2_normalize_backward": {"epsilon": POSITIVE},
    "sgd_update": {"learning_rate": NONNEGATIVE, "momentum": UNIT,
                   "weight_decay": NONNEGATIVE},
    "adam_update": {"step": STEP, "learning_rate": NONNEGATIVE, "beta_1": UNIT_OPEN,
                    "beta_2": UNIT_OPEN, "epsilon": POSITIVE, "weight_decay": NONNEGATIVE},
    "rmsprop_update": {"learning_rate": NONNEGATIVE, "rho": UNIT_OPEN, "epsilon": POSITIVE,
                       "weight_decay": NONNEGATIVE},
    "adagrad_update": {"learning_rate": NONNEGATIVE, "epsilon": POSITIVE,
                       "weight_decay": NONNEGATIVE},
    "gemm": {"alpha": FINITE, "beta": FINITE},
    "dense_stack_forward_backward": {"label_smoothing": UNIT, "loss_scale": FINITE},
    "regularizer_loss": {"l1": NONNEGATIVE, "l2": NONNEGATIVE},
    "regularizer_grad_": {"l1": NONNEGATIVE, "l2": NONNEGATIVE},
}


def op_hyper(op, **values):
    """The hyper-parameters ``values`` of ``op`` checked against :data:`OP_HYPER`,
    in the order given (a tuple of floats / ints)."""
    named = _OP_HYPER_NAMED.get(op, {})
    return tuple([check_hyper(named[k][0], v, named[k][1]) for k, v in values.items()])


#: :data:`OP_HYPER` with each argument's name in messages (``'op: argument'``).
_OP_HYPER_NAMED = {op: {k: (f"{op}: {k}", where) for k, where in ranges.items()}
                   for op, ranges in OP_HYPER.items()}


#: The range of an activation's extra parameter where it is narrower than finite:
#: Squareplus takes the square root of ``x**2 + b`` (CELU's alpha: nonzero, below).
_ALPHA_RANGE = {"squareplus": NONNEGATIVE}


def activation_alpha(name, alpha, arg="alpha"):
    """The extra parameter of activation ``name`` (leaky ReLU's negative slope, ELU's
    and CELU's alpha, Squareplus's ``b``), with its default filled in; a given one
    must be finite and in the activation's range (``arg`` names it): CELU divides by
    its alpha, which must not be 0 (Keras's torch backend raises too)."""
    if alpha is None:
        return float(ACTIVATION_DEFAULT_ALPHA.get(name, 0.0))
    where = f"{arg} of {name}" if name in _ALPHA_RANGE or name == "celu" else arg
    value = check_hyper(where, alpha, _ALPHA_RANGE.get(name, FINITE))
    if name == "celu" and value == 0:
        raise ValueError(f"{where}: must be nonzero (CELU divides by it), got {alpha!r}")
    return value


def epilogue_code(activation, op):
    """The code of ``activation`` as the epilogue of ``op`` (``gemm``, the fused Dense
    stack); the row-wise :data:`REFERENCE_ONLY` activations have no compiled epilogue
    and are refused, naming ``op``."""
    code = activation_code(activation)
    if activation in REFERENCE_ONLY:
        raise ValueError(f"{op}: activation {activation!r} has no fused epilogue; run "
                         f"'linear' and activation_forward")
    return code


# --------------------------------------------------------------------------
# aliasing: one rule for every op on every backend
# --------------------------------------------------------------------------
#: Every public op of :class:`~pynn.backends.base.Backend` -> the arrays it writes
#: (outputs, and state it updates in place), by parameter name, each with the
#: inputs it may be exactly: there the op works in place, as its docstring says.
#: :func:`check_aliasing` refuses every other overlap. Every entry of a list
#: argument (``outs``, ``deltas``, ...) is written; the Dense-stack step writes
#: ``kernels``, ``biases`` and the ``update`` state only when given an update.
#: The contract test (tests/test_aliasing.py) enumerates the ops of ``Backend``
#: and fails naming any op missing here.
ALIASING = {
    "empty": {}, "zeros": {}, "asarray": {}, "to_numpy": {}, "synchronize": {},
    "gemm": {"out": ("a", "b")},
    "activation_forward": {"out": ("x",)},
    "activation_backward": {"out": ("dy",)},
    "softmax": {"out": ("x",)},
    "log_softmax": {"out": ("x",)},
    "softmax_cross_entropy": {"grad": ("logits",)},
    "categorical_cross_entropy": {"grad": ("probs",)},
    "sigmoid_binary_cross_entropy": {"grad": ("logits",)},
    "binary_cross_entropy": {"grad": ("probs",)},
    "mean_squared_error": {"grad": ("pred",)},
    "mean_absolute_error": {"grad": ("pred",)},
    "bias_grad": {"out": ()},
    "dropout_forward": {"out": ("x",), "mask": ()},
    "dropout_backward": {"out": ("dy",)},
    "batchnorm_forward": {"out": (), "moving_mean": (), "moving_var": ()},
    "batchnorm_backward": {"dx": (), "dgamma": (), "dbeta": ()},
    "sgd_update": {"param": (), "velocity": ()},
    "adam_update": {"param": (), "m": (), "v": ()},
    "rmsprop_update": {"param": (), "ms": ()},
    "adagrad_update": {"param": (), "acc": ()},
    "sum_squares": {}, "scale_": {"x": ()}, "clip_": {"x": ()},
    "axpy_": {"y": ()}, "copy_": {"dst": ()},
    "regularizer_loss": {}, "regularizer_grad_": {"grad": ()},
    "take_rows": {"out": ()},
    "all_finite": {},
    "dense_stack_forward": {"outs": ()},
    "dense_stack_forward_backward": {"outs": (), "deltas": (), "dkernels": (), "dbiases": (),
                                     "preacts": (), "kernels": (), "biases": (),
                                     "update": ()},
}


def _same_array(a, b):
    """True when ``a`` and ``b`` are the same memory read the same way."""
    return (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _root(name):
    """The parameter an argument name belongs to: ``'outs'`` of ``'outs[2]'``,
    ``'update'`` of ``'update.kernel_states[0][1]'``."""
    return name.split("[", 1)[0].split(".", 1)[0]


class HostMemory:
    """How :func:`check_aliasing` tells numpy arrays apart: the arrays it considers,
    whether two may overlap (by memory bounds, as the compiled kernels judge it), and
    whether two are the same memory read the same way. A backend whose arrays live
    elsewhere (the cuda backend's device arrays) passes its own."""

    @staticmethod
    def holds(a):
        return isinstance(a, np.ndarray) and a.size > 0

    overlap = staticmethod(np.may_share_memory)
    same = staticmethod(_same_array)


def check_aliasing(op, written, read, memory=HostMemory):
    """Refuse ``op``'s arguments when an array it writes overlaps another argument.

    ``written`` and ``read`` are ``(name, array)`` pairs: what ``op`` writes, and
    its inputs as the caller passed them (entries that are not arrays of ``memory``,
    or are empty, are skipped; an input that conversion would copy counts with the
    memory it was passed in). A written array may be exactly an input that
    :data:`ALIASING` lists for it; any other overlap, with an input or with another
    written array, raises ``ValueError`` naming both. Overlap is judged by memory
    bounds, as the compiled kernels judge it.
    """
    allowed = ALIASING[op]
    outs = [(n, a) for n, a in written if memory.holds(a)]
    ins = [(n, a) for n, a in read if memory.holds(a)]
    for i, (wname, w) in enumerate(outs):
        for oname, other in outs[i + 1:]:
            if memory.overlap(w, other):
                raise ValueError(f"{op}: {wname} and {oname} overlap in memory; the arrays "
                                 f"{op} writes must not share memory with each other")
        may_be = allowed.get(_root(wname), ())
        for iname, inp in ins:
            if not memory.overlap(w, inp):
                continue
            exact = memory.same(w, inp)
            if exact and iname in may_be:
                continue
            if iname in may_be:
                rule = f"{wname} may be {iname} itself, but not part of it"
            elif may_be:
                rule = (f"{wname} may be {' or '.join(may_be)} itself, but must not overlap "
                        f"any other input")
            else:
                rule = f"{op} writes {wname} into memory of its own"
            kind = " (the same array)" if exact else ""
            raise ValueError(f"{op}: {wname} and {iname} overlap in memory{kind}; {rule}")


# --------------------------------------------------------------------------
# per-op argument preparation: every backend's op starts with one of these, so
# an op's checks (and their error types and messages) are written once
# --------------------------------------------------------------------------
def class_targets(target, logits, dt, name="target"):
    """Integer labels (1-D) or a dense target array matching ``logits``."""
    t = np.asarray(target)
    n, k = logits.shape
    if t.ndim == 2 and t.shape == logits.shape:
        return as_float(t, dt, name)
    if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k != 1):
        return as_labels(t, n, k, name)
    raise ValueError(
        f"{name}: expected integer labels of shape ({n},) or probabilities of shape "
        f"{logits.shape}, got {t.shape}"
    )


def prep_gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, act_alpha,
              operand=None):
    """Checked :meth:`Backend.gemm` arguments: ``(a, b, trans_a, trans_b, out, bias,
    alpha, beta, code, act_alpha)`` (``out`` has the working dtype and shape
    ``(m, n)``; ``bias`` may be None; ``code`` is the activation's).

    ``operand(x, dt, name, trans) -> (array, trans)`` converts ``a`` and ``b``
    (default: :func:`as_float` to a 2-D C-contiguous array, ``trans`` unchanged).
    """
    alpha, beta = op_hyper("gemm", alpha=alpha, beta=beta)
    code = epilogue_code(activation, "gemm")
    act_alpha = activation_alpha(activation, act_alpha, "act_alpha")
    inputs = (("a", a), ("b", b), ("bias", bias))
    dt = work_dtype(a, "a")
    if operand is None:
        a = as_float(a, dt, "a", 2)
        b = as_float(b, dt, "b", 2)
    else:
        a, trans_a = operand(a, dt, "a", trans_a)
        b, trans_b = operand(b, dt, "b", trans_b)
    m, _, n = gemm_shapes(a, b, trans_a, trans_b)
    if beta != 0.0 and out is None:
        raise ValueError("gemm: beta != 0 needs an out= array to accumulate into")
    out = check_out(out, (m, n), dt)
    if bias is not None:
        bias = check_bias(bias, n, dt)
    check_aliasing("gemm", [("out", out)], inputs)
    return a, b, trans_a, trans_b, out, bias, alpha, beta, code, act_alpha


def prep_activation_forward(x, activation, out, alpha):
    """Checked ``activation_forward`` arguments: ``(code, x, out, alpha)``. ``out`` has
    ``x``'s shape, except for ``glu``, which halves the last axis."""
    code = activation_code(activation)
    alpha = activation_alpha(activation, alpha)
    dt = work_dtype(x)
    xs = as_float(x, dt, "x")
    out = check_out(out, _activation_out_shape(activation, xs.shape), dt)
    check_aliasing("activation_forward", [("out", out)], [("x", x)])
    return code, xs, out, alpha


def _activation_out_shape(activation, shape):
    if activation not in REFERENCE_ONLY:
        return shape
    if len(shape) < 1:
        raise ValueError(f"activation {activation!r} works along the last axis; got a 0-D "
                         f"array")
    width = activation_output_width(activation, shape[-1], f"activation {activation!r}")
    return shape[:-1] + (width,)


def prep_activation_backward(dy, y, activation, x, out, alpha):
    """Checked ``activation_backward`` arguments: ``(code, dy, y, x, out, alpha)``;
    ``x`` (the forward input) is converted for the activations that need it
    (:data:`NEEDS_INPUT_FOR_BACKWARD`) and ``None`` otherwise. ``out`` has the shape
    of ``x`` (``dy``'s, except for ``glu``: twice as wide)."""
    code = activation_code(activation)
    a = activation_alpha(activation, alpha)
    inputs = [("dy", dy), ("y", y)]
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy")
    y = as_float(y, dt, "y")
    if y.shape != dy.shape:
        raise ValueError(f"activation_backward: dy {dy.shape} and y {y.shape} differ")
    if activation == "softmax" and dy.ndim != 2:
        raise ValueError(f"softmax backward expects 2-D arrays, got {dy.shape}")
    x_shape = dy.shape
    if activation in NEEDS_INPUT_FOR_BACKWARD:
        if x is None:
            raise ValueError(f"activation_backward: {activation} needs the forward input x")
        inputs.append(("x", x))
        x = as_float(x, dt, "x")
        if _activation_out_shape(activation, x.shape) != dy.shape:
            raise ValueError(f"activation_backward: the {activation} of x {x.shape} has a "
                             f"shape other than dy {dy.shape}")
        x_shape = x.shape
    else:
        _activation_out_shape(activation, dy.shape)  # a 0-D row-wise input raises here
        x = None  # not read
    out = check_out(out, x_shape, dt)
    check_aliasing("activation_backward", [("out", out)], inputs)
    return code, dy, y, x, out, a


def prep_rows(op, x, out):
    """Checked arguments of ``op``, a row-wise op of 2-D ``x`` (softmax, log-softmax)."""
    dt = work_dtype(x)
    xs = as_float(x, dt, "x", 2)
    out = check_out(out, xs.shape, dt)
    check_aliasing(op, [("out", out)], [("x", x)])
    return xs, out


def prep_class_loss(op, x, target, grad, sample_weight, name, **hyper):
    """Checked arguments of ``op``, a loss over classes whose first argument is called
    ``name``: ``(x, target, w, grad, hyper)``; ``target`` is intp labels (1-D) or
    dense like ``x``, ``w`` float64 (n,) or None, ``hyper`` the values of the
    hyper-parameters given as keywords, checked (:func:`op_hyper`)."""
    hyper = op_hyper(op, **hyper)
    inputs = ((name, x), ("target", target), ("sample_weight", sample_weight))
    dt = work_dtype(x, name)
    x = as_float(x, dt, name, 2)
    t = class_targets(target, x, dt)
    w = sample_weights(sample_weight, x.shape[0])
    grad = check_out(grad, x.shape, dt, "grad")
    check_aliasing(op, [("grad", grad)], inputs)
    return x, t, w, grad, hyper


def prep_pair_loss(op, pred, target, grad, sample_weight, name, **hyper):
    """Checked arguments of ``op``, an elementwise loss whose first argument is called
    ``name``: ``(pred, target, w, grad, hyper)`` (``hyper`` as for
    :func:`prep_class_loss`)."""
    hyper = op_hyper(op, **hyper)
    dt = work_dtype(pred, name)
    p = as_float(pred, dt, name, 2)
    t = as_float(target, dt, "target")
    if t.shape != p.shape:
        raise ValueError(f"target: expected shape {p.shape}, got {t.shape}")
    w = sample_weights(sample_weight, p.shape[0])
    grad = check_out(grad, p.shape, dt, "grad")
    check_aliasing(op, [("grad", grad)],
                   ((name, pred), ("target", target), ("sample_weight", sample_weight)))
    return p, t, w, grad, hyper


def prep_take_rows(x, indices, out):
    """Checked ``take_rows`` arguments: ``(x, indices, out)``; the indices are a
    contiguous intp array, not yet checked against the rows of ``x``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"take_rows: x: expected a numpy.ndarray, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError("take_rows: x: expected an array of rows (at least 1-D), got a "
                         "0-D array")
    idx = np.asarray(indices)
    if idx.ndim != 1 or not (idx.dtype.kind in "iu" or (idx.size == 0 and idx.dtype.kind
                                                          in "biuf")):
        raise TypeError(f"take_rows: indices: expected a 1-D array of integers, got shape "
                        f"{idx.shape} and dtype {idx.dtype}")
    if idx.dtype.kind == "u" and idx.size and int(idx.max()) > np.iinfo(np.intp).max:
        raise IndexError(f"take_rows: indices: {int(idx.max())} is out of range for x with "
                         f"{x.shape[0]} rows (x shape {x.shape})")
    out = check_out(out, (idx.shape[0],) + x.shape[1:], x.dtype)
    check_aliasing("take_rows", [("out", out)], [("x", x), ("indices", idx)])
    return x, np.ascontiguousarray(idx, dtype=np.intp), out


def take_rows_error(x, idx, pos):
    """The IndexError for ``idx[pos]``, an index outside the rows of ``x``."""
    return IndexError(f"take_rows: indices[{pos}] = {int(idx[pos])} is out of range for x "
                      f"with {x.shape[0]} rows (x shape {x.shape}); valid indices are "
                      f"-{x.shape[0]} .. {x.shape[0] - 1}")


def prep_bias_grad(dy, out):
    """Checked ``bias_grad`` arguments: ``(dy, out)``."""
    dt = work_dtype(dy, "dy")
    dys = as_float(dy, dt, "dy", 2)
    out = check_out(out, (dys.shape[1],), dt)
    check_aliasing("bias_grad", [("out", out)], [("dy", dy)])
    return dys, out


def prep_dropout_forward(x, rate, out, mask):
    """Checked ``dropout_forward`` arguments: ``(x, rate, out, mask)``."""
    rate, = op_hyper("dropout_forward", rate=rate)
    dt = work_dtype(x)
    xs = as_float(x, dt, "x")
    out = check_out(out, xs.shape, dt)
    mask = check_out(mask, xs.shape, dt, "mask")
    check_aliasing("dropout_forward", [("out", out), ("mask", mask)], [("x", x)])
    return xs, rate, out, mask


def prep_dropout_backward(dy, mask, out):
    """Checked ``dropout_backward`` arguments: ``(dy, mask, out)``."""
    inputs = (("dy", dy), ("mask", mask))
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy")
    mask = as_float(mask, dt, "mask")
    if mask.shape != dy.shape:
        raise ValueError(f"dropout_backward: dy {dy.shape} and mask {mask.shape} differ")
    out = check_out(out, dy.shape, dt)
    check_aliasing("dropout_backward", [("out", out)], inputs)
    return dy, mask, out


def prep_batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, momentum,
                           epsilon, out):
    """Checked ``batchnorm_forward`` arguments:
    ``(x, gamma, beta, moving_mean, moving_var, momentum, epsilon, out)``."""
    momentum, epsilon = op_hyper("batchnorm_forward", momentum=momentum, epsilon=epsilon)
    inputs = (("x", x), ("gamma", gamma), ("beta", beta))
    dt = work_dtype(x)
    x = as_float(x, dt, "x", 2)
    n, k = x.shape
    gamma = as_float(gamma, dt, "gamma", 1)
    beta = as_float(beta, dt, "beta", 1)
    for nm, v in (("gamma", gamma), ("beta", beta)):
        if v.shape != (k,):
            raise ValueError(f"{nm}: expected shape ({k},), got {v.shape}")
    moving_mean = check_state(moving_mean, (k,), dt, "moving_mean")
    moving_var = check_state(moving_var, (k,), dt, "moving_var")
    out = check_out(out, x.shape, dt)
    if training and n == 0:
        raise ValueError("batchnorm_forward: training needs at least one sample")
    check_aliasing("batchnorm_forward", [("out", out), ("moving_mean", moving_mean),
                                         ("moving_var", moving_var)], inputs)
    return x, gamma, beta, moving_mean, moving_var, momentum, epsilon, out


def prep_batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    """Checked ``batchnorm_backward`` arguments:
    ``(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)`` (``mean``/``inv_std`` float64)."""
    inputs = (("dy", dy), ("x", x), ("gamma", gamma), ("mean", mean), ("inv_std", inv_std))
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 2)
    x = as_float(x, dt, "x", 2)
    if x.shape != dy.shape:
        raise ValueError(f"batchnorm_backward: dy {dy.shape} and x {x.shape} differ")
    k = x.shape[1]
    gamma = as_float(gamma, dt, "gamma", 1)
    mean = as_float(mean, np.float64, "mean")
    inv_std = as_float(inv_std, np.float64, "inv_std")
    for nm, v in (("gamma", gamma), ("mean", mean), ("inv_std", inv_std)):
        if v.shape != (k,):
            raise ValueError(f"{nm}: expected shape ({k},), got {v.shape}")
    dx = check_out(dx, x.shape, dt, "dx")
    dgamma = check_out(dgamma, (k,), dt, "dgamma")
    dbeta = check_out(dbeta, (k,), dt, "dbeta")
    check_aliasing("batchnorm_backward", [("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)],
                   inputs)
    return dy, x, gamma, mean, inv_std, dx, dgamma, dbeta


def prep_optimizer(op, param, grad, *state_names_and_arrays):
    """Check the arguments of optimizer update ``op``: ``param`` (a writable
    C-contiguous float array), its state arrays (``(name, array)`` pairs, distinct
    from each other and from ``param``) and ``grad``; return ``grad`` in ``param``'s
    dtype."""
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param: expected a numpy.ndarray, got {type(param).__name__}")
    dt = param.dtype
    if dt not in (np.float32, np.float64):
        raise TypeError(f"param: expected float32 or float64, got {dt}")
    check_state(param, param.shape, dt, "param")
    grads = as_float(grad, dt, "grad")
    if grads.shape != param.shape:
        raise ValueError(f"grad: expected shape {param.shape}, got {grads.shape}")
    for nm, arr in state_names_and_arrays:
        check_state(arr, param.shape, dt, nm)
    check_aliasing(op, [("param", param), *state_names_and_arrays], [("grad", grad)])
    return grads


def prep_sgd(param, grad, velocity, learning_rate, momentum, weight_decay):
    """Checked ``sgd_update`` arguments: ``(grad, learning_rate, momentum,
    weight_decay)``, ``grad`` in ``param``'s dtype."""
    hyper = op_hyper("sgd_update", learning_rate=learning_rate, momentum=momentum,
                     weight_decay=weight_decay)
    if hyper[1] and velocity is None:
        raise ValueError("sgd_update: momentum > 0 needs a velocity array")
    return (prep_optimizer("sgd_update", param, grad,
                           *([("velocity", velocity)] if velocity is not None else [])),
            *hyper)


def adam_step_size(learning_rate, beta_1, beta_2, step):
    """Keras's Adam step size with both bias corrections folded in:
    ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` (``step`` = t counts from 1)."""
    return learning_rate * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)


def prep_adam(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon, weight_decay):
    """Checked ``adam_update`` arguments: ``(grad, step, learning_rate, beta_1, beta_2,
    epsilon, weight_decay)``, ``grad`` in ``param``'s dtype (``step`` counts from 1)."""
    hyper = op_hyper("adam_update", step=step, learning_rate=learning_rate, beta_1=beta_1,
                     beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay)
    return (prep_optimizer("adam_update", param, grad, ("m", m), ("v", v)), *hyper)


def prep_rmsprop(param, grad, ms, learning_rate, rho, epsilon, weight_decay):
    """Checked ``rmsprop_update`` arguments: ``(grad, learning_rate, rho, epsilon,
    weight_decay)``, ``grad`` in ``param``'s dtype."""
    hyper = op_hyper("rmsprop_update", learning_rate=learning_rate, rho=rho, epsilon=epsilon,
                     weight_decay=weight_decay)
    return (prep_optimizer("rmsprop_update", param, grad, ("ms", ms)), *hyper)


def prep_adagrad(param, grad, acc, learning_rate, epsilon, weight_decay):
    """Checked ``adagrad_update`` arguments: ``(grad, learning_rate, epsilon,
    weight_decay)``, ``grad`` in ``param``'s dtype."""
    hyper = op_hyper("adagrad_update", learning_rate=learning_rate, epsilon=epsilon,
                     weight_decay=weight_decay)
    return (prep_optimizer("adagrad_update", param, grad, ("acc", acc)), *hyper)
