# cython: language_level=3, cdivision=True
"""Sequence kernels, the compiled versions of :mod:`pynn.backends.embedding` and
:mod:`pynn.backends.recurrent`'s reference ops.

* Embedding: the gather (one ``memcpy`` per id) and the scatter-add of its gradient.
* Recurrent layers (SimpleRNN, LSTM, GRU with ``reset_after`` either way): the whole
  time loop runs here without the GIL. Forward: the input projection of every timestep
  as one BLAS product written into the ``gates`` workspace, then per step the recurrent
  product (accumulated into that step's gate rows, or into ``scratch`` for the GRU's
  reset-after candidate) and the gate epilogue per row (activations, cell and state
  update, mask, output). Backward: per step the pre-activation gradients per row and
  one product for the state gradient (two for the GRU without ``reset_after``); after
  the loop the weight and input gradients as a few large products, the bias gradients
  as float64 column sums.
* The epilogues are short passes over contiguous blocks of ``units`` values with the
  activation chosen outside each loop, so GCC vectorises them; float32 sigmoid and tanh
  come from ``vec_math.h`` (polynomials within 3 ulp of libm), float64 keeps libm.
  ``rnn_products`` runs the products alone, the floor the epilogues add to.
* Recurrent dropout (``has_rmask``): ``rmask (n, G)`` multiplies ``h_prev`` per gate
  block where it enters that block's recurrent product, so those products run one block
  at a time on a masked copy of the state (``masked_recurrent_product``,
  ``masked_state_grad_product``, ``masked_hprev_products``); without it the code path
  is the one above, unchanged.

Layouts and workspaces are those of the reference ops (see ``pynn/backends/recurrent.py``);
the backend wrappers in ``pynn.backends.cython_backend`` validate every argument with the
same ``prep_*`` functions, so nothing here re-checks shapes. Nothing is allocated.
"""
cimport cython
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from pynn_math cimport (ACT_LINEAR, ACT_SIGMOID, ACT_TANH, act_forward_flat, act_grad_scalar,
                       column_sums_strided)


cdef extern from "vec_math.h" nogil:
    void pynn_vsigmoidf(const float* x, float* out, Py_ssize_t n)
    void pynn_vtanhf(const float* x, float* out, Py_ssize_t n)

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
# the matrix products of the recurrent kernels, shared with rnn_products (the
# benchmark's "products only" floor). Row-major; ``ld = T * W`` is the row stride of
# one step's rows in the (n, T, W) gates workspaces.
# ---------------------------------------------------------------------------
cdef inline void input_product(Py_ssize_t N, Py_ssize_t d, Py_ssize_t G, Py_ssize_t W,
                               const floating* x, const floating* kernel,
                               floating* gates) noexcept nogil:
    """``gates[:, :G] = x @ kernel`` over all ``N = n * T`` rows."""
    gemm_rm(False, False, N, G, d, x, d, kernel, G, 0, gates, W)


cdef inline void recurrent_product(int cell, bint reset_after, Py_ssize_t n, Py_ssize_t u,
                                   Py_ssize_t G, Py_ssize_t ld, const floating* h,
                                   const floating* rk, floating* g,
                                   floating* rec) noexcept nogil:
    """One step's ``h @ recurrent_kernel``: added to the step's gate rows ``g``, except
    for the GRU with ``reset_after`` (written to ``rec (n, 3u)``) and the GRU without
    it (the z, r columns only; the candidate's product follows the reset)."""
    if cell == CELL_GRU and reset_after:
        gemm_rm(False, False, n, G, u, h, u, rk, G, 0, rec, G)
    elif cell == CELL_GRU:
        gemm_rm(False, False, n, 2 * u, u, h, u, rk, G, 1, g, ld)
    else:
        gemm_rm(False, False, n, G, u, h, u, rk, G, 1, g, ld)


cdef inline Py_ssize_t rec_blocks(int cell, bint reset_after, Py_ssize_t u,
                                  Py_ssize_t G) noexcept nogil:
    """How many gate blocks read ``h_prev`` through the recurrent dropout mask (none
    without units)."""
    if u == 0:
        return 0
    return 2 if (cell == CELL_GRU and not reset_after) else G // u


cdef inline void rows_times(Py_ssize_t n, Py_ssize_t u, const floating* a, Py_ssize_t lda,
                            const floating* m, Py_ssize_t ldm, floating* out) noexcept nogil:
    """``out (n, u) = a * m`` row by row (``a``, ``m`` with row strides ``lda``, ``ldm``)."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(u):
            out[i * u + j] = a[i * lda + j] * m[i * ldm + j]


cdef void masked_recurrent_product(int cell, bint reset_after, Py_ssize_t n, Py_ssize_t u,
                                   Py_ssize_t G, Py_ssize_t ld, const floating* h,
                                   const floating* rk, const floating* rm, floating* hm,
                                   floating* g, floating* rec) noexcept nogil:
    """:func:`recurrent_product` with recurrent dropout: block ``b`` of the product reads
    ``h * rm[:, b]`` (copied into ``hm (n, u)``), written where the plain product goes."""
    cdef Py_ssize_t b, nb = rec_blocks(cell, reset_after, u, G)
    for b in range(nb):
        rows_times(n, u, h, u, &rm[b * u], G, hm)
        if cell == CELL_GRU and reset_after:
            gemm_rm(False, False, n, u, u, hm, u, &rk[b * u], G, 0, &rec[b * u], G)
        else:
            gemm_rm(False, False, n, u, u, hm, u, &rk[b * u], G, 1, &g[b * u], ld)


cdef void masked_state_grad_product(int cell, bint reset_after, Py_ssize_t n, Py_ssize_t u,
                                    Py_ssize_t G, Py_ssize_t ld, const floating* dg,
                                    const floating* rk, const floating* rm, floating* tmp,
                                    floating* dhn) noexcept nogil:
    """:func:`state_grad_product` with recurrent dropout: ``dhn = sum_b (dg_b @ rk_b.T) *
    rm[:, b]`` over the blocks that read ``h_prev`` through the mask."""
    cdef Py_ssize_t b, i, j, nb = rec_blocks(cell, reset_after, u, G)
    memset(dhn, 0, n * u * sizeof(floating))
    for b in range(nb):
        gemm_rm(False, True, n, u, u, &dg[b * u], ld, &rk[b * u], G, 0, tmp, u)
        for i in range(n):
            for j in range(u):
                dhn[i * u + j] += tmp[i * u + j] * rm[i * G + b * u + j]


cdef void masked_hprev_products(int cell, bint reset_after, Py_ssize_t n, Py_ssize_t T,
                                Py_ssize_t u, Py_ssize_t G, Py_ssize_t W,
                                const floating* hprev, const floating* rm,
                                const floating* dgates, floating* hm,
                                floating* drk) noexcept nogil:
    """The ``hprev`` blocks of ``drk`` with recurrent dropout: ``drk[:, b] = (hprev *
    rm[:, b]).T @ dgates[:, b]`` (``hm`` holds ``n * T * u``), overwriting what
    :func:`weight_products` wrote there."""
    cdef Py_ssize_t b, i, t, nb = rec_blocks(cell, reset_after, u, G)
    for b in range(nb):
        for i in range(n):
            for t in range(T):
                rows_times(1, u, &hprev[(i * T + t) * u], u, &rm[i * G + b * u], G,
                           &hm[(i * T + t) * u])
        gemm_rm(True, False, u, u, n * T, hm, u, &dgates[b * u], W, 0, &drk[b * u], G)


cdef inline void reset_product(Py_ssize_t n, Py_ssize_t u, Py_ssize_t G, Py_ssize_t ld,
                               const floating* rk, floating* g) noexcept nogil:
    """GRU without ``reset_after``: the candidate block ``g[:, 2u:3u] += (r * h_prev)
    @ recurrent_kernel[:, 2u:]`` (``r * h_prev`` sits in ``g[:, 3u:]``)."""
    gemm_rm(False, False, n, u, u, &g[3 * u], ld, &rk[2 * u], G, 1, &g[2 * u], ld)


cdef inline void candidate_grad_product(Py_ssize_t n, Py_ssize_t u, Py_ssize_t G,
                                        Py_ssize_t ld, const floating* dg,
                                        const floating* rk, floating* drec) noexcept nogil:
    """GRU without ``reset_after``: ``drec (n, u) = d(candidate) @ rk[:, 2u:].T``."""
    gemm_rm(False, True, n, u, u, &dg[2 * u], ld, &rk[2 * u], G, 0, drec, u)


cdef inline void transpose_into(Py_ssize_t r, Py_ssize_t c, const floating* a,
                                floating* out) noexcept nogil:
    """``out (c, r) = a (r, c).T``, both row-major."""
    cdef Py_ssize_t i, j
    for i in range(r):
        for j in range(c):
            out[j * r + i] = a[i * c + j]


cdef inline void state_grad_product(int cell, bint reset_after, Py_ssize_t n, Py_ssize_t u,
                                    Py_ssize_t G, Py_ssize_t ld, const floating* dg,
                                    const floating* rkT, floating* dhn) noexcept nogil:
    """One step's state gradient ``dhn (n, u) = dgates @ recurrent_kernel.T`` over the
    recurrent columns (z, r only for the GRU without ``reset_after``). ``rkT (G, u)`` is
    the recurrent kernel transposed once per call: OpenBLAS's plain product at these
    shapes (32 x 256 by 256 x 64) takes under half the time of its transposed one."""
    cdef Py_ssize_t k = 2 * u if (cell == CELL_GRU and not reset_after) else G
    gemm_rm(False, False, n, u, k, dg, ld, rkT, u, 0, dhn, u)


cdef void weight_products(int cell, bint reset_after, Py_ssize_t N, Py_ssize_t d,
                          Py_ssize_t u, Py_ssize_t G, Py_ssize_t W, const floating* x,
                          const floating* kernel, const floating* hprev,
                          const floating* gates, const floating* dgates, floating* dkernel,
                          floating* drk, floating* dx) noexcept nogil:
    """After the time loop, over all ``N = n * T`` rows: ``dkernel = x.T @ dgates``,
    ``drk = hprev.T @ dgates`` and (``dx`` not NULL) ``dx = dgates @ kernel.T``. The
    GRU's input side reads columns z, r and the input candidate (0:2u, 3u:4u); without
    ``reset_after`` its candidate's recurrent kernel pairs with ``r * h_prev``."""
    if cell != CELL_GRU:
        gemm_rm(True, False, d, G, N, x, d, dgates, W, 0, dkernel, G)
        gemm_rm(True, False, u, G, N, hprev, u, dgates, W, 0, drk, G)
        if dx != NULL:
            gemm_rm(False, True, N, d, G, dgates, W, kernel, G, 0, dx, d)
        return
    gemm_rm(True, False, d, 2 * u, N, x, d, dgates, W, 0, dkernel, G)
    gemm_rm(True, False, d, u, N, x, d, &dgates[3 * u], W, 0, &dkernel[2 * u], G)
    if reset_after:
        gemm_rm(True, False, u, 3 * u, N, hprev, u, dgates, W, 0, drk, G)
    else:
        gemm_rm(True, False, u, 2 * u, N, hprev, u, dgates, W, 0, drk, G)
        gemm_rm(True, False, u, u, N, &gates[3 * u], W, &dgates[2 * u], W, 0, &drk[2 * u], G)
    if dx != NULL:
        gemm_rm(False, True, N, d, 2 * u, dgates, W, kernel, G, 0, dx, d)
        gemm_rm(False, True, N, d, u, &dgates[3 * u], W, &kernel[2 * u], G, 1, dx, d)


# ---------------------------------------------------------------------------
# gate epilogues: one row (one sample, one step) at a time, each a few passes over
# contiguous blocks of ``u`` values with the activation chosen outside the loops, so
# GCC vectorises them (float32 sigmoid and tanh from vec_math.h)
# ---------------------------------------------------------------------------
cdef inline void act_into(const floating* z, floating* out, Py_ssize_t n, int code,
                          floating a) noexcept nogil:
    """``out = act(z)`` over ``n`` contiguous values (``out`` may be ``z``)."""
    if floating is float:
        if code == ACT_SIGMOID:
            pynn_vsigmoidf(z, out, n)
            return
        if code == ACT_TANH:
            pynn_vtanhf(z, out, n)
            return
    act_forward_flat(z, out, n, code, a)


cdef inline void act_grad_inplace(floating* dy, const floating* y, Py_ssize_t n, int code,
                                  floating a) noexcept nogil:
    """``dy = dy * act'(.)`` from the activation's output ``y`` (``act_grad_scalar``'s
    arithmetic, with the common codes in loops of their own)."""
    cdef Py_ssize_t j
    if code == ACT_SIGMOID:
        for j in range(n):
            dy[j] = dy[j] * y[j] * (1 - y[j])
    elif code == ACT_TANH:
        for j in range(n):
            dy[j] = dy[j] * (1 - y[j] * y[j])
    elif code != ACT_LINEAR:
        for j in range(n):
            dy[j] = act_grad_scalar(dy[j], y[j], 0, code, a)


cdef inline void lstm_step_row(floating* g, floating* c, floating* h, floating* cn,
                               floating* tc, Py_ssize_t u, bint m, int act, int ract,
                               floating a_act, floating a_ract) noexcept nogil:
    """Gates ``g`` (i, f, c, o pre-activations) activated in place; the new cell state
    ``cn`` and ``tc = act(cn)`` (scratch, ``u`` each); ``c`` and ``h`` updated unless
    the step is masked."""
    cdef Py_ssize_t j
    act_into(g, g, 2 * u, ract, a_ract)
    act_into(&g[2 * u], &g[2 * u], u, act, a_act)
    act_into(&g[3 * u], &g[3 * u], u, ract, a_ract)
    for j in range(u):
        cn[j] = g[u + j] * c[j] + g[j] * g[2 * u + j]
    act_into(cn, tc, u, act, a_act)
    if m:
        for j in range(u):
            c[j] = cn[j]
            h[j] = g[3 * u + j] * tc[j]


cdef inline void gru_step_row(floating* g, floating* rec, const floating* rbias, floating* h,
                              Py_ssize_t u, bint m, int act, int ract, floating a_act,
                              floating a_ract) noexcept nogil:
    """GRU with ``reset_after``: ``g`` holds the input side (bias added), ``rec`` the
    recurrent product ``h_prev @ recurrent_kernel`` (``rbias`` added here unless NULL);
    ``g`` becomes z, r, hh and the recurrent candidate; ``h`` updated unless masked."""
    cdef Py_ssize_t j
    if rbias != NULL:
        for j in range(3 * u):
            rec[j] = rec[j] + rbias[j]
    for j in range(2 * u):
        g[j] = g[j] + rec[j]
    act_into(g, g, 2 * u, ract, a_ract)
    for j in range(u):
        g[3 * u + j] = rec[2 * u + j]
        g[2 * u + j] = g[2 * u + j] + g[u + j] * rec[2 * u + j]
    act_into(&g[2 * u], &g[2 * u], u, act, a_act)
    if m:
        for j in range(u):
            h[j] = g[j] * h[j] + (1 - g[j]) * g[2 * u + j]


cdef inline void lstm_grad_row(const floating* g, const floating* cp, const floating* dh,
                               floating* dc, floating* dg, floating* tc, Py_ssize_t u,
                               int act, int ract, floating a_act,
                               floating a_ract) noexcept nogil:
    """Pre-activation gradients ``dg`` (i, f, c, o) of one LSTM step from the state
    gradients ``dh`` and ``dc``; ``dc`` becomes the cell gradient of the step before.
    ``tc`` is scratch (``u``): ``act(c)``, recomputed from the gates and ``cp``."""
    cdef Py_ssize_t j
    cdef floating dcv
    for j in range(u):
        tc[j] = g[u + j] * cp[j] + g[j] * g[2 * u + j]
    act_into(tc, tc, u, act, a_act)
    for j in range(u):
        dg[3 * u + j] = dh[j] * g[3 * u + j]
    act_grad_inplace(&dg[3 * u], tc, u, act, a_act)
    for j in range(u):
        dcv = dc[j] + dg[3 * u + j]
        dg[j] = dcv * g[2 * u + j]
        dg[u + j] = dcv * cp[j]
        dg[2 * u + j] = dcv * g[j]
        dg[3 * u + j] = dh[j] * tc[j]
        dc[j] = dcv * g[u + j]
    act_grad_inplace(dg, g, 2 * u, ract, a_ract)
    act_grad_inplace(&dg[2 * u], &g[2 * u], u, act, a_act)
    act_grad_inplace(&dg[3 * u], &g[3 * u], u, ract, a_ract)


cdef inline void gru_grad_row(const floating* g, const floating* hp, const floating* dh,
                              floating* dg, Py_ssize_t u, bint reset_after, int act,
                              int ract, floating a_act, floating a_ract) noexcept nogil:
    """Pre-activation gradients of one GRU step: ``dg`` = dz, dr, d(recurrent
    candidate), d(input candidate). Without ``reset_after`` dr needs the product the
    caller forms after this (it is left untouched here)."""
    cdef Py_ssize_t j
    for j in range(u):
        dg[3 * u + j] = dh[j] * (1 - g[j])
        dg[j] = dh[j] * (hp[j] - g[2 * u + j])
    act_grad_inplace(&dg[3 * u], &g[2 * u], u, act, a_act)
    act_grad_inplace(dg, g, u, ract, a_ract)
    if reset_after:
        for j in range(u):
            dg[u + j] = dg[3 * u + j] * g[3 * u + j]
            dg[2 * u + j] = dg[3 * u + j] * g[u + j]
        act_grad_inplace(&dg[u], &g[u], u, ract, a_ract)
    else:
        memcpy(&dg[2 * u], &dg[3 * u], u * sizeof(floating))


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
                floating a_ract, bint go_backwards,
                const floating[:, ::1] rmask not None, bint has_rmask):
    """The forward time loop of one recurrent layer (see the module docstring).
    ``scratch`` holds at least ``n * G`` elements, ``n * (G + units)`` with ``rmask``."""
    cdef Py_ssize_t n = x.shape[0], T = x.shape[1], d = x.shape[2], u = rk.shape[0]
    cdef Py_ssize_t G = rk.shape[1], W = gates.shape[2], ld = T * W
    cdef Py_ssize_t i, j, s, t
    cdef floating *g
    cdef floating *h
    cdef floating *c
    cdef floating *o
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
    if has_rmask:
        _want(fn, "rmask", _s2(rmask.shape), (n, G))
    else:
        _unused(fn, "rmask", rmask.shape[0] * rmask.shape[1])
    cdef Py_ssize_t need = n * (G + u) if has_rmask else n * G
    if scratch.shape[0] < need:
        raise ValueError(f"{fn}: scratch needs at least {need} elements, got "
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
        # the input projection of every step, and the input bias, in one pass each
        input_product(n * T, d, G, W, &x[0, 0, 0], &kernel[0, 0], &gates[0, 0, 0])
        if has_ibias:
            for i in range(n * T):
                g = &gates[0, 0, 0] + i * W
                for j in range(G):
                    g[j] = g[j] + ibias[j]
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
            if has_rmask:
                masked_recurrent_product(cell, reset_after, n, u, G, ld, &h_out[0, 0],
                                         &rk[0, 0], &rmask[0, 0], &scratch[n * G],
                                         &gates[0, t, 0], &scratch[0])
            else:
                recurrent_product(cell, reset_after, n, u, G, ld, &h_out[0, 0], &rk[0, 0],
                                  &gates[0, t, 0], &scratch[0])
            if cell == CELL_GRU and not reset_after:
                # z and r, then the reset state r * h_prev (* its dropout) into the 4th block
                for i in range(n):
                    g = &gates[i, t, 0]
                    h = &h_out[i, 0]
                    act_into(g, g, 2 * u, ract, a_ract)
                    for j in range(u):
                        g[3 * u + j] = g[u + j] * h[j]
                    if has_rmask:
                        for j in range(u):
                            g[3 * u + j] = g[3 * u + j] * rmask[i, 2 * u + j]
                reset_product(n, u, G, ld, &rk[0, 0], &gates[0, t, 0])
            for i in range(n):
                m = mask[i, t] if has_mask else True
                g = &gates[i, t, 0]
                h = &h_out[i, 0]
                o = &out[i, s, 0]
                if cell == CELL_SIMPLE:
                    act_into(g, g, u, act, a_act)
                    if m:
                        memcpy(h, g, u * sizeof(floating))
                elif cell == CELL_LSTM:
                    lstm_step_row(g, &c_out[i, 0], h, &scratch[0], &scratch[u], u, m, act,
                                  ract, a_act, a_ract)
                elif reset_after:
                    gru_step_row(g, &scratch[i * G], &rbias[0] if has_rbias else NULL, h, u,
                                 m, act, ract, a_act, a_ract)
                else:
                    act_into(&g[2 * u], &g[2 * u], u, act, a_act)
                    if m:
                        for j in range(u):
                            h[j] = g[j] * h[j] + (1 - g[j]) * g[2 * u + j]
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
                 floating a_ract, bint go_backwards,
                 const floating[:, ::1] rmask not None, bint has_rmask):
    """Backpropagation through time of :func:`rnn_forward` (see the module docstring).
    ``scratch`` holds at least ``(5 * n + G) * units`` elements, with ``rmask`` ``(6 * n
    + n * T) * units``."""
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
    cdef floating hv
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
    if has_rmask:
        _want(fn, "rmask", _s2(rmask.shape), (n, G))
    else:
        _unused(fn, "rmask", rmask.shape[0] * rmask.shape[1])
    cdef Py_ssize_t need = (6 * n + N) * u if has_rmask else (5 * n + G) * u
    if scratch.shape[0] < need:
        raise ValueError(f"{fn}: scratch needs at least {need} elements, got "
                         f"{scratch.shape[0]}")
    with nogil:
        if not has_rmask:
            transpose_into(u, G, &rk[0, 0], &scratch[5 * nu])
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
                if cell == CELL_SIMPLE:
                    memcpy(dg, &dh[i * u], u * sizeof(floating))
                    act_grad_inplace(dg, g, u, act, a_act)
                elif cell == CELL_LSTM:
                    lstm_grad_row(g, &cprev[i, t, 0], &dh[i * u], &dc[i * u], dg, drec, u,
                                  act, ract, a_act, a_ract)
                else:
                    gru_grad_row(g, &hprev[i, t, 0], &dh[i * u], dg, u, reset_after, act,
                                 ract, a_act, a_ract)
            # the state gradient: one product (two for the GRU without reset_after)
            if cell == CELL_GRU and not reset_after:
                candidate_grad_product(n, u, G, ld, &dgates[0, t, 0], &rk[0, 0], drec)
                for i in range(n):
                    if has_mask and not mask[i, t]:
                        continue
                    dg = &dgates[i, t, 0]
                    hp = &hprev[i, t, 0]
                    for j in range(u):
                        dg[u + j] = drec[i * u + j] * hp[j]
                    if has_rmask:  # the candidate read r * (h_prev * m_h)
                        for j in range(u):
                            dg[u + j] = dg[u + j] * rmask[i, 2 * u + j]
                            drec[i * u + j] = drec[i * u + j] * rmask[i, 2 * u + j]
                    act_grad_inplace(&dg[u], &gates[i, t, u], u, ract, a_ract)
            if has_rmask:
                masked_state_grad_product(cell, reset_after, n, u, G, ld, &dgates[0, t, 0],
                                          &rk[0, 0], &rmask[0, 0], &scratch[5 * nu], dhn)
            else:
                state_grad_product(cell, reset_after, n, u, G, ld, &dgates[0, t, 0],
                                   &scratch[5 * nu], dhn)
            for i in range(n):
                if has_mask and not mask[i, t]:
                    continue
                if cell != CELL_GRU:
                    memcpy(&dh[i * u], &dhn[i * u], u * sizeof(floating))
                    continue
                g = &gates[i, t, 0]
                for j in range(u):
                    hv = dh[i * u + j] * g[j] + dhn[i * u + j]
                    if not reset_after:
                        hv = hv + drec[i * u + j] * g[u + j]
                    dh[i * u + j] = hv
        if has_dstate:
            for j in range(nu):
                dh0[j // u, j % u] = dh[j]
                if cell == CELL_LSTM:
                    dc0[j // u, j % u] = dc[j]
        weight_products(cell, reset_after, N, d, u, G, W, &x[0, 0, 0], &kernel[0, 0],
                        &hprev[0, 0, 0], &gates[0, 0, 0], &dgates[0, 0, 0], &dkernel[0, 0],
                        &drk[0, 0], &dx[0, 0, 0] if has_dx else NULL)
        if has_rmask:
            masked_hprev_products(cell, reset_after, n, T, u, G, W, &hprev[0, 0, 0],
                                  &rmask[0, 0], &dgates[0, 0, 0], &scratch[6 * nu], &drk[0, 0])
        if has_dbias and cell == CELL_GRU:
            column_sums_strided(&dgates[0, 0, 0], W, &dbias_in[0], N, 2 * u)
            column_sums_strided(&dgates[0, 0, 3 * u], W, &dbias_in[2 * u], N, u)
            if reset_after:
                column_sums_strided(&dgates[0, 0, 0], W, &dbias_rec[0], N, 3 * u)
        elif has_dbias:
            column_sums_strided(&dgates[0, 0, 0], W, &dbias_in[0], N, G)


@cython.boundscheck(False)
@cython.wraparound(False)
def rnn_products(int cell, bint reset_after, const floating[:, :, ::1] x not None,
                 const floating[:, ::1] kernel not None, const floating[:, ::1] rk not None,
                 const floating[:, :, ::1] hprev not None, floating[:, :, ::1] gates not None,
                 floating[:, :, ::1] dgates not None, floating[:, :, ::1] dx not None,
                 bint has_dx, floating[:, ::1] dkernel not None, floating[:, ::1] drk not None,
                 floating[::1] scratch not None, bint forward, bint backward):
    """Only the matrix products of :func:`rnn_forward` (``forward``) and
    :func:`rnn_backward` (``backward``; the input gradient ``dx`` when ``has_dx``, else
    ``dx`` is empty), in their order, shapes and strides,
    on whatever the arrays hold: the floor the kernels' epilogues add to (``pynn bench
    --rnn``). ``scratch`` holds at least ``(n * (G + 3) + G) * units`` elements."""
    cdef Py_ssize_t n = x.shape[0], T = x.shape[1], d = x.shape[2], u = rk.shape[0]
    cdef Py_ssize_t G = rk.shape[1], W = gates.shape[2], ld = T * W
    cdef Py_ssize_t s, t
    fn = "rnn_products"
    _check_rnn(fn, cell, reset_after, n, T, d, u, G, W)
    _want(fn, "kernel", _s2(kernel.shape), (d, G))
    _want(fn, "hprev", _s3(hprev.shape), (n, T, u))
    _want(fn, "gates", _s3(gates.shape), (n, T, W))
    _want(fn, "dgates", _s3(dgates.shape), (n, T, W))
    if has_dx:
        _want(fn, "dx", _s3(dx.shape), (n, T, d))
    else:
        _unused(fn, "dx", dx.shape[0] * dx.shape[1] * dx.shape[2])
    _want(fn, "dkernel", _s2(dkernel.shape), (d, G))
    _want(fn, "drk", _s2(drk.shape), (u, G))
    cdef Py_ssize_t need = n * (G + 3 * u) + G * u
    if scratch.shape[0] < need:
        raise ValueError(f"{fn}: scratch needs at least {need} elements, got "
                         f"{scratch.shape[0]}")
    if n == 0 or T == 0:
        return
    cdef floating *h = &scratch[0]
    cdef floating *rec = &scratch[n * u]
    cdef floating *drec = &scratch[n * (u + G)]
    cdef floating *dhn = &scratch[n * (2 * u + G)]
    with nogil:
        if forward:
            input_product(n * T, d, G, W, &x[0, 0, 0], &kernel[0, 0], &gates[0, 0, 0])
            for s in range(T):
                recurrent_product(cell, reset_after, n, u, G, ld, h, &rk[0, 0],
                                  &gates[0, s, 0], rec)
                if cell == CELL_GRU and not reset_after:
                    reset_product(n, u, G, ld, &rk[0, 0], &gates[0, s, 0])
        if backward:
            transpose_into(u, G, &rk[0, 0], &scratch[n * (G + 3 * u)])
            for s in range(T - 1, -1, -1):
                if cell == CELL_GRU and not reset_after:
                    candidate_grad_product(n, u, G, ld, &dgates[0, s, 0], &rk[0, 0], drec)
                state_grad_product(cell, reset_after, n, u, G, ld, &dgates[0, s, 0],
                                   &scratch[n * (G + 3 * u)], dhn)
            weight_products(cell, reset_after, n * T, d, u, G, W, &x[0, 0, 0], &kernel[0, 0],
                            &hprev[0, 0, 0], &gates[0, 0, 0], &dgates[0, 0, 0],
                            &dkernel[0, 0], &drk[0, 0], &dx[0, 0, 0] if has_dx else NULL)


def epilogue_activation(int code, const floating[::1] x not None,
                        floating[::1] out not None):
    """``out = act(x)`` as the recurrent epilogues compute it (float32 sigmoid and tanh
    from ``vec_math.h``); for the accuracy tests (``tests/test_vec_math.py``)."""
    if code not in (ACT_LINEAR, ACT_SIGMOID, ACT_TANH):
        raise ValueError(f"epilogue_activation: code {code} is not linear (0), sigmoid (4) "
                         f"or tanh (5); relu and the others use pynn_math's loops")
    _want("epilogue_activation", "out", _s1(out.shape), _s1(x.shape))
    if x.shape[0]:
        with nogil:
            act_into(&x[0], &out[0], x.shape[0], code, <floating>0)
