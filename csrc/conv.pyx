# cython: language_level=3, cdivision=True
"""Convolution and pooling kernels (channels-last), the compiled versions of
:mod:`pynn.backends.conv`'s reference ops.

Convolution is im2col + BLAS GEMM. The ``m = n * oh * ow`` output pixels are
processed in blocks of ``block_rows`` rows: for each block and group, the block's
rows of the column matrix ``cols`` (``block_rows x kh*kw*c_in/groups``, one row per
output pixel, columns ordered like the kernel's ``(kh, kw, c_in/groups)``) are
gathered into a caller-supplied scratch buffer and multiplied with the group's
kernel columns:

* forward: ``out[rows, g] = cols @ kernel[:, g]`` then the bias + activation
  epilogue on the block while it is in cache;
* gradient w.r.t. the input: ``dcols = dy[rows, g] @ kernel[:, g]^T``, scattered
  back (col2im, summed) into ``dx``;
* gradient w.r.t. the kernel: ``dkernel[:, g] += cols^T @ dy[rows, g]`` (the
  reduction over all output pixels is split into the blocks and accumulated by BLAS
  with ``beta = 1``).

A 1x1 kernel with stride 1 and no padding needs no gathering: ``x`` (and ``dx``)
themselves are the column matrices, read with leading dimension ``c_in``.

Pooling is direct loops over the real elements of each window (padding never wins
a max and is not counted in an average). Every kernel is written once over the fused
``floating`` type, allocates nothing, and runs without the GIL; the BLAS calls use
the BLAS library's own threads (no second pool). Shape checks here only keep a
direct caller from crashing the process: the backend wrappers in
``pynn.backends.cython_backend`` validate arguments as the reference does.
"""
cimport cython
from cython cimport floating
from libc.stdint cimport int64_t
from libc.math cimport INFINITY
from libc.string cimport memcpy, memset

from pynn_math cimport (ACT_LINEAR, ACT_SOFTMAX, act_backward_flat, act_grad_scalar,
                       act_is_elementwise, act_is_epilogue, act_needs_input, bias_act_row)

cdef extern from "limits.h":
    const int INT_MAX

include "blas_select.pxi"

#: Target size in bytes of one block of the column matrix (the scratch buffer).
COLS_BLOCK_BYTES = 1 << 21


cdef struct Geom:
    Py_ssize_t n, h, w, ci          # input (n, h, w, c_in)
    Py_ssize_t kh, kw, cig, co      # kernel (kh, kw, c_in / groups, c_out)
    Py_ssize_t oh, ow               # output spatial size
    Py_ssize_t sh, sw, pt, pl, dh, dw, groups


cdef enum:
    AVG_BLOCK = 256   # channels averaged per pass (float64 accumulators on the stack)


# ---------------------------------------------------------------------------
# BLAS in row-major terms, and gathering / scattering the column matrix
# ---------------------------------------------------------------------------
cdef inline void gemm_rm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                         Py_ssize_t k, const floating* a, Py_ssize_t lda, const floating* b,
                         Py_ssize_t ldb, floating beta, floating* c,
                         Py_ssize_t ldc) noexcept nogil:
    """Row-major ``c (m, n) = op(a) op(b) + beta c`` with leading dimensions (row
    strides) ``lda``, ``ldb``, ``ldc``: BLAS computes the column-major transpose
    ``c^T = op(b)^T op(a)^T``, so nothing is transposed in memory."""
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:  # empty reduction: BLAS would need leading dimensions >= 1
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        return
    blas_gemm(b"T" if trans_b else b"N", b"T" if trans_a else b"N", <int>n, <int>m, <int>k,
              <floating>1, b, <int>ldb, a, <int>lda, beta, c, <int>ldc)


ctypedef struct Gather:     # walk_cols' per-tap action, chosen at compile time
    char unused
ctypedef struct ScatterAdd:
    char unused
ctypedef fused TapAction:
    Gather
    ScatterAdd


cdef void walk_cols(floating* x, const Geom* G, Py_ssize_t m0, Py_ssize_t rows,
                    Py_ssize_t g, floating* cols, TapAction* action) noexcept nogil:
    """Walk rows ``[m0, m0 + rows)`` of group ``g``'s column matrix ``cols``
    (``rows x kh*kw*cig``, row-major) against the image ``x``, tap by tap: gather
    (``TapAction`` Gather: ``cols[tap] = x[tap]``, taps in the padding read 0;
    :func:`im2col`) or scatter-add (ScatterAdd: ``x[tap] += cols[tap]``, padding taps
    dropped; :func:`col2im_add`). ``action`` is only a type tag (pass NULL): Cython
    compiles one specialisation per action, each with only its own branch.

    The geometry is copied into locals first: extensions build with
    ``-fno-strict-aliasing``, so fields read through ``G`` would be reloaded after
    every store and the copies would not vectorise."""
    cdef Py_ssize_t h = G.h, w = G.w, ci = G.ci, kh = G.kh, kw = G.kw, cig = G.cig
    cdef Py_ssize_t oh = G.oh, ow = G.ow, sh = G.sh, sw = G.sw, pt = G.pt, pl = G.pl
    cdef Py_ssize_t dh = G.dh, dw = G.dw
    cdef Py_ssize_t kcols = kh * kw * cig, img = m0 // (oh * ow), r = m0 % (oh * ow)
    cdef Py_ssize_t oy = r // ow, ox = r % ow
    cdef Py_ssize_t i, a, b, c, iy, ix
    cdef floating* xrow
    cdef floating* xp
    cdef const floating* src
    cdef floating* col
    for i in range(rows):
        col = cols + i * kcols
        for a in range(kh):
            iy = oy * sh - pt + a * dh
            if iy < 0 or iy >= h:
                if TapAction is Gather:
                    memset(col, 0, kw * cig * sizeof(floating))
                col += kw * cig
                continue
            xrow = x + ((img * h + iy) * w) * ci + g * cig
            for b in range(kw):
                ix = ox * sw - pl + b * dw
                if ix < 0 or ix >= w:
                    if TapAction is Gather:
                        for c in range(cig):
                            col[c] = 0
                elif TapAction is ScatterAdd:
                    xp = xrow + ix * ci
                    for c in range(cig):
                        xp[c] += col[c]
                elif cig >= 16:
                    memcpy(col, xrow + ix * ci, cig * sizeof(floating))
                else:  # a few channels (the first layer's 1 or 3): no call per tap
                    src = xrow + ix * ci
                    for c in range(cig):
                        col[c] = src[c]
                col += cig
        ox += 1
        if ox == ow:
            ox = 0
            oy += 1
            if oy == oh:
                oy = 0
                img += 1


cdef inline void im2col(const floating* x, const Geom* G, Py_ssize_t m0, Py_ssize_t rows,
                        Py_ssize_t g, floating* cols) noexcept nogil:
    """Rows ``[m0, m0 + rows)`` of group ``g``'s column matrix into ``cols``
    (``rows x kh*kw*cig``, row-major); taps in the padding read 0."""
    walk_cols(<floating*>x, G, m0, rows, g, cols, <Gather*>NULL)


cdef inline void col2im_add(const floating* cols, const Geom* G, Py_ssize_t m0,
                            Py_ssize_t rows, Py_ssize_t g, floating* dx) noexcept nogil:
    """Add rows ``[m0, m0 + rows)`` of group ``g``'s column-matrix gradient ``cols``
    into ``dx`` (the inverse gather of :func:`im2col`; padding taps are dropped)."""
    walk_cols(dx, G, m0, rows, g, <floating*>cols, <ScatterAdd*>NULL)


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------
cdef void conv_forward(const floating* x, const floating* kernel, const floating* bias,
                       const Geom* G, bint direct, floating* cols, Py_ssize_t block_rows,
                       int code, floating act_alpha, floating* out) noexcept nogil:
    cdef Py_ssize_t m = G.n * G.oh * G.ow, kcols = G.kh * G.kw * G.cig
    cdef Py_ssize_t cog = G.co // G.groups, m0, rows, g, i
    cdef const floating* a
    cdef Py_ssize_t lda
    m0 = 0
    while m0 < m:
        rows = min(block_rows, m - m0)
        for g in range(G.groups):
            if direct:
                a = x + m0 * G.ci + g * G.cig
                lda = G.ci
            else:
                im2col(x, G, m0, rows, g, cols)
                a = cols
                lda = kcols
            gemm_rm(False, False, rows, cog, kcols, a, lda, kernel + g * cog, G.co,
                    <floating>0, out + m0 * G.co + g * cog, G.co)
        if bias != NULL or code != ACT_LINEAR:
            for i in range(rows):
                bias_act_row(out + (m0 + i) * G.co, bias, G.co, code, act_alpha)
        m0 += rows


cdef void conv_backward_input(const floating* dy, const floating* kernel, const Geom* G,
                              bint direct, floating* cols, Py_ssize_t block_rows,
                              floating* dx) noexcept nogil:
    cdef Py_ssize_t m = G.n * G.oh * G.ow, kcols = G.kh * G.kw * G.cig
    cdef Py_ssize_t cog = G.co // G.groups, m0, rows, g
    if not direct:
        memset(dx, 0, G.n * G.h * G.w * G.ci * sizeof(floating))
    m0 = 0
    while m0 < m:
        rows = min(block_rows, m - m0)
        for g in range(G.groups):
            if direct:
                gemm_rm(False, True, rows, G.cig, cog, dy + m0 * G.co + g * cog, G.co,
                        kernel + g * cog, G.co, <floating>0, dx + m0 * G.ci + g * G.cig, G.ci)
            else:
                gemm_rm(False, True, rows, kcols, cog, dy + m0 * G.co + g * cog, G.co,
                        kernel + g * cog, G.co, <floating>0, cols, kcols)
                col2im_add(cols, G, m0, rows, g, dx)
        m0 += rows


cdef void conv_backward_kernel(const floating* x, const floating* dy, const Geom* G,
                               bint direct, floating* cols, Py_ssize_t block_rows,
                               floating* dkernel) noexcept nogil:
    cdef Py_ssize_t m = G.n * G.oh * G.ow, kcols = G.kh * G.kw * G.cig
    cdef Py_ssize_t cog = G.co // G.groups, m0, rows, g
    cdef const floating* a
    cdef Py_ssize_t lda
    if m == 0:
        memset(dkernel, 0, kcols * G.co * sizeof(floating))
        return
    m0 = 0
    while m0 < m:
        rows = min(block_rows, m - m0)
        for g in range(G.groups):
            if direct:
                a = x + m0 * G.ci + g * G.cig
                lda = G.ci
            else:
                im2col(x, G, m0, rows, g, cols)
                a = cols
                lda = kcols
            gemm_rm(True, False, kcols, cog, rows, a, lda, dy + m0 * G.co + g * cog, G.co,
                    <floating>(0 if m0 == 0 else 1), dkernel + g * cog, G.co)
        m0 += rows


cdef void conv_backward_fused(const floating* dy, const floating* y, const floating* x,
                              const floating* kernel, const Geom* G, bint direct, int code,
                              floating act_alpha, floating* cols, floating* dzbuf,
                              double* bacc, Py_ssize_t block_rows, floating* dx,
                              floating* dkernel, floating* dbias, bint first,
                              bint last) noexcept nogil:
    """The whole backward pass of a convolution in one sweep over blocks of output
    pixels: per block, ``dz = dy * act'(y)`` (into ``dzbuf``, or ``dy`` itself for a
    linear activation), its column sums into ``bacc`` (float64) for ``dbias``, then per
    group im2col and ``dkernel += cols^T dz`` and ``dcols = dz kernel^T`` scattered into
    ``dx``. Each output is skipped when its pointer is NULL; ``dz`` and the column
    block are read while they are in cache. Calls over consecutive batch slices add up
    ``dkernel`` and ``bacc``: ``first`` starts the sums, ``last`` writes ``dbias``."""
    cdef Py_ssize_t m = G.n * G.oh * G.ow, kcols = G.kh * G.kw * G.cig
    cdef Py_ssize_t co = G.co, cog = G.co // G.groups, m0, rows, g, i, c
    cdef const floating* dz
    cdef const floating* a
    cdef const floating* src
    cdef const floating* yrow
    cdef floating* dst
    cdef Py_ssize_t lda
    if dx != NULL and not direct:
        memset(dx, 0, G.n * G.h * G.w * G.ci * sizeof(floating))
    if dbias != NULL and first:
        for c in range(co):
            bacc[c] = 0
    if dkernel != NULL and m == 0 and first:
        memset(dkernel, 0, kcols * co * sizeof(floating))
    m0 = 0
    while m0 < m:
        rows = min(block_rows, m - m0)
        if code == ACT_LINEAR:
            dz = dy + m0 * co
        else:
            act_backward_flat(dy + m0 * co, y + m0 * co, y + m0 * co, dzbuf, rows * co, code,
                              act_alpha)  # x unread: act_needs_input codes refused
            dz = dzbuf
        if dbias != NULL:
            for i in range(rows):
                src = dz + i * co
                for c in range(co):
                    bacc[c] += src[c]
        for g in range(G.groups):
            if dkernel != NULL:
                if direct:
                    a = x + m0 * G.ci + g * G.cig
                    lda = G.ci
                else:
                    im2col(x, G, m0, rows, g, cols)
                    a = cols
                    lda = kcols
                gemm_rm(True, False, kcols, cog, rows, a, lda, dz + g * cog, co,
                        <floating>(0 if m0 == 0 and first else 1), dkernel + g * cog, co)
            if dx != NULL:
                if direct:
                    gemm_rm(False, True, rows, G.cig, cog, dz + g * cog, co, kernel + g * cog,
                            co, <floating>0, dx + m0 * G.ci + g * G.cig, G.ci)
                else:
                    gemm_rm(False, True, rows, kcols, cog, dz + g * cog, co, kernel + g * cog,
                            co, <floating>0, cols, kcols)
                    col2im_add(cols, G, m0, rows, g, dx)
        m0 += rows
    if dbias != NULL and last:
        for c in range(co):
            dbias[c] = <floating>bacc[c]


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
cdef inline void window(Py_ssize_t o, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t size,
                        Py_ssize_t limit, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """The real rows (or columns) ``[lo, hi)`` of output position ``o``'s window."""
    cdef Py_ssize_t start = o * stride - pad
    lo[0] = start if start > 0 else 0
    hi[0] = start + size if start + size < limit else limit


cdef void max_pool(const floating* x, const Geom* G, floating* out,
                   int64_t* index) noexcept nogil:
    """``G.kh x G.kw`` max pooling; ``index`` gets the flat position in ``x`` of each
    maximum (the first real element of the window, then strictly larger ones)."""
    cdef Py_ssize_t c = G.ci, img, oy, ox, y0, y1, x0, x1, iy, ix, ch, pos
    cdef floating* o
    cdef int64_t* idx
    cdef const floating* src
    cdef floating v
    cdef bint first, better
    for img in range(G.n):
        for oy in range(G.oh):
            window(oy, G.sh, G.pt, G.kh, G.h, &y0, &y1)
            for ox in range(G.ow):
                window(ox, G.sw, G.pl, G.kw, G.w, &x0, &x1)
                o = out + ((img * G.oh + oy) * G.ow + ox) * c
                idx = index + ((img * G.oh + oy) * G.ow + ox) * c
                first = True
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        pos = ((img * G.h + iy) * G.w + ix) * c
                        src = x + pos
                        if first:
                            for ch in range(c):
                                o[ch] = src[ch]
                                idx[ch] = pos + ch
                            first = False
                        else:  # branch-free, so the loop vectorises
                            for ch in range(c):
                                v = src[ch]
                                better = v > o[ch]
                                o[ch] = v if better else o[ch]
                                idx[ch] = pos + ch if better else idx[ch]
                if first:  # only padding (an empty input axis): as the reference
                    for ch in range(c):
                        o[ch] = -INFINITY
                        idx[ch] = -1


cdef void avg_pool(const floating* x, const Geom* G, floating* out) noexcept nogil:
    """Average over the real elements of each window, summed in float64."""
    cdef double acc[AVG_BLOCK]
    cdef double count
    cdef Py_ssize_t c = G.ci, img, oy, ox, y0, y1, x0, x1, iy, ix, ch, c0, cn
    cdef floating* o
    cdef const floating* src
    for img in range(G.n):
        for oy in range(G.oh):
            window(oy, G.sh, G.pt, G.kh, G.h, &y0, &y1)
            for ox in range(G.ow):
                window(ox, G.sw, G.pl, G.kw, G.w, &x0, &x1)
                count = <double>((y1 - y0) * (x1 - x0))
                o = out + ((img * G.oh + oy) * G.ow + ox) * c
                c0 = 0
                while c0 < c:
                    cn = min(<Py_ssize_t>AVG_BLOCK, c - c0)
                    for ch in range(cn):
                        acc[ch] = 0.0
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            src = x + ((img * G.h + iy) * G.w + ix) * c + c0
                            for ch in range(cn):
                                acc[ch] += src[ch]
                    for ch in range(cn):
                        o[c0 + ch] = <floating>(acc[ch] / count)
                    c0 += cn


cdef Py_ssize_t max_pool_backward(const floating* dy, const int64_t* index, Py_ssize_t size,
                                  floating* dx, Py_ssize_t dx_size) noexcept nogil:
    """``dx[index[i]] += dy[i]``; returns the first position whose index is out of
    range (those are skipped), or -1."""
    cdef Py_ssize_t i, bad = -1
    cdef int64_t j
    memset(dx, 0, dx_size * sizeof(floating))
    for i in range(size):
        j = index[i]
        if j < 0 or j >= dx_size:
            if bad < 0:
                bad = i
            continue
        dx[j] += dy[i]
    return bad


cdef void avg_pool_backward(const floating* dy, const Geom* G, floating* dx) noexcept nogil:
    """Each output's gradient shared equally by the real elements of its window."""
    cdef Py_ssize_t c = G.ci, img, oy, ox, y0, y1, x0, x1, iy, ix, ch
    cdef double inv
    cdef const floating* d
    cdef floating* dst
    memset(dx, 0, G.n * G.h * G.w * c * sizeof(floating))
    for img in range(G.n):
        for oy in range(G.oh):
            window(oy, G.sh, G.pt, G.kh, G.h, &y0, &y1)
            for ox in range(G.ow):
                window(ox, G.sw, G.pl, G.kw, G.w, &x0, &x1)
                inv = 1.0 / <double>((y1 - y0) * (x1 - x0))
                d = dy + ((img * G.oh + oy) * G.ow + ox) * c
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        dst = dx + ((img * G.h + iy) * G.w + ix) * c
                        for ch in range(c):
                            dst[ch] += <floating>(d[ch] * inv)


# ---------------------------------------------------------------------------
# Python entry points (arguments already validated by the backend)
# ---------------------------------------------------------------------------
cdef inline Py_ssize_t _size4(Py_ssize_t* shape) noexcept nogil:
    return shape[0] * shape[1] * shape[2] * shape[3]


cdef tuple _shape4(Py_ssize_t* shape):
    return (shape[0], shape[1], shape[2], shape[3])


cdef Geom _geom(Py_ssize_t* xshape, Py_ssize_t* kshape, Py_ssize_t* oshape, tuple strides,
                tuple padding, tuple dilation, Py_ssize_t groups, str op) except *:
    """The geometry struct, after the checks that keep a direct caller from reading
    or writing out of bounds."""
    cdef Geom G
    cdef Py_ssize_t pb, pr
    G.n, G.h, G.w, G.ci = xshape[0], xshape[1], xshape[2], xshape[3]
    G.kh, G.kw, G.cig, G.co = kshape[0], kshape[1], kshape[2], kshape[3]
    G.oh, G.ow = oshape[1], oshape[2]
    G.sh, G.sw = strides
    (G.pt, pb), (G.pl, pr) = padding
    G.dh, G.dw = dilation
    G.groups = groups
    if (G.sh < 1 or G.sw < 1 or G.dh < 1 or G.dw < 1 or G.groups < 1 or min(G.pt, pb) < 0
            or min(G.pl, pr) < 0 or G.kh < 1 or G.kw < 1):
        raise ValueError(f"{op}: bad geometry")
    if (G.cig * G.groups != G.ci or G.co % G.groups or oshape[0] != G.n or oshape[3] != G.co
            or G.oh != (G.h + G.pt + pb - G.dh * (G.kh - 1) - 1) // G.sh + 1
            or G.ow != (G.w + G.pl + pr - G.dw * (G.kw - 1) - 1) // G.sw + 1
            or G.oh < 1 or G.ow < 1):
        raise ValueError(f"{op}: shapes do not fit: input {_shape4(xshape)}, kernel "
                         f"{_shape4(kshape)}, output {_shape4(oshape)}")
    if G.kh * G.kw * G.cig > INT_MAX or G.co > INT_MAX or G.ci > INT_MAX:
        raise ValueError(f"{op}: dimensions above 2**31 - 1 are not supported by BLAS")
    return G


cdef bint _direct(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                  tuple padding) noexcept:
    """True when the column matrix is the input itself (1x1 kernel, stride 1, no
    padding; dilation does not matter)."""
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and padding == ((0, 0), (0, 0))


def plan(Py_ssize_t m, tuple kernel_shape, tuple strides, tuple padding,
         Py_ssize_t itemsize):
    """``(block_rows, scratch_elements)`` for a convolution of ``m = n * oh * ow`` output
    pixels with a kernel of ``kernel_shape``: blocks of about ``COLS_BLOCK_BYTES`` of
    the column matrix (at least one row), and no scratch when the column matrix is the
    input itself."""
    cdef Py_ssize_t kh, kw, cig, kcols, rows
    kh, kw, cig = kernel_shape[0], kernel_shape[1], kernel_shape[2]
    kcols = kh * kw * cig
    rows = COLS_BLOCK_BYTES // max(1, kcols * itemsize)
    rows = max(1, min(rows, max(m, 1), INT_MAX))
    if _direct(kh, kw, strides[0], strides[1], padding):
        return rows, 0
    return rows, rows * kcols


def backward_plan(Py_ssize_t m, tuple kernel_shape, tuple strides, tuple padding,
                  Py_ssize_t itemsize, bint linear):
    """``(block_rows, scratch_elements, accumulator_elements)`` for
    :func:`conv2d_backward`: the column block (none when the column matrix is the
    input itself), then ``block_rows * c_out`` for ``dz`` unless the activation is
    linear; float64 sums for the bias."""
    cdef Py_ssize_t rows, size
    rows, size = plan(m, kernel_shape, strides, padding, itemsize)
    return rows, size + (0 if linear else rows * kernel_shape[3]), kernel_shape[3]


cdef int _check_scratch(Py_ssize_t have, Py_ssize_t block_rows, Py_ssize_t kcols,
                        bint direct, str op) except -1:
    if block_rows < 1 or block_rows > INT_MAX:
        raise ValueError(f"{op}: block_rows must be in [1, 2**31 - 1], got {block_rows}")
    if not direct and have < block_rows * kcols:
        raise ValueError(f"{op}: scratch holds {have} elements, {block_rows * kcols} needed")
    return 0


cdef const floating* _bias_pointer(const floating[::1] bias, bint has_bias,
                                   Py_ssize_t co) except? NULL:
    """The bias a forward op reads (NULL without one), after checking its length."""
    if not has_bias:
        return NULL
    if bias.shape[0] != co:
        raise ValueError(f"bias: expected shape ({co},), got ({bias.shape[0]},)")
    return &bias[0] if co else NULL


def conv2d_forward(const floating[:, :, :, ::1] x not None,
                   const floating[:, :, :, ::1] kernel not None,
                   const floating[::1] bias not None, bint has_bias, tuple strides,
                   tuple padding, tuple dilation, Py_ssize_t groups, int code,
                   double act_alpha, floating[:, :, :, ::1] out not None,
                   floating[::1] scratch not None, Py_ssize_t block_rows):
    """``out = act(conv(x, kernel) + bias)`` (``bias`` read only when ``has_bias``)."""
    cdef Geom G = _geom(x.shape, kernel.shape, out.shape, strides, padding, dilation, groups,
                        "conv2d_forward")
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    cdef const floating* bias_p = NULL
    if not act_is_epilogue(code):
        raise ValueError(f"conv2d_forward: unknown activation code {code}")
    bias_p = _bias_pointer(bias, has_bias, G.co)
    _check_scratch(scratch.shape[0], block_rows, G.kh * G.kw * G.cig, direct,
                   "conv2d_forward")
    if _size4(out.shape) == 0:
        return
    with nogil:
        conv_forward(&x[0, 0, 0, 0] if _size4(x.shape) else NULL,
                     &kernel[0, 0, 0, 0] if _size4(kernel.shape) else NULL, bias_p, &G,
                     direct, &scratch[0] if scratch.shape[0] else NULL, block_rows, code,
                     <floating>act_alpha, &out[0, 0, 0, 0])


def conv2d_backward_input(const floating[:, :, :, ::1] dy not None,
                          const floating[:, :, :, ::1] kernel not None, tuple strides,
                          tuple padding, tuple dilation, Py_ssize_t groups,
                          floating[:, :, :, ::1] out not None,
                          floating[::1] scratch not None, Py_ssize_t block_rows):
    """``out = d conv / d x`` contracted with ``dy``."""
    cdef Geom G = _geom(out.shape, kernel.shape, dy.shape, strides, padding, dilation, groups,
                        "conv2d_backward_input")
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    _check_scratch(scratch.shape[0], block_rows, G.kh * G.kw * G.cig, direct,
                   "conv2d_backward_input")
    if _size4(out.shape) == 0:
        return
    with nogil:
        conv_backward_input(&dy[0, 0, 0, 0] if _size4(dy.shape) else NULL,
                            &kernel[0, 0, 0, 0] if _size4(kernel.shape) else NULL, &G,
                            direct, &scratch[0] if scratch.shape[0] else NULL, block_rows,
                            &out[0, 0, 0, 0])


def conv2d_backward_kernel(const floating[:, :, :, ::1] x not None,
                           const floating[:, :, :, ::1] dy not None, tuple strides,
                           tuple padding, tuple dilation, Py_ssize_t groups,
                           floating[:, :, :, ::1] out not None,
                           floating[::1] scratch not None, Py_ssize_t block_rows):
    """``out = d conv / d kernel`` contracted with ``dy``."""
    cdef Geom G = _geom(x.shape, out.shape, dy.shape, strides, padding, dilation, groups,
                        "conv2d_backward_kernel")
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    _check_scratch(scratch.shape[0], block_rows, G.kh * G.kw * G.cig, direct,
                   "conv2d_backward_kernel")
    if _size4(out.shape) == 0:
        return
    with nogil:
        conv_backward_kernel(&x[0, 0, 0, 0] if _size4(x.shape) else NULL,
                             &dy[0, 0, 0, 0] if _size4(dy.shape) else NULL, &G, direct,
                             &scratch[0] if scratch.shape[0] else NULL, block_rows,
                             &out[0, 0, 0, 0])


cdef int _grad_pointers(floating[:, :, :, ::1] dx, floating[:, :, :, ::1] dkernel,
                        floating[::1] dbias, double[::1] bias_acc, Py_ssize_t* xshape,
                        Py_ssize_t* kshape, Py_ssize_t co, str op, floating** dx_p,
                        floating** dk_p, floating** db_p) except -1:
    """Check the gradient outputs of a convolution's backward op (each may be None) and
    point ``*dx_p``, ``*dk_p``, ``*db_p`` at them (NULL when absent or empty)."""
    if dx is not None:
        if _shape4(dx.shape) != _shape4(xshape):
            raise ValueError(f"{op}: dx must have the shape of x")
        if _size4(dx.shape):
            dx_p[0] = &dx[0, 0, 0, 0]
    if dkernel is not None:
        if _shape4(dkernel.shape) != _shape4(kshape):
            raise ValueError(f"{op}: dkernel must have the shape of kernel")
        if _size4(dkernel.shape):
            dk_p[0] = &dkernel[0, 0, 0, 0]
    if dbias is not None:
        if dbias.shape[0] != co:
            raise ValueError(f"{op}: dbias must have c_out elements")
        if co:
            db_p[0] = &dbias[0]
    if bias_acc.shape[0] < co:
        raise ValueError(f"{op}: the float64 accumulator needs {co} elements, got "
                         f"{bias_acc.shape[0]}")
    return 0


def conv2d_backward(const floating[:, :, :, ::1] dy not None,
                    const floating[:, :, :, ::1] y not None,
                    const floating[:, :, :, ::1] x not None,
                    const floating[:, :, :, ::1] kernel not None, tuple strides,
                    tuple padding, tuple dilation, Py_ssize_t groups, int code,
                    double act_alpha, floating[:, :, :, ::1] dx,
                    floating[:, :, :, ::1] dkernel, floating[::1] dbias,
                    floating[::1] scratch not None, double[::1] bias_acc not None,
                    Py_ssize_t block_rows):
    """``(dx, dkernel, dbias)`` of ``y = act(conv(x, kernel) + bias)`` from ``dy``, each
    written when given (not None). ``y`` is read unless ``code`` is linear. ``scratch``
    holds the column block (unless the column matrix is ``x`` itself) followed by
    ``block_rows * c_out`` elements for ``dz`` (unless linear); ``bias_acc`` (float64)
    ``c_out`` elements for the bias sums."""
    cdef Geom G = _geom(x.shape, kernel.shape, dy.shape, strides, padding, dilation, groups,
                        "conv2d_backward")
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    cdef Py_ssize_t kcols = G.kh * G.kw * G.cig, ncols, need
    cdef floating* dx_p = NULL
    cdef floating* dk_p = NULL
    cdef floating* db_p = NULL
    cdef floating* scratch_p = NULL
    if not act_is_elementwise(code) or act_needs_input(code):
        raise ValueError(f"conv2d_backward: activation code {code} has no elementwise "
                         f"gradient from the output")
    if code != ACT_LINEAR and _shape4(y.shape) != _shape4(dy.shape):
        raise ValueError("conv2d_backward: y must have the shape of dy")
    _check_scratch(scratch.shape[0], block_rows, kcols, direct, "conv2d_backward")
    ncols = 0 if direct else block_rows * kcols
    need = ncols + (0 if code == ACT_LINEAR else block_rows * G.co)
    if scratch.shape[0] < need:
        raise ValueError(f"conv2d_backward: scratch holds {scratch.shape[0]} elements, "
                         f"{need} needed")
    _grad_pointers(dx, dkernel, dbias, bias_acc, x.shape, kernel.shape, G.co,
                   "conv2d_backward", &dx_p, &dk_p, &db_p)
    if dx_p == NULL and dk_p == NULL and db_p == NULL:
        return
    if scratch.shape[0]:
        scratch_p = &scratch[0]
    with nogil:
        conv_backward_fused(&dy[0, 0, 0, 0] if _size4(dy.shape) else NULL,
                            &y[0, 0, 0, 0] if _size4(y.shape) else NULL,
                            &x[0, 0, 0, 0] if _size4(x.shape) else NULL,
                            &kernel[0, 0, 0, 0] if _size4(kernel.shape) else NULL, &G,
                            direct, code, <floating>act_alpha, scratch_p,
                            scratch_p + ncols if scratch_p != NULL else NULL,
                            &bias_acc[0] if bias_acc.shape[0] else NULL, block_rows, dx_p,
                            dk_p, db_p, True, True)


# ---------------------------------------------------------------------------
# convolution + non-overlapping max pooling, a tile of images at a time
# ---------------------------------------------------------------------------
#: Target size in bytes of the tile of convolution output the fused ops hold.
TILE_BYTES = 1 << 20


def pool_tile_images(Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t co, Py_ssize_t itemsize):
    """Images per tile of :func:`conv2d_pool_forward`/``backward``: about
    ``TILE_BYTES`` of convolution output, at least one."""
    return max(1, TILE_BYTES // max(1, oh * ow * co * itemsize))


cdef Geom _tile_pool(const Geom* G, Py_ssize_t n, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """The pooling geometry over a tile of ``n`` images of the convolution's output."""
    cdef Geom P
    P.n, P.h, P.w, P.ci = n, G.oh, G.ow, G.co
    P.kh, P.kw, P.cig, P.co, P.groups, P.dh, P.dw = ph, pw, G.co, G.co, 1, 1, 1
    P.oh, P.ow = G.oh // ph, G.ow // pw
    P.sh, P.sw, P.pt, P.pl = ph, pw, 0, 0
    return P


cdef Geom _conv_pool_geom(Py_ssize_t* xshape, Py_ssize_t* kshape, Py_ssize_t* pshape,
                          tuple strides, tuple padding, tuple dilation, Py_ssize_t groups,
                          tuple pool, Py_ssize_t tile_images, Py_ssize_t tile_size,
                          str op) except *:
    """The convolution's geometry (its output size from the input and kernel), after
    checking the pooled shape ``pshape`` and the tile."""
    cdef Py_ssize_t yshape[4]
    cdef Py_ssize_t ph = pool[0], pw = pool[1]
    cdef Geom G
    yshape[0], yshape[3] = xshape[0], kshape[3]
    yshape[1] = (xshape[1] + padding[0][0] + padding[0][1] - dilation[0] * (kshape[0] - 1)
                 - 1) // strides[0] + 1
    yshape[2] = (xshape[2] + padding[1][0] + padding[1][1] - dilation[1] * (kshape[1] - 1)
                 - 1) // strides[1] + 1
    G = _geom(xshape, kshape, yshape, strides, padding, dilation, groups, op)
    if ph < 1 or pw < 1 or G.oh < ph or G.ow < pw:
        raise ValueError(f"{op}: the pool {pool} does not fit the convolution's output "
                         f"{(G.oh, G.ow)}")
    if (pshape[0] != G.n or pshape[1] != G.oh // ph or pshape[2] != G.ow // pw
            or pshape[3] != G.co):
        raise ValueError(f"{op}: the pooled arrays must have shape "
                         f"{(G.n, G.oh // ph, G.ow // pw, G.co)}, got {_shape4(pshape)}")
    if tile_images < 1 or tile_size < min(tile_images, G.n) * G.oh * G.ow * G.co:
        raise ValueError(f"{op}: the tile must hold {tile_images} images' convolution "
                         f"output")
    return G


def conv2d_pool_forward(const floating[:, :, :, ::1] x not None,
                        const floating[:, :, :, ::1] kernel not None,
                        const floating[::1] bias not None, bint has_bias, tuple strides,
                        tuple padding, tuple dilation, Py_ssize_t groups, int code,
                        double act_alpha, tuple pool, floating[:, :, :, ::1] out not None,
                        int64_t[:, :, :, ::1] index not None,
                        floating[::1] scratch not None, Py_ssize_t block_rows,
                        floating[::1] tile not None, Py_ssize_t tile_images):
    """``(out, index) = max_pool(act(conv(x, kernel) + bias), pool)`` (strides = pool,
    no padding), ``tile_images`` images at a time: the convolution (im2col + GEMM +
    epilogue) into ``tile``, then the pooling of the tile; ``index`` holds positions in
    the whole convolution output ``(n, oh, ow, c_out)``."""
    cdef Geom G = _conv_pool_geom(x.shape, kernel.shape, out.shape, strides, padding,
                                  dilation, groups, pool, tile_images, tile.shape[0],
                                  "conv2d_pool_forward")
    cdef Geom Gc, P
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    cdef const floating* bias_p = NULL
    cdef Py_ssize_t img0, cnt, i, base, per_in = G.h * G.w * G.ci
    cdef Py_ssize_t per_out = out.shape[1] * out.shape[2] * G.co
    cdef Py_ssize_t ph = pool[0], pw = pool[1]
    cdef int64_t* idx
    if not act_is_elementwise(code):
        raise ValueError(f"conv2d_pool_forward: unknown activation code {code}")
    if _shape4(index.shape) != _shape4(out.shape):
        raise ValueError("conv2d_pool_forward: index must have the shape of out")
    bias_p = _bias_pointer(bias, has_bias, G.co)
    _check_scratch(scratch.shape[0], block_rows, G.kh * G.kw * G.cig, direct,
                   "conv2d_pool_forward")
    if _size4(out.shape) == 0:
        return
    with nogil:
        img0 = 0
        while img0 < G.n:
            cnt = min(tile_images, G.n - img0)
            Gc = G
            Gc.n = cnt
            conv_forward(&x[img0, 0, 0, 0] if per_in else NULL,
                         &kernel[0, 0, 0, 0] if _size4(kernel.shape) else NULL, bias_p, &Gc,
                         direct, &scratch[0] if scratch.shape[0] else NULL, block_rows, code,
                         <floating>act_alpha, &tile[0])
            P = _tile_pool(&G, cnt, ph, pw)
            idx = &index[img0, 0, 0, 0]
            max_pool(&tile[0], &P, &out[img0, 0, 0, 0], idx)
            base = img0 * G.oh * G.ow * G.co
            for i in range(cnt * per_out):
                idx[i] += base
            img0 += cnt


def conv2d_pool_backward(const floating[:, :, :, ::1] dy not None,
                         const floating[:, :, :, ::1] x not None,
                         const floating[:, :, :, ::1] kernel not None,
                         const floating[:, :, :, ::1] out not None,
                         const int64_t[:, :, :, ::1] index not None, tuple strides,
                         tuple padding, tuple dilation, Py_ssize_t groups, int code,
                         double act_alpha, tuple pool, floating[:, :, :, ::1] dx,
                         floating[:, :, :, ::1] dkernel, floating[::1] dbias,
                         floating[::1] scratch not None, double[::1] bias_acc not None,
                         Py_ssize_t block_rows, floating[::1] tile not None,
                         Py_ssize_t tile_images):
    """The gradients of :func:`conv2d_pool_forward` from ``dy`` (the gradient of its
    ``out``), each written when given, ``tile_images`` images at a time: the tile's
    ``dz`` is zero except at the maxima, where it is ``dy * act'(out)``, then the fused
    backward sweep (:func:`conv_backward_fused`) adds the tile's kernel and bias
    gradients and writes its images' ``dx``."""
    cdef Geom G = _conv_pool_geom(x.shape, kernel.shape, dy.shape, strides, padding,
                                  dilation, groups, pool, tile_images, tile.shape[0],
                                  "conv2d_pool_backward")
    cdef Geom Gc
    cdef bint direct = _direct(G.kh, G.kw, G.sh, G.sw, padding)
    cdef Py_ssize_t kcols = G.kh * G.kw * G.cig, img0, cnt, i, base, tsize, bad = -1
    cdef Py_ssize_t per_in = G.h * G.w * G.ci, per_out = dy.shape[1] * dy.shape[2] * G.co
    cdef int64_t j
    cdef floating* dx_p = NULL
    cdef floating* dk_p = NULL
    cdef floating* db_p = NULL
    cdef const floating* d
    cdef const floating* o
    cdef const int64_t* idx
    if not act_is_elementwise(code) or act_needs_input(code):
        raise ValueError(f"conv2d_pool_backward: activation code {code} has no elementwise "
                         f"gradient from the output")
    if _shape4(out.shape) != _shape4(dy.shape) or _shape4(index.shape) != _shape4(dy.shape):
        raise ValueError("conv2d_pool_backward: out and index must have the shape of dy")
    _check_scratch(scratch.shape[0], block_rows, kcols, direct, "conv2d_pool_backward")
    _grad_pointers(dx, dkernel, dbias, bias_acc, x.shape, kernel.shape, G.co,
                   "conv2d_pool_backward", &dx_p, &dk_p, &db_p)
    with nogil:
        if G.n == 0 or G.co == 0:
            if dk_p != NULL:
                memset(dk_p, 0, kcols * G.co * sizeof(floating))
            if db_p != NULL:
                memset(db_p, 0, G.co * sizeof(floating))
            if dx_p != NULL:
                memset(dx_p, 0, G.n * per_in * sizeof(floating))
        img0 = 0
        while img0 < G.n and G.co > 0:
            cnt = min(tile_images, G.n - img0)
            Gc = G
            Gc.n = cnt
            tsize = cnt * G.oh * G.ow * G.co
            memset(&tile[0], 0, tsize * sizeof(floating))
            base = img0 * G.oh * G.ow * G.co
            d = &dy[img0, 0, 0, 0]
            o = &out[img0, 0, 0, 0]
            idx = &index[img0, 0, 0, 0]
            for i in range(cnt * per_out):
                j = idx[i] - base
                if j < 0 or j >= tsize:
                    if idx[i] < 0 or idx[i] >= G.n * G.oh * G.ow * G.co:
                        bad = 1
                    elif bad < 0:
                        bad = 0
                    continue
                tile[j] += act_grad_scalar(d[i], o[i], <floating>0, code, <floating>act_alpha)
            conv_backward_fused(&tile[0], NULL, &x[img0, 0, 0, 0] if per_in else NULL,
                                &kernel[0, 0, 0, 0] if _size4(kernel.shape) else NULL, &Gc,
                                direct, ACT_LINEAR, <floating>act_alpha,
                                &scratch[0] if scratch.shape[0] else NULL, NULL,
                                &bias_acc[0], block_rows,
                                dx_p + img0 * per_in if dx_p != NULL else NULL, dk_p, db_p,
                                img0 == 0, img0 + cnt >= G.n)
            img0 += cnt
    if bad == 1:  # the reference's error
        raise ValueError(f"conv2d_pool_backward: index holds positions outside the "
                         f"convolution's output {(G.n, G.oh, G.ow, G.co)}")
    if bad == 0:
        raise ValueError("conv2d_pool_backward: index holds a position in another tile of "
                         "images than its own; pass the index conv2d_pool_forward returned")


cdef Geom _pool_geom(Py_ssize_t* xshape, Py_ssize_t* oshape, tuple pool, tuple strides,
                     tuple padding, str op) except *:
    cdef Geom G
    cdef Py_ssize_t pb, pr
    G.n, G.h, G.w, G.ci = xshape[0], xshape[1], xshape[2], xshape[3]
    G.kh, G.kw = pool
    G.cig, G.co, G.groups, G.dh, G.dw = G.ci, G.ci, 1, 1, 1
    G.oh, G.ow = oshape[1], oshape[2]
    G.sh, G.sw = strides
    (G.pt, pb), (G.pl, pr) = padding
    if (G.sh < 1 or G.sw < 1 or G.kh < 1 or G.kw < 1 or G.pt < 0 or G.pl < 0 or pb < 0
            or pr < 0 or max(G.pt, pb) >= G.kh or max(G.pl, pr) >= G.kw):
        raise ValueError(f"{op}: bad geometry")
    if (oshape[0] != G.n or oshape[3] != G.ci
            or G.oh != (G.h + G.pt + pb - G.kh) // G.sh + 1
            or G.ow != (G.w + G.pl + pr - G.kw) // G.sw + 1 or G.oh < 1 or G.ow < 1):
        raise ValueError(f"{op}: shapes do not fit: input {_shape4(xshape)}, output "
                         f"{_shape4(oshape)}")
    return G


def pool2d_forward(const floating[:, :, :, ::1] x not None, tuple pool, tuple strides,
                   tuple padding, bint is_max, floating[:, :, :, ::1] out not None,
                   int64_t[:, :, :, ::1] index not None):
    """Max (``index`` written) or average (``index`` not read) pooling."""
    cdef Geom G = _pool_geom(x.shape, out.shape, pool, strides, padding, "pool2d_forward")
    if is_max and _shape4(index.shape) != _shape4(out.shape):
        raise ValueError("pool2d_forward: index must have the shape of out")
    if _size4(out.shape) == 0:
        return
    with nogil:
        if is_max:
            max_pool(&x[0, 0, 0, 0] if _size4(x.shape) else NULL, &G, &out[0, 0, 0, 0],
                     &index[0, 0, 0, 0])
        else:
            avg_pool(&x[0, 0, 0, 0] if _size4(x.shape) else NULL, &G, &out[0, 0, 0, 0])


def pool2d_backward(const floating[:, :, :, ::1] dy not None, tuple pool, tuple strides,
                    tuple padding, bint is_max, const int64_t[:, :, :, ::1] index not None,
                    floating[:, :, :, ::1] out not None):
    """The pooling gradient into ``out`` (max: through ``index``)."""
    cdef Geom G = _pool_geom(out.shape, dy.shape, pool, strides, padding, "pool2d_backward")
    cdef Py_ssize_t bad = -1
    if is_max and _shape4(index.shape) != _shape4(dy.shape):
        raise ValueError("pool2d_backward: index must have the shape of dy")
    if _size4(out.shape) == 0:
        return
    with nogil:
        if is_max:
            bad = max_pool_backward(&dy[0, 0, 0, 0] if _size4(dy.shape) else NULL,
                                    &index[0, 0, 0, 0] if _size4(dy.shape) else NULL,
                                    _size4(dy.shape), &out[0, 0, 0, 0], _size4(out.shape))
        else:
            avg_pool_backward(&dy[0, 0, 0, 0] if _size4(dy.shape) else NULL, &G,
                              &out[0, 0, 0, 0])
    if bad >= 0:
        raise ValueError(f"pool2d_backward: index holds positions outside an input of "
                         f"shape {_shape4(out.shape)}")
