"""``keras.ops``'s NumPy-like functions, differentiable: each computes with NumPy and,
given a tracked :class:`~.tape.Tensor`, records its vector-Jacobian product.

Called on plain arrays they return plain NumPy arrays (pynn's tensors); called on a
Tensor they return Tensors. Shapes that do not broadcast raise ``ValueError`` naming
the op and the shapes. Ops without a derivative (``argmax``, integer casts,
comparisons) give no gradient path; a gradient reaching one raises
:class:`~.tape.NonDifferentiableError` naming it.
"""
from __future__ import annotations

import math

import numpy as np

from .tape import NonDifferentiableError, Tensor, as_input, record, unwrap

_FLOATS = (np.float32, np.float64)


def _arr(x, like=None):
    v = unwrap(x)
    if isinstance(v, (np.ndarray, np.generic)):
        return v
    a = np.asarray(v)
    if a.dtype == np.float64 and like is not None and like.dtype == np.float32:
        return a.astype(np.float32)  # a Python float joins float32 math as float32
    if a.dtype.kind in "iub" and like is not None and like.dtype.kind == "f":
        return a.astype(like.dtype)
    return a


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (undo broadcasting)."""
    if g.shape == tuple(shape):
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, d in enumerate(shape):
        if d == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def _float_like(*values):
    for v in values:
        if isinstance(v, np.ndarray) and v.dtype in _FLOATS:
            return v
    return None


def _shapes_error(name, *values):
    return ValueError(f"ops.{name}: operands of shapes "
                      f"{', '.join(str(tuple(np.shape(v))) for v in values)} do not broadcast")


def _nondiff(name):
    def vjp(g):
        raise NonDifferentiableError(f"ops.{name} has no gradient, but the value being "
                                     f"differentiated depends on its result")
    return vjp


# ---------------------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------------------
def _binary(name, fn, dfa, dfb):
    def op(x1, x2):
        a_in, b_in = as_input(x1), as_input(x2)
        a0, b0 = unwrap(a_in), unwrap(b_in)
        ref = _float_like(a0 if isinstance(a0, np.ndarray) else None,
                          b0 if isinstance(b0, np.ndarray) else None)
        a, b = _arr(a0, ref), _arr(b0, ref)
        try:
            out = fn(a, b)
        except ValueError:
            raise _shapes_error(name, a, b) from None

        def vjp(g):
            return (None if dfa is None else _unbroadcast(dfa(g, a, b, out), a.shape),
                    None if dfb is None else _unbroadcast(dfb(g, a, b, out), b.shape))
        return record(name, out, [a_in, b_in], vjp)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` with NumPy broadcasting (``keras.ops.{name}``)."
    return op


add = _binary("add", np.add, lambda g, a, b, o: g, lambda g, a, b, o: g)
subtract = _binary("subtract", np.subtract, lambda g, a, b, o: g, lambda g, a, b, o: -g)
multiply = _binary("multiply", np.multiply, lambda g, a, b, o: g * b, lambda g, a, b, o: g * a)
divide = _binary("divide", np.divide, lambda g, a, b, o: g / b,
                 lambda g, a, b, o: -g * a / (b * b))
true_divide = divide
power = _binary("power", np.power, lambda g, a, b, o: g * b * np.power(a, b - 1),
                lambda g, a, b, o: g * o * np.log(np.where(a > 0, a, 1)))
maximum = _binary("maximum", np.maximum, lambda g, a, b, o: g * (a >= b),
                  lambda g, a, b, o: g * (a < b))
minimum = _binary("minimum", np.minimum, lambda g, a, b, o: g * (a <= b),
                  lambda g, a, b, o: g * (a > b))


def _compare(name, fn):
    def op(x1, x2):
        a, b = _arr(x1), _arr(x2)
        try:
            out = fn(a, b)
        except ValueError:
            raise _shapes_error(name, a, b) from None
        return Tensor(out) if isinstance(x1, Tensor) or isinstance(x2, Tensor) else out
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (boolean; no gradient)."
    return op


equal = _compare("equal", np.equal)
not_equal = _compare("not_equal", np.not_equal)
less = _compare("less", np.less)
less_equal = _compare("less_equal", np.less_equal)
greater = _compare("greater", np.greater)
greater_equal = _compare("greater_equal", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)


def logical_not(x):
    out = np.logical_not(_arr(x))
    return Tensor(out) if isinstance(x, Tensor) else out


def _unary(name, fn, dfn):
    """``dfn(g, x, out)``: the input gradient (``None``: a constant, zero gradient)."""
    def op(x):
        x_in = as_input(x)
        a = _arr(x_in)
        if a.dtype.kind in "iub" and dfn is not None:
            a = a.astype(np.float32)
        out = fn(a)
        if dfn is None:
            return record(name, out, [x_in], lambda g: (None,))
        return record(name, out, [x_in], lambda g: (dfn(g, a, out),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (``keras.ops.{name}``)."
    return op


def _sigmoid(a):
    with np.errstate(over="ignore"):
        return np.where(a >= 0, 1 / (1 + np.exp(-a)), np.exp(a) / (1 + np.exp(a)))


def _softplus(a):
    return np.logaddexp(0, a)


def _erf(a):
    return np.vectorize(math.erf, otypes=[a.dtype])(a) if a.size else a.copy()


negative = _unary("negative", np.negative, lambda g, a, o: -g)
absolute = _unary("absolute", np.abs, lambda g, a, o: g * np.sign(a))
abs = absolute  # noqa: A001 (keras.ops.abs)
exp = _unary("exp", np.exp, lambda g, a, o: g * o)
expm1 = _unary("expm1", np.expm1, lambda g, a, o: g * (o + 1))
log = _unary("log", np.log, lambda g, a, o: g / a)
log1p = _unary("log1p", np.log1p, lambda g, a, o: g / (1 + a))
sqrt = _unary("sqrt", np.sqrt, lambda g, a, o: g / (2 * o))
rsqrt = _unary("rsqrt", lambda a: 1 / np.sqrt(a), lambda g, a, o: -0.5 * g * o / a)
square = _unary("square", np.square, lambda g, a, o: 2 * g * a)
reciprocal = _unary("reciprocal", np.reciprocal, lambda g, a, o: -g * o * o)
sin = _unary("sin", np.sin, lambda g, a, o: g * np.cos(a))
cos = _unary("cos", np.cos, lambda g, a, o: -g * np.sin(a))
tanh = _unary("tanh", np.tanh, lambda g, a, o: g * (1 - o * o))
sigmoid = _unary("sigmoid", _sigmoid, lambda g, a, o: g * o * (1 - o))
relu = _unary("relu", lambda a: np.maximum(a, 0), lambda g, a, o: g * (a > 0))
relu6 = _unary("relu6", lambda a: np.clip(a, 0, 6), lambda g, a, o: g * ((a > 0) & (a < 6)))
softplus = _unary("softplus", _softplus, lambda g, a, o: g * _sigmoid(a))
softsign = _unary("softsign", lambda a: a / (1 + np.abs(a)),
                  lambda g, a, o: g / (1 + np.abs(a)) ** 2)
silu = _unary("silu", lambda a: a * _sigmoid(a),
              lambda g, a, o: g * (_sigmoid(a) * (1 + a * (1 - _sigmoid(a)))))
swish = silu
log_sigmoid = _unary("log_sigmoid", lambda a: -_softplus(-a), lambda g, a, o: g * _sigmoid(-a))
erf = _unary("erf", _erf, lambda g, a, o: g * 2 / math.sqrt(math.pi) * np.exp(-a * a))
sign = _unary("sign", np.sign, None)
floor = _unary("floor", np.floor, None)
ceil = _unary("ceil", np.ceil, None)
round = _unary("round", np.round, None)  # noqa: A001 (keras.ops.round)


def gelu(x, approximate=True):
    """Keras's ``gelu`` (``approximate=True``: the tanh form, Keras's default)."""
    if approximate:
        c = math.sqrt(2 / math.pi)
        inner = multiply(c, add(x, multiply(0.044715, power(x, 3.0))))
        return multiply(multiply(0.5, x), add(1.0, tanh(inner)))
    return multiply(multiply(0.5, x), add(1.0, erf(multiply(x, 1 / math.sqrt(2.0)))))


def leaky_relu(x, negative_slope=0.2):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.where(a > 0, a, negative_slope * a)
    return record("leaky_relu", out, [x_in],
                  lambda g: (np.where(a > 0, g, negative_slope * g),))


def elu(x, alpha=1.0):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))
    return record("elu", out, [x_in], lambda g: (np.where(a > 0, g, g * (out + alpha)),))


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return multiply(scale, elu(x, alpha))


def hard_sigmoid(x):
    return divide(relu6(add(x, 3.0)), 6.0)


def clip(x, x_min, x_max):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.clip(a, x_min, x_max)
    return record("clip", out, [x_in], lambda g: (g * ((a >= x_min) & (a <= x_max)),))


def where(condition, x1=None, x2=None):
    c = np.asarray(unwrap(condition)).astype(bool)
    if x1 is None and x2 is None:
        return np.nonzero(c)
    a_in, b_in = as_input(x1), as_input(x2)
    ref = _float_like(*(v for v in (unwrap(a_in), unwrap(b_in)) if isinstance(v, np.ndarray)))
    a, b = _arr(a_in, ref), _arr(b_in, ref)
    try:
        out = np.where(c, a, b)
    except ValueError:
        raise _shapes_error("where", c, a, b) from None
    return record("where", out, [a_in, b_in],
                  lambda g: (_unbroadcast(np.where(c, g, 0), a.shape),
                             _unbroadcast(np.where(c, 0, g), b.shape)))


# ---------------------------------------------------------------------------------------
# products
# ---------------------------------------------------------------------------------------
def matmul(x1, x2):
    """``x1 @ x2`` with NumPy's rules (batched over leading axes)."""
    a_in, b_in = as_input(x1), as_input(x2)
    a, b = _arr(a_in), _arr(b_in)
    try:
        out = np.matmul(a, b)
    except ValueError:
        raise ValueError(f"ops.matmul: shapes {a.shape} and {b.shape} are incompatible "
                         f"(the last axis of the first must match the second-to-last of the "
                         f"second)") from None

    def vjp(g):
        a2 = a[None] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
        gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
        ga = ga.reshape(ga.shape[:-2] + (ga.shape[-1],)) if a.ndim == 1 else ga
        gb = gb.reshape(gb.shape[:-1]) if b.ndim == 1 else gb
        return _unbroadcast(ga, a.shape), _unbroadcast(gb, b.shape)
    return record("matmul", out, [a_in, b_in], vjp)


def dot(x1, x2):
    return matmul(x1, x2)


def einsum(subscripts, *operands):
    """``numpy.einsum`` for explicit subscripts (``"ij,jk->ik"``)."""
    ins = [as_input(o) for o in operands]
    vals = [_arr(o) for o in ins]
    if "->" not in subscripts:
        raise ValueError("ops.einsum: give explicit output subscripts ('ij,jk->ik')")
    lhs, rhs = subscripts.replace(" ", "").split("->")
    terms = lhs.split(",")
    out = np.einsum(subscripts, *vals)

    def vjp(g):
        grads = []
        for i, term in enumerate(terms):
            others = [t for j, t in enumerate(terms) if j != i]
            ovals = [v for j, v in enumerate(vals) if j != i]
            gi = np.einsum(",".join([rhs] + others) + "->" + term, g, *ovals)
            grads.append(gi)
        return grads
    return record("einsum", out, ins, vjp)


# ---------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(a % ndim for a in axis)


def _expand(g, shape, axes, keepdims):
    if not keepdims:
        for a in sorted(axes):
            g = np.expand_dims(g, a)
    return np.broadcast_to(g, shape)


def sum(x, axis=None, keepdims=False):  # noqa: A001 (keras.ops.sum)
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.sum(a, axis=axis, keepdims=keepdims)
    ax = _axes(axis, a.ndim)
    return record("sum", out, [x_in], lambda g: (_expand(g, a.shape, ax, keepdims).copy(),))


def mean(x, axis=None, keepdims=False):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.mean(a, axis=axis, keepdims=keepdims)
    ax = _axes(axis, a.ndim)
    n = int(np.prod([a.shape[i] for i in ax])) or 1
    return record("mean", out, [x_in], lambda g: (_expand(g / n, a.shape, ax, keepdims),))


def _extreme(name, fn):
    def op(x, axis=None, keepdims=False, initial=None):
        x_in = as_input(x)
        a = _arr(x_in)
        out = fn(a, axis=axis, keepdims=True)
        hit = a == out
        count = hit.sum(axis=axis, keepdims=True)
        res = out if keepdims else np.squeeze(out, axis=_axes(axis, a.ndim))
        ax = _axes(axis, a.ndim)
        return record(name, res, [x_in],
                      lambda g: (hit * _expand(g, a.shape, ax, keepdims) / count,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{name}`` over ``axis`` (ties share the gradient)."
    return op


max = _extreme("max", np.max)  # noqa: A001
min = _extreme("min", np.min)  # noqa: A001
amax, amin = max, min


def var(x, axis=None, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    m = stop_gradient(max(x, axis=axis, keepdims=True))
    out = add(log(sum(exp(subtract(x, m)), axis=axis, keepdims=True)), m)
    return out if keepdims else squeeze(out, axis=_axes(axis, np.ndim(unwrap(x))))


def _argext(name, fn):
    def op(x, axis=None, keepdims=False):
        x_in = as_input(x)
        out = fn(_arr(x_in), axis=axis, keepdims=keepdims)
        return record(name, out, [x_in], _nondiff(name))
    op.__name__ = op.__qualname__ = name
    return op


argmax = _argext("argmax", np.argmax)
argmin = _argext("argmin", np.argmin)


def cumsum(x, axis=None):
    x_in = as_input(x)
    a = _arr(x_in)
    if axis is None:
        out = np.cumsum(a.reshape(-1))
        return record("cumsum", out, [x_in],
                      lambda g: (np.flip(np.cumsum(np.flip(g))).reshape(a.shape),))
    out = np.cumsum(a, axis=axis)
    return record("cumsum", out, [x_in],
                  lambda g: (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),))


# ---------------------------------------------------------------------------------------
# shapes and indexing
# ---------------------------------------------------------------------------------------
def reshape(x, newshape):
    x_in = as_input(x)
    a = _arr(x_in)
    try:
        out = np.reshape(a, newshape)
    except ValueError:
        raise ValueError(f"ops.reshape: cannot reshape an array of shape {a.shape} into "
                         f"{tuple(np.atleast_1d(newshape))}") from None
    return record("reshape", out, [x_in], lambda g: (np.reshape(g, a.shape),))


def transpose(x, axes=None):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.transpose(a, axes)
    inv = np.argsort(axes) if axes is not None else None
    return record("transpose", out, [x_in], lambda g: (np.transpose(g, inv),))


def swapaxes(x, axis1, axis2):
    axes = list(range(np.ndim(unwrap(x))))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def moveaxis(x, source, destination):
    n = np.ndim(unwrap(x))
    order = [a for a in range(n) if a != source % n]
    order.insert(destination % n, source % n)
    return transpose(x, order)


def expand_dims(x, axis):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.expand_dims(a, axis)
    return record("expand_dims", out, [x_in], lambda g: (np.reshape(g, a.shape),))


def squeeze(x, axis=None):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.squeeze(a, axis=axis)
    return record("squeeze", out, [x_in], lambda g: (np.reshape(g, a.shape),))


def broadcast_to(x, shape):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.broadcast_to(a, shape).copy()
    return record("broadcast_to", out, [x_in], lambda g: (_unbroadcast(g, a.shape),))


def concatenate(xs, axis=0):
    ins = [as_input(x) for x in xs]
    vals = [_arr(x) for x in ins]
    try:
        out = np.concatenate(vals, axis=axis)
    except ValueError:
        raise ValueError(f"ops.concatenate: shapes {[v.shape for v in vals]} differ outside "
                         f"axis {axis}") from None
    cuts = np.cumsum([v.shape[axis] for v in vals])[:-1]
    return record("concatenate", out, ins, lambda g: tuple(np.split(g, cuts, axis=axis)))


def stack(xs, axis=0):
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x, indices_or_sections, axis=0):
    n = np.shape(unwrap(x))[axis]
    if isinstance(indices_or_sections, int):
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + list(indices_or_sections) + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = [slice(None)] * np.ndim(unwrap(x))
        idx[axis] = slice(lo, hi)
        out.append(take_index(x, tuple(idx)))
    return out


def tile(x, repeats):
    x_in = as_input(x)
    a = _arr(x_in)
    out = np.tile(a, repeats)
    reps = (1,) * (out.ndim - len(np.atleast_1d(repeats))) + tuple(np.atleast_1d(repeats))
    shape = (1,) * (out.ndim - a.ndim) + a.shape

    def vjp(g):
        g = g.reshape(sum_pairs(reps, shape))
        return (g.sum(axis=tuple(range(0, 2 * len(shape), 2))).reshape(a.shape),)
    return record("tile", out, [x_in], vjp)


def sum_pairs(reps, shape):
    return tuple(d for pair in zip(reps, shape) for d in pair)


def flip(x, axis=None):
    x_in = as_input(x)
    out = np.flip(_arr(x_in), axis=axis)
    return record("flip", out, [x_in], lambda g: (np.flip(g, axis=axis),))


def take_index(x, key):
    """``x[key]`` (basic and integer-array indexing; repeated indices accumulate)."""
    x_in = as_input(x)
    a = _arr(x_in)
    key = tuple(unwrap(k) for k in key) if isinstance(key, tuple) else unwrap(key)
    out = a[key]

    def vjp(g):
        ga = np.zeros_like(a)
        np.add.at(ga, key, g)
        return (ga,)
    return record("getitem", np.array(out) if np.isscalar(out) else out, [x_in], vjp)


def take(x, indices, axis=None):
    x_in = as_input(x)
    a = _arr(x_in)
    idx = np.asarray(unwrap(indices))
    if idx.dtype.kind not in "iu":
        raise NonDifferentiableError(f"ops.take: indices must be integers, got {idx.dtype}")
    out = np.take(a, idx, axis=axis)

    def vjp(g):
        ga = np.zeros_like(a)
        if axis is None:
            np.add.at(ga.reshape(-1), idx.reshape(-1), g.reshape(-1))
        else:
            moved = np.moveaxis(ga, axis, 0)
            gm = np.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
            np.add.at(moved, idx, gm)
        return (ga,)
    return record("take", out, [x_in], vjp)


def take_along_axis(x, indices, axis=None):
    x_in = as_input(x)
    a = _arr(x_in)
    idx = np.asarray(unwrap(indices))
    out = np.take_along_axis(a, idx, axis=axis)

    def vjp(g):
        ga = np.zeros_like(a)
        np.put_along_axis(ga, idx, 0, axis=axis)
        grid = list(np.indices(idx.shape, sparse=True))
        grid[axis % a.ndim] = idx
        np.add.at(ga, tuple(grid), g)
        return (ga,)
    return record("take_along_axis", out, [x_in], vjp)


# ---------------------------------------------------------------------------------------
# neural-network functions
# ---------------------------------------------------------------------------------------
def softmax(x, axis=-1):
    x_in = as_input(x)
    a = _arr(x_in)
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    out = e / np.sum(e, axis=axis, keepdims=True)
    return record("softmax", out, [x_in],
                  lambda g: (out * (g - np.sum(g * out, axis=axis, keepdims=True)),))


def log_softmax(x, axis=-1):
    x_in = as_input(x)
    a = _arr(x_in)
    s = a - np.max(a, axis=axis, keepdims=True)
    out = s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return record("log_softmax", out, [x_in],
                  lambda g: (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),))


def one_hot(x, num_classes, axis=-1, dtype="float32"):
    idx = np.asarray(unwrap(x))
    if idx.dtype.kind not in "iu":
        idx = idx.astype(np.int64)
    out = (idx[..., None] == np.arange(num_classes)).astype(dtype)
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    return Tensor(out) if isinstance(x, Tensor) else out


def stop_gradient(x):
    """``x``'s value, with no gradient flowing back through it."""
    v = unwrap(x)
    return Tensor(np.array(v)) if isinstance(as_input(x), Tensor) else v


def cast(x, dtype):
    x_in = as_input(x)
    a = _arr(x_in)
    dt = np.dtype(dtype)
    out = a.astype(dt)
    if dt.kind != "f":
        return record(f"cast to {dt.name}", out, [x_in], _nondiff(f"cast to {dt.name}"))
    return record("cast", out, [x_in], lambda g: (g.astype(a.dtype),))


def convert_to_tensor(x, dtype=None):
    """A NumPy array (pynn's tensor type) of ``x``; Tensors pass through."""
    if isinstance(x, Tensor):
        return x if dtype is None else cast(x, dtype)
    return np.asarray(unwrap(x), dtype=dtype)


def convert_to_numpy(x):
    return np.array(unwrap(x), copy=True)


def shape(x):
    return tuple(np.shape(unwrap(x)))


def ndim(x):
    return np.ndim(unwrap(x))


def size(x):
    return int(np.size(unwrap(x)))


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 (keras.ops.norm)
    if ord not in (None, 2, "fro"):
        raise ValueError(f"ops.norm: only the 2-norm is differentiable here, got ord={ord!r}")
    return sqrt(sum(square(x), axis=axis, keepdims=keepdims))


def binary_crossentropy(target, output, from_logits=False):
    if from_logits:
        return add(subtract(relu(output), multiply(output, target)),
                   log1p(exp(negative(absolute(output)))))
    o = clip(output, 1e-7, 1 - 1e-7)
    return negative(add(multiply(target, log(o)),
                        multiply(subtract(1.0, target), log(subtract(1.0, o)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    if from_logits:
        return negative(sum(multiply(target, log_softmax(output, axis=axis)), axis=axis))
    o = divide(output, sum(output, axis=axis, keepdims=True))
    return negative(sum(multiply(target, log(clip(o, 1e-7, 1 - 1e-7))), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    n = np.shape(unwrap(output))[axis]
    return categorical_crossentropy(one_hot(target, n, dtype=np.dtype(unwrap(output).dtype)),
                                    output, from_logits=from_logits, axis=axis)


# ---------------------------------------------------------------------------------------
# creation (constants)
# ---------------------------------------------------------------------------------------
def zeros(shape, dtype="float32"):
    return np.zeros(shape, dtype)


def ones(shape, dtype="float32"):
    return np.ones(shape, dtype)


def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype)


def zeros_like(x, dtype=None):
    return np.zeros_like(unwrap(x), dtype=dtype)


def ones_like(x, dtype=None):
    return np.ones_like(unwrap(x), dtype=dtype)


def full_like(x, fill_value, dtype=None):
    return np.full_like(unwrap(x), fill_value, dtype=dtype)


def eye(N, M=None, k=0, dtype="float32"):  # noqa: N803 (keras.ops.eye)
    return np.eye(N, M, k, dtype=dtype)


def identity(n, dtype="float32"):
    return np.identity(n, dtype=dtype)


def arange(start, stop=None, step=1, dtype=None):
    return np.arange(start, stop, step, dtype=dtype)


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    return np.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)


__all__ = [n for n in list(globals()) if not n.startswith("_") and n not in (
    "annotations", "math", "np", "NonDifferentiableError", "Tensor", "as_input", "record",
    "unwrap", "sum_pairs")]


# ---------------------------------------------------------------------------------------
# symbolic tensors: an op on a model's symbolic tensors becomes a graph node
# ---------------------------------------------------------------------------------------
#: set by :mod:`pynn.layers.op_layer`: ``hook(name, fn, args, kwargs)`` -> symbolic output
SYMBOLIC_HOOK = [None]
_CONSTANT_OPS = {"zeros", "ones", "full", "eye", "identity", "arange", "linspace", "shape",
                 "ndim", "size", "convert_to_numpy"}


def _is_symbolic(v):
    if getattr(v, "_pynn_symbolic", False):
        return True
    if isinstance(v, (list, tuple)):
        return any(_is_symbolic(e) for e in v)
    return False


def _symbolic_aware(name, fn):
    def op(*args, **kwargs):
        hook = SYMBOLIC_HOOK[0]
        if hook is not None and (any(_is_symbolic(a) for a in args)
                                 or any(_is_symbolic(v) for v in kwargs.values())):
            return hook(name, op, args, kwargs)
        return fn(*args, **kwargs)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = fn.__doc__
    op.__wrapped__ = fn
    return op


for _name in __all__:
    _fn = globals()[_name]
    if callable(_fn) and _name not in _CONSTANT_OPS:
        globals()[_name] = _symbolic_aware(_name, _fn)
del _name, _fn
