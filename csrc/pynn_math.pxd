# cython: language_level=3
"""Inline math shared by the pynn kernels: activations chosen by integer code.

Header-only: every function here is ``cdef inline ... noexcept nogil`` over the
fused ``floating`` type, so each kernel module that cimports it gets float32 and
float64 versions from this one source. Codes follow ``pynn.backends.base.ACTIVATIONS``.

Precision: cheap activations compute in the working type (as the NumPy
reference does); exact-erf GELU and its derivative compute in double.
"""
cimport cython
from cython cimport floating
from libc.math cimport (erf, exp, expf, expm1, expm1f, fabs, fabsf, log, log1p,
                        log1pf, sqrt, sqrtf, tanh, tanhf, M_SQRT1_2)
from libc.float cimport FLT_MIN

cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_LEAKY_RELU = 2
    ACT_ELU = 3
    ACT_SIGMOID = 4
    ACT_TANH = 5
    ACT_GELU = 6
    ACT_SOFTPLUS = 7
    ACT_SOFTMAX = 8
    ACT_SELU = 9
    ACT_SILU = 10
    ACT_EXPONENTIAL = 11
    ACT_HARD_SIGMOID = 12
    ACT_HARD_SILU = 13
    ACT_SOFTSIGN = 14
    ACT_RELU6 = 15
    ACT_MISH = 16
    ACT_CELU = 17
    ACT_SQUAREPLUS = 18
    ACT_TANH_SHRINK = 19
    ACT_LAST_ELEMENTWISE = 19   # codes above are row-wise, reference-only

# SELU's constants (pynn.backends.activation_codes; a pxd cannot hold initialised globals)
cdef inline double selu_alpha() noexcept nogil:
    return 1.6732632423543772848170429916717


cdef inline double selu_scale() noexcept nogil:
    return 1.0507009873554804934193349852946

# ---------------------------------------------------------------------------
# libm in the working type
# ---------------------------------------------------------------------------
cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating f_tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating f_sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating flush_denormal(floating v) noexcept nogil:
    """float32 values with |v| < FLT_MIN become 0 (denormals are ~38x slower)."""
    if floating is float:
        if fabsf(v) < FLT_MIN:
            return 0.0
    return v


# ---------------------------------------------------------------------------
# activations (elementwise; softmax is row-wise, see below)
# ---------------------------------------------------------------------------
@cython.cdivision(True)
cdef inline floating sigmoid(floating x) noexcept nogil:
    """Stable logistic: exp of a non-positive number only."""
    cdef floating e = f_exp(-f_abs(x))
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


cdef inline floating gelu(floating x) noexcept nogil:
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), computed in double."""
    cdef double xd = x
    return <floating>(0.5 * xd * (1.0 + erf(xd * M_SQRT1_2)))


cdef inline bint act_is_epilogue(int code) noexcept nogil:
    """Whether ``code`` is an activation the kernels apply: elementwise or softmax."""
    return 0 <= code <= ACT_LAST_ELEMENTWISE


cdef inline bint act_is_elementwise(int code) noexcept nogil:
    return act_is_epilogue(code) and code != ACT_SOFTMAX


cdef inline bint act_needs_input(int code) noexcept nogil:
    """Whether the backward of ``code`` reads the pre-activation (the elementwise
    members of ``NEEDS_INPUT_FOR_BACKWARD``)."""
    return (code == ACT_GELU or code == ACT_SILU or code == ACT_HARD_SILU
            or code == ACT_MISH or code == ACT_TANH_SHRINK)


cdef inline floating softplus(floating x) noexcept nogil:
    return (x if x > 0 else 0) + f_log1p(f_exp(-f_abs(x)))


cdef inline floating hard_sigmoid(floating x) noexcept nogil:
    cdef floating v = x / 6 + <floating>0.5
    if v <= 0:
        return 0
    if v >= 1:
        return 1
    return v  # NaN stays NaN


@cython.cdivision(True)
cdef inline floating squareplus(floating x, floating b) noexcept nogil:
    """``(x + sqrt(x^2 + b)) / 2`` in double (``x^2`` overflows float32 above ~1.8e19),
    written ``b / (2 (sqrt(x^2 + b) - x))`` for ``x < 0`` (no cancellation)."""
    cdef double xd = x, s = sqrt(xd * xd + b)
    return <floating>((xd + s) / 2 if xd >= 0 else b / (2 * (s - xd)))


@cython.cdivision(True)
cdef inline floating act_scalar(floating x, int code, floating a) noexcept nogil:
    """Elementwise activation ``code`` (not softmax) of ``x``; ``a`` = the extra
    parameter (leaky slope, ELU/CELU alpha, Squareplus b).

    NaN propagates as in NumPy (relu(NaN) is NaN).
    """
    if code == ACT_RELU:
        return 0 if x <= 0 else x
    elif code == ACT_LEAKY_RELU:
        return x if x > 0 else a * x
    elif code == ACT_ELU:
        return x if x > 0 else a * f_expm1(x)
    elif code == ACT_SIGMOID:
        return sigmoid(x)
    elif code == ACT_TANH:
        return f_tanh(x)
    elif code == ACT_GELU:
        return gelu(x)
    elif code == ACT_SOFTPLUS:
        return softplus(x)
    elif code == ACT_SELU:
        return <floating>selu_scale() * (x if x > 0 else <floating>selu_alpha() * f_expm1(x))
    elif code == ACT_SILU:
        return x * sigmoid(x)
    elif code == ACT_EXPONENTIAL:
        return f_exp(x)
    elif code == ACT_HARD_SIGMOID:
        return hard_sigmoid(x)
    elif code == ACT_HARD_SILU:
        return x * hard_sigmoid(x)
    elif code == ACT_SOFTSIGN:
        return x / (1 + f_abs(x))
    elif code == ACT_RELU6:
        if x <= 0:
            return 0
        return 6 if x >= 6 else x
    elif code == ACT_MISH:
        return x * f_tanh(softplus(x))
    elif code == ACT_CELU:
        return x if x > 0 else a * f_expm1(x / a)
    elif code == ACT_SQUAREPLUS:
        return squareplus(x, a)
    elif code == ACT_TANH_SHRINK:
        return x - f_tanh(x)
    return x


@cython.cdivision(True)
cdef inline floating act_grad_scalar(floating dy, floating y, floating x, int code,
                                     floating a) noexcept nogil:
    """``dy * act'(.)`` from the forward output ``y`` (the codes of
    :func:`act_needs_input` use the input ``x``)."""
    cdef double xd, cdf, pdf
    cdef floating s, t
    if code == ACT_RELU:
        return dy if y > 0 else 0
    elif code == ACT_LEAKY_RELU:
        return dy if y > 0 else a * dy
    elif code == ACT_ELU:
        return dy if y > 0 else dy * (y + a)
    elif code == ACT_SIGMOID:
        return dy * y * (1 - y)
    elif code == ACT_TANH:
        return dy * (1 - y * y)
    elif code == ACT_GELU:
        xd = x
        cdf = 0.5 * (1.0 + erf(xd * M_SQRT1_2))
        pdf = exp(-0.5 * xd * xd) * 0.3989422804014327  # 1/sqrt(2 pi)
        return <floating>(dy * (cdf + xd * pdf))
    elif code == ACT_SOFTPLUS:
        # softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x))
        return dy * -f_expm1(-y)
    elif code == ACT_SELU:
        return <floating>selu_scale() * dy if y > 0 else \
            dy * (y + <floating>(selu_scale() * selu_alpha()))
    elif code == ACT_SILU:
        s = sigmoid(x)
        return dy * (s * (1 + x * (1 - s)))
    elif code == ACT_EXPONENTIAL:
        return dy * y
    elif code == ACT_HARD_SIGMOID:
        return dy / 6 if y > 0 and y < 1 else 0
    elif code == ACT_HARD_SILU:
        if x < -3:
            return 0
        return dy * (2 * x + 3) / 6 if x <= 3 else dy
    elif code == ACT_SOFTSIGN:
        t = 1 - f_abs(y)
        return dy * (t * t)
    elif code == ACT_RELU6:
        return dy if y > 0 and y < 6 else 0
    elif code == ACT_MISH:
        t = f_tanh(softplus(x))
        return dy * (t + x * sigmoid(x) * (1 - t * t))
    elif code == ACT_CELU:
        return dy if y > 0 else dy * (y / a + 1)
    elif code == ACT_SQUAREPLUS:
        # (1 + x / sqrt(x^2 + b)) / 2 = 1 / (1 + b / (4 y^2))
        if not y > 0:
            return 0
        return dy if a == 0 else <floating>(dy / (1.0 + a / (4.0 * y * y)))
    elif code == ACT_TANH_SHRINK:
        t = f_tanh(x)
        return dy * (t * t)
    return dy


# ---------------------------------------------------------------------------
# row kernels over contiguous memory (``out`` may equal ``x``)
# ---------------------------------------------------------------------------
@cython.cdivision(True)
cdef inline void softmax_row(const floating* x, floating* out, Py_ssize_t n) noexcept nogil:
    """Stable softmax of one row; the normaliser is summed in double."""
    cdef Py_ssize_t j
    cdef floating mx, e
    cdef double s = 0.0, inv
    if n <= 0:
        return
    mx = x[0]
    for j in range(1, n):
        if x[j] > mx:
            mx = x[j]
    for j in range(n):
        e = f_exp(x[j] - mx)
        out[j] = e
        s += e
    inv = 1.0 / s
    for j in range(n):
        out[j] = <floating>(out[j] * inv)


cdef inline void log_softmax_row(const floating* x, floating* out,
                                 Py_ssize_t n) noexcept nogil:
    """Stable log-softmax of one row: (x - max) - log(sum exp(x - max))."""
    cdef Py_ssize_t j
    cdef floating mx
    cdef double s = 0.0, lse
    if n <= 0:
        return
    mx = x[0]
    for j in range(1, n):
        if x[j] > mx:
            mx = x[j]
    for j in range(n):
        s += exp(<double>x[j] - mx)
    lse = log(s)
    for j in range(n):
        out[j] = <floating>((<double>x[j] - mx) - lse)


cdef inline void act_backward_flat(const floating* dy, const floating* y, const floating* x,
                                   floating* out, Py_ssize_t size, int code,
                                   floating a) noexcept nogil:
    """``out = dy * act'(.)`` over ``size`` elements (``x`` read only where
    :func:`act_needs_input`; ``out`` may be ``dy``); ReLU and linear get loops of their
    own, which vectorise."""
    cdef Py_ssize_t i
    if code == ACT_LINEAR:
        if out != dy:
            for i in range(size):
                out[i] = dy[i]
    elif code == ACT_RELU:
        for i in range(size):
            out[i] = dy[i] if y[i] > 0 else 0
    else:
        for i in range(size):
            out[i] = act_grad_scalar(dy[i], y[i], x[i], code, a)


cdef inline void act_forward_flat(const floating* x, floating* out, Py_ssize_t n, int code,
                                  floating a) noexcept nogil:
    """Elementwise activation over ``n`` contiguous values (``code`` != softmax).

    The switch sits outside the loops so each loop is branch-free and the
    compiler can vectorise the cheap ones.
    """
    cdef Py_ssize_t j
    if code == ACT_LINEAR:
        if out != x:
            for j in range(n):
                out[j] = x[j]
    elif code == ACT_RELU:
        for j in range(n):
            out[j] = act_scalar(x[j], ACT_RELU, a)
    elif code == ACT_LEAKY_RELU:
        for j in range(n):
            out[j] = act_scalar(x[j], ACT_LEAKY_RELU, a)
    elif code == ACT_ELU:
        for j in range(n):
            out[j] = act_scalar(x[j], ACT_ELU, a)
    elif code == ACT_SIGMOID:
        for j in range(n):
            out[j] = sigmoid(x[j])
    elif code == ACT_TANH:
        for j in range(n):
            out[j] = f_tanh(x[j])
    elif code == ACT_GELU:
        for j in range(n):
            out[j] = gelu(x[j])
    elif code == ACT_SOFTPLUS:
        for j in range(n):
            out[j] = act_scalar(x[j], ACT_SOFTPLUS, a)
    else:
        for j in range(n):
            out[j] = act_scalar(x[j], code, a)


cdef inline void bias_act_row(floating* row, const floating* bias, Py_ssize_t n, int code,
                              floating a) noexcept nogil:
    """GEMM epilogue for one output row: ``row = act(row + bias)`` in one pass.

    ``bias`` may be NULL. Softmax needs the whole row, so it adds the bias in the
    same pass that finds the row maximum.
    """
    cdef Py_ssize_t j
    if code == ACT_SOFTMAX:
        if bias != NULL:
            for j in range(n):
                row[j] = row[j] + bias[j]
        softmax_row(row, row, n)
    elif bias != NULL:
        if code == ACT_LINEAR:
            for j in range(n):
                row[j] = row[j] + bias[j]
        elif code == ACT_RELU:
            for j in range(n):
                row[j] = act_scalar(row[j] + bias[j], ACT_RELU, a)
        else:
            for j in range(n):
                row[j] = act_scalar(row[j] + bias[j], code, a)
    elif code != ACT_LINEAR:
        act_forward_flat(row, row, n, code, a)


# ---------------------------------------------------------------------------
# reductions and per-element loss terms shared by layers.pyx, losses.pyx, step.pyx
# ---------------------------------------------------------------------------
cdef enum:
    COLSUM_BLOCK = 256   # columns reduced per block (float64 accumulators on the stack)


cdef inline void column_sums(const floating* d, floating* out, Py_ssize_t n,
                             Py_ssize_t k) noexcept nogil:
    """``out[j] = sum_i d[i, j]`` over row-major ``d`` (n, k), accumulated in float64
    (see :func:`column_sums_strided`)."""
    column_sums_strided(d, k, out, n, k)


cdef inline void column_sums_strided(const floating* d, Py_ssize_t ld, floating* out,
                                     Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """``out[j] = sum_i d[i * ld + j]`` for ``j < k``, accumulated in float64 in blocks
    of columns (row by row, so the reads stay contiguous)."""
    cdef double acc[COLSUM_BLOCK]
    cdef Py_ssize_t i, j, j0 = 0, jn
    while j0 < k:
        jn = min(<Py_ssize_t>COLSUM_BLOCK, k - j0)
        for j in range(jn):
            acc[j] = 0.0
        for i in range(n):
            for j in range(jn):
                acc[j] += d[i * ld + j0 + j]
        for j in range(jn):
            out[j0 + j] = <floating>acc[j]
        j0 += jn


# kinds of per-element loss term
cdef enum:
    PAIR_SIGMOID_BCE = 0   # binary cross-entropy from logits
    PAIR_BCE = 1           # binary cross-entropy from probabilities, clipped
    PAIR_MSE = 2           # squared error
    PAIR_MAE = 3           # absolute error


cdef inline double clip_double(double q, double lo, double hi) noexcept nogil:
    # NaN stays NaN, as with numpy.clip
    if q < lo:
        return lo
    if q > hi:
        return hi
    return q


cdef inline double pair_loss_term(int kind, double z, double t, double epsilon,
                                  double* grad) noexcept nogil:
    """The loss term of prediction ``z`` against target ``t``; its derivative in ``z``
    goes to ``grad``. ``epsilon`` clips probabilities for ``PAIR_BCE`` only."""
    cdef double e, pc, d, hi
    if kind == PAIR_SIGMOID_BCE:
        e = exp(-fabs(z))
        grad[0] = (1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)) - t
        return (z if z > 0 else 0.0) - z * t + log1p(e)
    if kind == PAIR_BCE:
        hi = 1.0 - epsilon
        pc = clip_double(z, epsilon, hi)
        grad[0] = (pc - t) / (pc * (1.0 - pc)) if z >= epsilon and z <= hi else 0.0
        return -(t * log(pc) + (1.0 - t) * log(1.0 - pc))
    d = z - t
    if kind == PAIR_MSE:
        grad[0] = 2.0 * d
        return d * d
    grad[0] = 1.0 if d > 0 else (-1.0 if d < 0 else d)  # sign; NaN stays NaN
    return fabs(d)


# ---------------------------------------------------------------------------
# optimizer updates over one contiguous run of values (optim.pyx's flat-buffer
# ops and step.pyx's per-layer update in the fused step share them)
# ---------------------------------------------------------------------------
cdef inline void sgd_loop(floating* param, const floating* grad, floating* velocity,
                          Py_ssize_t size, floating lr, floating mom, bint nesterov,
                          floating decay) noexcept nogil:
    """Keras SGD: ``p -= p * decay`` (when ``decay != 0``); with ``mom != 0``
    ``v = mom v - lr g`` (flushed), ``p += v`` (Nesterov ``p += mom v - lr g``),
    else ``p -= lr g``. ``velocity`` is read only when ``mom != 0``."""
    cdef Py_ssize_t i
    cdef floating p, v
    cdef bint use_decay = decay != 0
    if mom != 0:
        for i in range(size):
            p = param[i]
            if use_decay:
                p = p - p * decay
            v = flush_denormal(mom * velocity[i] - lr * grad[i])
            velocity[i] = v
            if nesterov:
                param[i] = p + (mom * v - lr * grad[i])
            else:
                param[i] = p + v
    else:
        for i in range(size):
            p = param[i]
            if use_decay:
                p = p - p * decay
            param[i] = p - lr * grad[i]


cdef inline void adam_loop(floating* param, const floating* grad, floating* m, floating* v,
                           Py_ssize_t size, floating a, floating c1, floating c2,
                           floating eps, floating decay) noexcept nogil:
    """Adam with the bias corrections folded into ``a``; ``c1 = 1 - beta_1``,
    ``c2 = 1 - beta_2``; float32 moments flushed below FLT_MIN."""
    cdef Py_ssize_t i
    cdef floating p, g, mi, vi
    cdef bint use_decay = decay != 0
    for i in range(size):
        p = param[i]
        if use_decay:
            p = p - p * decay
        g = grad[i]
        mi = m[i]
        mi = flush_denormal(mi + (g - mi) * c1)
        vi = v[i]
        vi = flush_denormal(vi + (g * g - vi) * c2)
        m[i] = mi
        v[i] = vi
        param[i] = p - a * mi / (f_sqrt(vi) + eps)
