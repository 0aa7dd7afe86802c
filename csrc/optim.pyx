# cython: language_level=3, cdivision=True
"""Optimizer updates: one in-place pass over flat parameter and state buffers.

The arithmetic follows the NumPy reference step by step in the working type
(Python floats become the array's type, as under NumPy's promotion rules), with
decoupled weight decay first and float32 state flushed to zero below FLT_MIN.
"""
cimport cython
from cython cimport floating

from pynn_math cimport adam_loop, f_sqrt, flush_denormal, sgd_loop


cdef inline bint _same(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept:
    return a == b and b == c


def sgd_update(floating[::1] param not None, const floating[::1] grad not None,
               floating[::1] velocity not None,
               double learning_rate, double momentum, bint nesterov, double weight_decay):
    """Keras SGD; ``velocity`` is read only when ``momentum != 0``."""
    cdef Py_ssize_t size = param.shape[0]
    cdef floating lr = <floating>learning_rate, mom = <floating>momentum
    cdef floating decay = <floating>(learning_rate * weight_decay) if weight_decay != 0.0 \
        else <floating>0
    if grad.shape[0] != size or (momentum != 0.0 and velocity.shape[0] != size):
        raise ValueError("sgd_update: param, grad and velocity sizes differ")
    if size == 0:
        return
    with nogil:
        sgd_loop(&param[0], &grad[0], &velocity[0], size, lr,
                 mom if momentum != 0.0 else <floating>0, nesterov, decay)


def adam_update(floating[::1] param not None, const floating[::1] grad not None,
                floating[::1] m not None,
                floating[::1] v not None, double alpha, double beta_1, double beta_2,
                double epsilon,
                double learning_rate, double weight_decay):
    """Adam with the bias corrections folded into ``alpha``."""
    cdef Py_ssize_t size = param.shape[0]
    cdef floating decay = <floating>(learning_rate * weight_decay) if weight_decay != 0.0 \
        else <floating>0
    if not (_same(size, grad.shape[0], m.shape[0]) and v.shape[0] == size):
        raise ValueError("adam_update: param, grad, m and v sizes differ")
    if size == 0:
        return
    with nogil:
        adam_loop(&param[0], &grad[0], &m[0], &v[0], size, <floating>alpha,
                  <floating>(1.0 - beta_1), <floating>(1.0 - beta_2), <floating>epsilon,
                  decay)


cdef inline void _scaled_sqrt_loop(floating* param, const floating* grad, floating* acc,
                                   Py_ssize_t size, floating lr, floating keep,
                                   floating add, floating eps, floating decay,
                                   bint use_decay) noexcept nogil:
    """``acc = keep * acc + add * g^2``; ``p -= lr g / sqrt(acc + eps)`` after the decay:
    RMSprop (``keep = rho``, ``add = 1 - rho``) and Adagrad (``keep = add = 1``, exact:
    multiplying by 1 rounds nothing)."""
    cdef Py_ssize_t i
    cdef floating p, g, s
    for i in range(size):
        p = param[i]
        if use_decay:
            p = p - p * decay
        g = grad[i]
        s = flush_denormal(keep * acc[i] + add * g * g)
        acc[i] = s
        param[i] = p - lr * g / f_sqrt(s + eps)


def rmsprop_update(floating[::1] param not None, const floating[::1] grad not None,
                   floating[::1] ms not None,
                   double learning_rate, double rho, double epsilon, double weight_decay):
    """RMSprop: ``ms = rho ms + (1 - rho) g^2``; ``p -= lr g / sqrt(ms + eps)`` (Keras)."""
    cdef Py_ssize_t size = param.shape[0]
    if not _same(size, grad.shape[0], ms.shape[0]):
        raise ValueError("rmsprop_update: param, grad and ms sizes differ")
    if size == 0:
        return
    with nogil:
        _scaled_sqrt_loop(&param[0], &grad[0], &ms[0], size, <floating>learning_rate,
                          <floating>rho, <floating>(1.0 - rho), <floating>epsilon,
                          <floating>(learning_rate * weight_decay), weight_decay != 0.0)


def adagrad_update(floating[::1] param not None, const floating[::1] grad not None,
                   floating[::1] acc not None,
                   double learning_rate, double epsilon, double weight_decay):
    """Adagrad: ``acc += g^2``; ``p -= lr g / sqrt(acc + eps)`` (Keras)."""
    cdef Py_ssize_t size = param.shape[0]
    if not _same(size, grad.shape[0], acc.shape[0]):
        raise ValueError("adagrad_update: param, grad and acc sizes differ")
    if size == 0:
        return
    with nogil:
        _scaled_sqrt_loop(&param[0], &grad[0], &acc[0], size, <floating>learning_rate,
                          <floating>1, <floating>1, <floating>epsilon,
                          <floating>(learning_rate * weight_decay), weight_decay != 0.0)
