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
from .recurrent import CompiledRecurrentOps, kernel_activations

__all__ = ["CythonSequenceOps", "SEQUENCE_MODULE"]

#: the extension module (its BLAS is selected with the other kernel modules')
SEQUENCE_MODULE = _seq

_CELL_CODE = {"simple_rnn": 0, "lstm": 1, "gru": 2}
_NO_MASK = np.zeros((0, 0), np.uint8)
_EMPTY = {}


def _empty(dt, ndim):
    """A shared empty array of ``dt`` and ``ndim`` axes (stands in for absent arrays)."""
    key = (dt.char, ndim)
    a = _EMPTY.get(key)
    if a is None:
        a = _EMPTY[key] = np.zeros((0,) * ndim, dt)
    return a


def _or_empty(a, dt, ndim):
    return (_empty(dt, ndim), False) if a is None else (a, True)


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
        dt = a.x.dtype
        o = a.outs
        lstm = a.cell == "lstm"
        bias = a.bias
        if bias is not None and bias.ndim == 2:
            ib, rb = (bias[0], True), (bias[1], True)
        else:
            ib, rb = _or_empty(bias, dt, 1), (_empty(dt, 1), False)
        h0, c0 = _or_empty(a.h0, dt, 2), _or_empty(a.c0, dt, 2)
        mask = (_NO_MASK, False) if a.mask is None else (a.mask.view(np.uint8), True)
        act, ract, a_act, a_ract = kernel_activations(a)
        scratch = _scratch(self, a.n * a.recurrent_kernel.shape[1], dt)
        _seq.rnn_forward(_CELL_CODE[a.cell], a.reset_after, a.x, a.kernel, a.recurrent_kernel,
                         ib[0], rb[0], ib[1], rb[1], h0[0], c0[0], h0[1], c0[1], mask[0],
                         mask[1], o["out"], o["h_out"],
                         o["c_out"] if lstm else _empty(dt, 2), o["hprev"],
                         o["cprev"] if lstm else _empty(dt, 3), o["gates"], scratch, act, ract,
                         a_act, a_ract, a.go_backwards)

    def _rnn_backward_kernel(self, a, dy, dh_out, dc_out, hprev, cprev, gates):
        dt = a.x.dtype
        o = a.outs
        lstm = a.cell == "lstm"
        if a.n * a.T == 0:
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
        mask = (_NO_MASK, False) if a.mask is None else (a.mask.view(np.uint8), True)
        dy, has_dy = _or_empty(dy, dt, 3)
        dh_out, has_dh = _or_empty(dh_out, dt, 2)
        dc_out, has_dc = _or_empty(dc_out, dt, 2)
        dx, has_dx = _or_empty(o.get("dx"), dt, 3)
        dh0, has_dstate = _or_empty(o.get("dh0"), dt, 2)
        dc0 = o.get("dc0") if lstm and o.get("dc0") is not None else _empty(dt, 2)
        act, ract, a_act, a_ract = kernel_activations(a)
        scratch = _scratch(self, 5 * a.n * a.units, dt)
        _seq.rnn_backward(_CELL_CODE[a.cell], a.reset_after, dy, has_dy, a.x, a.kernel,
                          a.recurrent_kernel, hprev, cprev if lstm else _empty(dt, 3), gates,
                          mask[0], mask[1], dh_out, has_dh, dc_out, has_dc, dx, has_dx,
                          o["dkernel"], o["drecurrent_kernel"], dbi, dbr, dbias is not None,
                          dh0, dc0, has_dstate, o["dgates"], scratch, act, ract, a_act, a_ract,
                          a.go_backwards)
