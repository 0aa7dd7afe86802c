# cython: language_level=3, cdivision=True
"""Sequence kernels, the compiled versions of :mod:`pynn.backends.embedding` and
:mod:`pynn.backends.recurrent`'s reference ops.

* Embedding: the gather (one ``memcpy`` per id) and the scatter-add of its gradient.
* Recurrent layers (SimpleRNN, LSTM, GRU with ``reset_after`` either way): the whole
  time loop runs here without the GIL. Forward: the input projection of every timestep
  as one BLAS product written into the ``gates`` workspace, then per step the recurrent
  product (accumulated into that step's gate rows, or into ``scratch`` for the GRU's
  reset-after candidate) and one fused epilogue per row (input bias, activations, cell
  and state update, mask, output). Backward: per step one fused pass per row for the
  pre-activation gradients and one product for the state gradient (two for the GRU
  without ``reset_after``); after the loop the weight and input gradients as a few
  large products, the bias gradients as float64 column sums.

Layouts and workspaces are those of the reference ops (see ``pynn/backends/recurrent.py``);
the backend wrappers in ``pynn.backends.cython_backend`` validate every argument with the
same ``prep_*`` functions, so nothing here re-checks shapes. Nothing is allocated.
"""
cimport cython
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from pynn_math cimport act_grad_scalar, act_scalar

include "blas_select.pxi"

cdef enum:
    CELL_SIMPLE = 0
    CELL_LSTM = 1
    CELL_GRU = 2


cdef inline void gemm_rm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                         Py_ssize_t k, const floating* a, Py_ssize_t lda, const floating* b,
                         Py_ssize_t ldb, floating beta, floating* c,
                         Py_ssize_t ldc) noexcept nogil:
    """Row-major ``c (m, n) = op(a) op(b) + beta c`` with row strides ``lda``, ``ldb``,
    ``ldc`` (BLAS computes the column-major transpose; nothing is transposed)."""
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        return
    blas_gemm(b"T" if trans_b else b"N", b"T" if trans_a else b"N", <int>n, <int>m, <int>k,
              <floating>1, b, <int>ldb, a, <int>lda, beta, c, <int>ldc)


# ---------------------------------------------------------------------------
# argument checks: the backend wrappers validate everything first (the reference's
# prep_* functions); these only keep a direct caller from reading or writing outside
# the arrays. An argument whose flag is off must be empty.
# ---------------------------------------------------------------------------
cdef _want(str fn, str name, tuple got, tuple want):
    if got != want:
        raise ValueError(f"{fn}: {name} must have shape {want}, got {got}")


cdef _unused(str fn, str name, Py_ssize_t size):
    if size != 0:
        raise ValueError(f"{fn}: {name} is not used here and must be empty, got {size} "
                         f"elements")


cdef _check_ids(str fn, const Py_ssize_t[::1] ids, Py_ssize_t rows):
    cdef Py_ssize_t k, bad = -1
    with nogil:
        for k in range(ids.shape[0]):
            if ids[k] < 0 or ids[k] >= rows:
                bad = k
                break
    if bad >= 0:
        raise ValueError(f"{fn}: ids[{bad}] = {ids[bad]} is outside [0, {rows})")


cdef tuple _s1(Py_ssize_t* shape):
    return (shape[0],)


cdef tuple _s2(Py_ssize_t* shape):
    return (shape[0], shape[1])


cdef tuple _s3(Py_ssize_t* shape):
    return (shape[0], shape[1], shape[2])


# ---------------------------------------------------------------------------
# embedding
# ---------------------------------------------------------------------------
def embedding_forward(const Py_ssize_t[::1] ids not None, const floating[:, ::1] table not None,
                      floating[:, ::1] out not None):
    """``out[k] = table[ids[k]]``."""
    cdef Py_ssize_t k, m = ids.shape[0], d = table.shape[1]
    _want("embedding_forward", "out", _s2(out.shape), (m, d))
    _check_ids("embedding_forward", ids, table.shape[0])
    if d == 0:
        return
    with nogil:
        for k in range(m):
            memcpy(&out[k, 0], &table[ids[k], 0], d * sizeof(floating))


def embedding_backward(const Py_ssize_t[::1] ids not None, const floating[:, ::1] dy not None,
                       floating[:, ::1] out not None):
    """``out = 0; out[ids[k]] += dy[k]`` (repeated ids accumulate)."""
    cdef Py_ssize_t k, j, m = ids.shape[0], d = out.shape[1]
    cdef floating* row
    _want("embedding_backward", "dy", _s2(dy.shape), (m, d))
    _check_ids("embedding_backward", ids, out.shape[0])
    if d == 0:
        return
    with nogil:
        memset(&out[0, 0], 0, out.shape[0] * d * sizeof(floating))
        for k in range(m):
            row = &out[ids[k], 0]
            for j in range(d):
                row[j] += dy[k, j]


# ---------------------------------------------------------------------------
# recurrent layers
# ---------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
def rnn_forward(int cell, bint reset_after, const floating[:, :, ::1] x not None,
                const floating[:, ::1] kernel not None, const floating[:, ::1] rk not None,
                const floating[::1] ibias not None, const floating[::1] rbias not None,
                bint has_ibias, bint has_rbias,
                const floating[:, ::1] h0 not None, const floating[:, ::1] c0 not None,
                bint has_h0, bint has_c0,
                const unsigned char[:, ::1] mask not None, bint has_mask,
                floating[:, :, ::1] out not None, floating[:, ::1] h_out not None,
                floating[:, ::1] c_out not None, floating[:, :, ::1] hprev not None,
                floating[:, :, ::1] cprev not None, floating[:, :, ::1] gates not None,
                floating[::1] scratch not None, int act, int ract, floating a_act,
                floating a_ract, bint go_backwards):
    """The forward time loop of one recurrent layer (see the module docstring)."""
    cdef Py_ssize_t n = x.shape[0], T = x.shape[1], d = x.shape[2], u = rk.shape[0]
    cdef Py_ssize_t G = rk.shape[1], W = gates.shape[2], ld = T * W
    cdef Py_ssize_t i, j, s, t
    cdef floating *g
    cdef floating *h
    cdef floating *c
    cdef floating *o
    cdef const floating *rec
    cdef floating zi, zf, zg, zo, cn, hn, z, r, hh, rh, b
    cdef bint m
    _check_rnn("rnn_forward", cell, reset_after, n, T, d, u, G, W)
    fn = "rnn_forward"
    _want(fn, "kernel", _s2(kernel.shape), (d, G))
    _want(fn, "out", _s3(out.shape), (n, T, u))
    _want(fn, "h_out", _s2(h_out.shape), (n, u))
    _want(fn, "hprev", _s3(hprev.shape), (n, T, u))
    _want(fn, "gates", _s3(gates.shape), (n, T, W))
    if has_ibias:
        _want(fn, "ibias", _s1(ibias.shape), (G,))
    else:
        _unused(fn, "ibias", ibias.shape[0])
    if has_rbias and cell == CELL_GRU and reset_after:
        _want(fn, "rbias", _s1(rbias.shape), (G,))
    else:
        has_rbias = False
        _unused(fn, "rbias", rbias.shape[0])
    if has_h0:
        _want(fn, "h0", _s2(h0.shape), (n, u))
    else:
        _unused(fn, "h0", h0.shape[0] * h0.shape[1])
    if has_c0 and cell == CELL_LSTM:
        _want(fn, "c0", _s2(c0.shape), (n, u))
    else:
        has_c0 = False
        _unused(fn, "c0", c0.shape[0] * c0.shape[1])
    if cell == CELL_LSTM:
        _want(fn, "c_out", _s2(c_out.shape), (n, u))
        _want(fn, "cprev", _s3(cprev.shape), (n, T, u))
    else:
        _unused(fn, "c_out", c_out.shape[0] * c_out.shape[1])
        _unused(fn, "cprev", cprev.shape[0] * cprev.shape[1] * cprev.shape[2])
    if has_mask:
        _want(fn, "mask", _s2(mask.shape), (n, T))
    else:
        _unused(fn, "mask", mask.shape[0] * mask.shape[1])
    if scratch.shape[0] < n * G:
        raise ValueError(f"{fn}: scratch needs at least {n * G} elements, got "
                         f"{scratch.shape[0]}")
    if n == 0 or T == 0:
        if n:
            for i in range(n):
                for j in range(u):
                    h_out[i, j] = h0[i, j] if has_h0 else 0
                    if cell == CELL_LSTM:
                        c_out[i, j] = c0[i, j] if has_c0 else 0
        return
    with nogil:
        gemm_rm(False, False, n * T, G, d, &x[0, 0, 0], d, &kernel[0, 0], G, 0,
                &gates[0, 0, 0], W)
        for i in range(n):
            for j in range(u):
                h_out[i, j] = h0[i, j] if has_h0 else 0
                if cell == CELL_LSTM:
                    c_out[i, j] = c0[i, j] if has_c0 else 0
        for s in range(T):
            t = T - 1 - s if go_backwards else s
            for i in range(n):
                memcpy(&hprev[i, t, 0], &h_out[i, 0], u * sizeof(floating))
                if cell == CELL_LSTM:
                    memcpy(&cprev[i, t, 0], &c_out[i, 0], u * sizeof(floating))
            g = &gates[0, t, 0]
            if cell == CELL_GRU and reset_after:
                gemm_rm(False, False, n, G, u, &h_out[0, 0], u, &rk[0, 0], G, 0,
                        &scratch[0], G)
            elif cell == CELL_GRU:
                gemm_rm(False, False, n, 2 * u, u, &h_out[0, 0], u, &rk[0, 0], G, 1, g, ld)
            else:
                gemm_rm(False, False, n, G, u, &h_out[0, 0], u, &rk[0, 0], G, 1, g, ld)
            if cell == CELL_GRU and not reset_after:
                # z and r, then the reset state r * h_prev into the fourth block
                for i in range(n):
                    g = &gates[i, t, 0]
                    h = &h_out[i, 0]
                    for j in range(2 * u):
                        b = ibias[j] if has_ibias else 0
                        g[j] = act_scalar(g[j] + b, ract, a_ract)
                    for j in range(u):
                        g[3 * u + j] = g[u + j] * h[j]
                gemm_rm(False, False, n, u, u, &gates[0, t, 3 * u], ld, &rk[0, 2 * u], G, 1,
                        &gates[0, t, 2 * u], ld)
            for i in range(n):
                m = mask[i, t] if has_mask else True
                g = &gates[i, t, 0]
                h = &h_out[i, 0]
                o = &out[i, s, 0]
                if cell == CELL_SIMPLE:
                    for j in range(u):
                        b = ibias[j] if has_ibias else 0
                        g[j] = act_scalar(g[j] + b, act, a_act)
                        if m:
                            h[j] = g[j]
                elif cell == CELL_LSTM:
                    c = &c_out[i, 0]
                    for j in range(4 * u):
                        b = ibias[j] if has_ibias else 0
                        if 2 * u <= j < 3 * u:
                            g[j] = act_scalar(g[j] + b, act, a_act)
                        else:
                            g[j] = act_scalar(g[j] + b, ract, a_ract)
                    for j in range(u):
                        zi = g[j]
                        zf = g[u + j]
                        zg = g[2 * u + j]
                        zo = g[3 * u + j]
                        cn = zf * c[j] + zi * zg
                        hn = zo * act_scalar(cn, act, a_act)
                        if m:
                            c[j] = cn
                            h[j] = hn
                elif reset_after:
                    rec = &scratch[i * G]
                    for j in range(u):
                        b = ibias[j] if has_ibias else 0
                        z = act_scalar(g[j] + b + rec[j] + (rbias[j] if has_rbias else 0),
                                       ract, a_ract)
                        b = ibias[u + j] if has_ibias else 0
                        r = act_scalar(g[u + j] + b + rec[u + j] +
                                       (rbias[u + j] if has_rbias else 0), ract, a_ract)
                        rh = rec[2 * u + j] + (rbias[2 * u + j] if has_rbias else 0)
                        b = ibias[2 * u + j] if has_ibias else 0
                        hh = act_scalar(g[2 * u + j] + b + r * rh, act, a_act)
                        g[j] = z
                        g[u + j] = r
                        g[2 * u + j] = hh
                        g[3 * u + j] = rh
                        if m:
                            h[j] = z * h[j] + (1 - z) * hh
                else:
                    for j in range(u):
                        b = ibias[2 * u + j] if has_ibias else 0
                        hh = act_scalar(g[2 * u + j] + b, act, a_act)
                        g[2 * u + j] = hh
                        z = g[j]
                        if m:
                            h[j] = z * h[j] + (1 - z) * hh
                if m:
                    memcpy(o, h, u * sizeof(floating))
                elif s == 0:
                    memset(o, 0, u * sizeof(floating))
                else:
                    memcpy(o, &out[i, s - 1, 0], u * sizeof(floating))


cdef _check_rnn(str fn, int cell, bint reset_after, Py_ssize_t n, Py_ssize_t T,
                Py_ssize_t d, Py_ssize_t u, Py_ssize_t G, Py_ssize_t W):
    """The cell code and the widths of the kernels and the gates workspace."""
    if cell not in (CELL_SIMPLE, CELL_LSTM, CELL_GRU):
        raise ValueError(f"{fn}: unknown cell code {cell}")
    cdef Py_ssize_t k = 1 if cell == CELL_SIMPLE else (4 if cell == CELL_LSTM else 3)
    cdef Py_ssize_t w = 1 if cell == CELL_SIMPLE else 4
    if G != k * u:
        raise ValueError(f"{fn}: the recurrent kernel must be (units, {k} * units), got "
                         f"{(u, G)}")
    if W != w * u:
        raise ValueError(f"{fn}: gates must have {w} * units = {w * u} columns, got {W}")


cdef void column_sums64(const floating* a, Py_ssize_t rows, Py_ssize_t lda, Py_ssize_t cols,
                        floating* out) noexcept nogil:
    """``out[j] = sum_r a[r * lda + j]`` accumulated in float64."""
    cdef Py_ssize_t r, j
    cdef double acc
    for j in range(cols):
        acc = 0
        for r in range(rows):
            acc += a[r * lda + j]
        out[j] = <floating>acc


@cython.boundscheck(False)
@cython.wraparound(False)
def rnn_backward(int cell, bint reset_after, const floating[:, :, ::1] dy not None,
                 bint has_dy, const floating[:, :, ::1] x not None,
                 const floating[:, ::1] kernel not None, const floating[:, ::1] rk not None,
                 const floating[:, :, ::1] hprev not None,
                 const floating[:, :, ::1] cprev not None,
                 const floating[:, :, ::1] gates not None,
                 const unsigned char[:, ::1] mask not None, bint has_mask,
                 const floating[:, ::1] dh_out not None, bint has_dh,
                 const floating[:, ::1] dc_out not None, bint has_dc,
                 floating[:, :, ::1] dx not None, bint has_dx,
                 floating[:, ::1] dkernel not None, floating[:, ::1] drk not None,
                 floating[::1] dbias_in not None, floating[::1] dbias_rec not None,
                 bint has_dbias, floating[:, ::1] dh0 not None, floating[:, ::1] dc0 not None,
                 bint has_dstate, floating[:, :, ::1] dgates not None,
                 floating[::1] scratch not None, int act, int ract, floating a_act,
                 floating a_ract, bint go_backwards):
    """Backpropagation through time of :func:`rnn_forward` (see the module docstring).
    ``scratch`` holds at least ``5 * n * units`` elements."""
    cdef Py_ssize_t n = x.shape[0], T = x.shape[1], d = x.shape[2], u = rk.shape[0]
    cdef Py_ssize_t G = rk.shape[1], W = gates.shape[2], ld = T * W, nu = n * u
    cdef Py_ssize_t N = n * T
    cdef Py_ssize_t i, j, s, t
    cdef floating *dh = &scratch[0]
    cdef floating *dc = &scratch[nu]
    cdef floating *carry = &scratch[2 * nu]
    cdef floating *dhn = &scratch[3 * nu]
    cdef floating *drec = &scratch[4 * nu]
    cdef const floating *g
    cdef const floating *hp
    cdef floating *dg
    cdef floating zi, zf, zg, zo, cp, cv, tc, dcv, z, r, hh, rec, dhh, hv
    cdef bint m
    _check_rnn("rnn_backward", cell, reset_after, n, T, d, u, G, W)
    fn = "rnn_backward"
    _want(fn, "kernel", _s2(kernel.shape), (d, G))
    _want(fn, "hprev", _s3(hprev.shape), (n, T, u))
    _want(fn, "dkernel", _s2(dkernel.shape), (d, G))
    _want(fn, "drk", _s2(drk.shape), (u, G))
    _want(fn, "gates", _s3(gates.shape), (n, T, W))
    _want(fn, "dgates", _s3(dgates.shape), (n, T, W))
    for name, flag, shape, want in (
            ("dy", has_dy, _s3(dy.shape), (n, T, u)),
            ("mask", has_mask, _s2(mask.shape), (n, T)),
            ("dh_out", has_dh, _s2(dh_out.shape), (n, u)),
            ("dc_out", has_dc and cell == CELL_LSTM, _s2(dc_out.shape), (n, u)),
            ("dx", has_dx, _s3(dx.shape), (n, T, d)),
            ("dbias_in", has_dbias, _s1(dbias_in.shape), (G,)),
            ("dbias_rec", has_dbias and cell == CELL_GRU and reset_after,
             _s1(dbias_rec.shape), (G,)),
            ("dh0", has_dstate, _s2(dh0.shape), (n, u)),
            ("dc0", has_dstate and cell == CELL_LSTM, _s2(dc0.shape), (n, u)),
            ("cprev", cell == CELL_LSTM, _s3(cprev.shape), (n, T, u))):
        if flag:
            _want(fn, name, shape, want)
        else:
            size = 1
            for v in shape:
                size *= v
            _unused(fn, name, size)
    has_dc = has_dc and cell == CELL_LSTM
    if scratch.shape[0] < 5 * n * u:
        raise ValueError(f"{fn}: scratch needs at least {5 * n * u} elements, got "
                         f"{scratch.shape[0]}")
    with nogil:
        for j in range(nu):
            dh[j] = dh_out[j // u, j % u] if has_dh else 0
            dc[j] = dc_out[j // u, j % u] if has_dc else 0
            carry[j] = 0
        for s in range(T - 1, -1, -1):
            t = T - 1 - s if go_backwards else s
            for i in range(n):
                m = mask[i, t] if has_mask else True
                if has_dy:
                    for j in range(u):
                        carry[i * u + j] += dy[i, s, j]
                dg = &dgates[i, t, 0]
                if not m:
                    memset(dg, 0, W * sizeof(floating))
                    continue
                for j in range(u):
                    dh[i * u + j] += carry[i * u + j]
                    carry[i * u + j] = 0
                g = &gates[i, t, 0]
                hp = &hprev[i, t, 0]
                if cell == CELL_SIMPLE:
                    for j in range(u):
                        dg[j] = act_grad_scalar(dh[i * u + j], g[j], 0, act, a_act)
                elif cell == CELL_LSTM:
                    for j in range(u):
                        zi = g[j]
                        zf = g[u + j]
                        zg = g[2 * u + j]
                        zo = g[3 * u + j]
                        cp = cprev[i, t, j]
                        cv = zf * cp + zi * zg
                        tc = act_scalar(cv, act, a_act)
                        dcv = dc[i * u + j] + act_grad_scalar(dh[i * u + j] * zo, tc, 0, act,
                                                              a_act)
                        dg[j] = act_grad_scalar(dcv * zg, zi, 0, ract, a_ract)
                        dg[u + j] = act_grad_scalar(dcv * cp, zf, 0, ract, a_ract)
                        dg[2 * u + j] = act_grad_scalar(dcv * zi, zg, 0, act, a_act)
                        dg[3 * u + j] = act_grad_scalar(dh[i * u + j] * tc, zo, 0, ract,
                                                        a_ract)
                        dc[i * u + j] = dcv * zf
                else:
                    for j in range(u):
                        z = g[j]
                        r = g[u + j]
                        hh = g[2 * u + j]
                        rec = g[3 * u + j]
                        hv = dh[i * u + j]
                        dhh = act_grad_scalar(hv * (1 - z), hh, 0, act, a_act)
                        dg[3 * u + j] = dhh
                        dg[j] = act_grad_scalar(hv * (hp[j] - hh), z, 0, ract, a_ract)
                        if reset_after:
                            dg[u + j] = act_grad_scalar(dhh * rec, r, 0, ract, a_ract)
                            dg[2 * u + j] = dhh * r
                        else:
                            dg[2 * u + j] = dhh
            # the state gradient: one product (two for the GRU without reset_after)
            if cell == CELL_GRU and not reset_after:
                gemm_rm(False, True, n, u, u, &dgates[0, t, 2 * u], ld, &rk[0, 2 * u], G, 0,
                        drec, u)
                for i in range(n):
                    if has_mask and not mask[i, t]:
                        continue
                    for j in range(u):
                        dgates[i, t, u + j] = act_grad_scalar(
                            drec[i * u + j] * hprev[i, t, j], gates[i, t, u + j], 0, ract,
                            a_ract)
                gemm_rm(False, True, n, u, 2 * u, &dgates[0, t, 0], ld, &rk[0, 0], G, 0, dhn, u)
            elif cell == CELL_GRU:
                gemm_rm(False, True, n, u, 3 * u, &dgates[0, t, 0], ld, &rk[0, 0], G, 0, dhn, u)
            else:
                gemm_rm(False, True, n, u, G, &dgates[0, t, 0], ld, &rk[0, 0], G, 0, dhn, u)
            for i in range(n):
                if has_mask and not mask[i, t]:
                    continue
                for j in range(u):
                    if cell == CELL_GRU:
                        hv = dh[i * u + j] * gates[i, t, j] + dhn[i * u + j]
                        if not reset_after:
                            hv = hv + drec[i * u + j] * gates[i, t, u + j]
                        dh[i * u + j] = hv
                    else:
                        dh[i * u + j] = dhn[i * u + j]
        if has_dstate:
            for j in range(nu):
                dh0[j // u, j % u] = dh[j]
                if cell == CELL_LSTM:
                    dc0[j // u, j % u] = dc[j]
        # weight and input gradients: a few large products over all n * T rows
        if cell == CELL_GRU:
            gemm_rm(True, False, d, 2 * u, N, &x[0, 0, 0], d, &dgates[0, 0, 0], W, 0,
                    &dkernel[0, 0], G)
            gemm_rm(True, False, d, u, N, &x[0, 0, 0], d, &dgates[0, 0, 3 * u], W, 0,
                    &dkernel[0, 2 * u], G)
            if reset_after:
                gemm_rm(True, False, u, 3 * u, N, &hprev[0, 0, 0], u, &dgates[0, 0, 0], W, 0,
                        &drk[0, 0], G)
            else:
                gemm_rm(True, False, u, 2 * u, N, &hprev[0, 0, 0], u, &dgates[0, 0, 0], W, 0,
                        &drk[0, 0], G)
                gemm_rm(True, False, u, u, N, &gates[0, 0, 3 * u], W, &dgates[0, 0, 2 * u], W,
                        0, &drk[0, 2 * u], G)
            if has_dbias:
                column_sums64(&dgates[0, 0, 0], N, W, 2 * u, &dbias_in[0])
                column_sums64(&dgates[0, 0, 3 * u], N, W, u, &dbias_in[2 * u])
                if reset_after:
                    column_sums64(&dgates[0, 0, 0], N, W, 3 * u, &dbias_rec[0])
            if has_dx:
                gemm_rm(False, True, N, d, 2 * u, &dgates[0, 0, 0], W, &kernel[0, 0], G, 0,
                        &dx[0, 0, 0], d)
                gemm_rm(False, True, N, d, u, &dgates[0, 0, 3 * u], W, &kernel[0, 2 * u], G, 1,
                        &dx[0, 0, 0], d)
        else:
            gemm_rm(True, False, d, G, N, &x[0, 0, 0], d, &dgates[0, 0, 0], W, 0,
                    &dkernel[0, 0], G)
            gemm_rm(True, False, u, G, N, &hprev[0, 0, 0], u, &dgates[0, 0, 0], W, 0,
                    &drk[0, 0], G)
            if has_dbias:
                column_sums64(&dgates[0, 0, 0], N, W, G, &dbias_in[0])
            if has_dx:
                gemm_rm(False, True, N, d, G, &dgates[0, 0, 0], W, &kernel[0, 0], G, 0,
                        &dx[0, 0, 0], d)
