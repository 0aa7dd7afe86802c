"""CUDA kernels of the ``cuda`` backend's sequence ops: the embedding gather and
scatter-add, and the per-step gate epilogues of SimpleRNN / LSTM / GRU.

Imported on the first sequence op by :mod:`pynn.backends.cuda_sequence`, which drives
them (the time loop runs on the host; the matrix products are the backend's GEMM).
Layouts, gate orders and workspaces are those of :mod:`pynn.backends.recurrent`:
``x (n, T, d)``, the input projection ``xw (n * T, G)`` (row ``i * T + t``),
workspaces ``hprev``/``cprev (n, T, u)`` and ``gates (n, T, 4u or u)`` indexed by input
time ``t``, outputs ``out (n, T, u)`` by step ``s``.

* The step kernels run one thread per ``(sample, unit)``: each reads the recurrent
  product of its row, applies the activations (by the codes of
  :func:`._cuda_kernels.act_value`) in float64, updates the cell and state, applies the
  mask and writes the workspaces, the output and the next state (states ping-pong
  between two ``(n, u)`` buffers, so a thread never reads what another one writes).
* Backward step kernels fold the output-gradient carry of masked steps, write the
  pre-activation gate gradients into ``dgates`` and into a contiguous ``(n, G)``
  matrix for the state-gradient GEMM, and the part of the next state gradient that is
  not a product (``dh * z`` for the GRU; at a masked step, the whole gradient).
* The embedding gradient is a scatter-add with float64 atomic adds (sm_60 and later)
  into a float64 table: repeated ids accumulate in float64 as in the reference, in an
  order that may vary from run to run (float64 rounding only, then one rounding to
  the working dtype).

* Recurrent dropout: ``mul_cols``/``add_mul_cols`` multiply a state (or its gradient)
  by one gate block of the ``(n, G)`` multipliers, ``mask_reset_block`` masks the GRU's
  reset state, ``mul_cols_rows`` masks every step's ``h_prev`` for the weight gradient.

Every kernel walks its index space with a grid-stride loop; nothing compiles on
import, and each kernel is cached in pynn's checked directory (:mod:`._numba_cache`).
"""
from __future__ import annotations

from numba import cuda
from numba.cuda import float64

from . import _cuda_kernels
from ._cuda_kernels import act_grad, act_value
from ._numba_cache import cached

#: cell codes of the step kernels
CELL_SIMPLE, CELL_LSTM, CELL_GRU = 0, 1, 2


def _kernel(fn):
    """A kernel, compiled on its first launch and cached in pynn's checked directory;
    its entries are also keyed on ``_cuda_kernels.py``, whose activation functions are
    compiled into it."""
    return cached(cuda.jit(fn), depends=(_cuda_kernels.__file__,))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
@_kernel
def fill_zero(x):
    """``x = 0`` over a flat array."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        x[i] = 0


@_kernel
def copy_cols(src, s0, dst, d0, width):
    """``dst[:, d0:d0 + width] = src[:, s0:s0 + width]`` (2-D arrays, same rows)."""
    rows = src.shape[0]
    for idx in range(cuda.grid(1), rows * width, cuda.gridsize(1)):
        i = idx // width
        j = idx - i * width
        dst[i, d0 + j] = src[i, s0 + j]


@_kernel
def mul_cols(a, m, m0, out):
    """``out = a * m[:, m0:m0 + u]`` (``a``, ``out (n, u)``; may be the same array)."""
    n = out.shape[0]
    u = out.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        out[i, j] = a[i, j] * m[i, m0 + j]


@_kernel
def add_mul_cols(a, m, m0, out):
    """``out += a * m[:, m0:m0 + u]`` (``a``, ``out (n, u)``)."""
    n = out.shape[0]
    u = out.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        out[i, j] = out[i, j] + a[i, j] * m[i, m0 + j]


@_kernel
def mul_cols_rows(a, m, m0, steps, out):
    """``out[r] = a[r] * m[r // steps, m0:m0 + u]`` over ``(n * T, u)`` rows."""
    rows = out.shape[0]
    u = out.shape[1]
    for idx in range(cuda.grid(1), rows * u, cuda.gridsize(1)):
        r = idx // u
        j = idx - r * u
        out[r, j] = a[r, j] * m[r // steps, m0 + j]


@_kernel
def mask_reset_block(rh, m, m0, t, gates):
    """GRU without ``reset_after`` under recurrent dropout: ``rh *= m[:, m0:]`` (the
    reset state ``r * h_prev`` becomes ``r * (h_prev * m_h)``), also in ``gates``'s last
    block."""
    n = rh.shape[0]
    u = rh.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        v = rh[i, j] * m[i, m0 + j]
        rh[i, j] = v
        gates[i, t, 3 * u + j] = v


# --------------------------------------------------------------------------
# embedding
# --------------------------------------------------------------------------
@_kernel
def ids_out_of_range(ids, num, bad):
    """``bad[0] = 1`` when an id of flat ``ids`` lies outside ``[0, num)``."""
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        v = ids[i]
        if v < 0 or v >= num:
            bad[0] = 1


@_kernel
def embedding_gather(ids, table, out):
    """``out[k] = table[ids[k]]``: ``ids (N,)``, ``out (N, dim)``."""
    dim = table.shape[1]
    for idx in range(cuda.grid(1), ids.shape[0] * dim, cuda.gridsize(1)):
        k = idx // dim
        j = idx - k * dim
        out[k, j] = table[ids[k], j]


@_kernel
def embedding_scatter_add(ids, dy, acc):
    """``acc[ids[k]] += dy[k]`` with float64 atomic adds (``acc`` float64, zeroed by
    the caller): ``ids (N,)``, ``dy (N, dim)``."""
    dim = dy.shape[1]
    for idx in range(cuda.grid(1), ids.shape[0] * dim, cuda.gridsize(1)):
        k = idx // dim
        j = idx - k * dim
        cuda.atomic.add(acc, (ids[k], j), float64(dy[k, j]))


# --------------------------------------------------------------------------
# recurrent forward
# --------------------------------------------------------------------------
@_kernel
def gru_reset_gates(xw, rec, h, rh, t, gates, ract, a_ract):
    """GRU without ``reset_after``, before the candidate's product: ``z, r`` from the
    projection and ``rec = h @ rk[:, :2u]`` into ``gates``; ``r * h`` into ``gates``'s
    last block and into ``rh (n, u)`` (the candidate product's left operand)."""
    n = h.shape[0]
    u = h.shape[1]
    steps = gates.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        row = i * steps + t
        z = act_value(float64(xw[row, j]) + float64(rec[i, j]), ract, a_ract)
        r = act_value(float64(xw[row, u + j]) + float64(rec[i, u + j]), ract, a_ract)
        gates[i, t, j] = z
        gates[i, t, u + j] = r
        v = r * float64(h[i, j])
        gates[i, t, 3 * u + j] = v
        rh[i, j] = v


@_kernel
def rnn_step_forward(cell, reset_after, xw, rec, rb, has_rb, h, c, h_next, c_next, mask,
                     has_mask, t, s, out, hprev, cprev, gates, act, ract, a_act, a_ract):
    """One step's gate epilogue: reads the projection row ``i * T + t`` of ``xw`` and
    the recurrent product ``rec`` (GRU without ``reset_after``: the candidate's
    product, after :func:`gru_reset_gates`), writes ``hprev``/``cprev``/``gates`` at
    input time ``t``, ``out`` at step ``s`` and the next state ``h_next``/``c_next``.
    A masked step keeps the state and repeats the previous step's output (zeros at
    ``s == 0``)."""
    n = h.shape[0]
    u = h.shape[1]
    steps = out.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        row = i * steps + t
        hp = float64(h[i, j])
        hprev[i, t, j] = h[i, j]
        cp = 0.0
        cn = 0.0
        if cell == CELL_SIMPLE:
            hn = act_value(float64(xw[row, j]) + float64(rec[i, j]), act, a_act)
            gates[i, t, j] = hn
        elif cell == CELL_LSTM:
            cp = float64(c[i, j])
            cprev[i, t, j] = c[i, j]
            ig = act_value(float64(xw[row, j]) + float64(rec[i, j]), ract, a_ract)
            fg = act_value(float64(xw[row, u + j]) + float64(rec[i, u + j]), ract, a_ract)
            gg = act_value(float64(xw[row, 2 * u + j]) + float64(rec[i, 2 * u + j]), act,
                           a_act)
            og = act_value(float64(xw[row, 3 * u + j]) + float64(rec[i, 3 * u + j]), ract,
                           a_ract)
            gates[i, t, j] = ig
            gates[i, t, u + j] = fg
            gates[i, t, 2 * u + j] = gg
            gates[i, t, 3 * u + j] = og
            cn = fg * cp + ig * gg
            hn = og * act_value(cn, act, a_act)
        else:
            if reset_after:
                iz = float64(rec[i, j])
                ir = float64(rec[i, u + j])
                ih = float64(rec[i, 2 * u + j])
                if has_rb:
                    iz += float64(rb[j])
                    ir += float64(rb[u + j])
                    ih += float64(rb[2 * u + j])
                z = act_value(float64(xw[row, j]) + iz, ract, a_ract)
                r = act_value(float64(xw[row, u + j]) + ir, ract, a_ract)
                hh = act_value(float64(xw[row, 2 * u + j]) + r * ih, act, a_act)
                gates[i, t, j] = z
                gates[i, t, u + j] = r
                gates[i, t, 3 * u + j] = ih
            else:
                z = float64(gates[i, t, j])
                hh = act_value(float64(xw[row, 2 * u + j]) + float64(rec[i, j]), act, a_act)
            gates[i, t, 2 * u + j] = hh
            hn = z * hp + (1.0 - z) * hh
        if has_mask and not mask[i, t]:
            hn = hp
            cn = cp
            y = float64(out[i, s - 1, j]) if s > 0 else 0.0
        else:
            y = hn
        out[i, s, j] = y
        h_next[i, j] = hn
        if cell == CELL_LSTM:
            c_next[i, j] = cn


# --------------------------------------------------------------------------
# recurrent backward (backpropagation through time)
# --------------------------------------------------------------------------
@_kernel
def rnn_step_backward(cell, reset_after, dy, has_dy, s, t, mask, has_mask, hprev, cprev,
                      gates, dh, dc, carry, dh_next, dc_next, dgates, dgt, dhh, act, ract,
                      a_act, a_ract):
    """One step of backpropagation through time, before its state-gradient product:
    adds ``dy[:, s]`` to the output carry (handed to the state at the next unmasked
    step), writes the pre-activation gate gradients into ``dgates[:, t]`` and into
    ``dgt (n, G)`` (zeros at a masked step), ``dc_next`` (LSTM) and the non-product
    part of ``dh_next``: ``dh * z`` (GRU), 0, or at a masked step the incoming ``dh``.
    GRU without ``reset_after``: ``dhh`` receives the candidate's gradient and
    :func:`gru_reset_backward` finishes the step after the candidate's product."""
    n = dh.shape[0]
    u = dh.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        cv = float64(carry[i, j])
        if has_dy:
            cv += float64(dy[i, s, j])
        dhi = float64(dh[i, j])
        m = (not has_mask) or mask[i, t]
        if m:
            dhi += cv
            cv = 0.0
        carry[i, j] = cv
        direct = 0.0
        if not m:
            direct = dhi
        if cell == CELL_SIMPLE:
            dg = act_grad(dhi, float64(gates[i, t, j]), 0.0, act, a_act) if m else 0.0
            dgates[i, t, j] = dg
            dgt[i, j] = dg
        elif cell == CELL_LSTM:
            dcv = float64(dc[i, j])
            di = 0.0
            df = 0.0
            dg = 0.0
            do = 0.0
            dcn = dcv
            if m:
                ig = float64(gates[i, t, j])
                fg = float64(gates[i, t, u + j])
                gg = float64(gates[i, t, 2 * u + j])
                og = float64(gates[i, t, 3 * u + j])
                cp = float64(cprev[i, t, j])
                tc = act_value(fg * cp + ig * gg, act, a_act)
                dcc = dcv + act_grad(dhi * og, tc, 0.0, act, a_act)
                di = act_grad(dcc * gg, ig, 0.0, ract, a_ract)
                df = act_grad(dcc * cp, fg, 0.0, ract, a_ract)
                dg = act_grad(dcc * ig, gg, 0.0, act, a_act)
                do = act_grad(dhi * tc, og, 0.0, ract, a_ract)
                dcn = dcc * fg
            dgates[i, t, j] = di
            dgates[i, t, u + j] = df
            dgates[i, t, 2 * u + j] = dg
            dgates[i, t, 3 * u + j] = do
            dgt[i, j] = di
            dgt[i, u + j] = df
            dgt[i, 2 * u + j] = dg
            dgt[i, 3 * u + j] = do
            dc_next[i, j] = dcn
        else:
            dz = 0.0
            dr = 0.0
            dcand = 0.0
            d2 = 0.0
            if m:
                z = float64(gates[i, t, j])
                r = float64(gates[i, t, u + j])
                hh = float64(gates[i, t, 2 * u + j])
                hp = float64(hprev[i, t, j])
                dcand = act_grad(dhi * (1.0 - z), hh, 0.0, act, a_act)
                dz = act_grad(dhi * (hp - hh), z, 0.0, ract, a_ract)
                direct = dhi * z
                if reset_after:
                    dr = act_grad(dcand * float64(gates[i, t, 3 * u + j]), r, 0.0, ract,
                                  a_ract)
                    d2 = dcand * r
            dgates[i, t, j] = dz
            dgates[i, t, 3 * u + j] = dcand
            dgt[i, j] = dz
            if reset_after:
                dgates[i, t, u + j] = dr
                dgates[i, t, 2 * u + j] = d2
                dgt[i, u + j] = dr
                dgt[i, 2 * u + j] = d2
            else:
                dgates[i, t, 2 * u + j] = dcand
                dhh[i, j] = dcand
        dh_next[i, j] = direct


@_kernel
def gru_reset_backward(t, mask, has_mask, hprev, gates, d_rec, dh_next, dgates, dgt, ract,
                       a_ract):
    """GRU without ``reset_after``, after the candidate's product ``d_rec = dhh @
    rk[:, 2u:]^T``: the reset gate's gradient (into ``dgates`` and ``dgt``) and
    ``d_rec * r`` added to ``dh_next``."""
    n = dh_next.shape[0]
    u = dh_next.shape[1]
    for idx in range(cuda.grid(1), n * u, cuda.gridsize(1)):
        i = idx // u
        j = idx - i * u
        dr = 0.0
        if (not has_mask) or mask[i, t]:
            r = float64(gates[i, t, u + j])
            dv = float64(d_rec[i, j])
            dr = act_grad(dv * float64(hprev[i, t, j]), r, 0.0, ract, a_ract)
            dh_next[i, j] = float64(dh_next[i, j]) + dv * r
        dgates[i, t, u + j] = dr
        dgt[i, u + j] = dr
