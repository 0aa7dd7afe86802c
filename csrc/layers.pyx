# cython: language_level=3, cdivision=True
"""Layer kernels: bias gradient, dropout (SplitMix64 masks), batch, layer and L2
normalisation.

Column reductions accumulate in float64 in fixed-size blocks on the C stack, so
nothing is allocated and every row is read contiguously.
"""
cimport cython
from cython cimport floating
from libc.math cimport sqrt

from pynn_math cimport COLSUM_BLOCK as BLOCK
from pynn_math cimport column_sums

# SplitMix64 constants (pynn.backends.base.splitmix_uniform)
cdef unsigned long long GOLDEN = 0x9E3779B97F4A7C15ULL
cdef unsigned long long MIX1 = 0xBF58476D1CE4E5B9ULL
cdef unsigned long long MIX2 = 0x94D049BB133111EBULL


def bias_grad(const floating[:, ::1] dy not None, floating[::1] out not None):
    """``out[j] = sum_i dy[i, j]`` accumulated in float64."""
    cdef Py_ssize_t n = dy.shape[0], k = dy.shape[1]
    if out.shape[0] != k:
        raise ValueError(f"out: expected shape ({k},), got ({out.shape[0]},)")
    if k == 0:
        return
    if n == 0:
        out[:] = 0
        return
    with nogil:
        column_sums(&dy[0, 0], &out[0], n, k)


cdef inline double splitmix_uniform(unsigned long long seed,
                                    unsigned long long i) noexcept nogil:
    """The ``i``-th (from 1) uniform in [0, 1): top 24 bits of SplitMix64(seed + i*golden)."""
    cdef unsigned long long z = seed + i * GOLDEN
    z = (z ^ (z >> 30)) * MIX1
    z = (z ^ (z >> 27)) * MIX2
    z = z ^ (z >> 31)
    return <double>(z >> 40) * (1.0 / 16777216.0)


def uniform(unsigned long long seed, double[::1] out not None):
    """Fill ``out`` with :func:`pynn.backends.base.splitmix_uniform` values."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(out.shape[0]):
            out[i] = splitmix_uniform(seed, <unsigned long long>i + 1)


def dropout_forward(const floating[::1] x not None, double rate, unsigned long long seed,
                    floating[::1] out not None, floating[::1] mask not None):
    """Inverted dropout over flat arrays: ``mask = (u >= rate) / (1 - rate)``,
    ``out = x * mask``."""
    cdef Py_ssize_t size = x.shape[0], i
    cdef floating keep, mv
    if out.shape[0] != size or mask.shape[0] != size:
        raise ValueError("dropout_forward: x, out and mask sizes differ")
    if not (0.0 <= rate < 1.0):
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    keep = <floating>(1.0 / (1.0 - rate))
    with nogil:
        for i in range(size):
            mv = keep if splitmix_uniform(seed, <unsigned long long>i + 1) >= rate else 0
            mask[i] = mv
            out[i] = x[i] * mv


def multiply(const floating[::1] a not None, const floating[::1] b not None,
             floating[::1] out not None):
    """``out = a * b`` elementwise over flat arrays (dropout backward)."""
    cdef Py_ssize_t size = a.shape[0], i
    if b.shape[0] != size or out.shape[0] != size:
        raise ValueError("multiply: a, b and out sizes differ")
    with nogil:
        for i in range(size):
            out[i] = a[i] * b[i]


def batchnorm_forward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                      const floating[::1] beta not None, floating[::1] moving_mean not None,
                      floating[::1] moving_var not None, bint training, double momentum,
                      double epsilon, floating[:, ::1] out not None, double[::1] mean not None,
                      double[::1] inv_std not None):
    """Batch normalisation of ``x (n, k)``; writes ``out``, ``mean`` and ``inv_std``
    (float64), and in training updates the moving statistics in place."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j
    cdef double var, inv_n
    if (gamma.shape[0] != k or beta.shape[0] != k or moving_mean.shape[0] != k
            or moving_var.shape[0] != k or mean.shape[0] != k or inv_std.shape[0] != k
            or out.shape[0] != n or out.shape[1] != k):
        raise ValueError("batchnorm_forward: argument shapes differ")
    if training and n == 0:
        raise ValueError("batchnorm_forward: training needs at least one sample")
    with nogil:
        if training:
            inv_n = 1.0 / n
            for j in range(k):
                mean[j] = 0.0
                inv_std[j] = 0.0
            for i in range(n):
                for j in range(k):
                    mean[j] += x[i, j]
            for j in range(k):
                mean[j] *= inv_n
            # two-pass variance; inv_std holds the sum of squares until the end
            for i in range(n):
                for j in range(k):
                    var = x[i, j] - mean[j]
                    inv_std[j] += var * var
            for j in range(k):
                var = inv_std[j] * inv_n
                moving_mean[j] = <floating>(momentum * moving_mean[j]
                                            + (1.0 - momentum) * mean[j])
                moving_var[j] = <floating>(momentum * moving_var[j] + (1.0 - momentum) * var)
                inv_std[j] = 1.0 / sqrt(var + epsilon)
        else:
            for j in range(k):
                mean[j] = moving_mean[j]
                inv_std[j] = 1.0 / sqrt(<double>moving_var[j] + epsilon)
        for i in range(n):
            for j in range(k):
                out[i, j] = <floating>((x[i, j] - mean[j]) * (inv_std[j] * gamma[j]) + beta[j])


def batchnorm_backward(const floating[:, ::1] dy not None, const floating[:, ::1] x not None,
                       const floating[::1] gamma not None, const double[::1] mean not None,
                       const double[::1] inv_std not None, floating[:, ::1] dx not None,
                       floating[::1] dgamma not None, floating[::1] dbeta not None):
    """Training-mode batch-norm gradients; sums in float64 (column blocks on the stack)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j, j0, jn
    cdef double db[BLOCK]
    cdef double dg[BLOCK]
    cdef double d, xh, c
    if (dy.shape[0] != n or dy.shape[1] != k or dx.shape[0] != n or dx.shape[1] != k
            or gamma.shape[0] != k or mean.shape[0] != k or inv_std.shape[0] != k
            or dgamma.shape[0] != k or dbeta.shape[0] != k):
        raise ValueError("batchnorm_backward: argument shapes differ")
    with nogil:
        j0 = 0
        while j0 < k:
            jn = min(<Py_ssize_t>BLOCK, k - j0)
            for j in range(jn):
                db[j] = 0.0
                dg[j] = 0.0
            for i in range(n):
                for j in range(jn):
                    d = dy[i, j0 + j]
                    xh = (x[i, j0 + j] - mean[j0 + j]) * inv_std[j0 + j]
                    db[j] += d
                    dg[j] += d * xh
            for i in range(n):
                for j in range(jn):
                    c = gamma[j0 + j] * inv_std[j0 + j] / n
                    d = dy[i, j0 + j]
                    xh = (x[i, j0 + j] - mean[j0 + j]) * inv_std[j0 + j]
                    dx[i, j0 + j] = <floating>(c * (n * d - db[j] - xh * dg[j]))
            for j in range(jn):
                dgamma[j0 + j] = <floating>dg[j]
                dbeta[j0 + j] = <floating>db[j]
            j0 += jn


def layernorm_forward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                      const floating[::1] beta not None, bint has_gamma, bint has_beta,
                      double epsilon, bint rms, floating[:, ::1] out not None,
                      double[::1] mean not None, double[::1] inv_std not None):
    """Each row of ``x (n, k)``: ``(x - mean) * inv_std * gamma + beta`` (``rms``: ``x *
    inv_std * gamma``); writes ``out`` and the row statistics ``mean``/``inv_std``
    (float64). ``gamma``/``beta`` are empty when absent. ``out`` may be ``x`` itself."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j
    cdef double s, m, v, d, r, c, y
    if (gamma.shape[0] != (k if has_gamma else 0) or beta.shape[0] != (k if has_beta else 0)
            or out.shape[0] != n or out.shape[1] != k or mean.shape[0] != n
            or inv_std.shape[0] != n):
        raise ValueError("layernorm_forward: argument shapes differ")
    if k == 0:
        raise ValueError("layernorm_forward: rows of size 0")
    with nogil:
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += x[i, j]
            m = s / k
            v = 0.0
            for j in range(k):
                d = x[i, j] - m
                v += d * d
            r = 1.0 / sqrt(v / k + epsilon)
            mean[i] = m
            inv_std[i] = r
            c = 0.0 if rms else m
            for j in range(k):
                y = (x[i, j] - c) * r
                if has_gamma:
                    y = y * gamma[j]
                if has_beta:
                    y = y + beta[j]
                out[i, j] = <floating>y


def layernorm_backward(const floating[:, ::1] dy not None, const floating[:, ::1] x not None,
                       const floating[::1] gamma not None, bint has_gamma,
                       const double[::1] mean not None, const double[::1] inv_std not None,
                       bint rms, floating[:, ::1] dx not None, floating[::1] dgamma not None,
                       bint want_dgamma, floating[::1] dbeta not None):
    """Gradients of :func:`layernorm_forward`; ``dgamma`` (written when ``want_dgamma``,
    else empty) and ``dbeta`` summed in float64 column blocks on the stack, BEFORE ``dx``
    is written (``dx`` may be ``dy`` itself)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j, j0, jn
    cdef double db[BLOCK]
    cdef double dg[BLOCK]
    cdef double d, g, xv, c, r, s1, s2, a, b
    if (dy.shape[0] != n or dy.shape[1] != k or dx.shape[0] != n or dx.shape[1] != k
            or gamma.shape[0] != (k if has_gamma else 0) or mean.shape[0] != n
            or inv_std.shape[0] != n or dgamma.shape[0] != (k if want_dgamma else 0)
            or dbeta.shape[0] != k):
        raise ValueError("layernorm_backward: argument shapes differ")
    with nogil:
        j0 = 0
        while j0 < k:
            jn = min(<Py_ssize_t>BLOCK, k - j0)
            for j in range(jn):
                db[j] = 0.0
                dg[j] = 0.0
            for i in range(n):
                c = 0.0 if rms else mean[i]
                r = inv_std[i]
                for j in range(jn):
                    d = dy[i, j0 + j]
                    db[j] += d
                    dg[j] += d * ((x[i, j0 + j] - c) * r)
            for j in range(jn):
                if want_dgamma:
                    dgamma[j0 + j] = <floating>dg[j]
                dbeta[j0 + j] = <floating>db[j]
            j0 += jn
        for i in range(n):
            c = 0.0 if rms else mean[i]
            r = inv_std[i]
            s1 = 0.0
            s2 = 0.0
            for j in range(k):
                g = <double>dy[i, j] * gamma[j] if has_gamma else dy[i, j]
                xv = x[i, j]
                if rms:
                    s1 += g * xv
                else:
                    s1 += g
                    s2 += g * ((xv - c) * r)
            if rms:
                a = r * r * r * s1 / k
                for j in range(k):
                    g = <double>dy[i, j] * gamma[j] if has_gamma else dy[i, j]
                    dx[i, j] = <floating>(r * g - a * (x[i, j] - mean[i]))
            else:
                a = s1 / k
                b = s2 / k
                for j in range(k):
                    g = <double>dy[i, j] * gamma[j] if has_gamma else dy[i, j]
                    dx[i, j] = <floating>(r * (g - a - ((x[i, j] - c) * r) * b))


def l2_normalize_forward(const floating[:, ::1] x not None, double epsilon,
                         floating[:, ::1] out not None, double[::1] inv_norm not None):
    """Each row times ``min(1 / ||row||_2, 1 / epsilon)`` (the factor in ``inv_norm``);
    ``out`` may be ``x`` itself."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], i, j
    cdef double ss, r, cap = 1.0 / epsilon
    if out.shape[0] != n or out.shape[1] != k or inv_norm.shape[0] != n:
        raise ValueError("l2_normalize_forward: argument shapes differ")
    with nogil:
        for i in range(n):
            ss = 0.0
            for j in range(k):
                ss += <double>x[i, j] * x[i, j]
            r = cap if ss == 0.0 else min(1.0 / sqrt(ss), cap)
            inv_norm[i] = r
            for j in range(k):
                out[i, j] = <floating>(x[i, j] * r)


def l2_normalize_backward(const floating[:, ::1] dy not None, const floating[:, ::1] y not None,
                          const double[::1] inv_norm not None, double epsilon,
                          floating[:, ::1] out not None):
    """Gradient of :func:`l2_normalize_forward` from its output ``y``; ``out`` may be
    ``dy`` itself."""
    cdef Py_ssize_t n = y.shape[0], k = y.shape[1], i, j
    cdef double r, dot, cap = 1.0 / epsilon
    if (dy.shape[0] != n or dy.shape[1] != k or out.shape[0] != n or out.shape[1] != k
            or inv_norm.shape[0] != n):
        raise ValueError("l2_normalize_backward: argument shapes differ")
    with nogil:
        for i in range(n):
            r = inv_norm[i]
            if r >= cap:
                for j in range(k):
                    out[i, j] = <floating>(dy[i, j] * r)
                continue
            dot = 0.0
            for j in range(k):
                dot += <double>y[i, j] * dy[i, j]
            for j in range(k):
                out[i, j] = <floating>(r * (dy[i, j] - y[i, j] * dot))
