# cython: language_level=3, cdivision=True
"""Loss kernels: each returns the mean loss (float64 accumulation) and writes the
gradient of that mean into ``grad`` in the same pass over every row.

Per-element math (exp, log, log1p) is done in double whatever the working type;
``w`` is the float64 sample weight vector, read only when ``has_w``. ``grad``
may be the primary input (logits / probabilities) itself: every row's values
are read before that row's gradient is written.
"""
cimport cython
from cython cimport floating
from libc.math cimport exp, log

from pynn_math cimport PAIR_MAE, PAIR_SIGMOID_BCE, clip_double, pair_loss_term


cdef inline bint _check(Py_ssize_t* zs, Py_ssize_t* gs, Py_ssize_t wn, bint has_w) noexcept:
    return zs[0] == gs[0] and zs[1] == gs[1] and (not has_w or wn == zs[0])


def softmax_cross_entropy_labels(const floating[:, ::1] z not None,
                                 const Py_ssize_t[::1] labels not None,
                                 const double[::1] w not None, bint has_w, floating[:,
                                 ::1] grad not None,
                                 double label_smoothing):
    """Fused softmax + cross-entropy from logits ``z`` and integer ``labels``."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j, y
    cdef double mx, s, sz, lse, per, wi, scale, p, t, T, ls = label_smoothing
    cdef double total = 0.0, on = 1.0 - ls, off = ls / k if k else 0.0
    if not _check(z.shape, grad.shape, w.shape[0], has_w) or labels.shape[0] != n:
        raise ValueError("softmax_cross_entropy: z, labels, sample_weight, grad shapes differ")
    if n == 0:
        return 0.0
    if k == 0:
        raise ValueError("softmax_cross_entropy: logits need at least one class")
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            raise ValueError(f"labels: must be in [0, {k}), got {labels[i]}")
    T = on + ls  # sum of the smoothed one-hot row
    with nogil:
        for i in range(n):
            y = labels[i]
            mx = z[i, 0]
            for j in range(1, k):
                if z[i, j] > mx:
                    mx = z[i, j]
            s = 0.0
            sz = 0.0
            for j in range(k):
                s += exp(z[i, j] - mx)
                sz += z[i, j] - mx
            lse = log(s)
            # -sum_j t_j log p_j with t = on * onehot(y) + off
            per = -(on * (z[i, y] - mx - lse))
            if ls != 0.0:
                per -= off * (sz - k * lse)
            wi = w[i] if has_w else 1.0
            scale = wi / n
            for j in range(k):
                p = exp(z[i, j] - mx - lse)
                t = off + on if j == y else off
                grad[i, j] = <floating>((p * T - t) * scale)
            total += wi * per
    return total / n


def softmax_cross_entropy_dense(const floating[:, ::1] z not None, const floating[:,
                                ::1] target not None,
                                const double[::1] w not None, bint has_w, floating[:,
                                ::1] grad not None,
                                double label_smoothing):
    """Fused softmax + cross-entropy from logits ``z`` and target probabilities."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef double mx, s, lse, per, wi, scale, p, t, T, ls = label_smoothing
    cdef double total = 0.0, on = 1.0 - ls, off = ls / k if k else 0.0
    if (not _check(z.shape, grad.shape, w.shape[0], has_w)
            or target.shape[0] != n or target.shape[1] != k):
        raise ValueError("softmax_cross_entropy: z, target, sample_weight, grad shapes differ")
    if n == 0:
        return 0.0
    if k == 0:
        raise ValueError("softmax_cross_entropy: logits need at least one class")
    with nogil:
        for i in range(n):
            mx = z[i, 0]
            for j in range(1, k):
                if z[i, j] > mx:
                    mx = z[i, j]
            s = 0.0
            for j in range(k):
                s += exp(z[i, j] - mx)
            lse = log(s)
            per = 0.0
            T = 0.0
            for j in range(k):
                t = target[i, j] * on + off if ls != 0.0 else <double>target[i, j]
                per -= t * (z[i, j] - mx - lse)
                T += t
            wi = w[i] if has_w else 1.0
            scale = wi / n
            for j in range(k):
                p = exp(z[i, j] - mx - lse)
                t = target[i, j] * on + off if ls != 0.0 else <double>target[i, j]
                grad[i, j] = <floating>((p * T - t) * scale)
            total += wi * per
    return total / n


def categorical_cross_entropy_labels(const floating[:, ::1] probs not None,
                                     const Py_ssize_t[::1] labels not None,
                                     const double[::1] w not None,
                                     bint has_w, floating[:, ::1] grad not None, double epsilon):
    """Cross-entropy from probabilities (renormalised, clipped) and integer labels."""
    cdef Py_ssize_t n = probs.shape[0], k = probs.shape[1], i, j, y
    cdef double s, q, qc, dq, sdq, wi, scale, total = 0.0, hi = 1.0 - epsilon
    if not _check(probs.shape, grad.shape, w.shape[0], has_w) or labels.shape[0] != n:
        raise ValueError("categorical_cross_entropy: probs, labels, sample_weight, grad "
                         "shapes differ")
    if n == 0:
        return 0.0
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            raise ValueError(f"labels: must be in [0, {k}), got {labels[i]}")
    with nogil:
        for i in range(n):
            y = labels[i]
            s = 0.0
            for j in range(k):
                s += probs[i, j]
            q = probs[i, y] / s
            qc = clip_double(q, epsilon, hi)
            dq = 0.0 if (q < epsilon or q > hi) else -1.0 / qc
            sdq = dq * q
            wi = w[i] if has_w else 1.0
            scale = wi / n
            for j in range(k):
                grad[i, j] = <floating>(((dq if j == y else 0.0) - sdq) / s * scale)
            total += wi * -log(qc)
    return total / n


def categorical_cross_entropy_dense(const floating[:, ::1] probs not None,
                                    const floating[:, ::1] target not None,
                                    const double[::1] w not None,
                                    bint has_w, floating[:, ::1] grad not None, double epsilon):
    """Cross-entropy from probabilities (renormalised, clipped) and dense targets."""
    cdef Py_ssize_t n = probs.shape[0], k = probs.shape[1], i, j
    cdef double s, q, qc, dq, sdq, per, wi, scale, total = 0.0, hi = 1.0 - epsilon
    if (not _check(probs.shape, grad.shape, w.shape[0], has_w)
            or target.shape[0] != n or target.shape[1] != k):
        raise ValueError("categorical_cross_entropy: probs, target, sample_weight, grad "
                         "shapes differ")
    if n == 0:
        return 0.0
    with nogil:
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += probs[i, j]
            per = 0.0
            sdq = 0.0
            for j in range(k):
                q = probs[i, j] / s
                qc = clip_double(q, epsilon, hi)
                per -= target[i, j] * log(qc)
                if not (q < epsilon or q > hi):
                    sdq += (-target[i, j] / qc) * q
            wi = w[i] if has_w else 1.0
            scale = wi / n
            for j in range(k):
                q = probs[i, j] / s
                qc = clip_double(q, epsilon, hi)
                dq = 0.0 if (q < epsilon or q > hi) else -target[i, j] / qc
                grad[i, j] = <floating>((dq - sdq) / s * scale)
            total += wi * per
    return total / n


cdef inline bint _check_pair(Py_ssize_t* ps, Py_ssize_t* ts, Py_ssize_t* gs, Py_ssize_t wn,
                             bint has_w) noexcept:
    return (ps[0] == ts[0] and ps[1] == ts[1] and ps[0] == gs[0] and ps[1] == gs[1]
            and (not has_w or wn == ps[0]))




def elementwise_loss(int kind, const floating[:, ::1] pred not None, const floating[:,
                     ::1] target not None,
                     const double[::1] w not None, bint has_w, floating[:, ::1] grad not None,
                     double epsilon):
    """Losses that are a mean over the last axis of a per-element term.

    kind 0: sigmoid BCE from logits; 1: BCE from probabilities clipped to
    [epsilon, 1 - epsilon]; 2: squared error; 3: absolute error.
    """
    cdef Py_ssize_t n = pred.shape[0], k = pred.shape[1], i, j
    cdef double z, t, l, g, wi, row, inv_nk, total = 0.0
    if not _check_pair(pred.shape, target.shape, grad.shape, w.shape[0], has_w):
        raise ValueError("loss: pred, target, sample_weight, grad shapes differ")
    if kind < PAIR_SIGMOID_BCE or kind > PAIR_MAE:
        raise ValueError(f"loss: unknown kind {kind}")
    if n == 0 or k == 0:
        return 0.0
    inv_nk = 1.0 / (<double>n * k)
    with nogil:
        for i in range(n):
            wi = w[i] if has_w else 1.0
            row = 0.0
            for j in range(k):
                z = pred[i, j]
                t = target[i, j]
                l = pair_loss_term(kind, z, t, epsilon, &g)
                row += l
                grad[i, j] = <floating>(g * inv_nk * wi)
            total += wi * (row / k)
    return total / n
