"""CUDA kernels of the ``cuda`` backend (Numba's CUDA target, ``numba-cuda``).

Imported only by :mod:`pynn.backends.cuda_backend`, which is itself loaded
lazily, so ``import pynn`` never imports ``numba.cuda``. Kernels compile on
first launch (kept on disk in pynn's checked cache directory, see
:mod:`._numba_cache`) and run unchanged under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``).

Conventions
-----------
* Every kernel walks its index space with a grid-stride loop, so any launch
  size covers any problem size (the backend caps the grid at ``max_blocks``).
* Elementwise kernels take flat (1-D) views; row kernels use one thread per
  row, column kernels one thread per column (adjacent threads read adjacent
  addresses of a row, so column loads coalesce).
* Reductions accumulate in float64; sums over the whole array are done in
  two deterministic passes (block tree reduction in shared memory, then one
  block over the partial sums): no atomics, so results are reproducible.
* Activations are chosen by the integer codes of ``activation_codes.ACTIVATIONS``.
* GEMM accumulates in the working dtype (as cuBLAS does); its tile edge is
  ``blockDim.x`` (a square block), its shared memory is dynamic
  (``2 * tile * tile`` elements), so tests can use tiny tiles.
"""
from __future__ import annotations

import math

from numba import cuda
from numba.cuda import float32, float64, int64, uint64

from ._numba_cache import cached

#: Default GEMM tile edge (threads per block = GEMM_TILE ** 2).
GEMM_TILE = 16
#: Default threads per block of 1-D kernels (a power of two: tree reductions).
THREADS_PER_BLOCK = 256
#: Default cap on the number of blocks of a 1-D launch (grid-stride beyond).
MAX_BLOCKS = 4096

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_U24 = 1.0 / 16777216.0


def _kernel(fn):
    """A kernel, compiled on its first launch, cached in pynn's checked directory
    (:mod:`._numba_cache`: never Numba's default locations). Device functions are
    not cached on their own: their code is compiled into each kernel that calls them."""
    return cached(cuda.jit(fn))


# --------------------------------------------------------------------------
# activations (device functions, float64 in, float64 out)
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def act_value(v, code, a):
    """activation ``code`` of float64 ``v`` (``a``: leaky slope, ELU/CELU alpha,
    Squareplus b)."""
    if code == 1:
        return 0.0 if v <= 0.0 else v
    if code == 2:
        return v if v > 0.0 else a * v
    if code == 3:
        return v if v > 0.0 else a * math.expm1(min(v, 0.0))
    if code == 4:
        e = math.exp(-abs(v))
        return 1.0 / (1.0 + e) if v >= 0.0 else e / (1.0 + e)
    if code == 5:
        return math.tanh(v)
    if code == 6:
        return 0.5 * v * (1.0 + math.erf(v * _SQRT_HALF))
    if code == 7:
        return _softplus(v)
    if code == 9:  # selu
        return _SELU_SCALE * (v if v > 0.0 else _SELU_ALPHA * math.expm1(v))
    if code == 10:  # silu
        return v * _sigmoid(v)
    if code == 11:  # exponential
        return math.exp(v)
    if code == 12:
        return _hard_sigmoid(v)
    if code == 13:  # hard_silu
        return v * _hard_sigmoid(v)
    if code == 14:  # softsign
        return v / (1.0 + abs(v))
    if code == 15:  # relu6
        return 0.0 if v <= 0.0 else (6.0 if v >= 6.0 else v)
    if code == 16:  # mish
        return v * math.tanh(_softplus(v))
    if code == 17:  # celu
        return v if v > 0.0 else a * math.expm1(v / a)
    if code == 18:  # squareplus, without cancellation for v < 0
        s = math.sqrt(v * v + a)
        return (v + s) / 2.0 if v >= 0.0 else a / (2.0 * (s - v))
    if code == 19:  # tanh_shrink
        return v - math.tanh(v)
    return v


@cuda.jit(device=True)
def _sigmoid(v):
    e = math.exp(-abs(v))
    return 1.0 / (1.0 + e) if v >= 0.0 else e / (1.0 + e)


@cuda.jit(device=True)
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True)
def _hard_sigmoid(v):
    h = v / 6.0 + 0.5
    return 0.0 if h <= 0.0 else (1.0 if h >= 1.0 else h)


@cuda.jit(device=True)
def needs_input(code):
    """Whether the backward of ``code`` reads the pre-activation."""
    return code == 6 or code == 10 or code == 13 or code == 16 or code == 19


@cuda.jit(device=True)
def act_grad(d, y, x, code, a):
    """``d * activation'`` written from the output ``y`` (``x`` only where
    :func:`needs_input`)."""
    if code == 1:
        return d if y > 0.0 else 0.0
    if code == 2:
        return d if y > 0.0 else a * d
    if code == 3:
        return d if y > 0.0 else d * (y + a)
    if code == 4:
        return d * y * (1.0 - y)
    if code == 5:
        return d * (1.0 - y * y)
    if code == 6:
        cdf = 0.5 * (1.0 + math.erf(x * _SQRT_HALF))
        pdf = math.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return d * (cdf + x * pdf)
    if code == 7:
        return d * -math.expm1(-y)
    if code == 9:
        return _SELU_SCALE * d if y > 0.0 else d * (y + _SELU_SCALE * _SELU_ALPHA)
    if code == 10:
        s = _sigmoid(x)
        return d * (s * (1.0 + x * (1.0 - s)))
    if code == 11:
        return d * y
    if code == 12:
        return d / 6.0 if y > 0.0 and y < 1.0 else 0.0
    if code == 13:
        if x < -3.0:
            return 0.0
        return d * (2.0 * x + 3.0) / 6.0 if x <= 3.0 else d
    if code == 14:
        t = 1.0 - abs(y)
        return d * (t * t)
    if code == 15:
        return d if y > 0.0 and y < 6.0 else 0.0
    if code == 16:
        t = math.tanh(_softplus(x))
        return d * (t + x * _sigmoid(x) * (1.0 - t * t))
    if code == 17:
        return d if y > 0.0 else d * (y / a + 1.0)
    if code == 18:
        if not y > 0.0:
            return 0.0
        return d if a == 0.0 else d / (1.0 + a / (4.0 * y * y))
    if code == 19:
        t = math.tanh(x)
        return d * (t * t)
    return d


@_kernel
def act_forward(x, out, code, a):
    """``out = act(x)`` over flat arrays (``out`` may be ``x``)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        out[i] = act_value(float64(x[i]), code, a)


@_kernel
def act_backward(dy, y, x, out, code, a):
    """``out = dy * act'`` over flat arrays (``x`` read only where :func:`needs_input`)."""
    for i in range(cuda.grid(1), dy.shape[0], cuda.gridsize(1)):
        xv = float64(x[i]) if needs_input(code) else 0.0
        out[i] = act_grad(float64(dy[i]), float64(y[i]), xv, code, a)


# --------------------------------------------------------------------------
# GEMM: tiled in shared memory, all transpose variants, fused epilogue
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def _gemm_body(a, b, out, ta, tb, alpha, beta, bias, has_bias, code, act_a, acc0, sh):
    T = cuda.blockDim.x
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    m = out.shape[0]
    n = out.shape[1]
    k = a.shape[0] if ta else a.shape[1]
    nbm = (m + T - 1) // T
    nbn = (n + T - 1) // T
    nbk = (k + T - 1) // T
    off = T * T
    # the loop bounds are uniform over the block, so syncthreads is safe
    for bi in range(cuda.blockIdx.y, nbm, cuda.gridDim.y):
        for bj in range(cuda.blockIdx.x, nbn, cuda.gridDim.x):
            row = bi * T + ty
            col = bj * T + tx
            acc = acc0
            for kt in range(nbk):
                # tile of op(a): element (r, kk) at sh[(r % T) * T + kk % T];
                # transposed operands are read along their rows (coalesced)
                if ta:
                    r = bi * T + tx
                    kk = kt * T + ty
                    if r < m and kk < k:
                        sh[tx * T + ty] = a[kk, r]
                    else:
                        sh[tx * T + ty] = 0.0
                else:
                    kk = kt * T + tx
                    if row < m and kk < k:
                        sh[ty * T + tx] = a[row, kk]
                    else:
                        sh[ty * T + tx] = 0.0
                # tile of op(b): element (kk, c) at sh[off + (kk % T) * T + c % T]
                if tb:
                    c = bj * T + ty
                    kk = kt * T + tx
                    if c < n and kk < k:
                        sh[off + tx * T + ty] = b[c, kk]
                    else:
                        sh[off + tx * T + ty] = 0.0
                else:
                    kk = kt * T + ty
                    if kk < k and col < n:
                        sh[off + ty * T + tx] = b[kk, col]
                    else:
                        sh[off + ty * T + tx] = 0.0
                cuda.syncthreads()
                for p in range(T):
                    acc += sh[ty * T + p] * sh[off + p * T + tx]
                cuda.syncthreads()
            if row < m and col < n:
                v = alpha * float64(acc)
                if beta != 0.0:
                    v += beta * float64(out[row, col])
                if has_bias:
                    v += float64(bias[col])
                out[row, col] = act_value(v, code, act_a)


@_kernel
def gemm_f32(a, b, out, ta, tb, alpha, beta, bias, has_bias, code, act_a):
    """float32 GEMM; dynamic shared memory of ``2 * T * T`` float32."""
    sh = cuda.shared.array(0, dtype=float32)
    _gemm_body(a, b, out, ta, tb, alpha, beta, bias, has_bias, code, act_a,
               float32(0.0), sh)


@_kernel
def gemm_f64(a, b, out, ta, tb, alpha, beta, bias, has_bias, code, act_a):
    """float64 GEMM; dynamic shared memory of ``2 * T * T`` float64."""
    sh = cuda.shared.array(0, dtype=float64)
    _gemm_body(a, b, out, ta, tb, alpha, beta, bias, has_bias, code, act_a,
               float64(0.0), sh)


# --------------------------------------------------------------------------
# row kernels: softmax family and losses (one thread per row)
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def _row_max(x, i, k):
    mx = -math.inf
    for j in range(k):
        v = float64(x[i, j])
        if v > mx or v != v:
            mx = v
    return mx


@_kernel
def softmax_rows(x, out, log):
    """Row-wise softmax (``log``: log-softmax) of 2-D ``x`` into ``out``."""
    n = x.shape[0]
    k = x.shape[1]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        mx = _row_max(x, i, k)
        s = 0.0
        for j in range(k):
            s += math.exp(float64(x[i, j]) - mx)
        if log:
            ls = math.log(s)
            for j in range(k):
                out[i, j] = (float64(x[i, j]) - mx) - ls
        else:
            for j in range(k):
                out[i, j] = math.exp(float64(x[i, j]) - mx) / s


@_kernel
def softmax_backward_rows(dy, y, out):
    """``out = y * (dy - sum(dy * y))`` along each row."""
    n = dy.shape[0]
    k = dy.shape[1]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = 0.0
        for j in range(k):
            s += float64(dy[i, j]) * float64(y[i, j])
        for j in range(k):
            out[i, j] = float64(y[i, j]) * (float64(dy[i, j]) - s)


@cuda.jit(device=True)
def _target(t, dense, c, i, j, ls, k):
    if dense:
        tj = float64(t[i, j])
    else:
        tj = 1.0 if j == c else 0.0
    if ls != 0.0:
        tj = tj * (1.0 - ls) + ls / k
    return tj


@cuda.jit(device=True)
def _label(lab, i, k, bad):
    """Class index of row ``i`` (-1 and ``bad[0] = 1`` when invalid)."""
    lv = lab[i]
    c = int64(lv)
    if c != lv or c < 0 or c >= k:
        bad[0] = 1
        return -1
    return c


@_kernel
def xent_rows(z, lab, t, dense, w, has_w, ls, grad, per, bad):
    """Fused softmax + cross-entropy from logits, per row.

    ``per[i] = w_i * -sum_j t_ij log softmax(z_i)_j`` (float64) and
    ``grad = w_i * (softmax * sum(t_i) - t_i) / n``. Targets are labels
    ``lab`` (``dense`` false) or the dense array ``t``.
    """
    n = z.shape[0]
    k = z.shape[1]
    inv_n = 1.0 / n
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        c = -1
        if not dense:
            c = _label(lab, i, k, bad)
            if c < 0:
                per[i] = 0.0
                for j in range(k):
                    grad[i, j] = 0.0
                continue
        mx = _row_max(z, i, k)
        s = 0.0
        for j in range(k):
            s += math.exp(float64(z[i, j]) - mx)
        lse = math.log(s)
        tsum = 0.0
        loss = 0.0
        for j in range(k):
            tj = _target(t, dense, c, i, j, ls, k)
            tsum += tj
            loss -= tj * ((float64(z[i, j]) - mx) - lse)
        wi = float64(w[i]) if has_w else 1.0
        for j in range(k):
            tj = _target(t, dense, c, i, j, ls, k)
            p = math.exp((float64(z[i, j]) - mx) - lse)
            grad[i, j] = (p * tsum - tj) * inv_n * wi
        per[i] = loss * wi


@_kernel
def cce_rows(p, lab, t, dense, w, has_w, eps, grad, per, bad):
    """Categorical cross-entropy from probabilities (Keras: renormalise, clip)."""
    n = p.shape[0]
    k = p.shape[1]
    inv_n = 1.0 / n
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        c = -1
        if not dense:
            c = _label(lab, i, k, bad)
            if c < 0:
                per[i] = 0.0
                for j in range(k):
                    grad[i, j] = 0.0
                continue
        s = 0.0
        for j in range(k):
            s += float64(p[i, j])
        loss = 0.0
        dsum = 0.0
        for j in range(k):
            tj = _target(t, dense, c, i, j, 0.0, k)
            q = float64(p[i, j]) / s
            qc = min(max(q, eps), 1.0 - eps)
            loss -= tj * math.log(qc)
            if not (q < eps or q > 1.0 - eps):
                dsum += (-tj / qc) * q
        wi = float64(w[i]) if has_w else 1.0
        for j in range(k):
            tj = _target(t, dense, c, i, j, 0.0, k)
            q = float64(p[i, j]) / s
            qc = min(max(q, eps), 1.0 - eps)
            dq = 0.0 if (q < eps or q > 1.0 - eps) else -tj / qc
            grad[i, j] = (dq - dsum) / s * inv_n * wi
        per[i] = loss * wi


#: ``kind`` codes of :func:`elementwise_loss_rows`.
SIGMOID_BCE, BCE, MSE, MAE = 0, 1, 2, 3


@_kernel
def elementwise_loss_rows(p, t, w, has_w, kind, eps, grad, per):
    """Losses that are a mean over the last axis of an elementwise term.

    kind 0: binary cross-entropy from logits; 1: from clipped probabilities;
    2: squared error; 3: absolute error.
    """
    n = p.shape[0]
    k = p.shape[1]
    scale = 1.0 / (n * k)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        wi = float64(w[i]) if has_w else 1.0
        loss = 0.0
        for j in range(k):
            pv = float64(p[i, j])
            tv = float64(t[i, j])
            if kind == 0:
                e = math.exp(-abs(pv))
                loss += max(pv, 0.0) - pv * tv + math.log1p(e)
                sig = 1.0 / (1.0 + e) if pv >= 0.0 else e / (1.0 + e)
                g = sig - tv
            elif kind == 1:
                pc = min(max(pv, eps), 1.0 - eps)
                loss -= tv * math.log(pc) + (1.0 - tv) * math.log(1.0 - pc)
                if pv >= eps and pv <= 1.0 - eps:
                    g = (pc - tv) / (pc * (1.0 - pc))
                else:
                    g = 0.0
            elif kind == 2:
                d = pv - tv
                loss += d * d
                g = 2.0 * d
            else:
                d = pv - tv
                loss += abs(d)
                g = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
            grad[i, j] = g * scale * wi
        per[i] = loss / k * wi


# --------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------
#: ``mode`` codes of :func:`reduce_partial`.
RED_SUM, RED_SUMSQ, RED_SUMABS, RED_NONFINITE = 0, 1, 2, 3


@_kernel
def reduce_partial(x, mode, partial):
    """Per-block float64 sums of a flat array into ``partial[blockIdx.x]``.

    Needs ``blockDim.x`` float64 of dynamic shared memory and a power-of-two
    ``blockDim.x``. ``mode``: 0 sum, 1 sum of squares, 2 sum of |x|,
    3 count of non-finite values.
    """
    sh = cuda.shared.array(0, dtype=float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = float64(x[i])
        if mode == 0:
            acc += v
        elif mode == 1:
            acc += v * v
        elif mode == 2:
            acc += abs(v)
        else:
            acc += 0.0 if math.isfinite(v) else 1.0
    sh[tid] = acc
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = sh[0]


@_kernel
def col_sum(dy, out):
    """Column sums of 2-D ``dy`` (float64 accumulation) into ``out`` (k,)."""
    n = dy.shape[0]
    k = dy.shape[1]
    for j in range(cuda.grid(1), k, cuda.gridsize(1)):
        s = 0.0
        for i in range(n):
            s += float64(dy[i, j])
        out[j] = s


# --------------------------------------------------------------------------
# batch normalisation
# --------------------------------------------------------------------------
@_kernel
def bn_stats(x, training, momentum, eps, mm, mv, mean, inv_std):
    """Per-column mean / inverse std; updates the moving statistics when training."""
    n = x.shape[0]
    k = x.shape[1]
    for j in range(cuda.grid(1), k, cuda.gridsize(1)):
        if training:
            s = 0.0
            for i in range(n):
                s += float64(x[i, j])
            mu = s / n
            q = 0.0
            for i in range(n):
                d = float64(x[i, j]) - mu
                q += d * d
            var = q / n
            mm[j] = momentum * float64(mm[j]) + (1.0 - momentum) * mu
            mv[j] = momentum * float64(mv[j]) + (1.0 - momentum) * var
        else:
            mu = float64(mm[j])
            var = float64(mv[j])
        mean[j] = mu
        inv_std[j] = 1.0 / math.sqrt(var + eps)


@_kernel
def bn_apply(x, mean, inv_std, gamma, beta, out):
    """``out = (x - mean) * (inv_std * gamma) + beta`` over 2-D ``x``."""
    k = x.shape[1]
    for idx in range(cuda.grid(1), x.shape[0] * k, cuda.gridsize(1)):
        i = idx // k
        j = idx - i * k
        out[i, j] = ((float64(x[i, j]) - mean[j]) * (inv_std[j] * float64(gamma[j]))
                     + float64(beta[j]))


@_kernel
def bn_backward_cols(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    """Training-mode batch-norm gradients, one thread per column."""
    n = x.shape[0]
    k = x.shape[1]
    for j in range(cuda.grid(1), k, cuda.gridsize(1)):
        mu = mean[j]
        istd = inv_std[j]
        db = 0.0
        dg = 0.0
        for i in range(n):
            d = float64(dy[i, j])
            db += d
            dg += d * ((float64(x[i, j]) - mu) * istd)
        f = float64(gamma[j]) * istd / n
        for i in range(n):
            xhat = (float64(x[i, j]) - mu) * istd
            dx[i, j] = f * (n * float64(dy[i, j]) - db - xhat * dg)
        dgamma[j] = dg
        dbeta[j] = db


# --------------------------------------------------------------------------
# per-row normalisation (layer norm, L2): rows one thread each, the layer-norm
# weight gradients one thread per column
# --------------------------------------------------------------------------
@_kernel
def ln_rows(x, gamma, beta, has_g, has_b, eps, rms, out, mean, inv_std):
    """Each row: ``(x - mean) * inv_std * gamma + beta`` (``rms``: not centred)."""
    n = x.shape[0]
    k = x.shape[1]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = 0.0
        for j in range(k):
            s += float64(x[i, j])
        m = s / k
        q = 0.0
        for j in range(k):
            d = float64(x[i, j]) - m
            q += d * d
        r = 1.0 / math.sqrt(q / k + eps)
        mean[i] = m
        inv_std[i] = r
        c = 0.0 if rms else m
        for j in range(k):
            y = (float64(x[i, j]) - c) * r
            if has_g:
                y *= float64(gamma[j])
            if has_b:
                y += float64(beta[j])
            out[i, j] = y


@_kernel
def ln_backward_cols(dy, x, mean, inv_std, rms, dgamma, want_dg, dbeta):
    """``dgamma``/``dbeta`` of layer normalisation (float64 column sums)."""
    n = x.shape[0]
    k = x.shape[1]
    for j in range(cuda.grid(1), k, cuda.gridsize(1)):
        db = 0.0
        dg = 0.0
        for i in range(n):
            d = float64(dy[i, j])
            c = 0.0 if rms else mean[i]
            db += d
            dg += d * ((float64(x[i, j]) - c) * inv_std[i])
        if want_dg:
            dgamma[j] = dg
        dbeta[j] = db


@_kernel
def ln_backward_rows(dy, x, gamma, has_g, mean, inv_std, rms, dx):
    """``dx`` of layer normalisation, one thread per row (``dx`` may be ``dy``)."""
    n = x.shape[0]
    k = x.shape[1]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        m = mean[i]
        r = inv_std[i]
        s1 = 0.0
        s2 = 0.0
        for j in range(k):
            g = float64(dy[i, j])
            if has_g:
                g *= float64(gamma[j])
            xv = float64(x[i, j])
            if rms:
                s1 += g * xv
            else:
                s1 += g
                s2 += g * ((xv - m) * r)
        for j in range(k):
            g = float64(dy[i, j])
            if has_g:
                g *= float64(gamma[j])
            xv = float64(x[i, j])
            if rms:
                dx[i, j] = r * g - r * r * r * s1 / k * (xv - m)
            else:
                dx[i, j] = r * (g - s1 / k - ((xv - m) * r) * (s2 / k))


@_kernel
def l2_rows(x, eps, out, inv_norm):
    """Each row times ``min(1 / ||row||_2, 1 / eps)``."""
    n = x.shape[0]
    k = x.shape[1]
    cap = 1.0 / eps
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ss = 0.0
        for j in range(k):
            v = float64(x[i, j])
            ss += v * v
        r = cap if ss == 0.0 else min(1.0 / math.sqrt(ss), cap)
        inv_norm[i] = r
        for j in range(k):
            out[i, j] = float64(x[i, j]) * r


@_kernel
def l2_backward_rows(dy, y, inv_norm, eps, out):
    """Gradient of :func:`l2_rows` from its output ``y`` (``out`` may be ``dy``)."""
    n = y.shape[0]
    k = y.shape[1]
    cap = 1.0 / eps
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        r = inv_norm[i]
        dot = 0.0
        if r < cap:
            for j in range(k):
                dot += float64(y[i, j]) * float64(dy[i, j])
        for j in range(k):
            if r >= cap:
                out[i, j] = float64(dy[i, j]) * r
            else:
                out[i, j] = r * (float64(dy[i, j]) - float64(y[i, j]) * dot)


# --------------------------------------------------------------------------
# dropout: counter-based SplitMix64, one hash per element index
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def splitmix_u(seed, i):
    """Uniform in [0, 1) of element ``i`` (same as ``base.splitmix_uniform``)."""
    z = seed + uint64(i + 1) * uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    z = z ^ (z >> uint64(31))
    return float64(z >> uint64(40)) * _U24


@_kernel
def dropout_fwd(x, seed, rate, scale, out, mask):
    """``mask = scale * (u >= rate)``; ``out = x * mask`` (flat arrays)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        mask[i] = scale if splitmix_u(seed, i) >= rate else 0.0
        out[i] = x[i] * mask[i]


@_kernel
def copy_ew(x, y):
    """``y = x`` elementwise, converting to ``y``'s dtype (flat arrays)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        y[i] = x[i]


@_kernel
def mul_ew(a, b, out):
    """``out = a * b`` elementwise (flat arrays)."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        out[i] = a[i] * b[i]


# --------------------------------------------------------------------------
# optimizers: fused in-place updates; ``tiny`` > 0 flushes float32 subnormals
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def _flush(arr, i, tiny):
    if abs(arr[i]) < tiny:
        arr[i] = 0.0


@_kernel
def sgd_kernel(p, g, vel, lr, momentum, nesterov, wd, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        if wd != 0.0:
            p[i] = p[i] - p[i] * (lr * wd)
        gi = float64(g[i])
        if momentum != 0.0:
            vel[i] = momentum * float64(vel[i]) - lr * gi
            _flush(vel, i, tiny)
            if nesterov:
                p[i] = p[i] + (momentum * float64(vel[i]) - lr * gi)
            else:
                p[i] = p[i] + vel[i]
        else:
            p[i] = p[i] - lr * gi


@_kernel
def adam_kernel(p, g, m, v, alpha, beta_1, beta_2, eps, lr, wd, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        if wd != 0.0:
            p[i] = p[i] - p[i] * (lr * wd)
        gi = float64(g[i])
        m[i] = m[i] + (gi - float64(m[i])) * (1.0 - beta_1)
        v[i] = v[i] + (gi * gi - float64(v[i])) * (1.0 - beta_2)
        _flush(m, i, tiny)
        _flush(v, i, tiny)
        p[i] = p[i] - alpha * float64(m[i]) / (math.sqrt(float64(v[i])) + eps)


@_kernel
def rmsprop_kernel(p, g, ms, lr, rho, eps, wd, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        if wd != 0.0:
            p[i] = p[i] - p[i] * (lr * wd)
        gi = float64(g[i])
        ms[i] = rho * float64(ms[i]) + (1.0 - rho) * gi * gi
        _flush(ms, i, tiny)
        p[i] = p[i] - lr * gi / math.sqrt(float64(ms[i]) + eps)


@_kernel
def adagrad_kernel(p, g, acc, lr, eps, wd, tiny):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        if wd != 0.0:
            p[i] = p[i] - p[i] * (lr * wd)
        gi = float64(g[i])
        acc[i] = acc[i] + gi * gi
        _flush(acc, i, tiny)
        p[i] = p[i] - lr * gi / math.sqrt(float64(acc[i]) + eps)


# --------------------------------------------------------------------------
# small in-place helpers
# --------------------------------------------------------------------------
#: ``op`` codes of :func:`misc_ew`.
OP_SCALE, OP_CLIP, OP_AXPY, OP_REG_GRAD = 0, 1, 2, 3


@_kernel
def misc_ew(x, y, op, a, b):
    """0: ``x *= a``; 1: clip ``x`` to [a, b]; 2: ``y += a * x``;
    3: ``y += a * sign(x) + 2 * b * x`` (the L1/L2 gradient)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        if op == 0:
            x[i] = x[i] * a
        elif op == 1:
            v = float64(x[i])
            if v < a:
                x[i] = a
            elif v > b:
                x[i] = b
        elif op == 2:
            y[i] = y[i] + a * float64(x[i])
        else:
            v = float64(x[i])
            r = 0.0
            if a != 0.0:
                r += a * (1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0))
            if b != 0.0:
                r += (2.0 * b) * v
            y[i] = y[i] + r
