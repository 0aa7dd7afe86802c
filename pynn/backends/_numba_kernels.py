"""Numba kernels behind :class:`pynn.backends.numba_backend.NumbaBackend`.

Every kernel is a serial ``@njit`` function without an explicit signature, so
nothing compiles when this module is imported: each kernel compiles on its
first call for the argument types it sees (float32 or float64 arrays) and is
cached on disk (in pynn's checked directory, :mod:`._numba_cache`), so later
processes load the machine code.

Conventions
-----------
* Kernels trust their arguments: the Python methods of the backend have
  already checked shapes, dtypes, contiguity and writability.
* Nothing here branches on an activation code: :mod:`._numba_codegen` writes
  the GEMM-with-epilogue, activation and fused Dense-stack kernels for the
  activations in use, from the per-activation scalar helpers below
  (``act_<name>``/``grad_<name>``, by :data:`ACT_NAMES`).
* Optional arrays are passed as empty arrays plus a flag (size 0 = absent), so
  one compiled specialisation serves both cases.
* Per-element transcendental functions and every reduction run in float64.
* ``fastmath`` uses an explicit flag set without ``nnan``/``ninf`` so NaN and
  infinity checks keep working.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._numba_cache import cached

#: LLVM fast-math flags: only ``nsz`` (the sign of a zero may differ). No ``nnan``/
#: ``ninf`` (NaN checks must keep working), no ``reassoc`` (summation order stays as
#: written), and none of the flags that change values: ``contract`` (fused multiply-adds),
#: ``afn`` (approximate exp/log) and ``arcp`` (reciprocals) made Numba's training
#: trajectory leave the NumPy reference's within the first epoch; without them it is
#: bit-identical to the reference (and to the Cython backend) on the tutorial MNIST
#: network, at no measurable cost (the time is in BLAS).
FASTMATH = frozenset({"nsz"})

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# SplitMix64 constants, typed uint64 so Numba never promotes to float64.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S40 = np.uint64(40)
_INV_2_24 = 1.0 / 16777216.0

def _jit(fn):
    """Lazily compiled, disk-cached (in pynn's checked directory), serial kernel."""
    return cached(njit(fastmath=set(FASTMATH), error_model="numpy", nogil=True)(fn))


def _inline(fn):
    """Scalar helper inlined into its callers at Numba-IR level, so the loops
    that call it with a constant activation code reduce to straight-line,
    vectorisable code (a plain call per element costs ~5 ns)."""
    return cached(njit(fastmath=set(FASTMATH), error_model="numpy", inline="always")(fn))


# --------------------------------------------------------------------------
# scalar activations (float64 in, float64 out): one helper per code, so a
# generated kernel (:mod:`._numba_codegen`) names exactly the one it needs
# --------------------------------------------------------------------------
@_inline
def act_linear(x, a):
    return x


@_inline
def act_relu(x, a):
    if x < 0.0:
        return 0.0
    return x


@_inline
def act_leaky_relu(x, a):
    if x > 0.0:
        return x
    return a * x


@_inline
def act_elu(x, a):
    if x > 0.0:
        return x
    return a * math.expm1(x)


@_inline
def act_sigmoid(x, a):
    e = math.exp(-abs(x))
    if x >= 0.0:
        return 1.0 / (1.0 + e)
    return e / (1.0 + e)


@_inline
def act_tanh(x, a):
    return math.tanh(x)


@_inline
def act_gelu(x, a):
    return 0.5 * x * (1.0 + math.erf(x * _SQRT_HALF))


@_inline
def act_softplus(x, a):
    m = x if x > 0.0 else 0.0
    return m + math.log1p(math.exp(-abs(x)))


@_inline
def grad_linear(dy, y, x, a):
    return dy


@_inline
def grad_relu(dy, y, x, a):
    if y > 0.0:
        return dy
    return 0.0


@_inline
def grad_leaky_relu(dy, y, x, a):
    if y > 0.0:
        return dy
    return a * dy


@_inline
def grad_elu(dy, y, x, a):
    if y > 0.0:
        return dy
    return dy * (y + a)


@_inline
def grad_sigmoid(dy, y, x, a):
    return dy * y * (1.0 - y)


@_inline
def grad_tanh(dy, y, x, a):
    return dy * (1.0 - y * y)


@_inline
def grad_gelu(dy, y, x, a):
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT_HALF))
    pdf = math.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return dy * (cdf + x * pdf)


@_inline
def grad_softplus(dy, y, x, a):
    return dy * -math.expm1(-y)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@_inline
def act_selu(x, a):
    if x > 0.0:
        return _SELU_SCALE * x
    return _SELU_SCALE * (_SELU_ALPHA * math.expm1(x))


@_inline
def act_silu(x, a):
    return x * act_sigmoid(x, a)


@_inline
def act_exponential(x, a):
    return math.exp(x)


@_inline
def act_hard_sigmoid(x, a):
    v = x / 6.0 + 0.5
    if v <= 0.0:
        return 0.0
    if v >= 1.0:
        return 1.0
    return v


@_inline
def act_hard_silu(x, a):
    return x * act_hard_sigmoid(x, a)


@_inline
def act_softsign(x, a):
    return x / (1.0 + abs(x))


@_inline
def act_relu6(x, a):
    if x <= 0.0:
        return 0.0
    if x >= 6.0:
        return 6.0
    return x


@_inline
def act_mish(x, a):
    return x * math.tanh(act_softplus(x, a))


@_inline
def act_celu(x, a):
    if x > 0.0:
        return x
    return a * math.expm1(x / a)


@_inline
def act_squareplus(x, a):
    # (x + sqrt(x^2 + b)) / 2, without cancellation for x < 0 (float64, as everywhere here)
    s = math.sqrt(x * x + a)
    if x >= 0.0:
        return (x + s) / 2.0
    return a / (2.0 * (s - x))


@_inline
def act_tanh_shrink(x, a):
    return x - math.tanh(x)


@_inline
def grad_selu(dy, y, x, a):
    if y > 0.0:
        return _SELU_SCALE * dy
    return dy * (y + _SELU_SCALE * _SELU_ALPHA)


@_inline
def grad_silu(dy, y, x, a):
    s = act_sigmoid(x, a)
    return dy * (s * (1.0 + x * (1.0 - s)))


@_inline
def grad_exponential(dy, y, x, a):
    return dy * y


@_inline
def grad_hard_sigmoid(dy, y, x, a):
    if y > 0.0 and y < 1.0:
        return dy / 6.0
    return 0.0


@_inline
def grad_hard_silu(dy, y, x, a):
    if x < -3.0:
        return 0.0
    if x <= 3.0:
        return dy * (2.0 * x + 3.0) / 6.0
    return dy


@_inline
def grad_softsign(dy, y, x, a):
    t = 1.0 - abs(y)
    return dy * (t * t)


@_inline
def grad_relu6(dy, y, x, a):
    if y > 0.0 and y < 6.0:
        return dy
    return 0.0


@_inline
def grad_mish(dy, y, x, a):
    t = math.tanh(act_softplus(x, a))
    return dy * (t + x * act_sigmoid(x, a) * (1.0 - t * t))


@_inline
def grad_celu(dy, y, x, a):
    if y > 0.0:
        return dy
    return dy * (y / a + 1.0)


@_inline
def grad_squareplus(dy, y, x, a):
    # (1 + x / sqrt(x^2 + b)) / 2 = 1 / (1 + b / (4 y^2))
    if not y > 0.0:
        return 0.0
    if a == 0.0:
        return dy
    return dy / (1.0 + a / (4.0 * y * y))


@_inline
def grad_tanh_shrink(dy, y, x, a):
    t = math.tanh(x)
    return dy * (t * t)


#: Helper names by activation code: the elementwise activations (softmax, code 8, and
#: the reference-only row-wise codes are not here).
ACT_NAMES = {0: "linear", 1: "relu", 2: "leaky_relu", 3: "elu", 4: "sigmoid", 5: "tanh",
             6: "gelu", 7: "softplus", 9: "selu", 10: "silu", 11: "exponential",
             12: "hard_sigmoid", 13: "hard_silu", 14: "softsign", 15: "relu6", 16: "mish",
             17: "celu", 18: "squareplus", 19: "tanh_shrink"}


@_inline
def act_by_code(x, code, a):
    """Elementwise activation ``code`` of the scalar ``x`` chosen at run time (the
    recurrent kernels; others are generated for their codes)."""
    if code == 1:
        return act_relu(x, a)
    if code == 2:
        return act_leaky_relu(x, a)
    if code == 3:
        return act_elu(x, a)
    if code == 4:
        return act_sigmoid(x, a)
    if code == 5:
        return act_tanh(x, a)
    if code == 6:
        return act_gelu(x, a)
    if code == 7:
        return act_softplus(x, a)
    if code == 9:
        return act_selu(x, a)
    if code == 10:
        return act_silu(x, a)
    if code == 11:
        return act_exponential(x, a)
    if code == 12:
        return act_hard_sigmoid(x, a)
    if code == 13:
        return act_hard_silu(x, a)
    if code == 14:
        return act_softsign(x, a)
    if code == 15:
        return act_relu6(x, a)
    if code == 16:
        return act_mish(x, a)
    if code == 17:
        return act_celu(x, a)
    if code == 18:
        return act_squareplus(x, a)
    if code == 19:
        return act_tanh_shrink(x, a)
    return x


@_inline
def grad_by_code(dy, y, code, a):
    """``dy * act'`` from the output ``y`` for the codes whose derivative follows from
    it (the recurrent kernels refuse the others)."""
    if code == 1:
        return grad_relu(dy, y, 0.0, a)
    if code == 2:
        return grad_leaky_relu(dy, y, 0.0, a)
    if code == 3:
        return grad_elu(dy, y, 0.0, a)
    if code == 4:
        return grad_sigmoid(dy, y, 0.0, a)
    if code == 5:
        return grad_tanh(dy, y, 0.0, a)
    if code == 7:
        return grad_softplus(dy, y, 0.0, a)
    if code == 9:
        return grad_selu(dy, y, 0.0, a)
    if code == 11:
        return grad_exponential(dy, y, 0.0, a)
    if code == 12:
        return grad_hard_sigmoid(dy, y, 0.0, a)
    if code == 14:
        return grad_softsign(dy, y, 0.0, a)
    if code == 15:
        return grad_relu6(dy, y, 0.0, a)
    if code == 17:
        return grad_celu(dy, y, 0.0, a)
    if code == 18:
        return grad_squareplus(dy, y, 0.0, a)
    return dy


# --------------------------------------------------------------------------
# row-wise softmax helpers (2-D, in place allowed)
# --------------------------------------------------------------------------
@_inline
def _row_max(z, i, k):
    """Maximum of row ``i`` as float64 (NaN when the row holds a NaN, like ``np.max``)."""
    mx = -np.inf
    nan = False
    for j in range(k):
        v = z[i, j]
        if v > mx:
            mx = v
        elif v != v:
            nan = True
    return np.nan if nan else float(mx)


@_jit
def softmax_rows(x, out):
    """``out[i] = softmax(x[i])``; ``out`` may be ``x``."""
    n, k = x.shape
    for i in range(n):
        mx = _row_max(x, i, k)
        s = 0.0
        for j in range(k):
            e = math.exp(float(x[i, j]) - mx)
            out[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(k):
            out[i, j] = float(out[i, j]) * inv


@_jit
def log_softmax_rows(x, out):
    """``out[i] = log_softmax(x[i])``; ``out`` may be ``x``."""
    n, k = x.shape
    for i in range(n):
        mx = _row_max(x, i, k)
        s = 0.0
        for j in range(k):
            s += math.exp(float(x[i, j]) - mx)
        lse = math.log(s)
        for j in range(k):
            out[i, j] = (float(x[i, j]) - mx) - lse


# --------------------------------------------------------------------------
# BLAS products (the epilogues are generated per activation)
# --------------------------------------------------------------------------
@intrinsic
def dot_into(typingctx, a, b, out):
    """``np.dot(a, b, out)`` for C/F-contiguous arrays of one float dtype, with the
    BLAS calls Numba's ``np.dot`` makes (so the same results: GEMM, GEMV for a one-row
    or one-column operand, zeros for an empty inner dimension). The caller has checked
    the shapes (see :func:`_dot_mm`).

    ``np.dot`` wraps that lowering in a function of its own, compiled once per
    signature (about 0.1 s each); called through this intrinsic it is lowered
    straight into the caller, which keeps a generated step's first compile short.
    """
    if not (isinstance(a, types.Array) and isinstance(b, types.Array)
            and isinstance(out, types.Array) and a.ndim in (1, 2) and b.ndim in (1, 2)
            and a.ndim + b.ndim == out.ndim + 2 and out.ndim >= 1
            and a.dtype == b.dtype == out.dtype
            and out.dtype in (types.float32, types.float64)
            and a.layout in "CF" and b.layout in "CF" and out.layout == "C"):
        return None
    from numba.np.linalg import dot_3_vm, ensure_blas
    ensure_blas()

    def codegen(context, builder, signature, args):
        if signature.args[0].ndim == signature.args[1].ndim == 2:
            return _dot_mm(context, builder, signature, args)
        return dot_3_vm(context, builder, signature, args)

    return out(a, b, out), codegen


def _dot_mm(context, builder, sig, args):
    """Numba's ``dot_3_mm`` (matrix times matrix into ``out``) without its shape check.

    The same BLAS calls in the same cases: zeros for an empty inner dimension, DOT for
    a 1x1 result, GEMV for one row or one column, GEMM otherwise. Numba's version first
    compiles a Python function that compares the shapes, once per call site: a third
    of a generated step's first compile (0.3 s of about 1.6 s). Every caller here has
    checked the shapes already (the validators, the kernel tables); the dimensions
    are still checked to fit BLAS's C ints.
    """
    from numba.np.arrayobj import make_array
    from numba.np.linalg import call_xxdot, call_xxgemm, call_xxgemv, check_c_int
    xty, yty, outty = sig.args
    x = make_array(xty)(context, builder, args[0])
    y = make_array(yty)(context, builder, args[1])
    out = make_array(outty)(context, builder, args[2])
    x_shapes = cgutils.unpack_tuple(builder, x.shape)
    y_shapes = cgutils.unpack_tuple(builder, y.shape)
    out_shapes = cgutils.unpack_tuple(builder, out.shape)
    m, k = x_shapes
    n = y_shapes[1]
    for dim in (m, k, n):
        check_c_int(context, builder, dim)
    zero = context.get_constant(types.intp, 0)
    one = context.get_constant(types.intp, 1)
    empty = builder.or_(builder.icmp_signed("==", k, zero),
                        builder.or_(builder.icmp_signed("==", m, zero),
                                    builder.icmp_signed("==", n, zero)))
    with builder.if_else(empty, likely=False) as (if_empty, if_full):
        with if_empty:
            cgutils.memset(builder, out.data, builder.mul(out.itemsize, out.nitems), 0)
        with if_full:
            left_vec = builder.icmp_signed("==", m, one)
            with builder.if_else(builder.icmp_signed("==", n, one)) as (r_vec, r_mat):
                with r_vec:
                    with builder.if_else(left_vec) as (v_v, m_v):
                        with v_v:
                            call_xxdot(context, builder, False, xty.dtype, k, x.data,
                                       y.data, out.data)
                        with m_v:
                            call_xxgemv(context, builder, xty.layout == outty.layout,
                                        xty, x_shapes, x.data, y.data, out.data)
                with r_mat:
                    with builder.if_else(left_vec) as (v_m, m_m):
                        with v_m:
                            call_xxgemv(context, builder, yty.layout != outty.layout,
                                        yty, y_shapes, y.data, x.data, out.data)
                        with m_m:
                            call_xxgemm(context, builder, xty, x_shapes, x.data,
                                        yty, y_shapes, y.data, outty, out_shapes,
                                        out.data)
    from numba.core.imputils import impl_ret_borrowed
    return impl_ret_borrowed(context, builder, sig.return_type, out._getvalue())


@intrinsic
def gemm_update(typingctx, a, b, out, alpha, beta):
    """``out = alpha * a @ b + beta * out`` in one BLAS call (what ``np.dot`` cannot
    express): the fused step folds plain SGD into the weight-gradient product with
    ``alpha = -lr``, ``beta = 1 - lr * weight_decay``. No dimension may be zero.

    ``a`` and ``b`` are C- or F-contiguous 2-D arrays (``x.T`` of a C array is F),
    ``out`` is C-contiguous, all of one float dtype, shapes already checked. It calls
    the GEMM Numba's own ``np.dot`` uses (``numba_xxgemm``: SciPy's BLAS).
    """
    if not (isinstance(a, types.Array) and isinstance(b, types.Array)
            and isinstance(out, types.Array) and a.ndim == b.ndim == out.ndim == 2
            and a.dtype == b.dtype == out.dtype and out.layout == "C"
            and a.layout in "CF" and b.layout in "CF"
            and out.dtype in (types.float32, types.float64)):
        return None
    from numba.np.linalg import ensure_blas, get_blas_kind
    ensure_blas()
    sig = types.void(a, b, out, alpha, beta)

    def codegen(context, builder, signature, args):
        ta, tb, tout, talpha, tbeta = signature.args
        arrs = [context.make_array(t)(context, builder, v)
                for t, v in zip((ta, tb, tout), args[:3])]
        shapes = [cgutils.unpack_tuple(builder, arr.shape, 2) for arr in arrs]
        (m, k), n = shapes[0], shapes[1][1]
        dtype = tout.dtype
        void_p = ir.IntType(8).as_pointer()
        char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        alpha_slot = cgutils.alloca_once_value(
            builder, context.cast(builder, args[3], talpha, dtype))
        beta_slot = cgutils.alloca_once_value(
            builder, context.cast(builder, args[4], tbeta, dtype))

        def param(ty, shape, arr):
            # column-major BLAS computes out^T = b^T a^T: a C operand is "not
            # transposed" there, an F one (a transposed C array) is
            return (ir.Constant(char, ord("n" if ty.layout == "C" else "t")),
                    shape[1] if ty.layout == "C" else shape[0],
                    builder.bitcast(arr.data, void_p))

        trans_b, ldb, data_b = param(tb, shapes[1], arrs[1])
        trans_a, lda, data_a = param(ta, shapes[0], arrs[0])
        ldc = shapes[2][1]
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp,
                                                void_p, void_p, intp, void_p, intp,
                                                void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        kind = ir.Constant(char, ord(get_blas_kind(dtype)))
        builder.call(fn, (kind, trans_b, trans_a, n, m, k,
                          builder.bitcast(alpha_slot, void_p), data_b, ldb, data_a, lda,
                          builder.bitcast(beta_slot, void_p),
                          builder.bitcast(arrs[2].data, void_p), ldc))
        return context.get_dummy_value()

    return sig, codegen


def _table_view(ndim):
    """Intrinsic ``view(table, i, like)``: row ``i`` of the int64 table
    ``(address, rows, cols)`` as a C-contiguous array of ``like``'s dtype, 2-D
    ``(rows, cols)`` or flat ``(rows * cols,)``. The view borrows the memory (no
    reference is counted): the caller keeps the arrays the table names alive for
    the call, and the kernels never return a view.

    A fused kernel reached its per-layer arrays through tuples: unboxing 11 tuples
    of arrays per call and indexing them by a runtime layer number made about
    0.35 s of its first compile and ~3 us of every call; one table does neither.
    """
    def view(typingctx, table, i, like):
        if not (isinstance(table, types.Array) and table.dtype == types.int64
                and table.ndim == 2 and table.layout == "C"
                and isinstance(i, types.Integer) and isinstance(like, types.Array)):
            return None
        result = types.Array(like.dtype, ndim, "C")

        def codegen(context, builder, signature, args):
            from numba.np.arrayobj import populate_array
            tab = context.make_array(signature.args[0])(context, builder, args[0])
            intp = context.get_value_type(types.intp)
            row = builder.mul(context.cast(builder, args[1], signature.args[1], types.intp),
                              ir.Constant(intp, 3))
            addr, rows, cols = (builder.load(builder.gep(tab.data, [builder.add(
                row, ir.Constant(intp, j))])) for j in range(3))
            dtype = context.get_data_type(result.dtype)
            itemsize = context.get_abi_sizeof(dtype)
            item = ir.Constant(intp, itemsize)
            out = context.make_array(result)(context, builder)
            if ndim == 2:
                shape, strides = [rows, cols], [builder.mul(cols, item), item]
            else:
                shape, strides = [builder.mul(rows, cols)], [item]
            populate_array(out, data=builder.inttoptr(addr, dtype.as_pointer()),
                           shape=shape, strides=strides, itemsize=item, meminfo=None)
            return out._getvalue()

        return result(table, i, like), codegen
    view.__name__ = view.__qualname__ = ("mat", "flat")[2 - ndim]
    return intrinsic(view)


#: ``mat(table, i, like)``: the 2-D array row ``i`` of a kernel table names.
mat = _table_view(2)
#: ``flat(table, i, like)``: the same memory as a 1-D array.
flat = _table_view(1)


@intrinsic
def address(typingctx, a):
    """The address of an array's first element, as int64 (``table``'s first column)."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.ptrtoint(arr.data, context.get_value_type(types.int64))

    return types.int64(a), codegen


@_inline
def span(a):
    """``(first byte, end)`` of a C-contiguous array (end == first when it is empty)."""
    lo = address(a)
    return lo, lo + a.size * a.itemsize


@_inline
def rows_clear_of(spans, table, ns, mask, item):
    """True when no byte range of ``spans`` (a tuple of :func:`span` results) meets an
    array of ``table`` whose slot ``i % ns`` is set in the bit ``mask``; ``item`` is the
    itemsize of the table's arrays. The fused kernels check their per-call arrays
    with it before writing anything (the table's own arrays were checked when it
    was made)."""
    for i in range(table.shape[0]):
        if not (mask >> (i % ns)) & 1:
            continue
        lo = table[i, 0]
        hi = lo + table[i, 1] * table[i, 2] * item
        if hi == lo:
            continue
        for a_lo, a_hi in spans:
            if a_lo < a_hi and lo < a_hi and a_lo < hi:
                return False
    return True


@intrinsic
def ravel(typingctx, a):
    """``a.reshape(-1)`` of a C-contiguous array as a plain view (Numba's reshape
    lowers a general routine with error handling into every caller)."""
    if not (isinstance(a, types.Array) and a.layout == "C"):
        return None
    result = types.Array(a.dtype, 1, "C", readonly=not a.mutable)

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import populate_array
        src = context.make_array(signature.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, signature.args[0].ndim)
        size = context.get_constant(types.intp, 1)
        for dim in shape:
            size = builder.mul(size, dim)
        out = context.make_array(result)(context, builder)
        populate_array(out, data=src.data, shape=[size], strides=[src.itemsize],
                       itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, result, out._getvalue())

    return result(a), codegen


@_jit
def softmax_backward(dy, y, out):
    """Row-wise softmax JVP: ``out = y * (dy - sum(dy * y))``; ``out`` may be ``dy``."""
    n, k = dy.shape
    for i in range(n):
        s = 0.0
        for j in range(k):
            s += float(dy[i, j]) * float(y[i, j])
        for j in range(k):
            yv = float(y[i, j])
            out[i, j] = yv * (float(dy[i, j]) - s)


# --------------------------------------------------------------------------
# losses: return the weighted sum of per-sample losses; grad written in place
# --------------------------------------------------------------------------
@_inline
def _row_lse(z, i, k):
    """``(max, log-sum-exp - max)`` of row ``i``: ``log_softmax = (z - max) - lse``."""
    mx = _row_max(z, i, k)
    s = 0.0
    for j in range(k):
        s += math.exp(float(z[i, j]) - mx)
    return mx, math.log(s)


def _target(targets, i, j):
    """The target of class ``j`` for sample ``i``: one-hot of integer ``labels`` (1-D),
    else the dense value ``t[i, j]`` (2-D). Chosen by the array's rank when compiled."""
    raise NotImplementedError("compiled only (numba overload)")


@overload(_target)
def _target_overload(targets, i, j):
    if targets.ndim == 1:
        return lambda targets, i, j: 1.0 if j == targets[i] else 0.0
    return lambda targets, i, j: float(targets[i, j])


@_inline
def _softmax_cross_entropy(z, targets, w, label_smoothing, grad):
    """Fused softmax + cross-entropy from logits ``z`` (n, k), n >= 1, against
    ``targets`` read through :func:`_target` (labels or dense); the body of both
    kernels below."""
    n, k = z.shape
    has_w = w.shape[0] > 0
    ls = label_smoothing
    off = ls / k
    on = 1.0 - ls
    inv_n = 1.0 / n
    total = 0.0
    for i in range(n):
        mx, lse = _row_lse(z, i, k)
        tsum = 0.0
        per = 0.0
        for j in range(k):
            tj = _target(targets, i, j)
            if ls != 0.0:
                tj = tj * on + off
            tsum += tj
            per -= tj * ((float(z[i, j]) - mx) - lse)
        wi = w[i] if has_w else 1.0
        total += per * wi
        scale = wi * inv_n
        for j in range(k):
            tj = _target(targets, i, j)
            if ls != 0.0:
                tj = tj * on + off
            p = math.exp((float(z[i, j]) - mx) - lse)
            grad[i, j] = (p * tsum - tj) * scale
    return total


@_jit
def softmax_cross_entropy_labels(z, labels, w, label_smoothing, grad):
    """Fused softmax + cross-entropy from logits ``z`` (n, k), n >= 1, against
    class ``labels`` (intp, in range); ``w`` has size 0 when unweighted. Returns the
    weighted sum of the per-sample losses; ``grad`` gets the gradient of the mean."""
    return _softmax_cross_entropy(z, labels, w, label_smoothing, grad)


@_jit
def softmax_cross_entropy_dense(z, t, w, label_smoothing, grad):
    """As :func:`softmax_cross_entropy_labels`, against the dense targets ``t`` (n, k)
    (probabilities; rows need not sum to one)."""
    return _softmax_cross_entropy(z, t, w, label_smoothing, grad)


@_jit
def categorical_cross_entropy(p, labels, t, w, epsilon, grad):
    """Keras's cross-entropy from probabilities: renormalise, clip, log (n >= 1)."""
    n, k = p.shape
    use_labels = labels.shape[0] == n
    has_w = w.shape[0] > 0
    hi = 1.0 - epsilon
    inv_n = 1.0 / n
    total = 0.0
    for i in range(n):
        s = 0.0
        for j in range(k):
            s += float(p[i, j])
        lab = labels[i] if use_labels else -1
        per = 0.0
        dot = 0.0
        for j in range(k):
            tj = (1.0 if j == lab else 0.0) if use_labels else float(t[i, j])
            q = float(p[i, j]) / s
            if q < epsilon:
                qc = epsilon
            elif q > hi:
                qc = hi
            else:
                qc = q
            per -= tj * math.log(qc)
            if not (q < epsilon or q > hi):
                dot += (-tj / qc) * q
        wi = w[i] if has_w else 1.0
        total += per * wi
        scale = wi * inv_n / s
        for j in range(k):
            tj = (1.0 if j == lab else 0.0) if use_labels else float(t[i, j])
            q = float(p[i, j]) / s
            if q < epsilon or q > hi:
                dq = 0.0
            else:
                dq = -tj / q
            grad[i, j] = (dq - dot) * scale
    return total


@_jit
def sigmoid_binary_cross_entropy(z, t, w, grad):
    """Binary cross-entropy from logits, mean over the last axis (n, k >= 1)."""
    n, k = z.shape
    has_w = w.shape[0] > 0
    inv_k = 1.0 / k
    inv_nk = 1.0 / (n * k)
    total = 0.0
    for i in range(n):
        wi = w[i] if has_w else 1.0
        per = 0.0
        for j in range(k):
            zd = float(z[i, j])
            td = float(t[i, j])
            e = math.exp(-abs(zd))
            mz = zd if zd > 0.0 else 0.0
            per += mz - zd * td + math.log1p(e)
            if zd >= 0.0:
                sig = 1.0 / (1.0 + e)
            else:
                sig = e / (1.0 + e)
            grad[i, j] = (sig - td) * inv_nk * wi
        total += per * inv_k * wi
    return total


@_jit
def binary_cross_entropy(p, t, w, epsilon, grad):
    """Binary cross-entropy from probabilities clipped to [eps, 1 - eps] (n, k >= 1)."""
    n, k = p.shape
    has_w = w.shape[0] > 0
    hi = 1.0 - epsilon
    inv_k = 1.0 / k
    inv_nk = 1.0 / (n * k)
    total = 0.0
    for i in range(n):
        wi = w[i] if has_w else 1.0
        per = 0.0
        for j in range(k):
            pd = float(p[i, j])
            td = float(t[i, j])
            if pd < epsilon:
                pc = epsilon
            elif pd > hi:
                pc = hi
            else:
                pc = pd
            per -= td * math.log(pc) + (1.0 - td) * math.log(1.0 - pc)
            if pd >= epsilon and pd <= hi:
                g = (pc - td) / (pc * (1.0 - pc))
            else:
                g = 0.0
            grad[i, j] = g * inv_nk * wi
        total += per * inv_k * wi
    return total


@_jit
def regression_loss(p, t, w, squared, grad):
    """Mean squared (``squared``) or absolute error, mean over the last axis."""
    n, k = p.shape
    has_w = w.shape[0] > 0
    inv_k = 1.0 / k
    inv_nk = 1.0 / (n * k)
    total = 0.0
    for i in range(n):
        wi = w[i] if has_w else 1.0
        per = 0.0
        for j in range(k):
            d = float(p[i, j]) - float(t[i, j])
            if squared:
                per += d * d
                grad[i, j] = 2.0 * d * inv_nk * wi
            else:
                per += abs(d)
                if d > 0.0:
                    sg = 1.0
                elif d < 0.0:
                    sg = -1.0
                else:
                    sg = d  # 0 stays 0, NaN stays NaN
                grad[i, j] = sg * inv_nk * wi
        total += per * inv_k * wi
    return total


# --------------------------------------------------------------------------
# reductions, dropout, batch normalisation
# --------------------------------------------------------------------------
@_jit
def bias_grad(dy, out):
    """``out[j] = sum_i dy[i, j]`` accumulated in float64."""
    n, k = dy.shape
    acc = np.zeros(k, dtype=np.float64)
    for i in range(n):
        for j in range(k):
            acc[j] += dy[i, j]
    for j in range(k):
        out[j] = acc[j]


@_jit
def dropout_forward(x, seed, rate, out, mask):
    """Inverted dropout over flat arrays with the SplitMix64 mask of ``base``."""
    scale = 1.0 / (1.0 - rate)
    for i in range(x.shape[0]):
        z = seed + np.uint64(i + 1) * _GOLDEN
        z = (z ^ (z >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
        z = z ^ (z >> _S31)
        u = float(z >> _S40) * _INV_2_24
        mask[i] = scale if u >= rate else 0.0
        out[i] = x[i] * mask[i]


@_jit
def multiply(a, b, out):
    """``out = a * b`` over flat arrays (dropout backward)."""
    for i in range(a.shape[0]):
        out[i] = a[i] * b[i]


@_jit
def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, momentum,
                      epsilon, out, mean, inv_std):
    """Batch normalisation of 2-D ``x``; fills ``mean``/``inv_std`` (float64, k)."""
    n, k = x.shape
    if training:
        for j in range(k):
            mean[j] = 0.0
            inv_std[j] = 0.0
        for i in range(n):
            for j in range(k):
                mean[j] += x[i, j]
        for j in range(k):
            mean[j] /= n
        for i in range(n):
            for j in range(k):
                d = float(x[i, j]) - mean[j]
                inv_std[j] += d * d  # the variance, for now
        for j in range(k):
            var = inv_std[j] / n
            moving_mean[j] = momentum * float(moving_mean[j]) + (1.0 - momentum) * mean[j]
            moving_var[j] = momentum * float(moving_var[j]) + (1.0 - momentum) * var
            inv_std[j] = 1.0 / math.sqrt(var + epsilon)
    else:
        for j in range(k):
            mean[j] = moving_mean[j]
            inv_std[j] = 1.0 / math.sqrt(float(moving_var[j]) + epsilon)
    scale = np.empty(k, dtype=np.float64)
    for j in range(k):
        scale[j] = inv_std[j] * float(gamma[j])
    for i in range(n):
        for j in range(k):
            out[i, j] = (float(x[i, j]) - mean[j]) * scale[j] + float(beta[j])


@_jit
def batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    """Training-mode batch-norm gradients (float64 sums)."""
    n, k = x.shape
    db = np.zeros(k, dtype=np.float64)
    dg = np.zeros(k, dtype=np.float64)
    for i in range(n):
        for j in range(k):
            d = float(dy[i, j])
            db[j] += d
            dg[j] += d * ((float(x[i, j]) - mean[j]) * inv_std[j])
    if n > 0:
        c = np.empty(k, dtype=np.float64)
        for j in range(k):
            c[j] = float(gamma[j]) * inv_std[j] / n
        for i in range(n):
            for j in range(k):
                xhat = (float(x[i, j]) - mean[j]) * inv_std[j]
                dx[i, j] = c[j] * (n * float(dy[i, j]) - db[j] - xhat * dg[j])
    for j in range(k):
        dgamma[j] = dg[j]
        dbeta[j] = db[j]


# --------------------------------------------------------------------------
# optimizers: flat arrays, scalars already in the parameter dtype (so float32
# state is updated in float32 arithmetic, as the reference does); ``tiny`` is
# FLT_MIN for float32 (denormal flush) and 0 for float64 (no flush).
# --------------------------------------------------------------------------
@_jit
def sgd_update(param, grad, lr, decay):
    """Keras SGD without momentum, with decoupled weight decay (``decay = lr * wd``)."""
    for i in range(param.shape[0]):
        p = param[i]
        if decay != 0.0:
            p -= p * decay
        p -= lr * grad[i]
        param[i] = p


@_jit
def sgd_momentum_update(param, grad, velocity, lr, momentum, nesterov, decay, tiny):
    """Keras SGD with momentum (Nesterov's when ``nesterov``) and decoupled weight decay."""
    for i in range(param.shape[0]):
        p = param[i]
        if decay != 0.0:
            p -= p * decay
        g = grad[i]
        v = momentum * velocity[i] - lr * g
        if abs(v) < tiny:
            v = 0.0
        velocity[i] = v
        if nesterov:
            p += momentum * velocity[i] - lr * g
        else:
            p += velocity[i]
        param[i] = p


@_jit
def adam_update(param, grad, m, v, alpha, one_minus_b1, one_minus_b2, epsilon, decay, tiny):
    """Keras Adam step (``alpha`` already holds the bias corrections)."""
    for i in range(param.shape[0]):
        p = param[i]
        if decay != 0.0:
            p -= p * decay
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_b1
        vi = v[i] + (g * g - v[i]) * one_minus_b2
        if abs(mi) < tiny:
            mi = 0.0
        if abs(vi) < tiny:
            vi = 0.0
        m[i] = mi
        v[i] = vi
        param[i] = p - alpha * m[i] / (np.sqrt(v[i]) + epsilon)


@_jit
def rmsprop_update(param, grad, ms, lr, rho, one_minus_rho, epsilon, decay, tiny):
    """RMSprop step."""
    for i in range(param.shape[0]):
        p = param[i]
        if decay != 0.0:
            p -= p * decay
        g = grad[i]
        s = rho * ms[i] + one_minus_rho * g * g
        if abs(s) < tiny:
            s = 0.0
        ms[i] = s
        param[i] = p - lr * g / np.sqrt(ms[i] + epsilon)


@_jit
def adagrad_update(param, grad, acc, lr, epsilon, decay, tiny):
    """Adagrad step."""
    for i in range(param.shape[0]):
        p = param[i]
        if decay != 0.0:
            p -= p * decay
        g = grad[i]
        s = acc[i] + g * g
        if abs(s) < tiny:
            s = 0.0
        acc[i] = s
        param[i] = p - lr * g / np.sqrt(acc[i] + epsilon)


# --------------------------------------------------------------------------
# pieces of the generated fused Dense-stack step
# --------------------------------------------------------------------------
@_inline
def flush_scale(d, scale, tiny):
    """``d *= scale`` (skipped when 1) and values below ``tiny`` set to zero."""
    flat = ravel(d)
    for i in range(flat.shape[0]):
        v = flat[i]
        if scale != 1.0:
            v = v * scale
        if abs(v) < tiny:
            v = 0.0
        flat[i] = v


@_inline
def column_sums(d, acc, db):
    """``db = d.sum(axis=0)``, accumulated in the float64 scratch ``acc``."""
    n, k = d.shape
    for j in range(k):
        acc[j] = 0.0
    for r in range(n):
        for j in range(k):
            acc[j] += d[r, j]
    for j in range(k):
        db[j] = acc[j]


# The fused Dense-stack step and forward pass are generated per set of
# activations, loss and update rule: see :mod:`pynn.backends._numba_codegen`.


#: Every top-level kernel (the ones the backend calls), for warm-up and tests.
KERNELS = (
    softmax_backward, softmax_rows,
    log_softmax_rows, softmax_cross_entropy_labels, softmax_cross_entropy_dense,
    categorical_cross_entropy,
    sigmoid_binary_cross_entropy, binary_cross_entropy, regression_loss, bias_grad,
    dropout_forward, multiply, batchnorm_forward, batchnorm_backward, sgd_update,
    sgd_momentum_update,
    adam_update, rmsprop_update, adagrad_update,
)
#: Helpers inlined into the kernels above (never compiled on their own).
HELPERS = (_row_max, _row_lse, span, rows_clear_of, flush_scale, column_sums,
           act_by_code, grad_by_code,
           *(globals()["act_" + name] for name in ACT_NAMES.values()),
           *(globals()["grad_" + name] for name in ACT_NAMES.values()))
