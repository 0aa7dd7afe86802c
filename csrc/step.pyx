# cython: language_level=3, cdivision=True
"""One whole training step of a stack of Dense layers in one nogil call.

Forward (BLAS GEMM + bias/activation epilogue per layer), the loss and its
gradient on the last output, and backward (activation derivative in place,
``dW = A^T dZ``, ``db`` = column sums in float64, ``dA = dZ W^T``) run without
the GIL and without allocating arrays; the arithmetic follows the single-op
kernels of ``dense.pyx``, ``losses.pyx`` and ``layers.pyx`` (shared inline math
from ``pynn_math.pxd``). On x86 the step runs with flush-to-zero and
denormals-are-zero set in MXCSR (restored afterwards), so float32 work never
slows down on subnormal values. BLAS worker threads keep their own MXCSR, so the
float32 loss gradient is also flushed below FLT_MIN explicitly: a confident
softmax gives gradients like exp(-100), and a threaded GEMM over them crawls.

:func:`dense_stack` checks every array it is handed at C speed (type, dtype,
rank, shape chain, C-contiguity, alignment, writability) and raises
:class:`StepArgumentError` on the first mismatch; the backend then runs the
Python validator of ``pynn.backends.base`` for a clear message.
"""
cimport cython
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython cimport floating
from libc.math cimport exp, isfinite, log

from pynn_math cimport (ACT_LINEAR, ACT_RELU, ACT_SOFTMAX, PAIR_MAE, PAIR_MSE,
                        PAIR_SIGMOID_BCE, act_forward_flat, act_grad_scalar, act_is_epilogue,
                        act_needs_input, adam_loop,
                        bias_act_row, column_sums, flush_denormal, pair_loss_term, sgd_loop)

cnp.import_array()

cdef extern from "limits.h":
    const int INT_MAX

include "blas_select.pxi"

cdef extern from *:
    """
    #if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
    #include <xmmintrin.h>
    /* FTZ (bit 15) and DAZ (bit 6) on; returns the previous MXCSR */
    static inline unsigned int pynn_ftz_on(void) {
        unsigned int old = _mm_getcsr();
        _mm_setcsr(old | 0x8040u);
        return old;
    }
    static inline void pynn_ftz_restore(unsigned int old) { _mm_setcsr(old); }
    #else
    static inline unsigned int pynn_ftz_on(void) { return 0u; }
    static inline void pynn_ftz_restore(unsigned int old) { (void)old; }
    #endif
    """
    unsigned int pynn_ftz_on() noexcept nogil
    void pynn_ftz_restore(unsigned int old) noexcept nogil

# loss codes (pynn.backends.base.STACK_LOSSES)
cdef enum:
    LOSS_SOFTMAX_CE = 0
    LOSS_SIGMOID_BCE = 1
    LOSS_MSE = 2
    LOSS_MAE = 3

# optimizer update rules (pynn.backends.base.STACK_UPDATE_RULES)
cdef enum:
    RULE_NONE = 0
    RULE_SGD = 1
    RULE_ADAM = 2


cdef struct Update:
    int rule
    double lr        # SGD learning rate
    double decay     # learning rate x weight decay
    double mom       # SGD momentum (0: plain SGD)
    bint nesterov
    double alpha     # Adam step size with the bias corrections folded in
    double c1        # 1 - beta_1
    double c2        # 1 - beta_2
    double eps


class StepArgumentError(ValueError):
    """An argument of :func:`dense_stack` is not what the kernel needs."""


cdef struct StackLayer:
    void* w          # kernel (n_in, n_out)
    void* b          # bias (n_out,) or NULL
    void* out        # layer output (n, n_out)
    void* pre        # pre-activation (n, n_out), act_needs_input only, else NULL
    void* delta      # dZ (n, n_out)
    void* dw         # kernel gradient (n_in, n_out)
    void* db         # bias gradient (n_out,) or NULL
    void* ks0        # optimizer state of the kernel (velocity or Adam m), or NULL
    void* ks1        # Adam v of the kernel, or NULL
    void* bs0        # the same for the bias
    void* bs1
    Py_ssize_t n_in
    Py_ssize_t n_out
    int code
    double alpha


cdef void _mm(const floating* a, Py_ssize_t a_cols, const floating* b, Py_ssize_t b_cols,
              floating* out, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, bint trans_a,
              bint trans_b, floating alpha=1, floating beta=0) noexcept nogil:
    """Row-major ``out (m, n) = alpha op(a) @ op(b) + beta out`` (BLAS sees the
    column-major transpose; ``beta == 0`` never reads ``out``).

    A single output row (one sample at inference) is a matrix-vector product: GEMV
    streams ``b`` once with no packing, about twice as fast as a 1-row GEMM."""
    cdef Py_ssize_t i
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m * n):
            out[i] = out[i] * beta if beta != 0 else 0
        return
    if m == 1:
        # out = op(b)^T-view @ a-row: column-major b is (n, k) (ld b_cols), or (k, n) when
        # trans_b; the row of op(a) is a[0, :] (stride 1) or a[:, 0] (stride a_cols)
        if trans_b:
            blas_gemv(b"T", <int>k, <int>n, alpha, b, <int>b_cols, a,
                      <int>a_cols if trans_a else 1, beta, out, 1)
        else:
            blas_gemv(b"N", <int>n, <int>k, alpha, b, <int>b_cols, a,
                      <int>a_cols if trans_a else 1, beta, out, 1)
        return
    blas_gemm(b"T" if trans_b else b"N", b"T" if trans_a else b"N", <int>n, <int>m, <int>k,
              alpha, b, <int>b_cols, a, <int>a_cols, beta, out, <int>n)


cdef void _act_backward_inplace(floating* d, const floating* y, const floating* pre,
                                Py_ssize_t n, Py_ssize_t k, int code,
                                floating a) noexcept nogil:
    """``d = d * act'(.)`` in place (softmax: the row Jacobian-vector product)."""
    cdef Py_ssize_t i, j, size = n * k
    cdef double s
    if code == ACT_LINEAR:
        return
    if code == ACT_RELU:
        for i in range(size):
            d[i] = d[i] if y[i] > 0 else 0
    elif code == ACT_SOFTMAX:
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += <double>d[i * k + j] * y[i * k + j]
            for j in range(k):
                d[i * k + j] = <floating>(y[i * k + j] * (d[i * k + j] - s))
    elif act_needs_input(code):
        for i in range(size):
            d[i] = act_grad_scalar(d[i], y[i], pre[i], code, a)
    else:
        for i in range(size):
            d[i] = act_grad_scalar(d[i], y[i], <floating>0, code, a)


cdef double _softmax_ce(const floating* z, const Py_ssize_t* labels, const floating* t,
                        const double* w, floating* g, Py_ssize_t n, Py_ssize_t k, double ls,
                        double loss_scale) noexcept nogil:
    """Fused softmax + cross-entropy (as losses.pyx); returns the weighted loss sum."""
    cdef Py_ssize_t i, j, y = -1
    cdef const floating* zr
    cdef double mx, s, sz, lse, per, wi, scale, p, tj, T, total = 0.0
    cdef double on = 1.0 - ls, off = ls / k
    for i in range(n):
        zr = z + i * k
        mx = zr[0]
        for j in range(1, k):
            if zr[j] > mx:
                mx = zr[j]
        s = 0.0
        sz = 0.0
        for j in range(k):
            s += exp(zr[j] - mx)
            sz += zr[j] - mx
        lse = log(s)
        wi = w[i] if w != NULL else 1.0
        scale = wi / n * loss_scale
        if labels != NULL:
            y = labels[i]
            per = -(on * (zr[y] - mx - lse))
            if ls != 0.0:
                per -= off * (sz - k * lse)
            T = on + ls
            for j in range(k):
                p = exp(zr[j] - mx - lse)
                tj = off + on if j == y else off
                g[i * k + j] = flush_denormal(<floating>((p * T - tj) * scale))
        else:
            per = 0.0
            T = 0.0
            for j in range(k):
                tj = t[i * k + j] * on + off if ls != 0.0 else <double>t[i * k + j]
                per -= tj * (zr[j] - mx - lse)
                T += tj
            for j in range(k):
                p = exp(zr[j] - mx - lse)
                tj = t[i * k + j] * on + off if ls != 0.0 else <double>t[i * k + j]
                g[i * k + j] = flush_denormal(<floating>((p * T - tj) * scale))
        total += wi * per
    return total


cdef double _elementwise_loss(int kind, const floating* p, const floating* t,
                              const double* w, floating* g, Py_ssize_t n, Py_ssize_t k,
                              double loss_scale) noexcept nogil:
    """Sigmoid BCE from logits, squared or absolute error (as losses.pyx)."""
    cdef Py_ssize_t i, j
    cdef double l, gv, wi, row, f, inv_nk, total = 0.0
    cdef int pair = PAIR_SIGMOID_BCE if kind == LOSS_SIGMOID_BCE else (
        PAIR_MSE if kind == LOSS_MSE else PAIR_MAE)
    inv_nk = 1.0 / (<double>n * k)
    for i in range(n):
        wi = w[i] if w != NULL else 1.0
        f = inv_nk * wi * loss_scale
        row = 0.0
        for j in range(k):
            l = pair_loss_term(pair, p[i * k + j], t[i * k + j], 0.0, &gv)
            row += l
            g[i * k + j] = flush_denormal(<floating>(gv * f))
        total += wi * (row / k)
    return total


cdef void _forward(StackLayer* L, int depth, const floating* x,
                   Py_ssize_t n) noexcept nogil:
    """``L[i].out = act(h @ W + b)`` layer by layer; a layer with ``pre`` (an
    ``act_needs_input`` activation in training) keeps its pre-activation there for the
    backward pass."""
    cdef int i
    cdef Py_ssize_t r, k
    cdef const floating* h = x
    cdef const floating* bias
    cdef floating* out
    cdef floating* pre
    cdef floating a
    for i in range(depth):
        k = L[i].n_out
        out = <floating*>L[i].out
        bias = <const floating*>L[i].b
        a = <floating>L[i].alpha
        if L[i].pre != NULL:
            pre = <floating*>L[i].pre
            _mm(h, L[i].n_in, <const floating*>L[i].w, k, pre, n, k, L[i].n_in, False, False)
            if bias != NULL:
                for r in range(n):
                    bias_act_row(pre + r * k, bias, k, ACT_LINEAR, a)
            act_forward_flat(pre, out, n * k, L[i].code, a)
        else:
            _mm(h, L[i].n_in, <const floating*>L[i].w, k, out, n, k, L[i].n_in, False, False)
            if bias != NULL or L[i].code != ACT_LINEAR:
                for r in range(n):
                    bias_act_row(out + r * k, bias, k, L[i].code, a)
        h = out


cdef void _update_weights(StackLayer* L, const Update* U, const floating* h,
                          const floating* d, Py_ssize_t n) noexcept nogil:
    """The optimizer step of one layer once its ``dZ`` is known (its input gradient
    already taken). Plain SGD folds the gradient into the kernel in the GEMM itself
    (``W <- (1 - decay) W - lr h^T dZ``); the other rules write the gradient and
    update while it is still in cache."""
    cdef Py_ssize_t k = L.n_out, size = L.n_in * L.n_out
    cdef floating* w = <floating*>L.w
    cdef floating* b = <floating*>L.b
    cdef floating lr = <floating>U.lr, decay = <floating>U.decay
    if U.rule == RULE_SGD and U.mom == 0:
        _mm(h, L.n_in, d, k, w, L.n_in, k, n, True, False, -lr, <floating>1 - decay)
        if b != NULL:
            column_sums(d, <floating*>L.db, n, k)
            sgd_loop(b, <const floating*>L.db, b, k, lr, <floating>0, False, decay)
        return
    _mm(h, L.n_in, d, k, <floating*>L.dw, L.n_in, k, n, True, False)
    if b != NULL:
        column_sums(d, <floating*>L.db, n, k)
    if U.rule == RULE_SGD:
        sgd_loop(w, <const floating*>L.dw, <floating*>L.ks0, size, lr, <floating>U.mom,
                 U.nesterov, decay)
        if b != NULL:
            sgd_loop(b, <const floating*>L.db, <floating*>L.bs0, k, lr, <floating>U.mom,
                     U.nesterov, decay)
    else:
        adam_loop(w, <const floating*>L.dw, <floating*>L.ks0, <floating*>L.ks1, size,
                  <floating>U.alpha, <floating>U.c1, <floating>U.c2, <floating>U.eps, decay)
        if b != NULL:
            adam_loop(b, <const floating*>L.db, <floating*>L.bs0, <floating*>L.bs1, k,
                      <floating>U.alpha, <floating>U.c1, <floating>U.c2, <floating>U.eps,
                      decay)


cdef double _step(StackLayer* L, int depth, const floating* x, Py_ssize_t n, int loss_code,
                  const Py_ssize_t* labels, const floating* t, const double* w, double ls,
                  double loss_scale, const Update* U) noexcept nogil:
    """Forward, loss, backward and (``U.rule != RULE_NONE`` and a finite loss) the
    optimizer step; returns ``loss_scale`` times the mean loss."""
    cdef int i
    cdef Py_ssize_t k
    cdef const floating* h
    cdef floating* d
    cdef double total, value
    cdef bint update
    _forward(L, depth, x, n)
    # loss: its gradient goes into the last delta
    k = L[depth - 1].n_out
    d = <floating*>L[depth - 1].delta
    if loss_code == LOSS_SOFTMAX_CE:
        total = _softmax_ce(<const floating*>L[depth - 1].out, labels, t, w, d, n, k, ls,
                            loss_scale)
    else:
        total = _elementwise_loss(loss_code, <const floating*>L[depth - 1].out, t, w, d, n, k,
                                  loss_scale)
    value = total / n * loss_scale
    update = U.rule != RULE_NONE and isfinite(value)
    # backward: each layer's input gradient is taken before its weights change
    for i in range(depth - 1, -1, -1):
        k = L[i].n_out
        d = <floating*>L[i].delta
        _act_backward_inplace(d, <const floating*>L[i].out, <const floating*>L[i].pre, n, k,
                              L[i].code, <floating>L[i].alpha)
        h = x if i == 0 else <const floating*>L[i - 1].out
        if i > 0:
            _mm(d, k, <const floating*>L[i].w, k, <floating*>L[i - 1].delta, n, L[i].n_in, k,
                False, True)
        if update:
            _update_weights(&L[i], U, h, d, n)
        else:
            _mm(h, L[i].n_in, d, k, <floating*>L[i].dw, L[i].n_in, k, n, True, False)
            if L[i].db != NULL:
                column_sums(d, <floating*>L[i].db, n, k)
    return value


# ---------------------------------------------------------------------------
# argument checks at C speed
# ---------------------------------------------------------------------------
cdef void* _data(object a, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1,
                 bint writable, str name) except NULL:
    """The data pointer of ``a`` after checking it; raises StepArgumentError."""
    cdef cnp.ndarray arr
    cdef cnp.npy_intp* dims
    if not cnp.PyArray_Check(a):
        raise StepArgumentError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if cnp.PyArray_NDIM(arr) != ndim or cnp.PyArray_TYPE(arr) != typenum:
        raise StepArgumentError(f"{name}: wrong rank or dtype")
    dims = cnp.PyArray_DIMS(arr)
    if dims[0] != d0 or (ndim == 2 and dims[1] != d1):
        raise StepArgumentError(f"{name}: wrong shape")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        raise StepArgumentError(f"{name}: must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise StepArgumentError(f"{name}: must be writable")
    if cnp.PyArray_SIZE(arr) == 0:
        return <void*>1  # never dereferenced: every loop over it is empty
    return cnp.PyArray_DATA(arr)


cdef struct Span:
    char* lo   # NULL: an empty array or an absent (None) one
    char* hi


cdef inline Span _span(object a):
    """The bytes of a C-contiguous array (already checked by ``_data``)."""
    cdef Span r
    r.lo = NULL
    r.hi = NULL
    if a is not None and cnp.PyArray_SIZE(<cnp.ndarray>a) > 0:
        r.lo = <char*>cnp.PyArray_DATA(<cnp.ndarray>a)
        r.hi = r.lo + cnp.PyArray_NBYTES(<cnp.ndarray>a)
    return r


cdef inline bint _meet(Span a, Span b) noexcept:
    return a.lo != NULL and b.lo != NULL and a.lo < b.hi and b.lo < a.hi


cdef void _check_disjoint(list written, list read) except *:
    """Raise StepArgumentError when a written array overlaps another written one or an
    input (the kernels write while they read, so any overlap is a wrong result)."""
    cdef Py_ssize_t nw = len(written), nr = len(read), i, j
    cdef Span* w = <Span*>PyMem_Malloc((nw + nr) * sizeof(Span) + 1)
    cdef Span* r
    if w == NULL:
        raise MemoryError()
    r = w + nw
    try:
        for i in range(nw):
            w[i] = _span(written[i])
        for i in range(nr):
            r[i] = _span(read[i])
        for i in range(nw):
            for j in range(i + 1, nw):
                if _meet(w[i], w[j]):
                    raise StepArgumentError("workspaces overlap")
            for j in range(nr):
                if _meet(w[i], r[j]):
                    raise StepArgumentError("a workspace overlaps an input")
    finally:
        PyMem_Free(w)


cdef int _check_x(object x, int* typenum, Py_ssize_t* n,
                  Py_ssize_t* width) except -1:
    """Type, rank, dtype and size of the input batch ``x``."""
    if not cnp.PyArray_Check(x) or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        raise StepArgumentError("x: expected a 2-D numpy.ndarray")
    typenum[0] = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if typenum[0] != cnp.NPY_FLOAT32 and typenum[0] != cnp.NPY_FLOAT64:
        raise StepArgumentError("x: expected float32 or float64")
    n[0] = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
    width[0] = cnp.PyArray_DIMS(<cnp.ndarray>x)[1]
    if n[0] > INT_MAX:
        raise StepArgumentError("dimensions above 2**31 - 1 are not supported by BLAS")
    return 0


cdef StackLayer* _new_layers(int depth) except NULL:
    """Uninitialised per-layer records (``_fill_layers`` fills them); PyMem_Free them."""
    cdef StackLayer* L = <StackLayer*>PyMem_Malloc(depth * sizeof(StackLayer))
    if L == NULL:
        raise MemoryError()
    return L


cdef Py_ssize_t _fill_layers(StackLayer* L, int depth, list kernels, list biases, list outs,
                             list codes, list alphas, int typenum, Py_ssize_t n,
                             Py_ssize_t width) except -1:
    """Check and record what inference needs of every layer (kernel, bias, output,
    activation); the training fields are left NULL. Returns the last layer's width."""
    cdef int i
    cdef Py_ssize_t units
    for i in range(depth):
        k = kernels[i]
        if not cnp.PyArray_Check(k) or cnp.PyArray_NDIM(<cnp.ndarray>k) != 2:
            raise StepArgumentError(f"kernels[{i}]: expected a 2-D numpy.ndarray")
        units = cnp.PyArray_DIMS(<cnp.ndarray>k)[1]
        if width > INT_MAX or units > INT_MAX:
            raise StepArgumentError("dimensions above 2**31 - 1 are not supported by BLAS")
        L[i].w = _data(k, typenum, 2, width, units, False, f"kernels[{i}]")
        L[i].out = _data(outs[i], typenum, 2, n, units, True, f"outs[{i}]")
        L[i].b = NULL if biases[i] is None else _data(biases[i], typenum, 1, units, 0,
                                                      False, f"biases[{i}]")
        L[i].pre = NULL
        L[i].delta = NULL
        L[i].dw = NULL
        L[i].db = NULL
        L[i].ks0 = NULL
        L[i].ks1 = NULL
        L[i].bs0 = NULL
        L[i].bs1 = NULL
        L[i].code = codes[i]
        if not act_is_epilogue(L[i].code):
            raise StepArgumentError(f"activation code {L[i].code} unknown")
        L[i].alpha = alphas[i]
        L[i].n_in = width
        L[i].n_out = units
        width = units
    return width


cdef void _states(StackLayer* L, object states, int slots, int typenum, bint is_bias,
                  int i) except *:
    """Check and record the optimizer state arrays of layer ``i``'s kernel or bias."""
    cdef str what = "bias" if is_bias else "kernel"
    cdef void* p[2]
    cdef int j
    if not isinstance(states, tuple) or len(<tuple>states) != slots:
        raise StepArgumentError(f"update.{what}_states[{i}]: expected {slots} arrays")
    p[0] = NULL
    p[1] = NULL
    for j in range(slots):
        if is_bias:
            p[j] = _data(states[j], typenum, 1, L.n_out, 0, True,
                         f"update.{what}_states[{i}][{j}]")
        else:
            p[j] = _data(states[j], typenum, 2, L.n_in, L.n_out, True,
                         f"update.{what}_states[{i}][{j}]")
    if is_bias:
        L.bs0, L.bs1 = p[0], p[1]
    else:
        L.ks0, L.ks1 = p[0], p[1]


def dense_stack(object x, object labels, object target, object w, list kernels, list biases,
                list outs, list preacts, list deltas, list dkernels, list dbiases, list codes,
                list alphas, int loss_code, double label_smoothing, double loss_scale,
                int rule=RULE_NONE, tuple hyper=None, list kernel_states=None,
                list bias_states=None):
    """The fused step (see ``Backend.dense_stack_forward_backward``); returns the loss.

    ``labels`` (intp (n,)) or ``target`` (dense (n, k)) is ``None``; ``w`` is a
    float64 (n,) array or ``None``; ``codes``/``alphas`` are per-layer activation
    codes (the folded last activation already linear) and parameters;
    ``biases``, ``dbiases``, ``preacts`` hold ``None`` where unused. ``n`` >= 1.
    With ``rule`` 1 (SGD) or 2 (Adam) the step also updates the weights:
    ``hyper`` is ``(lr, lr * weight_decay, momentum, nesterov, alpha, 1 - beta_1,
    1 - beta_2, epsilon)`` and ``kernel_states``/``bias_states`` hold per layer a
    tuple of 0, 1 (SGD momentum) or 2 (Adam m, v) state arrays.
    """
    cdef int depth = len(kernels), i, typenum, slots = 0
    cdef Py_ssize_t n, width, units, j, k_out
    cdef StackLayer* L
    cdef void* xp
    cdef const Py_ssize_t* lp = NULL
    cdef void* tp = NULL
    cdef const double* wp = NULL
    cdef double total
    cdef unsigned int csr
    cdef Update U
    U.rule = rule
    if not (0.0 <= label_smoothing <= 1.0 and isfinite(loss_scale)):
        raise StepArgumentError("label_smoothing or loss_scale out of range")
    if rule != RULE_NONE:
        if rule != RULE_SGD and rule != RULE_ADAM:
            raise StepArgumentError(f"update rule {rule} unknown")
        if hyper is None or len(hyper) != 8 or kernel_states is None or bias_states is None \
                or len(kernel_states) != depth or len(bias_states) != depth:
            raise StepArgumentError("update: hyperparameters or state lists missing")
        U.lr, U.decay, U.mom, U.nesterov, U.alpha, U.c1, U.c2, U.eps = hyper
        slots = 2 if rule == RULE_ADAM else (1 if U.mom != 0 else 0)
    _check_x(x, &typenum, &n, &width)
    if depth < 1 or n < 1:
        raise StepArgumentError("need at least one layer and one sample")
    if not (len(biases) == len(outs) == len(preacts) == len(deltas) == len(dkernels)
            == len(dbiases) == len(codes) == len(alphas) == depth):
        raise StepArgumentError("per-layer lists differ in length")
    xp = _data(x, typenum, 2, n, width, False, "x")
    L = _new_layers(depth)
    try:
        units = _fill_layers(L, depth, kernels, biases, outs, codes, alphas, typenum, n,
                             width)
        for i in range(depth):
            k_out = L[i].n_out
            L[i].delta = _data(deltas[i], typenum, 2, n, k_out, True, f"deltas[{i}]")
            L[i].dw = _data(dkernels[i], typenum, 2, L[i].n_in, k_out, True,
                            f"dkernels[{i}]")
            if biases[i] is None:
                if dbiases[i] is not None:
                    raise StepArgumentError(f"dbiases[{i}]: must be None without a bias")
            else:
                L[i].db = _data(dbiases[i], typenum, 1, k_out, 0, True, f"dbiases[{i}]")
            if act_needs_input(L[i].code):
                L[i].pre = _data(preacts[i], typenum, 2, n, k_out, True, f"preacts[{i}]")
            if rule != RULE_NONE:
                if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>kernels[i]) or (
                        biases[i] is not None
                        and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>biases[i])):
                    raise StepArgumentError(f"kernels[{i}]/biases[{i}]: must be writable")
                _states(&L[i], kernel_states[i], slots, typenum, False, i)
                _states(&L[i], bias_states[i], slots if biases[i] is not None else 0,
                        typenum, True, i)
        width = units
        if units == 0:
            raise StepArgumentError("the last layer needs at least one unit")
        if loss_code < LOSS_SOFTMAX_CE or loss_code > LOSS_MAE:
            raise StepArgumentError(f"loss code {loss_code} unknown")
        if labels is not None:
            if loss_code != LOSS_SOFTMAX_CE:
                raise StepArgumentError("labels are only for softmax_cross_entropy")
            lp = <const Py_ssize_t*>_data(labels, cnp.NPY_INTP, 1, n, 0, False, "labels")
            for j in range(n):
                if lp[j] < 0 or lp[j] >= width:
                    raise StepArgumentError(f"labels: must be in [0, {width})")
        else:
            tp = _data(target, typenum, 2, n, width, False, "target")
        if w is not None:
            wp = <const double*>_data(w, cnp.NPY_FLOAT64, 1, n, 0, False, "sample_weight")
        if label_smoothing != 0.0 and loss_code != LOSS_SOFTMAX_CE:
            raise StepArgumentError("label_smoothing is only for softmax_cross_entropy")
        # only arrays checked above (an unused preacts entry or target may be anything)
        written = (outs + deltas + dkernels + dbiases
                   + [preacts[i] for i in range(depth) if L[i].pre != NULL])
        if rule == RULE_NONE:
            _check_disjoint(written, [x, labels if labels is not None else target, w]
                            + kernels + biases)
        else:  # the weights and their optimizer state are written too
            for i in range(depth):
                written.extend(kernel_states[i])
                written.extend(bias_states[i])
            _check_disjoint(written + kernels + biases,
                            [x, labels if labels is not None else target, w])
        with nogil:
            csr = pynn_ftz_on()
            if typenum == cnp.NPY_FLOAT32:
                total = _step(L, depth, <const float*>xp, n, loss_code, lp,
                              <const float*>tp, wp, label_smoothing, loss_scale, &U)
            else:
                total = _step(L, depth, <const double*>xp, n, loss_code, lp,
                              <const double*>tp, wp, label_smoothing, loss_scale, &U)
            pynn_ftz_restore(csr)
    finally:
        PyMem_Free(L)
    return total


def dense_forward(object x, list kernels, list biases, list outs, list codes, list alphas):
    """Inference through a Dense stack (see ``Backend.dense_stack_forward``), every
    activation applied; ``biases`` holds ``None`` where a layer has none. ``n`` may
    be 0. Raises :class:`StepArgumentError` on the first argument that does not fit.
    """
    cdef int depth = len(kernels), typenum
    cdef Py_ssize_t n, width
    cdef StackLayer* L
    cdef void* xp
    cdef unsigned int csr
    _check_x(x, &typenum, &n, &width)
    if depth < 1:
        raise StepArgumentError("need at least one layer")
    if not (len(biases) == len(outs) == len(codes) == len(alphas) == depth):
        raise StepArgumentError("per-layer lists differ in length")
    xp = _data(x, typenum, 2, n, width, False, "x")
    L = _new_layers(depth)
    try:
        _fill_layers(L, depth, kernels, biases, outs, codes, alphas, typenum, n, width)
        _check_disjoint(outs, [x] + kernels + biases)
        with nogil:
            csr = pynn_ftz_on()
            if typenum == cnp.NPY_FLOAT32:
                _forward(L, depth, <const float*>xp, n)
            else:
                _forward(L, depth, <const double*>xp, n)
            pynn_ftz_restore(csr)
    finally:
        PyMem_Free(L)
    return outs[depth - 1]


def _all_finite(object x):
    """True when ``x`` (a C-contiguous, aligned float32/float64 ndarray of any shape)
    holds no NaN or infinity. Reads the exponent bits (all ones: not finite) with an
    integer OR that vectorises, allocates nothing and releases the GIL."""
    cdef cnp.ndarray arr
    cdef Py_ssize_t size, i
    cdef const unsigned int* u32
    cdef const unsigned long long* u64
    cdef unsigned int bad32 = 0
    cdef unsigned long long bad64 = 0
    if not cnp.PyArray_Check(x):
        raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
    arr = <cnp.ndarray>x
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        raise StepArgumentError("x: must be C-contiguous and aligned")
    size = cnp.PyArray_SIZE(arr)
    if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32:
        u32 = <const unsigned int*>cnp.PyArray_DATA(arr)
        with nogil:
            for i in range(size):
                bad32 |= (u32[i] & 0x7f800000u) == 0x7f800000u
        return bad32 == 0
    if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT64:
        u64 = <const unsigned long long*>cnp.PyArray_DATA(arr)
        with nogil:
            for i in range(size):
                bad64 |= (u64[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull
        return bad64 == 0
    raise StepArgumentError("x: expected float32 or float64")


# ---------------------------------------------------------------------------
# batch gather: the rows of a shuffled batch, copied with the next rows prefetched
# ---------------------------------------------------------------------------
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define pynn_prefetch(p) __builtin_prefetch((p), 0, 3)
    #else
    #define pynn_prefetch(p) ((void)(p))
    #endif
    """
    void pynn_prefetch(const void* p) noexcept nogil

cdef extern from "string.h":
    void* memcpy(void* dst, const void* src, size_t n) noexcept nogil

cdef enum:
    #: rows requested ahead of the one being copied (2-16 measured alike: 10-12 ms
    #: per MNIST epoch against 17-19 ms for plain memcpy and 20-31 ms for np.take)
    TAKE_AHEAD = 4


cdef inline const char* _row(const char* base, Py_ssize_t j, Py_ssize_t n,
                             Py_ssize_t stride) noexcept nogil:
    """Row ``j`` of ``n`` rows ``stride`` bytes apart (a negative ``j`` counts from the end)."""
    return base + (j + n if j < 0 else j) * stride


cdef inline void _prefetch_row(const char* p, Py_ssize_t nbytes) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(0, nbytes, 64):
        pynn_prefetch(p + j)


cdef bint _plain_bytes(cnp.ndarray a):
    """Numbers or booleans in native byte order: copying their bytes copies them."""
    return ((cnp.PyArray_ISNUMBER(a) or cnp.PyArray_ISBOOL(a))
            and cnp.PyArray_ISNOTSWAPPED(a))


def take_rows(object x, object indices, object out):
    """``out[i] = x[indices[i]]`` for every ``i``, with rows of ``x`` copied as bytes.

    ``indices``: a 1-D C-contiguous intp array (negative values count from the end);
    ``out``: C-contiguous, writable, of shape ``(len(indices),) + x.shape[1:]`` and
    x's dtype, overlapping neither ``x`` nor ``indices``. Each row of ``x`` must be
    contiguous (any stride between rows). Every index is checked before any row is
    copied. Returns -1, or the position of the first index out of range (nothing
    written). Raises :class:`StepArgumentError` for arrays it cannot take.
    """
    cdef cnp.ndarray xa, ia, oa
    cdef int nd, d
    cdef Py_ssize_t n, m, i, j, row, stride, expected, bad = -1
    cdef cnp.npy_intp* xdims
    cdef cnp.npy_intp* odims
    cdef cnp.npy_intp* xstrides
    cdef const cnp.npy_intp* idx
    cdef const char* base
    cdef char* dst
    cdef char* xlo
    cdef char* xhi
    if not (cnp.PyArray_Check(x) and cnp.PyArray_Check(indices) and cnp.PyArray_Check(out)):
        raise StepArgumentError("take_rows: expected numpy arrays")
    xa, ia, oa = <cnp.ndarray>x, <cnp.ndarray>indices, <cnp.ndarray>out
    nd = cnp.PyArray_NDIM(xa)
    if not (cnp.PyArray_NDIM(ia) == 1 and cnp.PyArray_TYPE(ia) == cnp.NPY_INTP
            and cnp.PyArray_IS_C_CONTIGUOUS(ia) and cnp.PyArray_ISALIGNED(ia)):
        raise StepArgumentError("take_rows: indices must be a C-contiguous intp vector")
    if not (nd >= 1 and cnp.PyArray_NDIM(oa) == nd
            and cnp.PyArray_TYPE(oa) == cnp.PyArray_TYPE(xa)
            and cnp.PyArray_ITEMSIZE(oa) == cnp.PyArray_ITEMSIZE(xa)
            and _plain_bytes(xa) and _plain_bytes(oa)
            and cnp.PyArray_IS_C_CONTIGUOUS(oa) and cnp.PyArray_ISALIGNED(oa)
            and cnp.PyArray_ISWRITEABLE(oa)):
        raise StepArgumentError("take_rows: out must be a writable, aligned C-contiguous "
                                "array of x's rank and numeric dtype")
    xdims, odims, xstrides = cnp.PyArray_DIMS(xa), cnp.PyArray_DIMS(oa), cnp.PyArray_STRIDES(xa)
    n, m = xdims[0], cnp.PyArray_DIMS(ia)[0]
    if odims[0] != m:
        raise StepArgumentError("take_rows: out has the wrong number of rows")
    expected = cnp.PyArray_ITEMSIZE(xa)
    for d in range(nd - 1, 0, -1):
        if odims[d] != xdims[d]:
            raise StepArgumentError("take_rows: out's rows differ from x's")
        if xdims[d] != 1 and xstrides[d] != expected:
            raise StepArgumentError("take_rows: the rows of x are not contiguous")
        expected *= xdims[d]
    row, stride = expected, xstrides[0]
    base = <const char*>cnp.PyArray_DATA(xa)
    dst = <char*>cnp.PyArray_DATA(oa)
    idx = <const cnp.npy_intp*>cnp.PyArray_DATA(ia)
    if m and row and n:
        # bounds of x's memory (rows may run backwards) against out's and the indices'
        xlo = <char*>base + (stride * (n - 1) if stride < 0 else 0)
        xhi = <char*>base + (0 if stride < 0 else stride * (n - 1)) + row
        if ((dst < xhi and xlo < dst + m * row)
                or (dst < <char*>(idx + m) and <char*>idx < dst + m * row)):
            raise StepArgumentError("take_rows: out overlaps x or indices")
    with nogil:
        for i in range(m):
            j = idx[i]
            if j < -n or j >= n:
                bad = i
                break
        if bad < 0 and row:
            for i in range(min(<Py_ssize_t>TAKE_AHEAD, m)):
                _prefetch_row(_row(base, idx[i], n, stride), row)
            for i in range(m):
                if i + TAKE_AHEAD < m:
                    _prefetch_row(_row(base, idx[i + TAKE_AHEAD], n, stride), row)
                memcpy(dst + i * row, _row(base, idx[i], n, stride), <size_t>row)
    return bad
