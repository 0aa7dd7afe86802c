"""The ``numba`` backend's sequence ops (kernels: :mod:`pynn.backends._numba_sequence`):
embedding gather and scatter-add, and the SimpleRNN / LSTM / GRU time loops.

:class:`NumbaSequenceOps` is mixed into :class:`~pynn.backends.numba_backend.NumbaBackend`.
Each op validates its arguments with the reference's ``prep_*`` function, then runs one
kernel; scratch matrices come from the backend's per-thread buffers (``_scratch()``), so
a warm call allocates nothing.
"""
from __future__ import annotations

import numpy as np

from . import _numba_sequence as S
from .embedding import prep_embedding_backward, prep_embedding_forward
from .recurrent import CompiledRecurrentOps, kernel_activations

__all__ = ["NumbaSequenceOps"]

_CELL_CODE = {"simple_rnn": S.CELL_SIMPLE, "lstm": S.CELL_LSTM, "gru": S.CELL_GRU}
_NO_MASK = np.zeros((0, 0), np.bool_)
_EMPTY = {}


def _empty(dt, ndim):
    key = (dt.char, ndim)
    a = _EMPTY.get(key)
    if a is None:
        a = _EMPTY[key] = np.zeros((0,) * ndim, dt)
    return a


def _or_empty(a, dt, ndim):
    return (_empty(dt, ndim), False) if a is None else (a, True)


class NumbaSequenceOps(CompiledRecurrentOps):
    """Numba embedding and recurrent ops (see the module docstring)."""

    def embedding_forward(self, ids, table, out=None):
        idx, table, out = prep_embedding_forward(ids, table, out)
        S.embedding_forward(idx.reshape(-1), table, out.reshape(-1, table.shape[1]))
        return out

    def embedding_backward(self, ids, dy, num_embeddings, out=None):
        idx, dy, out = prep_embedding_backward(ids, dy, num_embeddings, out)
        S.embedding_backward(idx.reshape(-1), dy.reshape(-1, out.shape[1]), out)
        return out

    # -- recurrent -----------------------------------------------------------------------
    def _gru_blocks(self, a, sc, dt):
        """Contiguous copies of the GRU's recurrent kernel blocks (z|r and h)."""
        if a.cell != "gru":
            return _empty(dt, 2), _empty(dt, 2)
        u = a.units
        rk_zr = sc.get("rnn_rk_zr", dt, (u, 2 * u))
        rk_h = sc.get("rnn_rk_h", dt, (u, u))
        rk_zr[...] = a.recurrent_kernel[:, :2 * u]
        rk_h[...] = a.recurrent_kernel[:, 2 * u:]
        return rk_zr, rk_h

    def _rnn_forward_kernel(self, a):
        dt = a.x.dtype
        o = a.outs
        n, t, d, u = a.n, a.T, a.d, a.units
        lstm = a.cell == "lstm"
        if n * t == 0:
            o["h_out"][...] = 0 if a.h0 is None else a.h0
            if lstm:
                o["c_out"][...] = 0 if a.c0 is None else a.c0
            return
        bias = a.bias
        if bias is not None and bias.ndim == 2:
            ib, rb = (bias[0], True), (bias[1], True)
        else:
            ib, rb = _or_empty(bias, dt, 1), (_empty(dt, 1), False)
        h0, c0 = _or_empty(a.h0, dt, 2), _or_empty(a.c0, dt, 2)
        mask = (_NO_MASK, False) if a.mask is None else (a.mask, True)
        act, ract, a_act, a_ract = kernel_activations(a)
        sc = self._scratch()
        g = a.recurrent_kernel.shape[1]
        rk_zr, rk_h = self._gru_blocks(a, sc, dt)
        rec_w = 2 * u if (a.cell == "gru" and not a.reset_after) else g
        S.rnn_forward(_CELL_CODE[a.cell], a.reset_after, a.x.reshape(n * t, d), t, a.kernel,
                      a.recurrent_kernel, rk_zr, rk_h, ib[0], rb[0], ib[1], rb[1], h0[0],
                      c0[0], h0[1], c0[1], mask[0], mask[1], o["out"], o["h_out"],
                      o["c_out"] if lstm else _empty(dt, 2), o["hprev"],
                      o["cprev"] if lstm else _empty(dt, 3), o["gates"],
                      sc.get("rnn_proj", dt, (n * t, g)), sc.get("rnn_rec", dt, (n, rec_w)),
                      sc.get("rnn_rh", dt, (n, u)), sc.get("rnn_tmp", dt, (n, u)), act, ract,
                      a_act, a_ract, a.go_backwards)

    def _rnn_backward_kernel(self, a, dy, dh_out, dc_out, hprev, cprev, gates):
        dt = a.x.dtype
        o = a.outs
        n, t, d, u = a.n, a.T, a.d, a.units
        lstm, gru = a.cell == "lstm", a.cell == "gru"
        if n * t == 0:
            for k in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dgates"):
                if o.get(k) is not None:
                    o[k][...] = 0
            for k, v in (("dh0", dh_out), ("dc0", dc_out)):
                if o.get(k) is not None:
                    o[k][...] = 0 if v is None else v
            return
        dbias = o.get("dbias")
        if dbias is not None and dbias.ndim == 2:
            dbi, dbr = dbias[0], dbias[1]
        else:
            dbi, dbr = (dbias if dbias is not None else _empty(dt, 1)), _empty(dt, 1)
        mask = (_NO_MASK, False) if a.mask is None else (a.mask, True)
        dy, has_dy = _or_empty(dy, dt, 3)
        dh_out, has_dh = _or_empty(dh_out, dt, 2)
        dc_out, has_dc = _or_empty(dc_out, dt, 2)
        dx = o.get("dx")
        dx2, has_dx = (_empty(dt, 2), False) if dx is None else (dx.reshape(n * t, d), True)
        dh0, has_dstate = _or_empty(o.get("dh0"), dt, 2)
        dc0 = o.get("dc0") if lstm and o.get("dc0") is not None else _empty(dt, 2)
        act, ract, a_act, a_ract = kernel_activations(a)
        sc = self._scratch()
        rk_zr, rk_h = self._gru_blocks(a, sc, dt)
        g = a.recurrent_kernel.shape[1]
        wr = (2 * u if not a.reset_after else 3 * u) if gru else g
        big = (n * t, 3 * u) if gru else (0, 0)
        small = (n * t, u) if gru and not a.reset_after else (0, 0)
        S.rnn_backward(_CELL_CODE[a.cell], a.reset_after, dy, has_dy, a.x.reshape(n * t, d), t,
                       a.kernel, a.recurrent_kernel, rk_zr, rk_h, hprev,
                       cprev if lstm else _empty(dt, 3), gates, mask[0], mask[1], dh_out,
                       has_dh, dc_out, has_dc, dx2, has_dx, o["dkernel"],
                       o["drecurrent_kernel"], dbi, dbr, dbias is not None, dh0, dc0,
                       has_dstate, o["dgates"], sc.get("rnn_dh", dt, (n, u)),
                       sc.get("rnn_dc", dt, (n, u)), sc.get("rnn_carry", dt, (n, u)),
                       sc.get("rnn_dhn", dt, (n, u)), sc.get("rnn_drec", dt, (n, u)),
                       sc.get("rnn_dgt", dt, (n, wr)), sc.get("rnn_big_in", dt, big),
                       sc.get("rnn_big_rec", dt, big), sc.get("rnn_big_h", dt, small),
                       sc.get("rnn_big_h2", dt, small),
                       sc.get("rnn_small", dt, (u, u) if small[0] else (0, 0)), act, ract,
                       a_act, a_ract, a.go_backwards)
