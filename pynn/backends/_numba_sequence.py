"""Numba kernels of the sequence ops of :class:`~pynn.backends.numba_backend.NumbaBackend`
(the reference, and the specification: :mod:`pynn.backends.embedding` and
:mod:`pynn.backends.recurrent`).

The recurrent kernels run the whole time loop compiled. Numba's BLAS (``np.dot``,
through :func:`~pynn.backends._numba_kernels.dot_into`) takes contiguous operands only,
so where the Cython kernels hand BLAS strided rows, these copy a step's rows into
small contiguous scratch matrices (given by the caller, reused): forward, the input
projection of all steps is one product, then per step ``rec = h @ recurrent_kernel``
and one fused epilogue per row; backward, per step a fused pass per row writes the
pre-activation gradients (into ``dgates`` and a contiguous copy ``dgt``), then one
product for the state gradient (two for the GRU without ``reset_after``); after the
loop the weight and input gradients are a few large products. Nothing is allocated.

Recurrent dropout (``has_rmask``, ``rmask (n, G)``): the products that read ``h_prev``
run one gate block at a time on ``h_prev * rmask[:, block]`` (copied into scratch),
against contiguous copies of the recurrent kernel's blocks ``rkb (blocks, u, u)``; the
state gradient sums the blocks' products times their masks, and the ``h_prev`` blocks of
``drecurrent_kernel`` are redone with the masked states after the loop. Without it the
code path is unchanged.
"""
from __future__ import annotations

from numba import njit

from . import _numba_kernels as K
from ._numba_cache import cached
from . import recurrent_args

__all__ = ["embedding_forward", "embedding_backward", "rnn_forward", "rnn_backward"]

_DEPENDS = (K.__file__, recurrent_args.__file__)

CELL_SIMPLE, CELL_LSTM, CELL_GRU = (recurrent_args.CELL_CODES[c]
                                    for c in ("simple_rnn", "lstm", "gru"))


def _jit(fn):
    return cached(njit(fastmath=set(K.FASTMATH), error_model="numpy", nogil=True)(fn),
                  _DEPENDS)


def _inline(fn):
    return cached(njit(fastmath=set(K.FASTMATH), error_model="numpy", inline="always")(fn),
                  _DEPENDS)


_act = K.act_by_code  # activation ``code`` (not gelu/softmax) of a scalar
_grad = K.grad_by_code  # ``dy * act'`` from the output ``y``


# --------------------------------------------------------------------------
# embedding
# --------------------------------------------------------------------------
@_jit
def embedding_forward(ids, table, out):
    d = table.shape[1]
    for k in range(ids.shape[0]):
        row = ids[k]
        for j in range(d):
            out[k, j] = table[row, j]


@_jit
def embedding_backward(ids, dy, out):
    out[:, :] = 0.0
    d = out.shape[1]
    for k in range(ids.shape[0]):
        row = ids[k]
        for j in range(d):
            out[row, j] += dy[k, j]


# --------------------------------------------------------------------------
# recurrent layers
# --------------------------------------------------------------------------
@_inline
def _rec_blocks(cell, reset_after, u, G):
    """How many gate blocks read ``h_prev`` through the recurrent dropout mask."""
    return 2 if (cell == CELL_GRU and not reset_after) else G // u


@_jit
def _masked_product(h, rmask, rkb, nb, hm, recb, rec):
    """``rec[:, b] = (h * rmask[:, b]) @ rkb[b]`` for the first ``nb`` blocks."""
    n, u = hm.shape
    for b in range(nb):
        for i in range(n):
            for j in range(u):
                hm[i, j] = h[i, j] * rmask[i, b * u + j]
        K.dot_into(hm, rkb[b], recb)
        for i in range(n):
            for j in range(u):
                rec[i, b * u + j] = recb[i, j]


@_jit
def _masked_state_grad(dgt, rmask, rkb, nb, dgb, tmp, dhn):
    """``dhn = sum_b (dgt[:, b] @ rkb[b].T) * rmask[:, b]`` over the first ``nb`` blocks."""
    n, u = dgb.shape
    dhn[:, :] = 0.0
    for b in range(nb):
        for i in range(n):
            for j in range(u):
                dgb[i, j] = dgt[i, b * u + j]
        K.dot_into(dgb, rkb[b].T, tmp)
        for i in range(n):
            for j in range(u):
                dhn[i, j] += tmp[i, j] * rmask[i, b * u + j]


@_jit
def _masked_hprev_grads(hp2, dg2, T, rmask, nb, hm_all, dg_all, small, drk):
    """``drk[:, b] = (hprev * rmask[:, b]).T @ dgates[:, b]`` for the first ``nb`` blocks
    (``hp2``, ``dg2`` as ``(n * T, .)`` rows)."""
    N, u = hm_all.shape
    for b in range(nb):
        for r in range(N):
            i = r // T
            for j in range(u):
                hm_all[r, j] = hp2[r, j] * rmask[i, b * u + j]
                dg_all[r, j] = dg2[r, b * u + j]
        K.dot_into(hm_all.T, dg_all, small)
        for a in range(u):
            for c in range(u):
                drk[a, b * u + c] = small[a, c]


@_jit
def rnn_forward(cell, reset_after, x2, T, kernel, rk, rk_zr, rk_h, ibias, rbias, has_ibias,
                has_rbias, h0, c0, has_h0, has_c0, mask, has_mask, out, h_out, c_out, hprev,
                cprev, gates, proj, rec, rh, tmp, act, ract, a_act, a_ract, go_backwards,
                rmask, has_rmask, rkb, hm, recb):
    """The forward time loop (see the module docstring). ``x2`` is ``x`` as ``(n * T,
    d)``; ``proj (n * T, G)``, ``rec (n, G)``, ``rh`` and ``tmp`` ``(n, u)`` are scratch;
    ``rk_zr``/``rk_h`` contiguous copies of the GRU's recurrent kernel blocks; with
    ``has_rmask``, ``rkb`` the blocks of all of it and ``hm``, ``recb (n, u)`` scratch."""
    n = h_out.shape[0]
    u = h_out.shape[1]
    nb = _rec_blocks(cell, reset_after, u, rk.shape[1])
    K.dot_into(x2, kernel, proj)
    for i in range(n):
        for j in range(u):
            h_out[i, j] = h0[i, j] if has_h0 else 0.0
            if cell == CELL_LSTM:
                c_out[i, j] = c0[i, j] if has_c0 else 0.0
    for s in range(T):
        t = T - 1 - s if go_backwards else s
        for i in range(n):
            for j in range(u):
                hprev[i, t, j] = h_out[i, j]
                if cell == CELL_LSTM:
                    cprev[i, t, j] = c_out[i, j]
        if has_rmask:
            _masked_product(h_out, rmask, rkb, nb, hm, recb, rec)
        elif cell == CELL_GRU and not reset_after:
            K.dot_into(h_out, rk_zr, rec)  # rec is (n, 2u) here
        else:
            K.dot_into(h_out, rk, rec)
        if cell == CELL_GRU and not reset_after:
            for i in range(n):
                p = i * T + t
                for j in range(2 * u):
                    b = ibias[j] if has_ibias else 0.0
                    gates[i, t, j] = _act(proj[p, j] + b + rec[i, j], ract, a_ract)
                for j in range(u):
                    v = gates[i, t, u + j] * h_out[i, j]
                    if has_rmask:
                        v *= rmask[i, 2 * u + j]
                    gates[i, t, 3 * u + j] = v
                    rh[i, j] = v
            K.dot_into(rh, rk_h, tmp)
        for i in range(n):
            m = mask[i, t] if has_mask else True
            p = i * T + t
            if cell == CELL_SIMPLE:
                for j in range(u):
                    b = ibias[j] if has_ibias else 0.0
                    v = _act(proj[p, j] + b + rec[i, j], act, a_act)
                    gates[i, t, j] = v
                    if m:
                        h_out[i, j] = v
            elif cell == CELL_LSTM:
                for j in range(4 * u):
                    b = ibias[j] if has_ibias else 0.0
                    z = proj[p, j] + b + rec[i, j]
                    if 2 * u <= j < 3 * u:
                        gates[i, t, j] = _act(z, act, a_act)
                    else:
                        gates[i, t, j] = _act(z, ract, a_ract)
                for j in range(u):
                    cn = gates[i, t, u + j] * c_out[i, j] + gates[i, t, j] * gates[i, t, 2 * u + j]
                    hn = gates[i, t, 3 * u + j] * _act(cn, act, a_act)
                    if m:
                        c_out[i, j] = cn
                        h_out[i, j] = hn
            elif reset_after:
                for j in range(u):
                    bz = ibias[j] if has_ibias else 0.0
                    br = ibias[u + j] if has_ibias else 0.0
                    bh = ibias[2 * u + j] if has_ibias else 0.0
                    rz = rbias[j] if has_rbias else 0.0
                    rr = rbias[u + j] if has_rbias else 0.0
                    rhb = rbias[2 * u + j] if has_rbias else 0.0
                    z = _act(proj[p, j] + bz + (rec[i, j] + rz), ract, a_ract)
                    r = _act(proj[p, u + j] + br + (rec[i, u + j] + rr), ract, a_ract)
                    rc = rec[i, 2 * u + j] + rhb
                    hh = _act(proj[p, 2 * u + j] + bh + r * rc, act, a_act)
                    gates[i, t, j] = z
                    gates[i, t, u + j] = r
                    gates[i, t, 2 * u + j] = hh
                    gates[i, t, 3 * u + j] = rc
                    if m:
                        h_out[i, j] = z * h_out[i, j] + (1.0 - z) * hh
            else:
                for j in range(u):
                    bh = ibias[2 * u + j] if has_ibias else 0.0
                    hh = _act(proj[p, 2 * u + j] + bh + tmp[i, j], act, a_act)
                    gates[i, t, 2 * u + j] = hh
                    z = gates[i, t, j]
                    if m:
                        h_out[i, j] = z * h_out[i, j] + (1.0 - z) * hh
            for j in range(u):
                if m:
                    out[i, s, j] = h_out[i, j]
                elif s == 0:
                    out[i, s, j] = 0.0
                else:
                    out[i, s, j] = out[i, s - 1, j]


@_jit
def _column_sums(a, col0, cols, out, out0):
    """``out[out0 + j] = sum_r a[r, col0 + j]`` in float64."""
    for j in range(cols):
        acc = 0.0
        for r in range(a.shape[0]):
            acc += a[r, col0 + j]
        out[out0 + j] = acc


@_jit
def rnn_backward(cell, reset_after, dy, has_dy, x2, T, kernel, rk, rk_zr, rk_h, hprev, cprev,
                 gates, mask, has_mask, dh_out, has_dh, dc_out, has_dc, dx2, has_dx, dkernel,
                 drk, dbias_in, dbias_rec, has_dbias, dh0, dc0, has_dstate, dgates, dh, dc,
                 carry, dhn, drec, dgt, big_in, big_rec, big_h, big_h2, small, act, ract, a_act,
                 a_ract, go_backwards, rmask, has_rmask, rkb, dgb, tmp, hm_all, dg_all, small2):
    """Backpropagation through time of :func:`rnn_forward` (see the module docstring).
    Scratch: ``dh, dc, carry, dhn, drec (n, u)``, ``dgt (n, Wr)`` (a step's recurrent
    pre-activation gradients), for the GRU ``big_in (n * T, 3u)``, ``big_rec (n * T,
    3u)``, ``big_h``, ``big_h2 (n * T, u)`` and ``small (u, u)``; with ``has_rmask``,
    ``rkb`` (as forward), ``dgb``, ``tmp (n, u)``, ``hm_all``, ``dg_all (n * T, u)`` and
    ``small2 (u, u)``."""
    n = dh.shape[0]
    u = dh.shape[1]
    G = rk.shape[1]
    nb = _rec_blocks(cell, reset_after, u, G)
    W = gates.shape[2]
    N = n * T
    for i in range(n):
        for j in range(u):
            dh[i, j] = dh_out[i, j] if has_dh else 0.0
            dc[i, j] = dc_out[i, j] if has_dc else 0.0
            carry[i, j] = 0.0
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if go_backwards else s
        for i in range(n):
            m = mask[i, t] if has_mask else True
            if has_dy:
                for j in range(u):
                    carry[i, j] += dy[i, s, j]
            if not m:
                for j in range(W):
                    dgates[i, t, j] = 0.0
                for j in range(dgt.shape[1]):
                    dgt[i, j] = 0.0
                continue
            for j in range(u):
                dh[i, j] += carry[i, j]
                carry[i, j] = 0.0
            if cell == CELL_SIMPLE:
                for j in range(u):
                    v = _grad(dh[i, j], gates[i, t, j], act, a_act)
                    dgates[i, t, j] = v
                    dgt[i, j] = v
            elif cell == CELL_LSTM:
                for j in range(u):
                    zi = gates[i, t, j]
                    zf = gates[i, t, u + j]
                    zg = gates[i, t, 2 * u + j]
                    zo = gates[i, t, 3 * u + j]
                    cp = cprev[i, t, j]
                    tc = _act(zf * cp + zi * zg, act, a_act)
                    dcv = dc[i, j] + _grad(dh[i, j] * zo, tc, act, a_act)
                    g0 = _grad(dcv * zg, zi, ract, a_ract)
                    g1 = _grad(dcv * cp, zf, ract, a_ract)
                    g2 = _grad(dcv * zi, zg, act, a_act)
                    g3 = _grad(dh[i, j] * tc, zo, ract, a_ract)
                    dgates[i, t, j] = g0
                    dgates[i, t, u + j] = g1
                    dgates[i, t, 2 * u + j] = g2
                    dgates[i, t, 3 * u + j] = g3
                    dgt[i, j] = g0
                    dgt[i, u + j] = g1
                    dgt[i, 2 * u + j] = g2
                    dgt[i, 3 * u + j] = g3
                    dc[i, j] = dcv * zf
            else:
                for j in range(u):
                    z = gates[i, t, j]
                    r = gates[i, t, u + j]
                    hh = gates[i, t, 2 * u + j]
                    rc = gates[i, t, 3 * u + j]
                    hv = dh[i, j]
                    dhh = _grad(hv * (1.0 - z), hh, act, a_act)
                    dz = _grad(hv * (hprev[i, t, j] - hh), z, ract, a_ract)
                    dgates[i, t, 3 * u + j] = dhh
                    dgates[i, t, j] = dz
                    dgt[i, j] = dz
                    if reset_after:
                        dr = _grad(dhh * rc, r, ract, a_ract)
                        dgates[i, t, u + j] = dr
                        dgates[i, t, 2 * u + j] = dhh * r
                        dgt[i, u + j] = dr
                        dgt[i, 2 * u + j] = dhh * r
                    else:
                        dgates[i, t, 2 * u + j] = dhh
                        dhn[i, j] = dhh  # the candidate's gradient, for drec below
        if cell == CELL_GRU and not reset_after:
            K.dot_into(dhn, rk_h.T, drec)
            if has_rmask:  # the candidate read r * (h_prev * m_h)
                for i in range(n):
                    for j in range(u):
                        drec[i, j] *= rmask[i, 2 * u + j]
            for i in range(n):
                if has_mask and not mask[i, t]:
                    continue
                for j in range(u):
                    dr = _grad(drec[i, j] * hprev[i, t, j], gates[i, t, u + j], ract, a_ract)
                    dgates[i, t, u + j] = dr
                    dgt[i, u + j] = dr
        if has_rmask:
            _masked_state_grad(dgt, rmask, rkb, nb, dgb, tmp, dhn)
        elif cell == CELL_GRU and not reset_after:
            K.dot_into(dgt, rk_zr.T, dhn)
        else:
            K.dot_into(dgt, rk.T, dhn)
        for i in range(n):
            if has_mask and not mask[i, t]:
                continue
            for j in range(u):
                if cell == CELL_GRU:
                    v = dh[i, j] * gates[i, t, j] + dhn[i, j]
                    if not reset_after:
                        v += drec[i, j] * gates[i, t, u + j]
                    dh[i, j] = v
                else:
                    dh[i, j] = dhn[i, j]
    if has_dstate:
        for i in range(n):
            for j in range(u):
                dh0[i, j] = dh[i, j]
                if cell == CELL_LSTM:
                    dc0[i, j] = dc[i, j]
    hp2 = hprev.reshape(N, u)
    dg2 = dgates.reshape(N, W)
    if cell != CELL_GRU:
        K.dot_into(x2.T, dg2, dkernel)
        K.dot_into(hp2.T, dg2, drk)
        if has_rmask:
            _masked_hprev_grads(hp2, dg2, T, rmask, nb, hm_all, dg_all, small2, drk)
        if has_dbias:
            _column_sums(dg2, 0, G, dbias_in, 0)
        if has_dx:
            K.dot_into(dg2, kernel.T, dx2)
        return
    # GRU: gather the input-side [dz, dr, dhh] and recurrent-side columns contiguously
    for r in range(N):
        for j in range(2 * u):
            big_in[r, j] = dg2[r, j]
            big_rec[r, j] = dg2[r, j]
        for j in range(u):
            big_in[r, 2 * u + j] = dg2[r, 3 * u + j]
            big_rec[r, 2 * u + j] = dg2[r, 2 * u + j]
    K.dot_into(x2.T, big_in, dkernel)
    K.dot_into(hp2.T, big_rec, drk)
    if has_rmask:
        _masked_hprev_grads(hp2, dg2, T, rmask, nb, hm_all, dg_all, small2, drk)
    if not reset_after:
        for r in range(N):
            for j in range(u):
                big_h[r, j] = gates[r // T, r % T, 3 * u + j]
                big_h2[r, j] = dg2[r, 2 * u + j]
        K.dot_into(big_h.T, big_h2, small)
        for a in range(u):
            for b in range(u):
                drk[a, 2 * u + b] = small[a, b]
    if has_dbias:
        _column_sums(big_in, 0, 3 * u, dbias_in, 0)
        if reset_after:
            _column_sums(big_rec, 0, 3 * u, dbias_rec, 0)
    if has_dx:
        K.dot_into(big_in, kernel.T, dx2)
