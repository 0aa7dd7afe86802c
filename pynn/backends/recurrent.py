"""Recurrent ops of the reference backend: SimpleRNN, LSTM and GRU over whole sequences.

:class:`RecurrentOps` is mixed into :class:`~pynn.backends.base.Backend`; ``prep_*``
are the argument checks every backend's versions start with. Keras's layouts and gate
orders (so Keras weights load unchanged):

* SimpleRNN: ``h = act(x @ kernel + h_prev @ recurrent_kernel + bias)``; kernel
  ``(d, u)``, recurrent kernel ``(u, u)``, bias ``(u,)``.
* LSTM: gates i, f, c, o: ``z = x @ kernel + h_prev @ recurrent_kernel + bias`` with
  kernel ``(d, 4u)``, recurrent kernel ``(u, 4u)``, bias ``(4u,)``;
  ``i, f, o = ract(z_i, z_f, z_o)``, ``g = act(z_c)``, ``c = f * c_prev + i * g``,
  ``h = o * act(c)``.
* GRU: gates z, r, h; kernel ``(d, 3u)``, recurrent kernel ``(u, 3u)``.
  ``reset_after=True`` (Keras's default): bias ``(2, 3u)`` (input bias, recurrent bias),
  ``hh = act(x_h + r * (h_prev @ rk_h + rb_h))``; ``reset_after=False``: bias ``(3u,)``,
  ``hh = act(x_h + (r * h_prev) @ rk_h)``. Then ``h = z * h_prev + (1 - z) * hh``.

Sequences are ``x (n, T, d)``. Each forward op computes the input projection of all
timesteps as one product, then per step the recurrent product and the gate epilogue.
With ``go_backwards`` the steps run from ``t = T - 1`` down to 0 and ``out`` (the
output sequence, ``(n, T, u)``) is in the order of the steps, as Keras returns it.
``mask (n, T)`` (bool, by input time): at a masked step the state is kept and the output
repeats the previous step's output (zeros before the first unmasked step), as Keras.

What backward needs is written into caller-supplied workspaces, indexed by input time
``t`` (not by step): ``hprev[:, t]`` (and ``cprev`` for the LSTM) holds the state the
step reading ``x[:, t]`` started from, ``gates[:, t]`` the activated gates of that step
(SimpleRNN: the new state ``(u)``; LSTM: ``i, f, g, o`` ``(4u)``; GRU ``(4u)``:
``z, r, hh`` and, with ``reset_after``, the recurrent candidate
``h_prev @ rk_h + rb_h``, without it ``r * h_prev``). Backward (backpropagation through
time) runs one product per step for the state gradient (two for GRU without
``reset_after``), writes the pre-activation gradients into ``dgates`` (``(n, T, u)``,
``(n, T, 4u)``, GRU ``(n, T, 4u)`` as ``dz, dr, d(recurrent candidate), d(input
candidate)``) and forms the weight gradients after the loop as a few large products.
A layer keeps these arrays and reuses them, so a warm step allocates nothing.

Recurrent dropout (Keras 3's ``recurrent_dropout``): ``recurrent_dropout_mask (n, k*u)``
(``k`` = 1 SimpleRNN, 4 LSTM, 3 GRU, the kernel's gate blocks) holds one multiplier per
sample, gate block and unit, fixed over the sequence (Keras draws ``k`` masks of
``(n, u)`` per sequence; its ``implementation=1`` cell, which Keras switches to whenever
``recurrent_dropout > 0``). Block ``j`` multiplies ``h_prev`` where it enters gate ``j``'s
recurrent product: ``sum_j (h_prev * m_j) @ rk_j``. Nothing else reads the mask: the
LSTM's cell state and the GRU's update ``z * h_prev`` use ``h_prev`` itself (GRU without
``reset_after``: ``hh = act(x_h + (r * (h_prev * m_h)) @ rk_h)``, and the ``gates``
workspace holds ``r * (h_prev * m_h)``). The gradient reaching ``h_prev`` through each
product is multiplied by its block, and ``drecurrent_kernel``'s block ``j`` is
``(Hprev * m_j)^T dG_j``. ``None`` (the default): no dropout, no extra work.

Activations: any name of :data:`~pynn.backends.activation_codes.ACTIVATIONS` whose
derivative follows from its output and that is elementwise (not those of
:data:`~pynn.backends.activation_codes.UNFUSED` or ``softmax``).
"""
from __future__ import annotations

import numpy as np

from .activation_codes import UNFUSED, activation_code
from .validation import (ALIASING, _aligned, activation_alpha, as_float, check_aliasing,
                         check_out, work_dtype)

__all__ = ["RecurrentOps", "CompiledRecurrentOps", "RNN_CELLS", "prep_rnn_forward",
           "prep_rnn_backward", "gate_widths", "kernel_activations"]

#: cell -> (kernel columns per unit, workspace gate columns per unit)
RNN_CELLS = {"simple_rnn": (1, 1), "lstm": (4, 4), "gru": (3, 4)}

_FWD_OUTS = ("out", "h_out", "c_out", "hprev", "cprev", "gates")
_BWD_OUTS = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0", "dc0", "dgates")

ALIASING.update({f"{cell}_forward": {k: () for k in _FWD_OUTS if cell == "lstm" or
                                     k not in ("c_out", "cprev")} for cell in RNN_CELLS})
ALIASING.update({f"{cell}_backward": {k: () for k in _BWD_OUTS if cell == "lstm" or
                                      k != "dc0"} for cell in RNN_CELLS})


def gate_widths(cell, units):
    """``(kernel columns, workspace gate columns)`` of ``cell`` with ``units``."""
    k, g = RNN_CELLS[cell]
    return k * units, g * units


def _activation(op, name, what):
    activation_code(name)  # an unknown name raises here
    if name in UNFUSED or name == "softmax":
        raise ValueError(f"{op}: {what} {name!r} is not supported in recurrent cells "
                         f"(its derivative does not follow from its output)")
    return name


def _mask(op, mask, n, t):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{op}: mask must be boolean, got dtype {m.dtype}")
    if m.shape != (n, t):
        raise ValueError(f"{op}: mask must have shape (n, T) = {(n, t)} for x of that batch "
                         f"and length, got {m.shape}")
    return _aligned(np.ascontiguousarray(m, dtype=np.bool_))


def _recurrent_dropout_mask(op, rmask, dt, x, rk):
    """The checked recurrent dropout multipliers ``(n, k*u)`` in the op's dtype (or None)."""
    if rmask is None:
        return None
    m = np.asarray(rmask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{op}: recurrent_dropout_mask must be a real array, got dtype "
                        f"{m.dtype}")
    want = (x.shape[0], rk.shape[1])
    if m.shape != want:
        k = rk.shape[1] // rk.shape[0]
        raise ValueError(f"{op}: recurrent_dropout_mask must have shape (n, {k} * units) = "
                         f"{want} for x {x.shape} and recurrent_kernel {rk.shape}, got "
                         f"{m.shape}")
    return _aligned(np.ascontiguousarray(m, dtype=dt))


def _bias_shape(cell, units, reset_after):
    if cell == "gru":
        return (2, 3 * units) if reset_after else (3 * units,)
    return (RNN_CELLS[cell][0] * units,)


class RNNArgs:
    """Checked arguments of a recurrent op (see :func:`prep_rnn_forward`)."""

    __slots__ = ("cell", "x", "kernel", "recurrent_kernel", "bias", "h0", "c0", "mask",
                 "activation", "recurrent_activation", "go_backwards", "reset_after",
                 "n", "T", "d", "units", "outs", "rmask")


def _weights(op, cell, x, kernel, recurrent_kernel, bias, reset_after):
    dt = work_dtype(x, "x")
    x = as_float(x, dt, "x", 3)
    kernel = as_float(kernel, dt, "kernel", 2)
    rk = as_float(recurrent_kernel, dt, "recurrent_kernel", 2)
    n, t, d = x.shape
    units = rk.shape[0]
    kcols = RNN_CELLS[cell][0] * units
    if units < 1 or rk.shape != (units, kcols):
        raise ValueError(f"{op}: recurrent_kernel must be (units, {RNN_CELLS[cell][0]} * units)"
                         f", got {rk.shape}")
    if kernel.shape != (d, kcols):
        raise ValueError(f"{op}: kernel must be (input_dim, {RNN_CELLS[cell][0]} * units) = "
                         f"{(d, kcols)} for x {x.shape} and recurrent_kernel {rk.shape}, got "
                         f"{kernel.shape}")
    if bias is not None:
        bias = as_float(bias, dt, "bias")
        want = _bias_shape(cell, units, reset_after)
        if bias.shape != want:
            raise ValueError(f"{op}: bias must have shape {want}, got {bias.shape}")
    return dt, x, kernel, rk, bias, (n, t, d, units)


def _state(op, name, s, dt, n, units):
    if s is None:
        return None
    s = as_float(s, dt, name, 2)
    if s.shape != (n, units):
        raise ValueError(f"{op}: {name} must have shape (n, units) = {(n, units)}, got "
                         f"{s.shape}")
    return s


def prep_rnn_forward(cell, x, kernel, recurrent_kernel, bias, h0, c0, mask, activation,
                     recurrent_activation, go_backwards, reset_after, outs,
                     recurrent_dropout_mask=None):
    """Checked arguments of ``<cell>_forward`` as an :class:`RNNArgs`; ``outs`` maps the
    output names to the arrays given (``None``: allocated here)."""
    op = f"{cell}_forward"
    raw = dict(x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias, h0=h0,
               c0=c0, mask=mask, recurrent_dropout_mask=recurrent_dropout_mask)
    a = RNNArgs()
    a.cell = cell
    a.reset_after = bool(reset_after)
    dt, a.x, a.kernel, a.recurrent_kernel, a.bias, (n, t, d, u) = _weights(
        op, cell, x, kernel, recurrent_kernel, bias, a.reset_after)
    a.n, a.T, a.d, a.units = n, t, d, u
    a.h0 = _state(op, "h0", h0, dt, n, u)
    a.c0 = _state(op, "c0", c0, dt, n, u)
    a.mask = _mask(op, mask, n, t)
    a.rmask = _recurrent_dropout_mask(op, recurrent_dropout_mask, dt, a.x, a.recurrent_kernel)
    a.activation = _activation(op, activation, "activation")
    a.recurrent_activation = _activation(op, recurrent_activation, "recurrent_activation")
    a.go_backwards = bool(go_backwards)
    g = RNN_CELLS[cell][1] * u
    shapes = {"out": (n, t, u), "h_out": (n, u), "c_out": (n, u), "hprev": (n, t, u),
              "cprev": (n, t, u), "gates": (n, t, g)}
    a.outs = {k: check_out(v, shapes[k], dt, k) for k, v in outs.items()}
    check_aliasing(op, list(a.outs.items()),
                   [(k, v) for k, v in raw.items() if k in ALIASING_INPUTS[cell]])
    return a


#: the array inputs of each cell's ops (forward; backward adds the gradients)
ALIASING_INPUTS = {"simple_rnn": ("x", "kernel", "recurrent_kernel", "bias", "h0", "mask",
                                  "recurrent_dropout_mask"),
                   "lstm": ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0", "mask",
                            "recurrent_dropout_mask"),
                   "gru": ("x", "kernel", "recurrent_kernel", "bias", "h0", "mask",
                           "recurrent_dropout_mask")}


def prep_rnn_backward(cell, dy, dh_out, dc_out, x, kernel, recurrent_kernel, hprev, cprev,
                      gates, mask, activation, recurrent_activation, go_backwards,
                      reset_after, use_bias, wanted, outs, recurrent_dropout_mask=None):
    """Checked arguments of ``<cell>_backward``: ``(args, dy, dh_out, dc_out, hprev, cprev,
    gates)``; ``wanted`` maps ``dx``, ``dbias``, ``dh0``/``dc0`` to whether they are asked
    for (an output not asked for must be ``None`` and stays ``None``)."""
    op = f"{cell}_backward"
    raw = dict(dy=dy, dh_out=dh_out, dc_out=dc_out, x=x, kernel=kernel,
               recurrent_kernel=recurrent_kernel, hprev=hprev, cprev=cprev, gates=gates,
               mask=mask, recurrent_dropout_mask=recurrent_dropout_mask)
    a = RNNArgs()
    a.cell = cell
    a.reset_after = bool(reset_after)
    dt, a.x, a.kernel, a.recurrent_kernel, _, (n, t, d, u) = _weights(
        op, cell, x, kernel, recurrent_kernel, None, a.reset_after)
    a.n, a.T, a.d, a.units = n, t, d, u
    a.bias = None
    a.mask = _mask(op, mask, n, t)
    a.rmask = _recurrent_dropout_mask(op, recurrent_dropout_mask, dt, a.x, a.recurrent_kernel)
    a.activation = _activation(op, activation, "activation")
    a.recurrent_activation = _activation(op, recurrent_activation, "recurrent_activation")
    a.go_backwards = bool(go_backwards)
    g = RNN_CELLS[cell][1] * u

    def seq(name, v, width):
        if v is None:
            return None
        v = as_float(v, dt, name, 3)
        if v.shape != (n, t, width):
            raise ValueError(f"{op}: {name} must have shape {(n, t, width)} for x {a.x.shape}"
                             f", got {v.shape}")
        return v

    dy = seq("dy", dy, u)
    hprev = seq("hprev", hprev, u)
    gates = seq("gates", gates, g)
    if hprev is None or gates is None:
        raise ValueError(f"{op}: hprev and gates (the forward workspaces) are required")
    if cell == "lstm":
        cprev = seq("cprev", cprev, u)
        if cprev is None:
            raise ValueError(f"{op}: cprev (the forward workspace) is required")
    dh_out = _state(op, "dh_out", dh_out, dt, n, u)
    dc_out = _state(op, "dc_out", dc_out, dt, n, u) if cell == "lstm" else None
    bias_shape = _bias_shape(cell, u, a.reset_after)
    shapes = {"dx": (n, t, d), "dkernel": a.kernel.shape,
              "drecurrent_kernel": a.recurrent_kernel.shape, "dbias": bias_shape,
              "dh0": (n, u), "dc0": (n, u), "dgates": (n, t, g)}
    checked = {}
    for name, v in outs.items():
        if not wanted.get(name, True) or (name == "dbias" and not use_bias):
            if v is not None:
                raise ValueError(f"{op}: {name} was given but its gradient was not asked for")
            checked[name] = None
        else:
            checked[name] = check_out(v, shapes[name], dt, name)
    a.outs = checked
    check_aliasing(op, list(checked.items()),
                   [(k, v) for k, v in raw.items() if v is not None])
    return a, dy, dh_out, dc_out, hprev, cprev, gates


def kernel_activations(a):
    """``(activation code, recurrent activation code, alpha, recurrent alpha)`` of checked
    :class:`RNNArgs`, as the compiled kernels take them."""
    return (activation_code(a.activation), activation_code(a.recurrent_activation),
            activation_alpha(a.activation, None), activation_alpha(a.recurrent_activation, None))


def _steps(a):
    """``(step, t)`` pairs in processing order."""
    ts = range(a.T - 1, -1, -1) if a.go_backwards else range(a.T)
    return list(enumerate(ts))


class RecurrentOps:
    """Reference SimpleRNN / LSTM / GRU forward and backward ops (mixed into Backend)."""

    # -- helpers -------------------------------------------------------------------------
    def _rnn_act(self, z, name):
        return self.activation_forward(z, name, out=z)

    def _rnn_dact(self, dy, y, name):
        return self.activation_backward(dy, y, name)

    @staticmethod
    def _rnn_rec(h, rk, rm):
        """The recurrent product ``h @ rk``; with dropout multipliers ``rm`` (the columns
        of ``rk``), ``sum_j (h * m_j) @ rk_j`` over the gate blocks."""
        if rm is None:
            return h @ rk
        u = h.shape[1]
        out = np.empty((h.shape[0], rk.shape[1]), h.dtype)
        for j in range(rk.shape[1] // u):
            b = slice(j * u, (j + 1) * u)
            out[:, b] = (h * rm[:, b]) @ rk[:, b]
        return out

    @staticmethod
    def _rnn_rec_grad(dg, rk, rm):
        """The gradient reaching ``h`` through :meth:`_rnn_rec` from ``dg`` (its output's
        gradient): ``dg @ rk^T``, or ``sum_j (dg_j @ rk_j^T) * m_j``."""
        if rm is None:
            return dg @ rk.T
        u = rk.shape[0]
        dh = np.zeros((dg.shape[0], u), dg.dtype)
        for j in range(rk.shape[1] // u):
            b = slice(j * u, (j + 1) * u)
            dh += (dg[:, b] @ rk[:, b].T) * rm[:, b]
        return dh

    def _rnn_project(self, a, width_bias):
        """``x @ kernel (+ input bias)`` for all timesteps as one product: (n, T, G)."""
        n, t = a.n, a.T
        ib = None
        if a.bias is not None:
            ib = a.bias[0] if a.bias.ndim == 2 else a.bias
        xw = a.x.reshape(n * t, a.d) @ a.kernel
        if ib is not None:
            xw = xw + ib
        return xw.reshape(n, t, width_bias)

    def _rnn_forward(self, a, step):
        """The time loop shared by the cells: ``step(t, xw_t, h, c) -> (h, c)`` writes
        the workspaces of input time ``t``; masking and the output rule are here."""
        o = a.outs
        n, u = a.n, a.units
        dt = a.x.dtype
        xw = self._rnn_project(a, a.kernel.shape[1])
        h = np.zeros((n, u), dt) if a.h0 is None else a.h0.copy()
        c = None
        if a.cell == "lstm":
            c = np.zeros((n, u), dt) if a.c0 is None else a.c0.copy()
        prev_out = np.zeros((n, u), dt)
        for s, t in _steps(a):
            o["hprev"][:, t] = h
            if c is not None:
                o["cprev"][:, t] = c
            h_new, c_new = step(t, xw[:, t], h, c)
            if a.mask is not None:
                m = a.mask[:, t][:, None]
                h_new = np.where(m, h_new, h)
                if c is not None:
                    c_new = np.where(m, c_new, c)
                y = np.where(m, h_new, prev_out)
            else:
                y = h_new
            o["out"][:, s] = y
            prev_out, h, c = y, h_new, c_new
        o["h_out"][...] = h
        if c is not None:
            o["c_out"][...] = c

    def _rnn_backward(self, a, dy, dh_out, dc_out, step):
        """The reversed time loop shared by the cells: ``step(t, dh, dc) -> (dh_prev,
        dc_prev)`` writes ``dgates[:, t]``; masking, the output carry and the state
        gradients are here. Returns nothing; the caller forms the weight gradients."""
        o = a.outs
        n, u = a.n, a.units
        dt = a.x.dtype
        dh = np.zeros((n, u), dt) if dh_out is None else dh_out.copy()
        dc = None
        if a.cell == "lstm":
            dc = np.zeros((n, u), dt) if dc_out is None else dc_out.copy()
        carry = np.zeros((n, u), dt)  # gradient reaching the output a masked step repeats
        for s, t in reversed(_steps(a)):
            if dy is not None:
                carry = carry + dy[:, s]
            if a.mask is None:
                dh = dh + carry
                carry = np.zeros((n, u), dt)
                dh, dc = step(t, dh, dc)
                continue
            m = a.mask[:, t][:, None]
            dh_in = dh + np.where(m, carry, 0)
            carry = np.where(m, 0, carry)
            dh_p, dc_p = step(t, np.where(m, dh_in, 0).astype(dt),
                              None if dc is None else np.where(m, dc, 0).astype(dt))
            o["dgates"][:, t] = np.where(m, o["dgates"][:, t], 0)
            dh = np.where(m, dh_p, dh_in)
            if dc is not None:
                dc = np.where(m, dc_p, dc)
        if o.get("dh0") is not None:
            o["dh0"][...] = dh
        if o.get("dc0") is not None:
            o["dc0"][...] = dc

    def _rnn_weight_grads(self, a, hprev, rec_cols, in_cols, rec_h=None):
        """Weight and input gradients after the loop, as a few large products:
        ``dkernel = X^T dG_in``, ``drecurrent_kernel = Hprev^T dG_rec``, ``dx = dG_in
        kernel^T``. ``in_cols``/``rec_cols`` pick the columns of ``dgates`` that are the
        input / recurrent pre-activation gradients; ``rec_h`` (GRU without reset_after)
        replaces ``hprev`` for the recurrent candidate's block."""
        o = a.outs
        n, t, u, d = a.n, a.T, a.units, a.d
        dg = o["dgates"].reshape(n * t, o["dgates"].shape[2])
        dgi = dg[:, in_cols]
        dgr = dg[:, rec_cols]
        x2 = a.x.reshape(n * t, d)
        o["dkernel"][...] = x2.T @ dgi
        hp = hprev.reshape(n * t, u)
        drk = o["drecurrent_kernel"]
        reads_h = drk.shape[1] if rec_h is None else 2 * u  # the blocks that read h_prev
        if a.rmask is None:
            drk[:, :reads_h] = hp.T @ dgr[:, :reads_h]
        else:
            for j in range(reads_h // u):
                b = slice(j * u, (j + 1) * u)
                hm = (hprev * a.rmask[:, None, b]).reshape(n * t, u)
                drk[:, b] = hm.T @ dgr[:, b]
        if rec_h is not None:
            drk[:, 2 * u:] = rec_h.reshape(n * t, u).T @ dgr[:, 2 * u:]
        if o.get("dbias") is not None:
            sums_in = dgi.astype(np.float64).sum(axis=0)
            if o["dbias"].ndim == 2:
                o["dbias"][0] = sums_in
                o["dbias"][1] = dgr.astype(np.float64).sum(axis=0)
            else:
                o["dbias"][...] = sums_in
        if o.get("dx") is not None:
            o["dx"][...] = (dgi @ a.kernel.T).reshape(n, t, d)

    @staticmethod
    def _rnn_result(a, names):
        return tuple(a.outs.get(k) for k in names)

    # -- SimpleRNN -----------------------------------------------------------------------
    def simple_rnn_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                           out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                           go_backwards=False, recurrent_dropout_mask=None):
        """SimpleRNN over ``x (n, T, d)``: ``(out, h_out, hprev, gates)`` (see the module
        docstring; ``h0`` defaults to zeros, ``gates (n, T, u)`` the new states)."""
        a = prep_rnn_forward("simple_rnn", x, kernel, recurrent_kernel, bias, h0, None, mask,
                             activation, "sigmoid", go_backwards, False,
                             dict(out=out, h_out=h_out, hprev=hprev, gates=gates),
                             recurrent_dropout_mask)
        rk, g = a.recurrent_kernel, a.outs["gates"]

        def step(t, xw, h, c):
            z = xw + self._rnn_rec(h, rk, a.rmask)
            g[:, t] = self._rnn_act(z, a.activation)
            return g[:, t].copy(), None

        self._rnn_forward(a, step)
        return self._rnn_result(a, ("out", "h_out", "hprev", "gates"))

    def simple_rnn_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                            dh_out=None, input_grad=True, bias_grad=True, state_grad=True,
                            dx=None, dkernel=None, drecurrent_kernel=None, dbias=None,
                            dh0=None, dgates=None, activation="tanh", go_backwards=False,
                            recurrent_dropout_mask=None):
        """Backpropagation through time of :meth:`simple_rnn_forward`: ``(dx, dkernel,
        drecurrent_kernel, dbias, dh0)`` (``None`` where not asked for). ``dy (n, T, u)``
        is the gradient of ``out`` (``None``: zero), ``dh_out`` that of ``h_out``."""
        a, dy, dh_out, _, hprev, _, gates = prep_rnn_backward(
            "simple_rnn", dy, dh_out, None, x, kernel, recurrent_kernel, hprev, None, gates,
            mask, activation, "sigmoid", go_backwards, False, bias_grad,
            dict(dx=input_grad, dh0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), recurrent_dropout_mask)
        rk, dg = a.recurrent_kernel, a.outs["dgates"]

        def step(t, dh, dc):
            dg[:, t] = self._rnn_dact(dh, gates[:, t], a.activation)
            return self._rnn_rec_grad(dg[:, t], rk, a.rmask), None

        self._rnn_backward(a, dy, dh_out, None, step)
        cols = slice(None)
        self._rnn_weight_grads(a, hprev, cols, cols)
        return self._rnn_result(a, ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0"))

    # -- LSTM ----------------------------------------------------------------------------
    def lstm_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, c0=None,
                     mask=None, out=None, h_out=None, c_out=None, hprev=None, cprev=None,
                     gates=None, activation="tanh", recurrent_activation="sigmoid",
                     go_backwards=False, recurrent_dropout_mask=None):
        """LSTM over ``x (n, T, d)``: ``(out, h_out, c_out, hprev, cprev, gates)`` (see
        the module docstring; ``gates (n, T, 4u)`` holds the activated i, f, g, o)."""
        a = prep_rnn_forward("lstm", x, kernel, recurrent_kernel, bias, h0, c0, mask,
                             activation, recurrent_activation, go_backwards, False,
                             dict(out=out, h_out=h_out, c_out=c_out, hprev=hprev,
                                  cprev=cprev, gates=gates), recurrent_dropout_mask)
        rk, g, u = a.recurrent_kernel, a.outs["gates"], a.units

        def step(t, xw, h, c):
            z = xw + self._rnn_rec(h, rk, a.rmask)
            for k, name in enumerate((a.recurrent_activation, a.recurrent_activation,
                                      a.activation, a.recurrent_activation)):
                blk = np.ascontiguousarray(z[:, k * u:(k + 1) * u])
                g[:, t, k * u:(k + 1) * u] = self._rnn_act(blk, name)
            i, f, gg, o = (g[:, t, k * u:(k + 1) * u] for k in range(4))
            c_new = f * c + i * gg
            h_new = o * self._rnn_act(c_new.copy(), a.activation)
            return h_new, c_new

        self._rnn_forward(a, step)
        return self._rnn_result(a, ("out", "h_out", "c_out", "hprev", "cprev", "gates"))

    def lstm_backward(self, dy, x, kernel, recurrent_kernel, hprev, cprev, gates, mask=None,
                      dh_out=None, dc_out=None, input_grad=True, bias_grad=True,
                      state_grad=True, dx=None, dkernel=None, drecurrent_kernel=None,
                      dbias=None, dh0=None, dc0=None, dgates=None, activation="tanh",
                      recurrent_activation="sigmoid", go_backwards=False,
                      recurrent_dropout_mask=None):
        """Backpropagation through time of :meth:`lstm_forward`: ``(dx, dkernel,
        drecurrent_kernel, dbias, dh0, dc0)`` (``None`` where not asked for)."""
        a, dy, dh_out, dc_out, hprev, cprev, gates = prep_rnn_backward(
            "lstm", dy, dh_out, dc_out, x, kernel, recurrent_kernel, hprev, cprev, gates,
            mask, activation, recurrent_activation, go_backwards, False, bias_grad,
            dict(dx=input_grad, dh0=state_grad, dc0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dc0=dc0, dgates=dgates), recurrent_dropout_mask)
        rk, dg, u = a.recurrent_kernel, a.outs["dgates"], a.units
        act, ract = a.activation, a.recurrent_activation

        def step(t, dh, dc):
            i, f, gg, o = (gates[:, t, k * u:(k + 1) * u] for k in range(4))
            c = f * cprev[:, t] + i * gg
            tc = self._rnn_act(c.copy(), act)
            dc = dc + self._rnn_dact(dh * o, tc, act)
            dg[:, t, 0:u] = self._rnn_dact(dc * gg, i, ract)
            dg[:, t, u:2 * u] = self._rnn_dact(dc * cprev[:, t], f, ract)
            dg[:, t, 2 * u:3 * u] = self._rnn_dact(dc * i, gg, act)
            dg[:, t, 3 * u:] = self._rnn_dact(dh * tc, o, ract)
            return self._rnn_rec_grad(dg[:, t], rk, a.rmask), dc * f

        self._rnn_backward(a, dy, dh_out, dc_out, step)
        cols = slice(None)
        self._rnn_weight_grads(a, hprev, cols, cols)
        return self._rnn_result(a, ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0",
                                    "dc0"))

    # -- GRU -----------------------------------------------------------------------------
    def gru_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                    out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                    recurrent_activation="sigmoid", go_backwards=False, reset_after=True,
                    recurrent_dropout_mask=None):
        """GRU over ``x (n, T, d)``: ``(out, h_out, hprev, gates)`` (see the module
        docstring; ``gates (n, T, 4u)``: z, r, hh and the recurrent candidate)."""
        a = prep_rnn_forward("gru", x, kernel, recurrent_kernel, bias, h0, None, mask,
                             activation, recurrent_activation, go_backwards, reset_after,
                             dict(out=out, h_out=h_out, hprev=hprev, gates=gates),
                             recurrent_dropout_mask)
        rk, g, u, rm = a.recurrent_kernel, a.outs["gates"], a.units, a.rmask
        rb = a.bias[1] if (a.bias is not None and a.reset_after) else None
        act, ract = a.activation, a.recurrent_activation

        def step(t, xw, h, c):
            if a.reset_after:
                inner = self._rnn_rec(h, rk, rm)
                if rb is not None:
                    inner = inner + rb
                z = self._rnn_act(np.ascontiguousarray(xw[:, :u] + inner[:, :u]), ract)
                r = self._rnn_act(np.ascontiguousarray(xw[:, u:2 * u] + inner[:, u:2 * u]),
                                  ract)
                rec = inner[:, 2 * u:]
                hh = self._rnn_act(np.ascontiguousarray(xw[:, 2 * u:] + r * rec), act)
            else:
                inner = self._rnn_rec(h, rk[:, :2 * u], None if rm is None else rm[:, :2 * u])
                z = self._rnn_act(np.ascontiguousarray(xw[:, :u] + inner[:, :u]), ract)
                r = self._rnn_act(np.ascontiguousarray(xw[:, u:2 * u] + inner[:, u:]), ract)
                rec = r * h if rm is None else r * (h * rm[:, 2 * u:])
                hh = self._rnn_act(np.ascontiguousarray(xw[:, 2 * u:] + rec @ rk[:, 2 * u:]),
                                   act)
            g[:, t, :u], g[:, t, u:2 * u], g[:, t, 2 * u:3 * u], g[:, t, 3 * u:] = z, r, hh, rec
            return z * h + (1 - z) * hh, None

        self._rnn_forward(a, step)
        return self._rnn_result(a, ("out", "h_out", "hprev", "gates"))

    def gru_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                     dh_out=None, input_grad=True, bias_grad=True, state_grad=True, dx=None,
                     dkernel=None, drecurrent_kernel=None, dbias=None, dh0=None, dgates=None,
                     activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                     reset_after=True, recurrent_dropout_mask=None):
        """Backpropagation through time of :meth:`gru_forward`: ``(dx, dkernel,
        drecurrent_kernel, dbias, dh0)`` (``None`` where not asked for). ``dgates``
        ``(n, T, 4u)`` receives ``dz, dr, d(recurrent candidate), d(input candidate)``
        (pre-activation)."""
        a, dy, dh_out, _, hprev, _, gates = prep_rnn_backward(
            "gru", dy, dh_out, None, x, kernel, recurrent_kernel, hprev, None, gates, mask,
            activation, recurrent_activation, go_backwards, reset_after, bias_grad,
            dict(dx=input_grad, dh0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), recurrent_dropout_mask)
        rk, dg, u, rm = a.recurrent_kernel, a.outs["dgates"], a.units, a.rmask
        act, ract = a.activation, a.recurrent_activation

        def step(t, dh, dc):
            z, r, hh, rec = (gates[:, t, k * u:(k + 1) * u] for k in range(4))
            hp = hprev[:, t]
            dhh = self._rnn_dact(dh * (1 - z), hh, act)
            dg[:, t, 3 * u:] = dhh
            dg[:, t, :u] = self._rnn_dact(dh * (hp - hh), z, ract)
            if a.reset_after:
                dg[:, t, u:2 * u] = self._rnn_dact(dhh * rec, r, ract)
                dg[:, t, 2 * u:3 * u] = dhh * r
                return dh * z + self._rnn_rec_grad(dg[:, t, :3 * u], rk, rm), None
            d_rec = dhh @ rk[:, 2 * u:].T  # the gradient of r * h_h, h_h = h_prev (* m_h)
            d_hh = d_rec * r if rm is None else d_rec * r * rm[:, 2 * u:]
            if rm is not None:
                hp = hp * rm[:, 2 * u:]
            dg[:, t, u:2 * u] = self._rnn_dact(d_rec * hp, r, ract)
            dg[:, t, 2 * u:3 * u] = dhh
            d_zr = self._rnn_rec_grad(dg[:, t, :2 * u], rk[:, :2 * u],
                                      None if rm is None else rm[:, :2 * u])
            return dh * z + d_hh + d_zr, None

        self._rnn_backward(a, dy, dh_out, None, step)
        in_cols = np.r_[0:2 * u, 3 * u:4 * u]
        rec_cols = slice(0, 3 * u)
        self._rnn_weight_grads(a, hprev, rec_cols, in_cols,
                               None if a.reset_after else gates[:, :, 3 * u:])
        return self._rnn_result(a, ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0"))


class CompiledRecurrentOps:
    """The public recurrent ops of a compiled backend: each checks its arguments with
    :func:`prep_rnn_forward` / :func:`prep_rnn_backward` (so every backend raises the
    reference's errors) and hands them to the backend's two kernels,
    ``_rnn_forward_kernel(args)`` and ``_rnn_backward_kernel(args, dy, dh_out, dc_out,
    hprev, cprev, gates)``, which fill ``args.outs``."""

    def simple_rnn_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                           out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                           go_backwards=False, recurrent_dropout_mask=None):
        a = prep_rnn_forward("simple_rnn", x, kernel, recurrent_kernel, bias, h0, None, mask,
                             activation, "sigmoid", go_backwards, False,
                             dict(out=out, h_out=h_out, hprev=hprev, gates=gates),
                             recurrent_dropout_mask)
        self._rnn_forward_kernel(a)
        return tuple(a.outs[k] for k in ("out", "h_out", "hprev", "gates"))

    def simple_rnn_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                            dh_out=None, input_grad=True, bias_grad=True, state_grad=True,
                            dx=None, dkernel=None, drecurrent_kernel=None, dbias=None,
                            dh0=None, dgates=None, activation="tanh", go_backwards=False,
                            recurrent_dropout_mask=None):
        a, dy, dh_out, _, hprev, _, gates = prep_rnn_backward(
            "simple_rnn", dy, dh_out, None, x, kernel, recurrent_kernel, hprev, None, gates,
            mask, activation, "sigmoid", go_backwards, False, bias_grad,
            dict(dx=input_grad, dh0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), recurrent_dropout_mask)
        self._rnn_backward_kernel(a, dy, dh_out, None, hprev, None, gates)
        return tuple(a.outs[k] for k in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0"))

    def lstm_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, c0=None,
                     mask=None, out=None, h_out=None, c_out=None, hprev=None, cprev=None,
                     gates=None, activation="tanh", recurrent_activation="sigmoid",
                     go_backwards=False, recurrent_dropout_mask=None):
        a = prep_rnn_forward("lstm", x, kernel, recurrent_kernel, bias, h0, c0, mask,
                             activation, recurrent_activation, go_backwards, False,
                             dict(out=out, h_out=h_out, c_out=c_out, hprev=hprev,
                                  cprev=cprev, gates=gates), recurrent_dropout_mask)
        self._rnn_forward_kernel(a)
        return tuple(a.outs[k] for k in ("out", "h_out", "c_out", "hprev", "cprev", "gates"))

    def lstm_backward(self, dy, x, kernel, recurrent_kernel, hprev, cprev, gates, mask=None,
                      dh_out=None, dc_out=None, input_grad=True, bias_grad=True,
                      state_grad=True, dx=None, dkernel=None, drecurrent_kernel=None,
                      dbias=None, dh0=None, dc0=None, dgates=None, activation="tanh",
                      recurrent_activation="sigmoid", go_backwards=False,
                      recurrent_dropout_mask=None):
        a, dy, dh_out, dc_out, hprev, cprev, gates = prep_rnn_backward(
            "lstm", dy, dh_out, dc_out, x, kernel, recurrent_kernel, hprev, cprev, gates,
            mask, activation, recurrent_activation, go_backwards, False, bias_grad,
            dict(dx=input_grad, dh0=state_grad, dc0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dc0=dc0, dgates=dgates), recurrent_dropout_mask)
        self._rnn_backward_kernel(a, dy, dh_out, dc_out, hprev, cprev, gates)
        return tuple(a.outs[k] for k in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0",
                                         "dc0"))

    def gru_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                    out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                    recurrent_activation="sigmoid", go_backwards=False, reset_after=True,
                    recurrent_dropout_mask=None):
        a = prep_rnn_forward("gru", x, kernel, recurrent_kernel, bias, h0, None, mask,
                             activation, recurrent_activation, go_backwards, reset_after,
                             dict(out=out, h_out=h_out, hprev=hprev, gates=gates),
                             recurrent_dropout_mask)
        self._rnn_forward_kernel(a)
        return tuple(a.outs[k] for k in ("out", "h_out", "hprev", "gates"))

    def gru_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                     dh_out=None, input_grad=True, bias_grad=True, state_grad=True, dx=None,
                     dkernel=None, drecurrent_kernel=None, dbias=None, dh0=None, dgates=None,
                     activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                     reset_after=True, recurrent_dropout_mask=None):
        a, dy, dh_out, _, hprev, _, gates = prep_rnn_backward(
            "gru", dy, dh_out, None, x, kernel, recurrent_kernel, hprev, None, gates, mask,
            activation, recurrent_activation, go_backwards, reset_after, bias_grad,
            dict(dx=input_grad, dh0=state_grad),
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), recurrent_dropout_mask)
        self._rnn_backward_kernel(a, dy, dh_out, None, hprev, None, gates)
        return tuple(a.outs[k] for k in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0"))
