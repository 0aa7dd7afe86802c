"""CUDA convolution and pooling kernels of the ``cuda`` backend (channels-last).

Direct kernels (no im2col matrix): each thread computes whole output elements from
the geometry, so no scratch memory is needed. Layouts and geometry are those of
:mod:`pynn.backends.conv` (the reference): images ``(n, h, w, c)``, kernels
``(kh, kw, c_in / groups, c_out)``, padding given as its top and left sizes (the
bottom and right ones only shrink the output, which the output's shape says).

* :func:`conv_forward`: one thread per output element, bias and activation fused
  (the activation codes of :func:`._cuda_kernels.act_value`). The sum over the
  ``kh * kw * c_in / groups`` taps is accumulated in the working dtype, as the
  GEMM kernel and the CPU backends' BLAS do (``zero`` carries that dtype).
* :func:`conv_backward_input`: one thread per input element, gathering the output
  gradients of the taps that read it (no atomics); working-dtype accumulation.
* :func:`conv_backward_kernel`: one block per kernel element: its threads split the
  ``n * oh * ow`` products (a long reduction, accumulated in float64) and add their
  partial sums in a shared-memory tree, in a fixed order (reproducible).
* :func:`pool_forward`: one thread per output element. Max: the first maximum
  wins ties, padding never wins, a window of padding only gives ``-inf`` and index
  ``-1``; ``index`` holds flat positions in ``x``. Average: over the real elements
  only, in float64.
* :func:`pool_backward`: one thread per input element, gathering from the windows
  that hold it (max: those whose ``index`` is this element, in the order of the
  outputs, as the reference's scatter adds them). :func:`pool_index_check` first
  checks that every index lies in its own window, which the gather relies on.

Every kernel walks its index space with a grid-stride loop. Nothing compiles on
import: a kernel compiles on its first launch, once per argument types, and is
cached in pynn's checked directory (:mod:`._numba_cache`).
"""
from __future__ import annotations

import math

from numba import cuda
from numba.cuda import float64, int64

from . import _cuda_kernels
from ._cuda_kernels import act_value
from ._numba_cache import cached


def _kernel(fn):
    """A kernel, compiled on its first launch and cached in pynn's checked directory;
    its entries are also keyed on ``_cuda_kernels.py``, whose ``act_value`` is
    compiled into it."""
    return cached(cuda.jit(fn), depends=(_cuda_kernels.__file__,))


@cuda.jit(device=True)
def unravel(i, d1, d2, d3):
    """The index ``(a, b, c, d)`` of flat position ``i`` in a C-ordered 4-D array whose
    last three axes have sizes ``d1, d2, d3``."""
    d = i % d3
    i //= d3
    c = i % d2
    i //= d2
    return i // d1, i % d1, c, d


@_kernel
def conv_forward(x, kernel, bias, has_bias, out, sh, sw, pt, pl, dh, dw, groups, code,
                 alpha, zero):
    """``out = act(conv(x, kernel) + bias)``; ``zero`` is 0 in the working dtype."""
    h = x.shape[1]
    w = x.shape[2]
    kh = kernel.shape[0]
    kw = kernel.shape[1]
    cig = kernel.shape[2]
    co = kernel.shape[3]
    oh = out.shape[1]
    ow = out.shape[2]
    cog = co // groups
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, oy, ox, o = unravel(idx, oh, ow, co)
        c0 = (o // cog) * cig
        acc = zero
        for a in range(kh):
            iy = oy * sh - pt + a * dh
            if iy < 0 or iy >= h:
                continue
            for b in range(kw):
                ix = ox * sw - pl + b * dw
                if ix < 0 or ix >= w:
                    continue
                for c in range(cig):
                    acc += x[n, iy, ix, c0 + c] * kernel[a, b, c, o]
        v = float64(acc)
        if has_bias:
            v += float64(bias[o])
        out[n, oy, ox, o] = act_value(v, code, alpha)


@_kernel
def conv_backward_input(dy, kernel, out, sh, sw, pt, pl, dh, dw, groups, zero):
    """``out`` (the input's shape) = the gradient of the convolution w.r.t. its input."""
    h = out.shape[1]
    w = out.shape[2]
    ci = out.shape[3]
    kh = kernel.shape[0]
    kw = kernel.shape[1]
    cig = kernel.shape[2]
    co = kernel.shape[3]
    oh = dy.shape[1]
    ow = dy.shape[2]
    cog = co // groups
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, iy, ix, c = unravel(idx, h, w, ci)
        g = c // cig
        cl = c - g * cig
        acc = zero
        for a in range(kh):
            t = iy + pt - a * dh  # = oy * sh for the output row oy this tap reads iy for
            if t < 0:
                break
            if t % sh:
                continue
            oy = t // sh
            if oy >= oh:
                continue
            for b in range(kw):
                u = ix + pl - b * dw
                if u < 0:
                    break
                if u % sw:
                    continue
                ox = u // sw
                if ox >= ow:
                    continue
                for o in range(g * cog, (g + 1) * cog):
                    acc += dy[n, oy, ox, o] * kernel[a, b, cl, o]
        out[n, iy, ix, c] = acc


@_kernel
def conv_backward_kernel(x, dy, out, sh, sw, pt, pl, dh, dw, groups):
    """``out`` (the kernel's shape) = the gradient of the convolution w.r.t. its kernel.

    One block per kernel element (grid-stride over them); needs ``blockDim.x``
    float64 of dynamic shared memory and a power-of-two ``blockDim.x``.
    """
    part = cuda.shared.array(0, dtype=float64)
    tid = cuda.threadIdx.x
    h = x.shape[1]
    w = x.shape[2]
    kw = out.shape[1]
    cig = out.shape[2]
    co = out.shape[3]
    oh = dy.shape[1]
    ow = dy.shape[2]
    cog = co // groups
    m = dy.shape[0] * oh * ow
    # the loop bounds are uniform over the block, so syncthreads is safe
    for e in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
        a, b, c, o = unravel(e, kw, cig, co)
        cin = (o // cog) * cig + c
        acc = 0.0
        for j in range(tid, m, cuda.blockDim.x):
            ox = j % ow
            r2 = j // ow
            oy = r2 % oh
            n = r2 // oh
            iy = oy * sh - pt + a * dh
            ix = ox * sw - pl + b * dw
            if iy >= 0 and iy < h and ix >= 0 and ix < w:
                acc += float64(x[n, iy, ix, cin]) * float64(dy[n, oy, ox, o])
        part[tid] = acc
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if tid < s:
                part[tid] += part[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[a, b, c, o] = part[0]
        cuda.syncthreads()  # part[0] is read before the next element overwrites it


@_kernel
def pool_forward(x, out, index, is_max, ph, pw, sh, sw, pt, pl):
    """Max (``index`` written) or average (``index`` unused) pooling into ``out``."""
    h = x.shape[1]
    w = x.shape[2]
    ch = x.shape[3]
    oh = out.shape[1]
    ow = out.shape[2]
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, oy, ox, c = unravel(idx, oh, ow, ch)
        y0 = oy * sh - pt
        x0 = ox * sw - pl
        best = -math.inf
        where = int64(-1)
        total = 0.0
        count = 0
        for a in range(ph):
            iy = y0 + a
            if iy < 0 or iy >= h:
                continue
            for b in range(pw):
                ix = x0 + b
                if ix < 0 or ix >= w:
                    continue
                v = float64(x[n, iy, ix, c])
                if is_max:
                    if v > best or where < 0:  # the first real element, then a larger one
                        best = v
                        where = ((n * h + iy) * w + ix) * ch + c
                else:
                    total += v
                    count += 1
        if is_max:
            out[n, oy, ox, c] = best
            index[n, oy, ox, c] = where
        elif count > 0:
            out[n, oy, ox, c] = total / count
        else:  # a window of padding only (an input axis of size 0): 0 / 0
            out[n, oy, ox, c] = math.nan


@_kernel
def pool_index_check(index, ph, pw, sh, sw, pt, pl, h, w, bad):
    """``bad[0] = 1`` if an index lies outside the input, ``bad[1] = 1`` if one lies
    outside its own window (another image, channel or window)."""
    ch = index.shape[3]
    oh = index.shape[1]
    ow = index.shape[2]
    size = index.shape[0] * h * w * ch
    for idx in range(cuda.grid(1), index.size, cuda.gridsize(1)):
        n, oy, ox, c = unravel(idx, oh, ow, ch)
        p = int64(index[n, oy, ox, c])
        if p < 0 or p >= size:
            bad[0] = 1
            continue
        pn, py, px, pc = unravel(p, h, w, ch)
        y0 = oy * sh - pt
        x0 = ox * sw - pl
        if pn != n or pc != c or py < y0 or py >= y0 + ph or px < x0 or px >= x0 + pw:
            bad[1] = 1


@_kernel
def pool_backward(dy, index, out, is_max, ph, pw, sh, sw, pt, pl):
    """``out`` (the input's shape) = the gradient of the pooling w.r.t. its input."""
    h = out.shape[1]
    w = out.shape[2]
    ch = out.shape[3]
    oh = dy.shape[1]
    ow = dy.shape[2]
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, iy, ix, c = unravel(idx, h, w, ch)
        acc = 0.0
        for a in range(ph - 1, -1, -1):  # the windows in the order of the outputs
            t = iy + pt - a
            if t < 0 or t % sh:
                continue
            oy = t // sh
            if oy >= oh:
                continue
            y0 = oy * sh - pt
            rows = min(h, y0 + ph) - max(0, y0)
            for b in range(pw - 1, -1, -1):
                u = ix + pl - b
                if u < 0 or u % sw:
                    continue
                ox = u // sw
                if ox >= ow:
                    continue
                if is_max:
                    if index[n, oy, ox, c] == idx:
                        acc += float64(dy[n, oy, ox, c])
                else:
                    x0 = ox * sw - pl
                    cols = min(w, x0 + pw) - max(0, x0)
                    acc += float64(dy[n, oy, ox, c]) / (rows * cols)
        out[n, iy, ix, c] = acc


#: Every kernel of this module (tests check what has compiled).
KERNELS = (conv_forward, conv_backward_input, conv_backward_kernel, pool_forward,
           pool_index_check, pool_backward)
