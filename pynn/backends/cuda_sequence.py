"""The ``cuda`` backend's sequence ops (kernels: :mod:`pynn.backends._cuda_sequence`):
the embedding gather and scatter-add, and SimpleRNN / LSTM / GRU forward and backward.

:class:`CudaSequenceOps` is mixed into :class:`~pynn.backends.cuda_backend.CudaBackend`.
Each op makes the reference's checks (the same ``prep_*`` functions, so the same errors
in the same order) on host stand-ins of its device arguments (uninitialised arrays of
their shape and dtype: the checks read only those), then refuses host output buffers
and overlapping device arrays, uploads its host inputs and runs on the device:

* embedding: one thread per output element gathers; the gradient zeroes a float64
  table and adds every position's row with float64 atomic adds (repeated ids
  accumulate in float64 as in the reference; the order of the adds may vary between
  runs, which changes only float64 rounding), then rounds it into ``out``. Device ids
  are range-checked on the device; an id outside the table raises the reference's
  error, naming it (the ids are then copied to the host to find it).
* recurrent forward: the input projection of all timesteps as one GEMM (input bias
  fused), then per step, on the host, the recurrent GEMM and one fused epilogue
  kernel (GRU without ``reset_after``: two GEMMs and two kernels, as its candidate
  needs ``r`` first). Workspaces are written as the reference writes them.
* backward: per step one epilogue-gradient kernel and one GEMM that adds the state
  gradient (``dgates @ recurrent_kernel^T``, ``beta = 1``) to the kernel's part; the
  weight, bias and input gradients after the loop as a few large GEMMs and column sums.
* recurrent dropout (``recurrent_dropout_mask (n, G)``): the products that read
  ``h_prev`` run one gate block at a time on the masked state, against contiguous
  copies of the recurrent kernel's blocks; the state gradient adds each block's
  product times its mask; the ``h_prev`` blocks of ``drecurrent_kernel`` are redone
  with the masked states. Without it nothing changes.

Scratch matrices live on the backend, one grow-only device buffer per role and dtype,
so warm steps allocate only the outputs not supplied.
"""
from __future__ import annotations

import numpy as np

from .embedding import prep_embedding_backward, prep_embedding_forward
from .recurrent import (ALIASING_INPUTS, _steps, kernel_activations, prep_rnn_backward,
                        prep_rnn_forward)
from .validation import check_aliasing

__all__ = ["CudaSequenceOps"]

_STATE_NAMES = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0", "mask")
_RMASK = "recurrent_dropout_mask"


def _device_memory():
    """How check_aliasing judges device arrays (defined with the backend, which has
    finished loading by the time an op runs)."""
    from .cuda_memory import DeviceMemory
    return DeviceMemory


def _flat(x):
    return x.reshape(x.size)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class CudaSequenceOps:
    """Embedding and recurrent ops of the cuda backend (see the module docstring)."""

    # -- helpers -------------------------------------------------------------------------
    def _sequence_kernels(self):
        """The sequence kernel module, imported on first use."""
        from . import _cuda_sequence
        return _cuda_sequence

    def _stand_in(self, a):
        """What the shared checks see of argument ``a``: a host argument as given; for a
        device array, an uninitialised host array of its shape and dtype."""
        if not self._is_device(a):
            return a
        return np.empty(tuple(a.shape), np.dtype(a.dtype))

    def _seq_buffer(self, role, shape, dtype):
        """A device scratch matrix of ``shape`` for ``role``: a view of one grow-only
        buffer per role and dtype, kept by the backend between calls."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        bufs = self.__dict__.setdefault("_sequence_buffers", {})
        key = (role, dtype.str)
        buf = bufs.get(key)
        if buf is None or buf.size < size:
            buf = bufs[key] = self._cuda.device_array(max(size, 1), dtype=dtype)
        return buf[:size].reshape(shape)

    def _device_in(self, given, checked, dt, name):
        """The device array an op reads for input ``given`` (``None`` stays ``None``)."""
        if given is None:
            return None
        return self._upload(given, checked, dt, name)

    def _fill_state(self, dst, src):
        """``dst = src`` (a device ``(n, u)`` array), or zeros when ``src`` is None."""
        S = self._sequence_kernels()
        if src is None:
            self._launch(S.fill_zero, dst.size, _flat(dst))
        else:
            self._launch(self._K.copy_ew, dst.size, _flat(src), _flat(dst))

    # -- embedding -----------------------------------------------------------------------
    def _ids_stand_in(self, ids, num_embeddings):
        """``(stand-in, device ids)`` of token ids: host ids as given (``None``); for
        device integer ids, zeros of their shape and their flat int64 device copy, or,
        when an id lies outside ``[0, num_embeddings)``, the ids copied to the host (the
        shared check then names the offending id and its index)."""
        if not self._is_device(ids):
            return ids, None
        shape, dtype = tuple(ids.shape), np.dtype(ids.dtype)
        if dtype.kind not in "iu" or not shape:
            return np.empty(shape, dtype), None  # refused by the shared check
        flat = _flat(self._to_device(ids, np.int64, "ids"))
        if ids.size and _is_int(num_embeddings):
            outside = num_embeddings < 1
            if not outside:
                bad = self._cuda.to_device(np.zeros(1, np.int32))
                self._launch(self._sequence_kernels().ids_out_of_range, flat.size, flat,
                             int(num_embeddings), bad)
                outside = bool(bad.copy_to_host()[0])
            if outside:
                return ids.copy_to_host(), None
        return np.zeros(shape, dtype), flat

    def embedding_forward(self, ids, table, out=None):
        ids, table, out = self._foreign(ids), self._foreign(table), self._foreign(out)
        rows = np.shape(table)[0] if np.ndim(table) == 2 else 1
        sid, did = self._ids_stand_in(ids, rows)
        idx, t, _ = prep_embedding_forward(sid, self._stand_in(table), self._stand_in(out))
        dt, dim = t.dtype, t.shape[1]
        out = self._out(out, idx.shape + (dim,), dt)
        check_aliasing("embedding_forward", [("out", out)], [("ids", ids), ("table", table)],
                       _device_memory())
        if did is None:
            did = self._cuda.to_device(idx.reshape(-1).astype(np.int64, copy=False))
        td = self._upload(table, t, dt, "table")
        self._launch(self._sequence_kernels().embedding_gather, out.size, did, td,
                     out.reshape(idx.size, dim))
        return out

    def embedding_backward(self, ids, dy, num_embeddings, out=None):
        ids, dy, out = self._foreign(ids), self._foreign(dy), self._foreign(out)
        sid, did = self._ids_stand_in(ids, num_embeddings)
        idx, g, _ = prep_embedding_backward(sid, self._stand_in(dy), num_embeddings,
                                            self._stand_in(out))
        dt, dim, rows = g.dtype, g.shape[-1], int(num_embeddings)
        out = self._out(out, (rows, dim), dt)
        check_aliasing("embedding_backward", [("out", out)], [("ids", ids), ("dy", dy)],
                       _device_memory())
        if did is None:
            did = self._cuda.to_device(idx.reshape(-1).astype(np.int64, copy=False))
        dyd = self._upload(dy, g, dt, "dy").reshape(idx.size, dim)
        S = self._sequence_kernels()
        acc = out if dt == np.float64 else self._seq_buffer("emb_acc", out.shape, np.float64)
        self._launch(S.fill_zero, acc.size, _flat(acc))
        self._launch(S.embedding_scatter_add, idx.size * dim, did, dyd, acc)
        if acc is not out:
            self._launch(self._K.copy_ew, out.size, _flat(acc), _flat(out))
        return out

    # -- recurrent: the public ops -------------------------------------------------------
    def simple_rnn_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                           out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                           go_backwards=False, recurrent_dropout_mask=None):
        return self._rnn_forward_op(
            "simple_rnn", dict(x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                               bias=bias, h0=h0, c0=None, mask=mask,
                               recurrent_dropout_mask=recurrent_dropout_mask),
            dict(out=out, h_out=h_out, hprev=hprev, gates=gates), activation, "sigmoid",
            go_backwards, False)

    def simple_rnn_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                            dh_out=None, input_grad=True, bias_grad=True, state_grad=True,
                            dx=None, dkernel=None, drecurrent_kernel=None, dbias=None,
                            dh0=None, dgates=None, activation="tanh", go_backwards=False,
                            recurrent_dropout_mask=None):
        return self._rnn_backward_op(
            "simple_rnn", dict(dy=dy, dh_out=dh_out, dc_out=None, x=x, kernel=kernel,
                               recurrent_kernel=recurrent_kernel, hprev=hprev, cprev=None,
                               gates=gates, mask=mask,
                        recurrent_dropout_mask=recurrent_dropout_mask),
            dict(dx=input_grad, dh0=state_grad), bias_grad,
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), activation, "sigmoid", go_backwards, False)

    def lstm_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, c0=None,
                     mask=None, out=None, h_out=None, c_out=None, hprev=None, cprev=None,
                     gates=None, activation="tanh", recurrent_activation="sigmoid",
                     go_backwards=False, recurrent_dropout_mask=None):
        return self._rnn_forward_op(
            "lstm", dict(x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                         h0=h0, c0=c0, mask=mask,
                         recurrent_dropout_mask=recurrent_dropout_mask),
            dict(out=out, h_out=h_out, c_out=c_out, hprev=hprev, cprev=cprev, gates=gates),
            activation, recurrent_activation, go_backwards, False)

    def lstm_backward(self, dy, x, kernel, recurrent_kernel, hprev, cprev, gates, mask=None,
                      dh_out=None, dc_out=None, input_grad=True, bias_grad=True,
                      state_grad=True, dx=None, dkernel=None, drecurrent_kernel=None,
                      dbias=None, dh0=None, dc0=None, dgates=None, activation="tanh",
                      recurrent_activation="sigmoid", go_backwards=False,
                      recurrent_dropout_mask=None):
        return self._rnn_backward_op(
            "lstm", dict(dy=dy, dh_out=dh_out, dc_out=dc_out, x=x, kernel=kernel,
                         recurrent_kernel=recurrent_kernel, hprev=hprev, cprev=cprev,
                         gates=gates, mask=mask,
                        recurrent_dropout_mask=recurrent_dropout_mask),
            dict(dx=input_grad, dh0=state_grad, dc0=state_grad), bias_grad,
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dc0=dc0, dgates=dgates), activation, recurrent_activation,
            go_backwards, False)

    def gru_forward(self, x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                    out=None, h_out=None, hprev=None, gates=None, activation="tanh",
                    recurrent_activation="sigmoid", go_backwards=False, reset_after=True,
                    recurrent_dropout_mask=None):
        return self._rnn_forward_op(
            "gru", dict(x=x, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                        h0=h0, c0=None, mask=mask,
                               recurrent_dropout_mask=recurrent_dropout_mask),
            dict(out=out, h_out=h_out, hprev=hprev, gates=gates), activation,
            recurrent_activation, go_backwards, reset_after)

    def gru_backward(self, dy, x, kernel, recurrent_kernel, hprev, gates, mask=None,
                     dh_out=None, input_grad=True, bias_grad=True, state_grad=True, dx=None,
                     dkernel=None, drecurrent_kernel=None, dbias=None, dh0=None, dgates=None,
                     activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                     reset_after=True, recurrent_dropout_mask=None):
        return self._rnn_backward_op(
            "gru", dict(dy=dy, dh_out=dh_out, dc_out=None, x=x, kernel=kernel,
                        recurrent_kernel=recurrent_kernel, hprev=hprev, cprev=None,
                        gates=gates, mask=mask,
                        recurrent_dropout_mask=recurrent_dropout_mask),
            dict(dx=input_grad, dh0=state_grad), bias_grad,
            dict(dx=dx, dkernel=dkernel, drecurrent_kernel=drecurrent_kernel, dbias=dbias,
                 dh0=dh0, dgates=dgates), activation, recurrent_activation, go_backwards,
            reset_after)

    # -- recurrent: checks and uploads ---------------------------------------------------
    def _rnn_forward_op(self, cell, ins, outs, activation, recurrent_activation,
                        go_backwards, reset_after):
        ins = {k: self._foreign(v) for k, v in ins.items()}
        outs = {k: self._foreign(v) for k, v in outs.items()}
        s = {k: self._stand_in(v) for k, v in ins.items()}
        a = prep_rnn_forward(cell, *(s[k] for k in _STATE_NAMES), activation,
                             recurrent_activation, go_backwards, reset_after,
                             {k: self._stand_in(v) for k, v in outs.items()}, s[_RMASK])
        dt = a.x.dtype
        o = {k: self._out(outs[k], a.outs[k].shape, dt, k) for k in outs}
        check_aliasing(f"{cell}_forward", list(o.items()),
                       [(k, ins[k]) for k in ALIASING_INPUTS[cell]], _device_memory())
        checked = dict(x=a.x, kernel=a.kernel, recurrent_kernel=a.recurrent_kernel,
                       bias=a.bias, h0=a.h0, c0=a.c0)
        d = {k: self._device_in(ins[k], v, dt, k) for k, v in checked.items()}
        d["mask"] = self._device_in(ins["mask"], a.mask, np.bool_, "mask")
        d[_RMASK] = self._device_in(ins[_RMASK], a.rmask, dt, _RMASK)
        self._rnn_forward_steps(a, d, o)
        return tuple(o.values())

    def _rnn_backward_op(self, cell, ins, wanted, use_bias, outs, activation,
                         recurrent_activation, go_backwards, reset_after):
        ins = {k: self._foreign(v) for k, v in ins.items()}
        outs = {k: self._foreign(v) for k, v in outs.items()}
        s = {k: self._stand_in(v) for k, v in ins.items()}
        a, dy, dh_out, dc_out, hprev, cprev, gates = prep_rnn_backward(
            cell, s["dy"], s["dh_out"], s["dc_out"], s["x"], s["kernel"],
            s["recurrent_kernel"], s["hprev"], s["cprev"], s["gates"], s["mask"], activation,
            recurrent_activation, go_backwards, reset_after, use_bias, wanted,
            {k: self._stand_in(v) for k, v in outs.items()}, s[_RMASK])
        dt = a.x.dtype
        o = {k: None if a.outs[k] is None else self._out(outs[k], a.outs[k].shape, dt, k)
             for k in outs}
        check_aliasing(f"{cell}_backward", list(o.items()),
                       [(k, v) for k, v in ins.items() if v is not None], _device_memory())
        checked = dict(dy=dy, dh_out=dh_out, dc_out=dc_out, x=a.x, kernel=a.kernel,
                       recurrent_kernel=a.recurrent_kernel, hprev=hprev, cprev=cprev,
                       gates=gates)
        d = {k: self._device_in(ins[k], v, dt, k) for k, v in checked.items()}
        d["mask"] = self._device_in(ins["mask"], a.mask, np.bool_, "mask")
        d[_RMASK] = self._device_in(ins[_RMASK], a.rmask, dt, _RMASK)
        self._rnn_backward_steps(a, d, o)
        return tuple(o[k] for k in outs if k != "dgates")

    # -- recurrent: the time loops -------------------------------------------------------
    def _rnn_forward_steps(self, a, d, o):
        S = self._sequence_kernels()
        n, t_len, dim, u = a.n, a.T, a.d, a.units
        dt = a.x.dtype
        lstm = a.cell == "lstm"
        gru_rb = a.cell == "gru" and not a.reset_after
        width = a.kernel.shape[1]
        ib = rb = None
        if d["bias"] is not None:
            ib, rb = (d["bias"][0], d["bias"][1]) if a.bias.ndim == 2 else (d["bias"], None)
        xw = self._seq_buffer("rnn_xw", (n * t_len, width), dt)
        self.gemm(d["x"].reshape(n * t_len, dim), d["kernel"], out=xw, bias=ib)
        h = [self._seq_buffer("rnn_h0", (n, u), dt), self._seq_buffer("rnn_h1", (n, u), dt)]
        self._fill_state(h[0], d["h0"])
        c = [self._dummy(dt, 2)] * 2
        if lstm:
            c = [self._seq_buffer("rnn_c0", (n, u), dt), self._seq_buffer("rnn_c1", (n, u), dt)]
            self._fill_state(c[0], d["c0"])
        rk = d["recurrent_kernel"]
        if gru_rb:
            rk_zr = self._seq_buffer("rnn_rk_zr", (u, 2 * u), dt)
            rk_h = self._seq_buffer("rnn_rk_h", (u, u), dt)
            self._launch(S.copy_cols, 2 * u * u, rk, 0, rk_zr, 0, 2 * u)
            self._launch(S.copy_cols, u * u, rk, 2 * u, rk_h, 0, u)
            rec = self._seq_buffer("rnn_rec", (n, 2 * u), dt)
            rh = self._seq_buffer("rnn_rh", (n, u), dt)
            rec_h = self._seq_buffer("rnn_rec_h", (n, u), dt)
        else:
            rec = self._seq_buffer("rnn_rec", (n, width), dt)
        act, ract, a_act, a_ract = kernel_activations(a)
        has_mask = d["mask"] is not None
        mask = d["mask"] if has_mask else self._dummy(np.bool_, 2)
        rbd = rb if rb is not None else self._dummy(dt, 1)
        cprev = o["cprev"] if lstm else self._dummy(dt, 3)
        code = _cell_code(S, a.cell)
        rm = d[_RMASK]
        rkb = self._rnn_kernel_blocks(a, rk) if rm is not None else None
        for s, t in _steps(a):
            if rm is not None:
                self._masked_product(h[0], rm, rkb, rec)
            elif gru_rb:
                self.gemm(h[0], rk_zr, out=rec)
            else:
                self.gemm(h[0], rk, out=rec)
            if gru_rb:
                self._launch(S.gru_reset_gates, n * u, xw, rec, h[0], rh, t, o["gates"], ract,
                             a_ract)
                if rm is not None:
                    self._launch(S.mask_reset_block, n * u, rh, rm, 2 * u, t, o["gates"])
                self.gemm(rh, rk_h, out=rec_h)
            self._launch(S.rnn_step_forward, n * u, code, a.reset_after, xw,
                         rec_h if gru_rb else rec, rbd, rb is not None, h[0], c[0], h[1], c[1],
                         mask, has_mask, t, s, o["out"], o["hprev"], cprev, o["gates"], act,
                         ract, a_act, a_ract)
            h.reverse()
            c.reverse()
        self._fill_state(o["h_out"], h[0])
        if lstm:
            self._fill_state(o["c_out"], c[0])

    def _rnn_backward_steps(self, a, d, o):
        S = self._sequence_kernels()
        n, u = a.n, a.units
        dt = a.x.dtype
        lstm, gru = a.cell == "lstm", a.cell == "gru"
        gru_rb = gru and not a.reset_after
        width = a.kernel.shape[1]
        dh = [self._seq_buffer("rnn_dh0", (n, u), dt), self._seq_buffer("rnn_dh1", (n, u), dt)]
        self._fill_state(dh[0], d["dh_out"])
        dc = [self._dummy(dt, 2)] * 2
        if lstm:
            dc = [self._seq_buffer("rnn_dc0", (n, u), dt),
                  self._seq_buffer("rnn_dc1", (n, u), dt)]
            self._fill_state(dc[0], d["dc_out"])
        carry = self._seq_buffer("rnn_carry", (n, u), dt)
        self._fill_state(carry, None)
        rk = d["recurrent_kernel"]
        dhh = d_rec = self._dummy(dt, 2)
        if gru_rb:
            rk_zr = self._seq_buffer("rnn_rk_zr", (u, 2 * u), dt)
            rk_h = self._seq_buffer("rnn_rk_h", (u, u), dt)
            self._launch(S.copy_cols, 2 * u * u, rk, 0, rk_zr, 0, 2 * u)
            self._launch(S.copy_cols, u * u, rk, 2 * u, rk_h, 0, u)
            dgt = self._seq_buffer("rnn_dgt", (n, 2 * u), dt)
            dhh = self._seq_buffer("rnn_dhh", (n, u), dt)
            d_rec = self._seq_buffer("rnn_d_rec", (n, u), dt)
        else:
            dgt = self._seq_buffer("rnn_dgt", (n, width), dt)
        act, ract, a_act, a_ract = kernel_activations(a)
        has_mask = d["mask"] is not None
        mask = d["mask"] if has_mask else self._dummy(np.bool_, 2)
        has_dy = d["dy"] is not None
        dy = d["dy"] if has_dy else self._dummy(dt, 3)
        cprev = d["cprev"] if lstm else self._dummy(dt, 3)
        dgates = o["dgates"]
        code = _cell_code(S, a.cell)
        rm = d[_RMASK]
        rkb = self._rnn_kernel_blocks(a, rk) if rm is not None else None
        for s, t in reversed(_steps(a)):
            self._launch(S.rnn_step_backward, n * u, code, a.reset_after, dy, has_dy, s, t,
                         mask, has_mask, d["hprev"], cprev, d["gates"], dh[0], dc[0], carry,
                         dh[1], dc[1], dgates, dgt, dhh, act, ract, a_act, a_ract)
            if gru_rb:
                self.gemm(dhh, rk_h, out=d_rec, trans_b=True)
                if rm is not None:  # the candidate read r * (h_prev * m_h)
                    self._launch(S.mul_cols, n * u, d_rec, rm, 2 * u, d_rec)
                self._launch(S.gru_reset_backward, n * u, t, mask, has_mask, d["hprev"],
                             d["gates"], d_rec, dh[1], dgates, dgt, ract, a_ract)
            if rm is not None:
                self._masked_state_grad(dgt, rm, rkb, dh[1])
            elif gru_rb:
                self.gemm(dgt, rk_zr, out=dh[1], trans_b=True, beta=1.0)
            else:
                self.gemm(dgt, rk, out=dh[1], trans_b=True, beta=1.0)
            dh.reverse()
            dc.reverse()
        if o.get("dh0") is not None:
            self._fill_state(o["dh0"], dh[0])
        if o.get("dc0") is not None:
            self._fill_state(o["dc0"], dc[0])
        self._rnn_weight_grads(a, d, o)

    # -- recurrent dropout: the products that read h_prev, one gate block at a time ----
    def _rnn_kernel_blocks(self, a, rk):
        """Contiguous device copies ``(u, u)`` of the recurrent kernel's gate blocks that
        read ``h_prev`` (the GRU without ``reset_after``: z and r)."""
        S = self._sequence_kernels()
        u, dt = a.units, a.x.dtype
        nb = 2 if (a.cell == "gru" and not a.reset_after) else a.recurrent_kernel.shape[1] // u
        blocks = []
        for b in range(nb):
            blk = self._seq_buffer(f"rnn_rkb{b}", (u, u), dt)
            self._launch(S.copy_cols, u * u, rk, b * u, blk, 0, u)
            blocks.append(blk)
        return blocks

    def _masked_product(self, h, rm, rkb, rec):
        """``rec[:, b] = (h * rm[:, b]) @ rk_b`` for each block ``b`` of ``rkb``."""
        S = self._sequence_kernels()
        n, u = h.shape
        hm = self._seq_buffer("rnn_hm", (n, u), h.dtype)
        recb = self._seq_buffer("rnn_recb", (n, u), h.dtype)
        for b, blk in enumerate(rkb):
            self._launch(S.mul_cols, n * u, h, rm, b * u, hm)
            self.gemm(hm, blk, out=recb)
            self._launch(S.copy_cols, n * u, recb, 0, rec, b * u, u)

    def _masked_state_grad(self, dgt, rm, rkb, dh):
        """``dh += sum_b (dgt[:, b] @ rk_b^T) * rm[:, b]``."""
        S = self._sequence_kernels()
        n, u = dh.shape
        dgb = self._seq_buffer("rnn_dgb", (n, u), dh.dtype)
        tmp = self._seq_buffer("rnn_tmpb", (n, u), dh.dtype)
        for b, blk in enumerate(rkb):
            self._launch(S.copy_cols, n * u, dgt, b * u, dgb, 0, u)
            self.gemm(dgb, blk, out=tmp, trans_b=True)
            self._launch(S.add_mul_cols, n * u, tmp, rm, b * u, dh)

    def _masked_hprev_grads(self, a, hp, rm, dg, drk):
        """The ``h_prev`` blocks of ``drk`` redone with the masked states: ``drk[:, b] =
        (hprev * rm[:, b])^T dgates[:, b]``."""
        S = self._sequence_kernels()
        rows, u, dt = hp.shape[0], a.units, a.x.dtype
        nb = 2 if (a.cell == "gru" and not a.reset_after) else a.recurrent_kernel.shape[1] // u
        hm = self._seq_buffer("rnn_hm_all", (rows, u), dt)
        dgb = self._seq_buffer("rnn_dg_all", (rows, u), dt)
        small = self._seq_buffer("rnn_drk_b", (u, u), dt)
        for b in range(nb):
            self._launch(S.mul_cols_rows, rows * u, hp, rm, b * u, a.T, hm)
            self._launch(S.copy_cols, rows * u, dg, b * u, dgb, 0, u)
            self.gemm(hm, dgb, out=small, trans_a=True)
            self._launch(S.copy_cols, u * u, small, 0, drk, b * u, u)

    def _rnn_weight_grads(self, a, d, o):
        """``dkernel = X^T dG_in``, ``drecurrent_kernel = Hprev^T dG_rec``, ``dbias`` (column
        sums) and ``dx = dG_in kernel^T`` after the loop (see
        :meth:`RecurrentOps._rnn_weight_grads`)."""
        S = self._sequence_kernels()
        n, t_len, dim, u = a.n, a.T, a.d, a.units
        rows = n * t_len
        dt = a.x.dtype
        dg = o["dgates"].reshape(rows, o["dgates"].shape[2])
        x2 = d["x"].reshape(rows, dim)
        hp = d["hprev"].reshape(rows, u)
        if a.cell == "gru":  # dG_in = [dz, dr, d(input candidate)], dG_rec = dgates[:, :3u]
            d_in = self._seq_buffer("rnn_d_in", (rows, 3 * u), dt)
            self._launch(S.copy_cols, rows * 2 * u, dg, 0, d_in, 0, 2 * u)
            self._launch(S.copy_cols, rows * u, dg, 3 * u, d_in, 2 * u, u)
            d_rec = self._seq_buffer("rnn_d_recs", (rows, 3 * u), dt)
            self._launch(S.copy_cols, rows * 3 * u, dg, 0, d_rec, 0, 3 * u)
        else:
            d_in = d_rec = dg
        self.gemm(x2, d_in, out=o["dkernel"], trans_a=True)
        drk = o["drecurrent_kernel"]
        self.gemm(hp, d_rec, out=drk, trans_a=True)
        if a.cell == "gru" and not a.reset_after:  # the candidate's block reads r * h_prev
            rh = self._seq_buffer("rnn_rh_all", (rows, u), dt)
            dcand = self._seq_buffer("rnn_dcand_all", (rows, u), dt)
            g2 = d["gates"].reshape(rows, 4 * u)
            self._launch(S.copy_cols, rows * u, g2, 3 * u, rh, 0, u)
            self._launch(S.copy_cols, rows * u, dg, 2 * u, dcand, 0, u)
            block = self._seq_buffer("rnn_drk_h", (u, u), dt)
            self.gemm(rh, dcand, out=block, trans_a=True)
            self._launch(S.copy_cols, u * u, block, 0, drk, 2 * u, u)
        if d[_RMASK] is not None:
            self._masked_hprev_grads(a, hp, d[_RMASK], dg, drk)
        dbias = o.get("dbias")
        if dbias is not None:
            if len(dbias.shape) == 2:
                self.bias_grad(d_in, out=dbias[0])
                self.bias_grad(d_rec, out=dbias[1])
            else:
                self.bias_grad(d_in, out=dbias)
        if o.get("dx") is not None:
            self.gemm(d_in, d["kernel"], out=o["dx"].reshape(rows, dim), trans_b=True)



def _cell_code(S, cell):
    return {"simple_rnn": S.CELL_SIMPLE, "lstm": S.CELL_LSTM, "gru": S.CELL_GRU}[cell]
