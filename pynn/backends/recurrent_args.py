"""The compiled backends' recurrent kernel arguments, prepared once for both.

The Cython and Numba time loops take the same flat arguments: every optional array as
an (array, present) pair, an absent one replaced by a shared empty array of the right
dtype and rank (so a warm call allocates nothing), the GRU's ``(2, 3u)`` bias split into
its input and recurrent rows, the activations as codes, the recurrent dropout
multipliers as ``(rmask, has_rmask)``. :func:`forward_args` and
:func:`backward_args` build them from the checked :class:`~pynn.backends.recurrent.RNNArgs`;
each backend keeps only its kernel call (and its scratch). :func:`empty_forward` and
:func:`empty_backward` fill the outputs of a call over no steps or no samples, where no
kernel runs.
"""
from __future__ import annotations

import numpy as np

from .recurrent import kernel_activations

__all__ = ["CELL_CODES", "ForwardArgs", "BackwardArgs", "forward_args", "backward_args",
           "empty_forward", "empty_backward"]

#: cell name -> the kernels' cell code
CELL_CODES = {"simple_rnn": 0, "lstm": 1, "gru": 2}

_EMPTY = {}


def empty(dt, ndim):
    """A shared empty array of ``dt`` and ``ndim`` axes (stands in for absent arrays)."""
    key = (np.dtype(dt).char, ndim)
    a = _EMPTY.get(key)
    if a is None:
        a = _EMPTY[key] = np.zeros((0,) * ndim, dt)
    return a


def _or_empty(a, dt, ndim):
    return (empty(dt, ndim), False) if a is None else (a, True)


def _mask(a, mask_dtype):
    if a.mask is None:
        return empty(mask_dtype, 2), False
    return a.mask.view(mask_dtype), True


class ForwardArgs:
    """Flat arguments of a forward kernel (see the module docstring)."""

    __slots__ = ("cell", "ibias", "rbias", "has_ibias", "has_rbias", "h0", "c0", "has_h0",
                 "has_c0", "mask", "has_mask", "out", "h_out", "c_out", "hprev", "cprev",
                 "gates", "act", "ract", "a_act", "a_ract", "rmask", "has_rmask")


class BackwardArgs:
    """Flat arguments of a backward kernel (see the module docstring)."""

    __slots__ = ("cell", "dy", "has_dy", "hprev", "cprev", "gates", "mask", "has_mask",
                 "dh_out", "has_dh", "dc_out", "has_dc", "dx", "has_dx", "dkernel", "drk",
                 "dbias_in", "dbias_rec", "has_dbias", "dh0", "dc0", "has_dstate", "dgates",
                 "act", "ract", "a_act", "a_ract", "rmask", "has_rmask")


def forward_args(a, mask_dtype):
    """:class:`ForwardArgs` of checked forward :class:`RNNArgs` ``a``; the mask is viewed
    as ``mask_dtype`` (``np.uint8`` for Cython, ``np.bool_`` for Numba)."""
    dt = a.x.dtype
    o = a.outs
    lstm = a.cell == "lstm"
    k = ForwardArgs()
    k.cell = CELL_CODES[a.cell]
    if a.bias is not None and a.bias.ndim == 2:
        k.ibias, k.rbias, k.has_ibias, k.has_rbias = a.bias[0], a.bias[1], True, True
    else:
        (k.ibias, k.has_ibias), (k.rbias, k.has_rbias) = _or_empty(a.bias, dt, 1), \
            (empty(dt, 1), False)
    k.h0, k.has_h0 = _or_empty(a.h0, dt, 2)
    k.c0, k.has_c0 = _or_empty(a.c0, dt, 2)
    k.mask, k.has_mask = _mask(a, mask_dtype)
    k.out, k.h_out, k.hprev, k.gates = o["out"], o["h_out"], o["hprev"], o["gates"]
    k.c_out = o["c_out"] if lstm else empty(dt, 2)
    k.cprev = o["cprev"] if lstm else empty(dt, 3)
    k.act, k.ract, k.a_act, k.a_ract = kernel_activations(a)
    k.rmask, k.has_rmask = _or_empty(a.rmask, dt, 2)
    return k


def backward_args(a, dy, dh_out, dc_out, hprev, cprev, gates, mask_dtype):
    """:class:`BackwardArgs` of checked backward :class:`RNNArgs` ``a`` and the arrays
    :func:`~pynn.backends.recurrent.prep_rnn_backward` returned with it."""
    dt = a.x.dtype
    o = a.outs
    lstm = a.cell == "lstm"
    k = BackwardArgs()
    k.cell = CELL_CODES[a.cell]
    dbias = o.get("dbias")
    k.has_dbias = dbias is not None
    if dbias is not None and dbias.ndim == 2:
        k.dbias_in, k.dbias_rec = dbias[0], dbias[1]
    else:
        k.dbias_in, k.dbias_rec = (dbias if dbias is not None else empty(dt, 1)), empty(dt, 1)
    k.mask, k.has_mask = _mask(a, mask_dtype)
    k.dy, k.has_dy = _or_empty(dy, dt, 3)
    k.dh_out, k.has_dh = _or_empty(dh_out, dt, 2)
    k.dc_out, k.has_dc = _or_empty(dc_out, dt, 2)
    k.dx, k.has_dx = _or_empty(o.get("dx"), dt, 3)
    k.dh0, k.has_dstate = _or_empty(o.get("dh0"), dt, 2)
    k.dc0 = o["dc0"] if lstm and o.get("dc0") is not None else empty(dt, 2)
    k.hprev, k.gates = hprev, gates
    k.cprev = cprev if lstm else empty(dt, 3)
    k.dkernel, k.drk, k.dgates = o["dkernel"], o["drecurrent_kernel"], o["dgates"]
    k.act, k.ract, k.a_act, k.a_ract = kernel_activations(a)
    k.rmask, k.has_rmask = _or_empty(a.rmask, dt, 2)
    return k


def empty_forward(a):
    """Fill the outputs of a forward over zero samples or steps (no kernel runs): the
    final state is the initial one. Returns whether it did (``n * T == 0``)."""
    if a.n * a.T != 0:
        return False
    o = a.outs
    o["h_out"][...] = 0 if a.h0 is None else a.h0
    if a.cell == "lstm":
        o["c_out"][...] = 0 if a.c0 is None else a.c0
    return True


def empty_backward(a, dh_out, dc_out):
    """Fill the outputs of a backward over zero samples or steps (no kernel runs):
    the weight gradients are zero, the state gradients pass ``dh_out``/``dc_out``
    through. Returns whether it did (``n * T == 0``)."""
    if a.n * a.T != 0:
        return False
    o = a.outs
    for k in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dgates"):
        if o.get(k) is not None:
            o[k][...] = 0
    for k, v in (("dh0", dh_out), ("dc0", dc_out)):
        if o.get(k) is not None:
            o[k][...] = 0 if v is None else v
    return True
