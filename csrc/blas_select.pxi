# Included by the modules that call BLAS (dense.pyx, step.pyx): one place that decides
# which OpenBLAS runs the products.
#
# By default the kernels call SciPy's BLAS (scipy.linalg.cython_blas). NumPy's wheels
# ship their own, newer OpenBLAS build (scipy-openblas64: 64-bit integers, symbols
# ``scipy_sgemm_64_`` ...); measured here it is 5-15% faster on the small products of a
# training step, and using it keeps one BLAS thread pool for NumPy and pynn instead of
# two that wake and spin in turn. ``pynn.backends.cython_backend`` looks for it at
# import and hands its entry points to :func:`_use_blas` of each including module,
# after :func:`_blas_selftest` checked them on a small product.
from libc.stdint cimport int64_t, uintptr_t
from scipy.linalg.cython_blas cimport dgemm as _sp_dgemm
from scipy.linalg.cython_blas cimport dgemv as _sp_dgemv
from scipy.linalg.cython_blas cimport sgemm as _sp_sgemm
from scipy.linalg.cython_blas cimport sgemv as _sp_sgemv

ctypedef void (*_sgemm64_t)(char*, char*, int64_t*, int64_t*, int64_t*, float*, float*,
                            int64_t*, float*, int64_t*, float*, float*, int64_t*) noexcept nogil
ctypedef void (*_dgemm64_t)(char*, char*, int64_t*, int64_t*, int64_t*, double*, double*,
                            int64_t*, double*, int64_t*, double*, double*,
                            int64_t*) noexcept nogil
ctypedef void (*_sgemv64_t)(char*, int64_t*, int64_t*, float*, float*, int64_t*, float*,
                            int64_t*, float*, float*, int64_t*) noexcept nogil
ctypedef void (*_dgemv64_t)(char*, int64_t*, int64_t*, double*, double*, int64_t*, double*,
                            int64_t*, double*, double*, int64_t*) noexcept nogil

cdef _sgemm64_t _ilp_sgemm = NULL
cdef _dgemm64_t _ilp_dgemm = NULL
cdef _sgemv64_t _ilp_sgemv = NULL
cdef _dgemv64_t _ilp_dgemv = NULL


def _use_blas(uintptr_t sgemm, uintptr_t dgemm, uintptr_t sgemv, uintptr_t dgemv):
    """Route this module's products to these ILP64 BLAS entry points (addresses of
    ``?gemm_``/``?gemv_`` taking 64-bit integers); any 0 selects SciPy's BLAS."""
    global _ilp_sgemm, _ilp_dgemm, _ilp_sgemv, _ilp_dgemv
    if sgemm == 0 or dgemm == 0 or sgemv == 0 or dgemv == 0:
        _ilp_sgemm = NULL
        _ilp_dgemm = NULL
        _ilp_sgemv = NULL
        _ilp_dgemv = NULL
        return
    _ilp_sgemm = <_sgemm64_t>sgemm
    _ilp_dgemm = <_dgemm64_t>dgemm
    _ilp_sgemv = <_sgemv64_t>sgemv
    _ilp_dgemv = <_dgemv64_t>dgemv


def _blas_in_use():
    """``'ilp64'`` when :func:`_use_blas` selected entry points, else ``'scipy'``."""
    return "ilp64" if _ilp_sgemm != NULL else "scipy"


cdef inline void blas_gemm(char* transa, char* transb, int m, int n, int k, floating alpha,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major ``c = alpha op(a) op(b) + beta c`` (Fortran BLAS argument order)."""
    cdef int64_t M = m, N = n, K = k, LDA = lda, LDB = ldb, LDC = ldc
    if floating is float:
        if _ilp_sgemm != NULL:
            _ilp_sgemm(transa, transb, &M, &N, &K, &alpha, <float*>a, &LDA, <float*>b, &LDB,
                       &beta, c, &LDC)
        else:
            _sp_sgemm(transa, transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
                      &beta, c, &ldc)
    else:
        if _ilp_dgemm != NULL:
            _ilp_dgemm(transa, transb, &M, &N, &K, &alpha, <double*>a, &LDA, <double*>b,
                       &LDB, &beta, c, &LDC)
        else:
            _sp_dgemm(transa, transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
                      &beta, c, &ldc)


cdef inline void blas_gemv(char* trans, int m, int n, floating alpha, const floating* a,
                           int lda, const floating* x, int incx, floating beta, floating* y,
                           int incy) noexcept nogil:
    """Column-major ``y = alpha op(a) x + beta y``."""
    cdef int64_t M = m, N = n, LDA = lda, INCX = incx, INCY = incy
    if floating is float:
        if _ilp_sgemv != NULL:
            _ilp_sgemv(trans, &M, &N, &alpha, <float*>a, &LDA, <float*>x, &INCX, &beta, y,
                       &INCY)
        else:
            _sp_sgemv(trans, &m, &n, &alpha, <float*>a, &lda, <float*>x, &incx, &beta, y,
                      &incy)
    else:
        if _ilp_dgemv != NULL:
            _ilp_dgemv(trans, &M, &N, &alpha, <double*>a, &LDA, <double*>x, &INCX, &beta, y,
                       &INCY)
        else:
            _sp_dgemv(trans, &m, &n, &alpha, <double*>a, &lda, <double*>x, &incx, &beta, y,
                      &incy)


def _blas_selftest():
    """True when the selected BLAS computes a small float32 and float64 product (and
    matrix-vector product) correctly; run once after :func:`_use_blas`."""
    cdef float fa[6]
    cdef float fb[6]
    cdef float fc[4]
    cdef float fy[2]
    cdef double da[6]
    cdef double db[6]
    cdef double dc[4]
    cdef double dy[2]
    cdef int i
    # column-major a (2x3) = [[1, 3, 5], [2, 4, 6]], b (3x2) = [[1, 4], [2, 5], [3, 6]]
    for i in range(6):
        fa[i] = i + 1
        fb[i] = i + 1
        da[i] = i + 1
        db[i] = i + 1
    for i in range(4):
        fc[i] = -1
        dc[i] = -1
    blas_gemm(b"N", b"N", 2, 2, 3, <float>1, fa, 2, fb, 3, <float>0, fc, 2)
    blas_gemm(b"N", b"N", 2, 2, 3, <double>1, da, 2, db, 3, <double>0, dc, 2)
    # a @ [1, 2, 3] = [22, 28]
    blas_gemv(b"N", 2, 3, <float>1, fa, 2, fb, 1, <float>0, fy, 1)
    blas_gemv(b"N", 2, 3, <double>1, da, 2, db, 1, <double>0, dy, 1)
    # a @ b = [[22, 49], [28, 64]] -> column-major [22, 28, 49, 64]
    return (fc[0] == 22 and fc[1] == 28 and fc[2] == 49 and fc[3] == 64
            and dc[0] == 22 and dc[1] == 28 and dc[2] == 49 and dc[3] == 64
            and fy[0] == 22 and fy[1] == 28 and dy[0] == 22 and dy[1] == 28)
