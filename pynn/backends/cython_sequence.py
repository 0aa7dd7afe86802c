"""The ``cython`` backend's sequence ops (``csrc/sequence.pyx``): embedding gather and
scatter-add, and the SimpleRNN / LSTM / GRU time loops.

:class:`CythonSequenceOps` is mixed into :class:`~pynn.backends.cython_backend.CythonBackend`.
Each op validates its arguments with the reference's ``prep_*`` function, then runs one
kernel without the GIL; per-call scratch comes from the backend's per-thread buffers, so
a warm call allocates nothing.
"""
from __future__ import annotations

import numpy as np

from pynn._ext import sequence as _seq

from .embedding import prep_embedding_backward, prep_embedding_forward
from .recurrent import CompiledRecurrentOps
from .recurrent_args import backward_args, empty_backward, empty_forward, forward_args

__all__ = ["CythonSequenceOps", "SEQUENCE_MODULE"]

#: the extension module (its BLAS is selected with the other kernel modules')
SEQUENCE_MODULE = _seq


def _scratch(backend, size, dt):
    from .cython_backend import _thread_scratch
    return _thread_scratch(backend, "rnn", size, dt)


class CythonSequenceOps(CompiledRecurrentOps):
    """Compiled embedding and recurrent ops (see the module docstring)."""

    def embedding_forward(self, ids, table, out=None):
        idx, table, out = prep_embedding_forward(ids, table, out)
        _seq.embedding_forward(idx.reshape(-1), table, out.reshape(-1, table.shape[1]))
        return out

    def embedding_backward(self, ids, dy, num_embeddings, out=None):
        idx, dy, out = prep_embedding_backward(ids, dy, num_embeddings, out)
        _seq.embedding_backward(idx.reshape(-1), dy.reshape(-1, out.shape[1]), out)
        return out

    # -- recurrent -----------------------------------------------------------------------
    def _rnn_forward_kernel(self, a):
        if empty_forward(a):
            return
        k = forward_args(a, np.uint8)
        extra = a.n * a.units if k.has_rmask else 0
        scratch = _scratch(self, a.n * a.recurrent_kernel.shape[1] + extra, a.x.dtype)
        _seq.rnn_forward(k.cell, a.reset_after, a.x, a.kernel, a.recurrent_kernel, k.ibias,
                         k.rbias, k.has_ibias, k.has_rbias, k.h0, k.c0, k.has_h0, k.has_c0,
                         k.mask, k.has_mask, k.out, k.h_out, k.c_out, k.hprev, k.cprev,
                         k.gates, scratch, k.act, k.ract, k.a_act, k.a_ract, a.go_backwards,
                         k.rmask, k.has_rmask)

    def _rnn_backward_kernel(self, a, dy, dh_out, dc_out, hprev, cprev, gates):
        if empty_backward(a, dh_out, dc_out):
            return
        k = backward_args(a, dy, dh_out, dc_out, hprev, cprev, gates, np.uint8)
        # the state products' transposed recurrent kernel (G x units) follows the rows
        rows = 6 * a.n + a.n * a.T if k.has_rmask else 5 * a.n + a.recurrent_kernel.shape[1]
        scratch = _scratch(self, rows * a.units, a.x.dtype)
        _seq.rnn_backward(k.cell, a.reset_after, k.dy, k.has_dy, a.x, a.kernel,
                          a.recurrent_kernel, k.hprev, k.cprev, k.gates, k.mask, k.has_mask,
                          k.dh_out, k.has_dh, k.dc_out, k.has_dc, k.dx, k.has_dx, k.dkernel,
                          k.drk, k.dbias_in, k.dbias_rec, k.has_dbias, k.dh0, k.dc0,
                          k.has_dstate, k.dgates, scratch, k.act, k.ract, k.a_act, k.a_ract,
                          a.go_backwards, k.rmask, k.has_rmask)
