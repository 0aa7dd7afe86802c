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
from .recurrent import CompiledRecurrentOps
from .recurrent_args import (backward_args, empty, empty_backward, empty_forward,
                             forward_args)

__all__ = ["NumbaSequenceOps"]


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
            return empty(dt, 2), empty(dt, 2)
        u = a.units
        rk_zr = sc.get("rnn_rk_zr", dt, (u, 2 * u))
        rk_h = sc.get("rnn_rk_h", dt, (u, u))
        rk_zr[...] = a.recurrent_kernel[:, :2 * u]
        rk_h[...] = a.recurrent_kernel[:, 2 * u:]
        return rk_zr, rk_h

    def _rec_blocks(self, a, k, sc, dt):
        """Contiguous copies of the recurrent kernel's gate blocks ``(blocks, u, u)``, for
        recurrent dropout (empty without it)."""
        if not k.has_rmask:
            return empty(dt, 3)
        u = a.units
        nb = a.recurrent_kernel.shape[1] // u
        rkb = sc.get("rnn_rkb", dt, (nb, u, u))
        for b in range(nb):
            rkb[b] = a.recurrent_kernel[:, b * u:(b + 1) * u]
        return rkb

    def _rnn_forward_kernel(self, a):
        if empty_forward(a):
            return
        dt = a.x.dtype
        n, t, d, u = a.n, a.T, a.d, a.units
        k = forward_args(a, np.bool_)
        sc = self._scratch()
        g = a.recurrent_kernel.shape[1]
        rk_zr, rk_h = self._gru_blocks(a, sc, dt)
        rec_w = 2 * u if (a.cell == "gru" and not a.reset_after) else g
        dn = (n, u) if k.has_rmask else (0, 0)
        S.rnn_forward(k.cell, a.reset_after, a.x.reshape(n * t, d), t, a.kernel,
                      a.recurrent_kernel, rk_zr, rk_h, k.ibias, k.rbias, k.has_ibias,
                      k.has_rbias, k.h0, k.c0, k.has_h0, k.has_c0, k.mask, k.has_mask, k.out,
                      k.h_out, k.c_out, k.hprev, k.cprev, k.gates,
                      sc.get("rnn_proj", dt, (n * t, g)), sc.get("rnn_rec", dt, (n, rec_w)),
                      sc.get("rnn_rh", dt, (n, u)), sc.get("rnn_tmp", dt, (n, u)), k.act,
                      k.ract, k.a_act, k.a_ract, a.go_backwards, k.rmask, k.has_rmask,
                      self._rec_blocks(a, k, sc, dt), sc.get("rnn_hm", dt, dn),
                      sc.get("rnn_recb", dt, dn))

    def _rnn_backward_kernel(self, a, dy, dh_out, dc_out, hprev, cprev, gates):
        if empty_backward(a, dh_out, dc_out):
            return
        dt = a.x.dtype
        n, t, d, u = a.n, a.T, a.d, a.units
        gru = a.cell == "gru"
        k = backward_args(a, dy, dh_out, dc_out, hprev, cprev, gates, np.bool_)
        dx2 = k.dx.reshape(n * t, d) if k.has_dx else empty(dt, 2)
        sc = self._scratch()
        rk_zr, rk_h = self._gru_blocks(a, sc, dt)
        g = a.recurrent_kernel.shape[1]
        wr = (2 * u if not a.reset_after else 3 * u) if gru else g
        big = (n * t, 3 * u) if gru else (0, 0)
        small = (n * t, u) if gru and not a.reset_after else (0, 0)
        dn = (n, u) if k.has_rmask else (0, 0)
        dnt = (n * t, u) if k.has_rmask else (0, 0)
        S.rnn_backward(k.cell, a.reset_after, k.dy, k.has_dy, a.x.reshape(n * t, d), t,
                       a.kernel, a.recurrent_kernel, rk_zr, rk_h, k.hprev, k.cprev, k.gates,
                       k.mask, k.has_mask, k.dh_out, k.has_dh, k.dc_out, k.has_dc, dx2,
                       k.has_dx, k.dkernel, k.drk, k.dbias_in, k.dbias_rec, k.has_dbias,
                       k.dh0, k.dc0, k.has_dstate, k.dgates, sc.get("rnn_dh", dt, (n, u)),
                       sc.get("rnn_dc", dt, (n, u)), sc.get("rnn_carry", dt, (n, u)),
                       sc.get("rnn_dhn", dt, (n, u)), sc.get("rnn_drec", dt, (n, u)),
                       sc.get("rnn_dgt", dt, (n, wr)), sc.get("rnn_big_in", dt, big),
                       sc.get("rnn_big_rec", dt, big), sc.get("rnn_big_h", dt, small),
                       sc.get("rnn_big_h2", dt, small),
                       sc.get("rnn_small", dt, (u, u) if small[0] else (0, 0)), k.act, k.ract,
                       k.a_act, k.a_ract, a.go_backwards, k.rmask, k.has_rmask,
                       self._rec_blocks(a, k, sc, dt), sc.get("rnn_dgb", dt, dn),
                       sc.get("rnn_tmpb", dt, dn), sc.get("rnn_hm_all", dt, dnt),
                       sc.get("rnn_dg_all", dt, dnt),
                       sc.get("rnn_small2", dt, (u, u) if k.has_rmask else (0, 0)))
