# cython: language_level=3, cdivision=True
"""Layer kernels: bias gradient, dropout (SplitMix64 masks), batch normalisation.

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
