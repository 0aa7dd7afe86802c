"""Numba kernels of the convolution and pooling ops of
:class:`~pynn.backends.numba_backend.NumbaBackend` (the reference, and the
specification, is :mod:`pynn.backends.conv`).

Layout as the reference: images ``(n, h, w, c)``, kernels ``(kh, kw, c_in / groups,
c_out)``. A convolution is a matrix product over the rows ``(image, oy, ox)`` of the
output: ``out[r, g-block] = col_g[r] @ W_g`` where ``col_g[r]`` holds the input values
under the kernel (``kh * kw * c_in / groups`` of them, ``(a, b, c)`` order, zeros on
the padding) and ``W_g`` is group ``g``'s kernel as a ``(kh * kw * c_in / groups,
c_out / groups)`` matrix. The rows are taken in blocks of ``col.shape[0]`` (the
caller sizes the block, see :func:`block_rows`), so the columns buffer stays small
and hot in cache:

* forward: im2col of the block, one GEMM per group (``np.dot``'s BLAS, through
  :func:`~pynn.backends._numba_kernels.dot_into`), then the bias and activation
  epilogue on the block while it is in cache;
* gradient with respect to the input: ``dcol = dy_block @ W_g.T`` (GEMM), then
  col2im, a scatter-add into ``dx``;
* gradient with respect to the kernel: im2col, then ``dW_g += col.T @ dy_block``
  (one GEMM per block accumulating in place,
  :func:`~pynn.backends._numba_kernels.gemm_update`).

A 1x1 kernel at stride 1 without padding needs no im2col: the image itself is the
columns matrix (groups 1). Pooling runs direct loops.

Every kernel takes its scratch arrays from the caller (the backend keeps them per
thread and reuses them), so a call allocates nothing. One compiled specialisation
serves every activation (chosen by its integer code, the branches outside the
loops; the epilogue applies those of :data:`EPILOGUE_CODES`, the backend the
others in one more pass) and each float dtype is the same source compiled for its
array type; the kernels compile lazily on first use and are cached in pynn's
checked directory (:mod:`._numba_cache`), like the other kernels.
"""
from __future__ import annotations

import math

from numba import njit

from . import _numba_kernels as K
from ._numba_cache import cached

__all__ = ["block_rows", "BLOCK_BYTES", "conv_forward", "conv_backward_input",
           "conv_backward_kernel", "max_pool_forward", "avg_pool_forward",
           "max_pool_backward", "avg_pool_backward", "KERNELS", "EPILOGUE_CODES"]

#: Target size of the columns buffer of one block of rows (bytes): about half a
#: core's L2, so the block's im2col, its GEMM and the epilogue stay in cache.
BLOCK_BYTES = 512 * 1024


def block_rows(rows, width, itemsize):
    """Rows per block for a columns matrix ``width`` wide (at least 1)."""
    per = max(1, BLOCK_BYTES // max(1, width * itemsize))
    return max(1, min(rows, per))


#: The kernels compile in code of :mod:`._numba_kernels` (activations, BLAS
#: intrinsics): a cached kernel is used only while that file is unchanged too.
_DEPENDS = (K.__file__,)


def _jit(fn):
    """Lazily compiled, disk-cached (pynn's checked directory), serial kernel."""
    return cached(njit(fastmath=set(K.FASTMATH), error_model="numpy", nogil=True)(fn),
                  _DEPENDS)


def _inline(fn):
    """A helper inlined into its callers at Numba-IR level."""
    return cached(njit(fastmath=set(K.FASTMATH), error_model="numpy", inline="always")(fn),
                  _DEPENDS)


# --------------------------------------------------------------------------
# columns (im2col) and their scatter-add (col2im) for a block of output rows
# --------------------------------------------------------------------------
@_inline
def _tap_run(xf, p, cf, q, count, scatter):
    """One run of ``count`` values between the image ``xf`` (from ``p``) and the
    columns ``cf`` (from ``q``): gather ``cf[q:] = xf[p:]``, or scatter-add
    ``xf[p:] += cf[q:]``."""
    if scatter:
        for k in range(count):
            xf[p + k] += cf[q + k]
    else:
        for k in range(count):
            cf[q + k] = xf[p + k]


@_inline
def _walk_cols(xf, h, wd, ci, cf, kk, r0, m, oh, ow, kh, kw, c0, strides, pads, dil,
               scatter):
    """Walk the columns ``cf`` (flat, ``m`` rows of ``kk = kh * kw * cig``) of output
    rows ``r0 .. r0 + m`` against the flat image ``xf`` (``(n, h, wd, ci)``, channels
    ``c0 .. c0 + cig``), tap by tap in ``(a, b, c)`` order, with :func:`_tap_run`'s
    action: gather (``scatter`` False, taps in the padding read 0; :func:`_im2col`) or
    scatter-add (``scatter`` True, padding taps dropped; :func:`_col2im`). Inlined into
    both with a constant ``scatter``, so each compiles only its own branch."""
    cig = kk // (kh * kw)
    run = kw * cig
    sh, sw = strides
    pt, pl = pads
    dh, dw = dil
    # a kernel row's taps read one contiguous run of x (all channels, adjacent pixels)
    adjacent = dw == 1 and cig == ci
    img = r0 // (oh * ow)
    rem = r0 - img * oh * ow
    oy = rem // ow
    ox = rem - oy * ow
    for i in range(m):
        iy0 = oy * sh - pt
        ix0 = ox * sw - pl
        whole = adjacent and ix0 >= 0 and ix0 + kw <= wd
        t = i * kk
        for a in range(kh):
            iy = iy0 + a * dh
            if iy < 0 or iy >= h:
                if not scatter:
                    for q in range(run):
                        cf[t + q] = 0.0
            elif whole:
                _tap_run(xf, ((img * h + iy) * wd + ix0) * ci, cf, t, run, scatter)
            else:
                for b in range(kw):
                    ix = ix0 + b * dw
                    if 0 <= ix < wd:
                        _tap_run(xf, ((img * h + iy) * wd + ix) * ci + c0, cf, t + b * cig,
                                 cig, scatter)
                    elif not scatter:
                        for c in range(cig):
                            cf[t + b * cig + c] = 0.0
            t += run
        ox += 1
        if ox == ow:
            ox = 0
            oy += 1
            if oy == oh:
                oy = 0
                img += 1


@_jit
def _im2col(x, col, r0, m, oh, ow, kh, kw, c0, strides, pads, dil):
    """``col[i]`` for output rows ``r0 .. r0 + m``: the input channels ``c0 ..
    c0 + cig`` (``cig = col.shape[1] // (kh * kw)``) under each kernel tap, in
    ``(a, b, c)`` order, zero where the tap reads padding. ``col`` is C-contiguous
    with ``m`` rows."""
    _walk_cols(K.ravel(x), x.shape[1], x.shape[2], x.shape[3], K.ravel(col), col.shape[1],
               r0, m, oh, ow, kh, kw, c0, strides, pads, dil, False)


@_jit
def _col2im(col, dx, r0, m, oh, ow, kh, kw, c0, strides, pads, dil):
    """The adjoint of :func:`_im2col`: ``dx[...] += col[i, tap]`` for every tap of
    rows ``r0 .. r0 + m`` that reads a real pixel."""
    _walk_cols(K.ravel(dx), dx.shape[1], dx.shape[2], dx.shape[3], K.ravel(col), col.shape[1],
               r0, m, oh, ow, kh, kw, c0, strides, pads, dil, True)


@_jit
def _pack_groups(w2, wpack):
    """``wpack[g] = w2[:, g * cog:(g + 1) * cog]`` (contiguous per-group matrices)."""
    groups, kk, cog = wpack.shape
    for g in range(groups):
        for t in range(kk):
            for j in range(cog):
                wpack[g, t, j] = w2[t, g * cog + j]


@_jit
def _take_columns(src, r0, m, c0, dst):
    """``dst[:m] = src[r0:r0 + m, c0:c0 + dst.shape[1]]`` (one group of ``dy``)."""
    k = dst.shape[1]
    for i in range(m):
        for j in range(k):
            dst[i, j] = src[r0 + i, c0 + j]


@_inline
def _direct(kh, kw, strides, pads, groups, x, oh, ow):
    """True when the image is its own columns matrix (1x1, stride 1, no padding)."""
    return (kh == 1 and kw == 1 and strides[0] == 1 and strides[1] == 1 and groups == 1
            and pads[0] == 0 and pads[1] == 0 and oh == x.shape[1] and ow == x.shape[2])


# --------------------------------------------------------------------------
# the bias and activation epilogue (activation by integer code, see
# pynn.backends.activation_codes)
# --------------------------------------------------------------------------
#: The activations the epilogue applies itself: those without a transcendental
#: function. Loops for the others made the forward kernel's first compile 0.4 s
#: longer for every network; the backend applies them in one more in-place pass
#: with the library's elementwise kernel, compiled only when used.
EPILOGUE_CODES = (0, 1, 2)


@_jit
def _epilogue(src, dst, r0, c0, bias, code, alpha):
    """``dst[r0 + i, c0 + j] = act(src[i, j] + bias[c0 + j])`` for ``code`` in
    :data:`EPILOGUE_CODES` (``bias`` zeros when the op has none); ``src`` may be the
    very rows of ``dst`` it is written to. One loop per activation, so each
    vectorises."""
    m, k = src.shape
    if code == 1:
        for i in range(m):
            for j in range(k):
                dst[r0 + i, c0 + j] = K.act_relu(float(src[i, j]) + float(bias[c0 + j]),
                                                 alpha)
    elif code == 2:
        for i in range(m):
            for j in range(k):
                dst[r0 + i, c0 + j] = K.act_leaky_relu(
                    float(src[i, j]) + float(bias[c0 + j]), alpha)
    else:
        for i in range(m):
            for j in range(k):
                dst[r0 + i, c0 + j] = float(src[i, j]) + float(bias[c0 + j])


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------
@_jit
def conv_forward(x, w, bias, out, col, tile, wpack, strides, pads, dil, groups, code,
                 alpha):
    """``out = act(conv(x, w) + bias)``.

    ``x`` ``(n, h, wd, ci)``, ``w`` ``(kh, kw, cig, co)``, ``bias`` ``(co,)`` (zeros
    when the op has none), ``out`` ``(n, oh, ow, co)``. Scratch: ``col`` ``(rb, kh * kw
    * cig)`` (``rb`` rows per block), and for ``groups > 1`` ``tile`` ``(rb, co /
    groups)`` and ``wpack`` ``(groups, kh * kw * cig, co / groups)``. ``strides``,
    ``pads`` (top, left) and ``dil`` are pairs; ``code``/``alpha`` the activation
    (not softmax, not GELU).
    """
    n, oh, ow, co = out.shape
    kh, kw, cig = w.shape[0], w.shape[1], w.shape[2]
    kk = kh * kw * cig
    cog = co // groups
    rows = n * oh * ow
    rb = col.shape[0]
    out2 = out.reshape(rows, co)
    w2 = w.reshape(kk, co)
    x2 = x.reshape(n * x.shape[1] * x.shape[2], x.shape[3])
    direct = _direct(kh, kw, strides, pads, groups, x, oh, ow)
    if groups > 1:
        _pack_groups(w2, wpack)
    for r0 in range(0, rows, rb):
        m = min(rb, rows - r0)
        for g in range(groups):
            if direct:
                colb = x2[r0:r0 + m]
            else:
                colb = col[:m]
                _im2col(x, colb, r0, m, oh, ow, kh, kw, g * cig, strides, pads, dil)
            if groups == 1:
                dst = out2[r0:r0 + m]
                K.dot_into(colb, w2, dst)
            else:
                dst = tile[:m]
                K.dot_into(colb, wpack[g], dst)
            _epilogue(dst, out2, r0, g * cog, bias, code, alpha)


@_jit
def conv_backward_input(dy, w, dx, col, dyg, wpack, strides, pads, dil, groups):
    """``dx`` ``(n, h, wd, ci)`` = the gradient of the convolution with respect to its
    input, from ``dy`` ``(n, oh, ow, co)`` and ``w`` ``(kh, kw, cig, co)``; scratch as
    :func:`conv_forward` (``dyg`` ``(rb, co / groups)`` in place of ``tile``)."""
    n, oh, ow, co = dy.shape
    kh, kw, cig = w.shape[0], w.shape[1], w.shape[2]
    kk = kh * kw * cig
    cog = co // groups
    rows = n * oh * ow
    rb = col.shape[0]
    dy2 = dy.reshape(rows, co)
    w2 = w.reshape(kk, co)
    dx2 = dx.reshape(n * dx.shape[1] * dx.shape[2], dx.shape[3])
    direct = _direct(kh, kw, strides, pads, groups, dx, oh, ow)
    if not direct:
        flat = K.ravel(dx)
        for q in range(flat.shape[0]):
            flat[q] = 0.0
    if groups > 1:
        _pack_groups(w2, wpack)
    for r0 in range(0, rows, rb):
        m = min(rb, rows - r0)
        for g in range(groups):
            if direct:
                K.dot_into(dy2[r0:r0 + m], w2.T, dx2[r0:r0 + m])
                continue
            colb = col[:m]
            if groups == 1:
                K.dot_into(dy2[r0:r0 + m], w2.T, colb)
            else:
                _take_columns(dy2, r0, m, g * cog, dyg)
                K.dot_into(dyg[:m], wpack[g].T, colb)
            _col2im(colb, dx, r0, m, oh, ow, kh, kw, g * cig, strides, pads, dil)


@_jit
def conv_backward_kernel(x, dy, dw, col, dyg, acc, strides, pads, dil, groups):
    """``dw`` ``(kh, kw, cig, co)`` = the gradient of the convolution with respect to
    its kernel, from ``x`` ``(n, h, wd, ci)`` and ``dy`` ``(n, oh, ow, co)``; scratch as
    :func:`conv_backward_input`, and for ``groups > 1`` ``acc`` ``(groups, kh * kw *
    cig, co / groups)`` (the per-group gradients)."""
    n, oh, ow, co = dy.shape
    kh, kw, cig = dw.shape[0], dw.shape[1], dw.shape[2]
    kk = kh * kw * cig
    cog = co // groups
    rows = n * oh * ow
    rb = col.shape[0]
    dy2 = dy.reshape(rows, co)
    dw2 = dw.reshape(kk, co)
    x2 = x.reshape(n * x.shape[1] * x.shape[2], x.shape[3])
    flat = K.ravel(dw)
    for q in range(flat.shape[0]):
        flat[q] = 0.0
    if rows == 0 or kk == 0 or cog == 0:
        return
    direct = _direct(kh, kw, strides, pads, groups, x, oh, ow)
    for r0 in range(0, rows, rb):
        m = min(rb, rows - r0)
        beta = 0.0 if r0 == 0 else 1.0
        for g in range(groups):
            if direct:
                colb = x2[r0:r0 + m]
            else:
                colb = col[:m]
                _im2col(x, colb, r0, m, oh, ow, kh, kw, g * cig, strides, pads, dil)
            if groups == 1:
                K.gemm_update(colb.T, dy2[r0:r0 + m], dw2, 1.0, beta)
            else:
                _take_columns(dy2, r0, m, g * cog, dyg)
                K.gemm_update(colb.T, dyg[:m], acc[g], 1.0, beta)
    if groups > 1:
        for g in range(groups):
            for t in range(kk):
                for j in range(cog):
                    dw2[t, g * cog + j] = acc[g, t, j]


# --------------------------------------------------------------------------
# pooling (windows always hold a real element: the padding is smaller than the pool)
# --------------------------------------------------------------------------
@_jit
def max_pool_forward(x, out, index, pool, strides, pads):
    """``out`` = the maximum of each window over real elements, ``index`` (int64) its
    flat position in ``x``, the first one in ``(a, b)`` order on ties (a NaN is kept
    only when it comes first, as the reference)."""
    n, h, wd, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    ph, pw = pool
    sh, sw = strides
    pt, pl = pads
    for img in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            for ox in range(ow):
                x0 = ox * sw - pl
                o = out[img, oy, ox]
                idx = index[img, oy, ox]
                for ch in range(c):
                    idx[ch] = -1
                    o[ch] = -math.inf  # a window of padding only (as the reference)
                for a in range(ph):
                    iy = y0 + a
                    if iy < 0 or iy >= h:
                        continue
                    for b in range(pw):
                        ix = x0 + b
                        if ix < 0 or ix >= wd:
                            continue
                        base = ((img * h + iy) * wd + ix) * c
                        v = x[img, iy, ix]
                        for ch in range(c):
                            if idx[ch] < 0 or v[ch] > o[ch]:
                                o[ch] = v[ch]
                                idx[ch] = base + ch


@_jit
def avg_pool_forward(x, out, pool, strides, pads, acc):
    """``out`` = the mean of each window's real elements (float64 sums in the
    scratch ``acc`` ``(c,)``, taps in ``(a, b)`` order as the reference)."""
    n, h, wd, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    ph, pw = pool
    sh, sw = strides
    pt, pl = pads
    for img in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, wd)
                for ch in range(c):
                    acc[ch] = 0.0
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        v = x[img, iy, ix]
                        for ch in range(c):
                            acc[ch] += v[ch]
                count = float((yb - ya) * (xb - xa))
                o = out[img, oy, ox]
                for ch in range(c):
                    o[ch] = acc[ch] / count


@_jit
def max_pool_backward(dy, index, dx):
    """``dx`` = zeros, then ``dy`` added at each maximum's flat position."""
    flat = K.ravel(dx)
    for q in range(flat.shape[0]):
        flat[q] = 0.0
    d = K.ravel(dy)
    at = K.ravel(index)
    for q in range(d.shape[0]):
        flat[at[q]] += d[q]


@_jit
def avg_pool_backward(dy, dx, pool, strides, pads):
    """``dx`` = each output's gradient shared equally by its window's real elements."""
    n, h, wd, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    ph, pw = pool
    sh, sw = strides
    pt, pl = pads
    flat = K.ravel(dx)
    for q in range(flat.shape[0]):
        flat[q] = 0.0
    for img in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + ph, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + pw, wd)
                count = float((yb - ya) * (xb - xa))
                d = dy[img, oy, ox]
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        t = dx[img, iy, ix]
                        for ch in range(c):
                            t[ch] += float(d[ch]) / count


#: The kernels the backend calls (for tests of laziness and caching).
KERNELS = (conv_forward, conv_backward_input, conv_backward_kernel, max_pool_forward,
           avg_pool_forward, max_pool_backward, avg_pool_backward)
#: Helpers they call (compiled with them, never from Python).
HELPERS = (_im2col, _col2im, _pack_groups, _take_columns, _epilogue)

