# cython: language_level=3, cdivision=True
"""Dense-layer kernels: BLAS GEMM with a fused bias + activation epilogue,
activations and their derivatives, softmax and log-softmax.

Every kernel is written once over the fused ``floating`` type (float32 and
float64), allocates nothing and runs without the GIL. The Python wrappers in
``pynn.backends.cython_backend`` validate and convert arguments first; the
shape checks repeated here only keep a direct caller from crashing the process.
"""
cimport cython
from cython cimport floating

from pynn_math cimport (ACT_LINEAR, ACT_RELU, ACT_SOFTMAX, act_backward_flat, act_forward_flat,
                        act_grad_scalar, act_is_elementwise, act_is_epilogue, bias_act_row,
                        log_softmax_row, softmax_row)

cdef extern from "limits.h":
    const int INT_MAX

include "blas_select.pxi"


cdef void _gemm(const floating* a, Py_ssize_t a_cols, const floating* b, Py_ssize_t b_cols,
                floating* out, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, bint trans_a,
                bint trans_b, floating alpha, floating beta, const floating* bias, int code,
                floating act_alpha) noexcept nogil:
    """Row-major ``out (m, n) = act(alpha op(a) op(b) + beta out + bias)``.

    Row-major C is column-major C^T = op(b)^T op(a)^T, so BLAS gets b first with
    the trans flags passed through: no transpose is materialised.
    """
    cdef Py_ssize_t i, j
    cdef char* ta = b"T" if trans_b else b"N"
    cdef char* tb = b"T" if trans_a else b"N"
    cdef floating* row
    if m == 0 or n == 0:
        return
    if k == 0:
        # empty product: only beta * out survives (BLAS would need lda >= 1)
        for i in range(m * n):
            out[i] = 0 if beta == 0 else beta * out[i]
    else:
        blas_gemm(ta, tb, <int>n, <int>m, <int>k, alpha, b, <int>b_cols, a, <int>a_cols,
                   beta, out, <int>n)
    if bias == NULL and code == ACT_LINEAR:
        return
    for i in range(m):
        bias_act_row(out + i * n, bias, n, code, act_alpha)


def gemm(const floating[:, ::1] a not None, const floating[:, ::1] b not None, floating[:,
         ::1] out not None,
         bint trans_a, bint trans_b, double alpha, double beta,
         const floating[::1] bias not None, bint has_bias, int code, double act_alpha):
    """``out = act(alpha * op(a) @ op(b) + beta * out + bias)`` via s/dgemm.

    ``bias`` is ignored unless ``has_bias`` (pass any 1-D array of the dtype).
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t ma = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t nb = b.shape[0] if trans_b else b.shape[1]
    cdef const floating* bias_p = NULL
    if ma != m or nb != n or kb != k:
        raise ValueError(f"gemm: shapes do not fit: a {tuple(a.shape)[:2]}, "
                         f"b {tuple(b.shape)[:2]}, out {tuple(out.shape)[:2]}")
    if m > INT_MAX or n > INT_MAX or k > INT_MAX:
        raise ValueError("gemm: dimensions above 2**31 - 1 are not supported by BLAS")
    if not act_is_epilogue(code):
        raise ValueError(f"gemm: unknown activation code {code}")
    if has_bias:
        if bias.shape[0] != n:
            raise ValueError(f"bias: expected shape ({n},), got ({bias.shape[0]},)")
        bias_p = &bias[0] if n else NULL
    if m == 0 or n == 0:
        return
    with nogil:
        _gemm(&a[0, 0] if k else NULL, a.shape[1], &b[0, 0] if k else NULL, b.shape[1],
              &out[0, 0], m, n, k, trans_a, trans_b, <floating>alpha, <floating>beta,
              bias_p, code, <floating>act_alpha)


def activation_forward(const floating[::1] x not None, floating[::1] out not None, int code,
                       double alpha):
    """Elementwise activation over flat contiguous arrays (softmax: use :func:`softmax`)."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out: expected {x.shape[0]} elements, got {out.shape[0]}")
    if not act_is_elementwise(code):
        raise ValueError(f"activation_forward: unsupported elementwise code {code}")
    if x.shape[0] == 0:
        return
    with nogil:
        act_forward_flat(&x[0], &out[0], x.shape[0], code, <floating>alpha)


def activation_backward(const floating[::1] dy not None, const floating[::1] y not None,
                        const floating[::1] x not None, floating[::1] out not None, int code,
                        double alpha):
    """``out = dy * act'(.)`` over flat arrays; ``x`` is read only where
    ``act_needs_input`` (pass ``dy`` as a stand-in otherwise). Softmax: :func:`softmax_backward`."""
    cdef Py_ssize_t size = dy.shape[0]
    if y.shape[0] != size or x.shape[0] != size or out.shape[0] != size:
        raise ValueError("activation_backward: dy, y, x and out sizes differ")
    if not act_is_elementwise(code):
        raise ValueError(f"activation_backward: unsupported elementwise code {code}")
    if size == 0:
        return
    with nogil:
        act_backward_flat(&dy[0], &y[0], &x[0], &out[0], size, code, <floating>alpha)


cdef inline bint _same_2d(Py_ssize_t* s1, Py_ssize_t* s2) noexcept:
    return s1[0] == s2[0] and s1[1] == s2[1]


def softmax_backward(const floating[:, ::1] dy not None, const floating[:, ::1] y not None,
                     floating[:, ::1] out not None):
    """Softmax Jacobian-vector product per row: ``out = y * (dy - sum(dy * y))``."""
    cdef Py_ssize_t n = dy.shape[0], k = dy.shape[1], i, j
    cdef double s
    if not (_same_2d(y.shape, dy.shape) and _same_2d(out.shape, dy.shape)):
        raise ValueError("softmax_backward: dy, y and out shapes differ")
    if n == 0 or k == 0:
        return
    with nogil:
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += <double>dy[i, j] * y[i, j]
            for j in range(k):
                out[i, j] = <floating>(y[i, j] * (dy[i, j] - s))


def softmax(const floating[:, ::1] x not None, floating[:, ::1] out not None):
    """Row-wise stable softmax (``out`` may be ``x``)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i
    if not _same_2d(out.shape, x.shape):
        raise ValueError("softmax: x and out shapes differ")
    if n == 0 or k == 0:
        return
    with nogil:
        for i in range(n):
            softmax_row(&x[i, 0], &out[i, 0], k)


def log_softmax(const floating[:, ::1] x not None, floating[:, ::1] out not None):
    """Row-wise stable log-softmax (``out`` may be ``x``)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i
    if not _same_2d(out.shape, x.shape):
        raise ValueError("log_softmax: x and out shapes differ")
    if n == 0 or k == 0:
        return
    with nogil:
        for i in range(n):
            log_softmax_row(&x[i, 0], &out[i, 0], k)
