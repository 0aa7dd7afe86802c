"""Native code safety: bad arguments give Python exceptions, never a crash (issue 5).

Every Python-visible function of each compiled module ``pynn._ext.*`` is called
DIRECTLY (no wrapper) with mismatched shapes, wrong dtypes, non-contiguous, read-only,
zero-size, ``None`` and non-array arguments; the numba backend's kernels (and the
cython backend's, as a cross-check) are called through their backend methods with the
same mutations and must behave exactly like the NumPy reference (same exception class,
or the same result after converting the input). Every array is a view into a larger
buffer whose margins hold a canary pattern, so an out-of-bounds write is caught even
when it does not crash.

The whole batch runs in a child process: a segfault/abort shows up as a failure naming
the signal and the last case started.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import PYNN_PATH

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAD = 16
F32, F64, INTP = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.intp)


# ------------------------------------------------------------------------------------------
# guarded arrays
# ------------------------------------------------------------------------------------------
class Guarded:
    """Arrays that are views into buffers with canary margins (checked after each call)."""

    def __init__(self):
        self.buffers = []

    def make(self, shape, dtype, fill, strided=False, readonly=False):
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        step = 2 if strided else 1
        big = np.empty(size * step + 2 * PAD, dtype)
        canary = self._canary(dtype, big.shape[0])
        big[:] = canary
        inner = big[PAD:PAD + size * step:step] if strided else big[PAD:PAD + size]
        inner[:] = np.asarray(fill, dtype=dtype).reshape(-1)[:size] if size else inner
        view = inner.reshape(shape) if not strided else \
            np.lib.stride_tricks.as_strided(inner, shape=shape,
                                            strides=_strides(shape, dtype.itemsize * step))
        if readonly:
            view.flags.writeable = False
        self.buffers.append((big, canary, PAD, size * step if not strided else size * step))
        return view

    @staticmethod
    def _canary(dtype, n):
        if dtype.kind == "f":
            return np.full(n, -12345.5, dtype)
        if dtype.kind == "u":
            return np.full(n, 0xAB, dtype)
        return np.full(n, -777, dtype)

    def intact(self):
        for big, canary, pad, used in self.buffers:
            head, tail = big[:pad], big[pad + used:]
            if not (np.array_equal(head, canary[:pad]) and
                    np.array_equal(tail, canary[pad + used:])):
                return False
        return True


def _strides(shape, itemsize):
    strides, acc = [], itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(int(s), 1)
    return tuple(reversed(strides))


# ------------------------------------------------------------------------------------------
# the compiled entry points: (module, function) -> argument template
# Each array argument: (role, shape, dtype-kind); role 'in' (const), 'out' (written);
# dtype-kind 'F' (the working float type), 'd' (always float64), 'p' (intp labels).
# ------------------------------------------------------------------------------------------
N, K, M = 5, 4, 3


def _arr(role, shape, kind, fill="randn"):
    return ("array", role, shape, kind, fill)


EXT_CASES = {
    ("dense", "gemm"): [_arr("in", (N, K), "F"), _arr("in", (K, M), "F"),
                        _arr("out", (N, M), "F"), False, False, 1.0, 0.0,
                        _arr("in", (M,), "F"), True, 1, 0.0],
    ("dense", "activation_forward"): [_arr("in", (N * K,), "F"), _arr("out", (N * K,), "F"),
                                      5, 0.0],
    ("dense", "activation_backward"): [_arr("in", (N * K,), "F"), _arr("in", (N * K,), "F"),
                                       _arr("in", (N * K,), "F"), _arr("out", (N * K,), "F"),
                                       6, 0.0],
    ("dense", "softmax"): [_arr("in", (N, K), "F"), _arr("out", (N, K), "F")],
    ("dense", "log_softmax"): [_arr("in", (N, K), "F"), _arr("out", (N, K), "F")],
    ("dense", "softmax_backward"): [_arr("in", (N, K), "F"), _arr("in", (N, K), "F"),
                                    _arr("out", (N, K), "F")],
    ("layers", "bias_grad"): [_arr("in", (N, K), "F"), _arr("out", (K,), "F")],
    ("layers", "uniform"): [7, _arr("out", (N * K,), "d")],
    ("layers", "dropout_forward"): [_arr("in", (N * K,), "F"), 0.3, 7,
                                    _arr("out", (N * K,), "F"), _arr("out", (N * K,), "F")],
    ("layers", "multiply"): [_arr("in", (N * K,), "F"), _arr("in", (N * K,), "F"),
                             _arr("out", (N * K,), "F")],
    ("layers", "batchnorm_forward"): [_arr("in", (N, K), "F"), _arr("in", (K,), "F", "ones"),
                                      _arr("in", (K,), "F"), _arr("out", (K,), "F"),
                                      _arr("out", (K,), "F", "ones"), True, 0.9, 1e-3,
                                      _arr("out", (N, K), "F"), _arr("out", (K,), "d"),
                                      _arr("out", (K,), "d")],
    ("layers", "batchnorm_backward"): [_arr("in", (N, K), "F"), _arr("in", (N, K), "F"),
                                       _arr("in", (K,), "F", "ones"), _arr("in", (K,), "d"),
                                       _arr("in", (K,), "d", "ones"), _arr("out", (N, K), "F"),
                                       _arr("out", (K,), "F"), _arr("out", (K,), "F")],
    # per-row normalisation with gamma and beta (absent ones would be empty arrays)
    ("layers", "layernorm_forward"): [_arr("in", (N, K), "F"), _arr("in", (K,), "F", "ones"),
                                      _arr("in", (K,), "F"), True, True, 1e-3, False,
                                      _arr("out", (N, K), "F"), _arr("out", (N,), "d"),
                                      _arr("out", (N,), "d")],
    ("layers", "layernorm_backward"): [_arr("in", (N, K), "F"), _arr("in", (N, K), "F"),
                                       _arr("in", (K,), "F", "ones"), True,
                                       _arr("in", (N,), "d"), _arr("in", (N,), "d", "ones"),
                                       False, _arr("out", (N, K), "F"),
                                       _arr("out", (K,), "F"), True, _arr("out", (K,), "F")],
    ("layers", "l2_normalize_forward"): [_arr("in", (N, K), "F"), 1e-12,
                                         _arr("out", (N, K), "F"), _arr("out", (N,), "d")],
    ("layers", "l2_normalize_backward"): [_arr("in", (N, K), "F"), _arr("in", (N, K), "F"),
                                          _arr("in", (N,), "d", "ones"), 1e-12,
                                          _arr("out", (N, K), "F")],
    ("losses", "softmax_cross_entropy_labels"): [_arr("in", (N, K), "F"),
                                                 _arr("in", (N,), "p", "labels"),
                                                 _arr("in", (N,), "d", "ones"), True,
                                                 _arr("out", (N, K), "F"), 0.1],
    ("losses", "softmax_cross_entropy_dense"): [_arr("in", (N, K), "F"),
                                                _arr("in", (N, K), "F", "probs"),
                                                _arr("in", (N,), "d", "ones"), True,
                                                _arr("out", (N, K), "F"), 0.1],
    ("losses", "categorical_cross_entropy_labels"): [_arr("in", (N, K), "F", "probs"),
                                                     _arr("in", (N,), "p", "labels"),
                                                     _arr("in", (N,), "d", "ones"), True,
                                                     _arr("out", (N, K), "F"), 1e-7],
    ("losses", "categorical_cross_entropy_dense"): [_arr("in", (N, K), "F", "probs"),
                                                    _arr("in", (N, K), "F", "probs"),
                                                    _arr("in", (N,), "d", "ones"), True,
                                                    _arr("out", (N, K), "F"), 1e-7],
    ("losses", "elementwise_loss"): [2, _arr("in", (N, K), "F"), _arr("in", (N, K), "F"),
                                     _arr("in", (N,), "d", "ones"), True,
                                     _arr("out", (N, K), "F"), 1e-7],
    ("optim", "sgd_update"): [_arr("out", (N * K,), "F"), _arr("in", (N * K,), "F"),
                              _arr("out", (N * K,), "F"), 0.1, 0.9, True, 0.01],
    ("optim", "adam_update"): [_arr("out", (N * K,), "F"), _arr("in", (N * K,), "F"),
                               _arr("out", (N * K,), "F"), _arr("out", (N * K,), "F", "ones"),
                               0.01, 0.9, 0.999, 1e-7, 0.01, 0.0],
    ("optim", "rmsprop_update"): [_arr("out", (N * K,), "F"), _arr("in", (N * K,), "F"),
                                  _arr("out", (N * K,), "F", "ones"), 0.01, 0.9, 1e-7, 0.0],
    ("optim", "adagrad_update"): [_arr("out", (N * K,), "F"), _arr("in", (N * K,), "F"),
                                  _arr("out", (N * K,), "F", "ones"), 0.01, 1e-7, 0.0],
    ("step", "take_rows"): [_arr("in", (N, K), "F"), _arr("in", (M,), "p", "labels"),
                            _arr("out", (M, K), "F")],
    # x (2, 5, 4, 4) * kernel (3, 3, 2, 4), 2 groups, 'same' padding: out (2, 5, 4, 4);
    # blocks of 7 rows of the 18-column matrix (block boundaries inside image rows)
    ("conv", "conv2d_forward"): [_arr("in", (2, N, K, K), "F"), _arr("in", (3, 3, 2, K), "F"),
                                 _arr("in", (K,), "F"), True, (1, 1), ((1, 1), (1, 1)),
                                 (1, 1), 2, 1, 0.0, _arr("out", (2, N, K, K), "F"),
                                 _arr("out", (7 * 18,), "F"), 7],
    ("conv", "conv2d_backward_input"): [_arr("in", (2, N, K, K), "F"),
                                        _arr("in", (3, 3, 2, K), "F"), (1, 1),
                                        ((1, 1), (1, 1)), (1, 1), 2,
                                        _arr("out", (2, N, K, K), "F"),
                                        _arr("out", (7 * 18,), "F"), 7],
    ("conv", "conv2d_backward_kernel"): [_arr("in", (2, N, K, K), "F"),
                                         _arr("in", (2, N, K, K), "F"), (1, 1),
                                         ((1, 1), (1, 1)), (1, 1), 2,
                                         _arr("out", (3, 3, 2, K), "F"),
                                         _arr("out", (7 * 18,), "F"), 7],
    ("conv", "plan"): [40, (3, 3, 2, K), (1, 1), ((1, 1), (1, 1)), 8],
    # the fused backward of the convolution above (relu), dz after the column block
    ("conv", "conv2d_backward"): [_arr("in", (2, N, K, K), "F"), _arr("in", (2, N, K, K), "F"),
                                  _arr("in", (2, N, K, K), "F"), _arr("in", (3, 3, 2, K), "F"),
                                  (1, 1), ((1, 1), (1, 1)), (1, 1), 2, 1, 0.0,
                                  _arr("out", (2, N, K, K), "F"),
                                  _arr("out", (3, 3, 2, K), "F"), _arr("out", (K,), "F"),
                                  _arr("out", (7 * 18 + 7 * K,), "F"), _arr("out", (K,), "d"),
                                  7],
    ("conv", "backward_plan"): [40, (3, 3, 2, K), (1, 1), ((1, 1), (1, 1)), 8, False],
    ("conv", "pool_tile_images"): [N, K, K, 8],
    # that convolution then 2x2 max pooling: pooled (2, 2, 2, K); tiles of one image
    ("conv", "conv2d_pool_forward"): [_arr("in", (2, N, K, K), "F"),
                                      _arr("in", (3, 3, 2, K), "F"), _arr("in", (K,), "F"),
                                      True, (1, 1), ((1, 1), (1, 1)), (1, 1), 2, 1, 0.0, (2, 2),
                                      _arr("out", (2, 2, 2, K), "F"),
                                      _arr("out", (2, 2, 2, K), "p"),
                                      _arr("out", (7 * 18,), "F"), 7,
                                      _arr("out", (N * K * K,), "F"), 1],
    # its backward with both images in one tile (any index inside the tile is valid)
    ("conv", "conv2d_pool_backward"): [_arr("in", (2, 2, 2, K), "F"),
                                       _arr("in", (2, N, K, K), "F"),
                                       _arr("in", (3, 3, 2, K), "F"),
                                       _arr("in", (2, 2, 2, K), "F"),
                                       _arr("in", (2, 2, 2, K), "p", "labels"), (1, 1),
                                       ((1, 1), (1, 1)), (1, 1), 2, 1, 0.0, (2, 2),
                                       _arr("out", (2, N, K, K), "F"),
                                       _arr("out", (3, 3, 2, K), "F"), _arr("out", (K,), "F"),
                                       _arr("out", (7 * 18,), "F"), _arr("out", (K,), "d"), 7,
                                       _arr("out", (2 * N * K * K,), "F"), 2],
    # 2x2 pooling, stride 1, padding ((1, 0), (0, 1)): out has the shape of x
    ("conv", "pool2d_forward"): [_arr("in", (2, N, K, M), "F"), (2, 2), (1, 1),
                                 ((1, 0), (0, 1)), True, _arr("out", (2, N, K, M), "F"),
                                 _arr("out", (2, N, K, M), "p")],
    ("conv", "pool2d_backward"): [_arr("in", (2, N, K, M), "F"), (2, 2), (1, 1),
                                  ((1, 0), (0, 1)), True,
                                  _arr("in", (2, N, K, M), "p", "labels"),
                                  _arr("out", (2, N, K, M), "F")],
    # ids (3,) below 4 into a (9, 5) table; its row count is free (any above the ids)
    ("sequence", "embedding_forward"): [_arr("in", (M,), "p", "labels"),
                                        _arr("in", (K + N, N), "F"), _arr("out", (M, N), "F")],
    ("sequence", "embedding_backward"): [_arr("in", (M,), "p", "labels"),
                                         _arr("in", (M, N), "F"), _arr("out", (K + N, N), "F")],
    # an LSTM (cell 1): x (5, 3, 4), units 2, gates 8; every flag on except the GRU's
    # recurrent bias (an empty array: unused); with a recurrent dropout mask (n, 8), so
    # scratch n * (G + u) forward, (6 n + n T) u backward
    ("sequence", "rnn_forward"): [1, False, _arr("in", (N, M, K), "F"), _arr("in", (K, 8), "F"),
                                  _arr("in", (2, 8), "F"), _arr("in", (8,), "F"),
                                  _arr("in", (0,), "F"), True, False, _arr("in", (N, 2), "F"),
                                  _arr("in", (N, 2), "F"), True, True,
                                  _arr("in", (N, M), "b", "ones"), True,
                                  _arr("out", (N, M, 2), "F"), _arr("out", (N, 2), "F"),
                                  _arr("out", (N, 2), "F"), _arr("out", (N, M, 2), "F"),
                                  _arr("out", (N, M, 2), "F"), _arr("out", (N, M, 8), "F"),
                                  _arr("out", (N * 10,), "F"), 5, 4, 0.0, 0.0, False,
                                  _arr("in", (N, 8), "F"), True],
    ("sequence", "rnn_backward"): [1, False, _arr("in", (N, M, 2), "F"), True,
                                   _arr("in", (N, M, K), "F"), _arr("in", (K, 8), "F"),
                                   _arr("in", (2, 8), "F"), _arr("in", (N, M, 2), "F"),
                                   _arr("in", (N, M, 2), "F"), _arr("in", (N, M, 8), "F", "probs"),
                                   _arr("in", (N, M), "b", "ones"), True,
                                   _arr("in", (N, 2), "F"), True, _arr("in", (N, 2), "F"), True,
                                   _arr("out", (N, M, K), "F"), True, _arr("out", (K, 8), "F"),
                                   _arr("out", (2, 8), "F"), _arr("out", (8,), "F"),
                                   _arr("out", (0,), "F"), True, _arr("out", (N, 2), "F"),
                                   _arr("out", (N, 2), "F"), True, _arr("out", (N, M, 8), "F"),
                                   _arr("out", ((6 * N + N * M) * 2,), "F"), 5, 4, 0.0, 0.0,
                                   False, _arr("in", (N, 8), "F"), True],
    # the products alone of that LSTM's forward and backward (scratch n * (G + 3u) + G u)
    ("sequence", "rnn_products"): [1, False, _arr("in", (N, M, K), "F"), _arr("in", (K, 8), "F"),
                                   _arr("in", (2, 8), "F"), _arr("in", (N, M, 2), "F"),
                                   _arr("out", (N, M, 8), "F"), _arr("out", (N, M, 8), "F"),
                                   _arr("out", (N, M, K), "F"), True,
                                   _arr("out", (K, 8), "F"), _arr("out", (2, 8), "F"),
                                   _arr("out", (N * 14 + 16,), "F"), True, True],
    ("sequence", "epilogue_activation"): [5, _arr("in", (N,), "F"), _arr("out", (N,), "F")],
}


def _fill(kind, shape, rng):
    size = int(np.prod(shape))
    if kind == "ones":
        return np.ones(size)
    if kind == "labels":
        return rng.integers(0, K, size)
    if kind == "probs":
        return np.full(size, 1.0 / K)
    return rng.standard_normal(size)


def _dtype_of(kind, work):
    return {"F": work, "d": F64, "p": INTP, "b": np.dtype(np.uint8)}[kind]


def _other_dtypes(kind, work):
    if kind == "F":
        return [F32 if work == F64 else F64, np.dtype(np.int32)]
    if kind == "d":
        return [F32, np.dtype(np.int64)]
    if kind == "b":
        return [np.dtype(np.int32), F64]
    return [np.dtype(np.int32), F64]


def _mutations(template):
    """(label, arg index, change) for every array argument; change in a small vocabulary."""
    out = []
    for i, spec in enumerate(template):
        if not (isinstance(spec, tuple) and spec[0] == "array"):
            continue
        _, role, shape, kind, _ = spec
        for ax in range(len(shape)):
            out.append((f"arg{i}:axis{ax}-1", i, ("shape", ax, -1)))
            out.append((f"arg{i}:axis{ax}+1", i, ("shape", ax, +1)))
        out.append((f"arg{i}:dtype0", i, ("dtype", 0)))
        out.append((f"arg{i}:dtype1", i, ("dtype", 1)))
        out.append((f"arg{i}:strided", i, ("strided",)))
        out.append((f"arg{i}:readonly", i, ("readonly",)))
        out.append((f"arg{i}:none", i, ("none",)))
        out.append((f"arg{i}:list", i, ("list",)))
    return out


def _build(template, work, change=None, target=None, zero_axis=None, seed=0):
    rng = np.random.default_rng(seed)
    g = Guarded()
    args = []
    for i, spec in enumerate(template):
        if not (isinstance(spec, tuple) and spec[0] == "array"):
            args.append(spec)
            continue
        _, role, shape, kind, fill = spec
        shape = list(shape)
        if zero_axis is not None:
            # zero-size: the batch axis (N) of every array that has one
            shape = [0 if s == (N if zero_axis == "n" else K) else s for s in shape]
            if zero_axis == "nk":
                shape = [0 for _ in shape]
        dt = _dtype_of(kind, work)
        strided = readonly = False
        if i == target:
            what = change[0]
            if what == "shape":
                shape[change[1]] = max(shape[change[1]] + change[2], 0)
            elif what == "dtype":
                dt = _other_dtypes(kind, work)[change[1]]
            elif what == "strided":
                strided = True
            elif what == "readonly":
                readonly = True
            elif what == "none":
                args.append(None)
                continue
        data = _fill(fill, shape, rng)
        if i == target and change[0] == "list":
            args.append(np.asarray(data, dtype=dt).reshape(shape).tolist())
            continue
        args.append(g.make(tuple(shape), dt, data, strided=strided, readonly=readonly))
    return args, g


def _outcome(fn, args):
    try:
        fn(*args)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the class name is what we record
        return f"{type(exc).__name__}: {str(exc)[:160]}"


def run_ext_cases(progress):
    import importlib
    results = []
    for (mod, name), template in EXT_CASES.items():
        fn = getattr(importlib.import_module(f"pynn._ext.{mod}"), name)
        for work in (F32, F64):
            plans = [("valid", None, None, None)]
            plans += [(lab, i, ch, None) for lab, i, ch in _mutations(template)]
            plans += [("zero:n", None, None, "n"), ("zero:k", None, None, "k"),
                      ("zero:all", None, None, "nk")]
            for label, target, change, zero in plans:
                progress(f"{mod}.{name} {work} {label}")
                args, g = _build(template, work, change, target, zero)
                out = _outcome(fn, args)
                role = template[target][1] if target is not None else None
                results.append({"fn": f"{mod}.{name}", "dtype": work.name, "case": label,
                                "role": role, "outcome": out, "intact": g.intact()})
    return results


# ------------------------------------------------------------------------------------------
# backend methods (numba kernels; cython cross-check) against the NumPy reference
# ------------------------------------------------------------------------------------------
def _method_cases():
    """name -> (method name, template, kwargs names for array positions after the first)."""
    A = _arr
    return {
        "gemm": ("gemm", [A("in", (N, K), "F"), A("in", (K, M), "F")],
                 {"out": A("out", (N, M), "F"), "bias": A("in", (M,), "F")},
                 {"activation": "relu"}),
        "gemm_tt": ("gemm", [A("in", (K, N), "F"), A("in", (M, K), "F")],
                    {"out": A("out", (N, M), "F")}, {"trans_a": True, "trans_b": True}),
        "activation_forward": ("activation_forward", [A("in", (N, K), "F"), "elu"],
                               {"out": A("out", (N, K), "F")}, {}),
        "activation_backward": ("activation_backward",
                                [A("in", (N, K), "F"), A("in", (N, K), "F"), "gelu"],
                                {"x": A("in", (N, K), "F"), "out": A("out", (N, K), "F")}, {}),
        "softmax": ("softmax", [A("in", (N, K), "F")], {"out": A("out", (N, K), "F")}, {}),
        "log_softmax": ("log_softmax", [A("in", (N, K), "F")],
                        {"out": A("out", (N, K), "F")}, {}),
        "softmax_cross_entropy": ("softmax_cross_entropy",
                                  [A("in", (N, K), "F"), A("in", (N,), "p", "labels")],
                                  {"grad": A("out", (N, K), "F"),
                                   "sample_weight": A("in", (N,), "d", "ones")}, {}),
        "categorical_cross_entropy": ("categorical_cross_entropy",
                                      [A("in", (N, K), "F", "probs"),
                                       A("in", (N, K), "F", "probs")],
                                      {"grad": A("out", (N, K), "F")}, {}),
        "sigmoid_binary_cross_entropy": ("sigmoid_binary_cross_entropy",
                                         [A("in", (N, K), "F"), A("in", (N, K), "F", "probs")],
                                         {"grad": A("out", (N, K), "F")}, {}),
        "binary_cross_entropy": ("binary_cross_entropy",
                                 [A("in", (N, K), "F", "probs"), A("in", (N, K), "F", "probs")],
                                 {"grad": A("out", (N, K), "F")}, {}),
        "mean_squared_error": ("mean_squared_error", [A("in", (N, K), "F"),
                                                      A("in", (N, K), "F")],
                               {"grad": A("out", (N, K), "F")}, {}),
        "mean_absolute_error": ("mean_absolute_error", [A("in", (N, K), "F"),
                                                        A("in", (N, K), "F")],
                                {"grad": A("out", (N, K), "F")}, {}),
        "bias_grad": ("bias_grad", [A("in", (N, K), "F")], {"out": A("out", (K,), "F")}, {}),
        "dropout_forward": ("dropout_forward", [A("in", (N, K), "F"), 0.3, 7],
                            {"out": A("out", (N, K), "F"), "mask": A("out", (N, K), "F")}, {}),
        "dropout_backward": ("dropout_backward", [A("in", (N, K), "F"), A("in", (N, K), "F")],
                             {"out": A("out", (N, K), "F")}, {}),
        "batchnorm_forward": ("batchnorm_forward",
                              [A("in", (N, K), "F"), A("in", (K,), "F", "ones"),
                               A("in", (K,), "F"), A("out", (K,), "F"),
                               A("out", (K,), "F", "ones"), True],
                              {"out": A("out", (N, K), "F")}, {}),
        "batchnorm_backward": ("batchnorm_backward",
                               [A("in", (N, K), "F"), A("in", (N, K), "F"),
                                A("in", (K,), "F", "ones"), A("in", (K,), "F"),
                                A("in", (K,), "F", "ones")],
                               {"dx": A("out", (N, K), "F"), "dgamma": A("out", (K,), "F"),
                                "dbeta": A("out", (K,), "F")}, {}),
        "layernorm_forward": ("layernorm_forward",
                              [A("in", (N, K), "F"), A("in", (K,), "F", "ones"),
                               A("in", (K,), "F")], {"out": A("out", (N, K), "F")}, {}),
        "layernorm_backward": ("layernorm_backward",
                               [A("in", (N, K), "F"), A("in", (N, K), "F"),
                                A("in", (K,), "F", "ones"), A("in", (N,), "d"),
                                A("in", (N,), "d", "ones")],
                               {"dx": A("out", (N, K), "F"), "dgamma": A("out", (K,), "F"),
                                "dbeta": A("out", (K,), "F")}, {}),
        "l2_normalize_forward": ("l2_normalize_forward", [A("in", (N, K), "F")],
                                 {"out": A("out", (N, K), "F")}, {}),
        "l2_normalize_backward": ("l2_normalize_backward",
                                  [A("in", (N, K), "F"), A("in", (N, K), "F"),
                                   A("in", (N,), "d", "ones")],
                                  {"out": A("out", (N, K), "F")}, {}),
        "sgd_update": ("sgd_update", [A("out", (N * K,), "F"), A("in", (N * K,), "F"),
                                      A("out", (N * K,), "F")],
                       {}, {"learning_rate": 0.1, "momentum": 0.9}),
        "adam_update": ("adam_update", [A("out", (N * K,), "F"), A("in", (N * K,), "F"),
                                        A("out", (N * K,), "F"), A("out", (N * K,), "F", "ones"),
                                        3], {}, {}),
        "rmsprop_update": ("rmsprop_update", [A("out", (N * K,), "F"), A("in", (N * K,), "F"),
                                              A("out", (N * K,), "F", "ones")], {}, {}),
        "take_rows": ("take_rows", [A("in", (N, K), "F"), A("in", (M,), "p", "labels")],
                      {"out": A("out", (M, K), "F")}, {}),
        "adagrad_update": ("adagrad_update", [A("out", (N * K,), "F"), A("in", (N * K,), "F"),
                                              A("out", (N * K,), "F", "ones")], {}, {}),
        "conv2d_forward": ("conv2d_forward",
                           [A("in", (2, N, K, K), "F"), A("in", (3, 3, 2, K), "F"),
                            A("in", (K,), "F")],
                           {"out": A("out", (2, N, K, K), "F")},
                           {"padding": ((1, 1), (1, 1)), "groups": 2, "activation": "elu"}),
        "conv2d_backward_kernel": ("conv2d_backward_kernel",
                                   [A("in", (2, N, K, K), "F"), A("in", (2, N, K, K), "F"),
                                    (3, 3, 2, K)],
                                   {"out": A("out", (3, 3, 2, K), "F")},
                                   {"padding": ((1, 1), (1, 1)), "groups": 2}),
        "pool2d_forward": ("pool2d_forward", [A("in", (2, N, K, M), "F"), 2],
                           {"out": A("out", (2, N, K, M), "F"),
                            "index": A("out", (2, N, K, M), "p")},
                           {"strides": 1, "padding": ((1, 0), (0, 1))}),
    }


def _call_method(be, method, template, kw_names, fixed, work, change, target, zero, seed):
    args, g = _build(template, work, change, target, zero, seed)
    pos = args[:len(template) - len(kw_names)]
    kwargs = dict(zip(kw_names, args[len(pos):]))
    kwargs.update(fixed)
    try:
        res = getattr(be, method)(*pos, **kwargs)
        out = "ok"
    except Exception as exc:  # noqa: BLE001
        res, out = None, type(exc).__name__
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    return out, res, arrays, g.intact()


def _same_values(r1, a1, r2, a2, work):
    tol = dict(rtol=3e-4, atol=3e-5) if work == F32 else dict(rtol=1e-9, atol=1e-12)
    flat1 = list(a1) + (list(r1) if isinstance(r1, tuple) else [r1])
    flat2 = list(a2) + (list(r2) if isinstance(r2, tuple) else [r2])
    for x, y in zip(flat1, flat2):
        if x is None and y is None:
            continue
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if xa.shape != ya.shape or not np.allclose(xa, ya, equal_nan=True, **tol):
            return False
    return True


def run_method_cases(progress, backends):
    import pynn.backends as B
    ref = B.get("numpy")
    results = []
    for name, (method, pos_t, kw_t, fixed) in _method_cases().items():
        template = list(pos_t) + list(kw_t.values())
        kw_names = list(kw_t)
        for work in (F32, F64):
            plans = [("valid", None, None, None)]
            plans += [(lab, i, ch, None) for lab, i, ch in _mutations(template)]
            plans += [("zero:n", None, None, "n"), ("zero:all", None, None, "nk")]
            for label, target, change, zero in plans:
                r_out, r_res, r_arr, _ = _call_method(ref, method, template, kw_names, fixed,
                                                      work, change, target, zero, 1)
                for bname in backends:
                    progress(f"{bname}.{name} {work} {label}")
                    be = B.get(bname)
                    out, res, arr, intact = _call_method(be, method, template, kw_names,
                                                         fixed, work, change, target, zero, 1)
                    if out == "ok" or r_out == "ok":
                        same = out == r_out and _same_values(res, arr, r_res, r_arr, work)
                    else:  # both refuse: a clean TypeError/ValueError (the class may
                        # differ), or the same other class (IndexError: a bad row index)
                        same = out == r_out or {out, r_out} <= {"TypeError", "ValueError"}
                    results.append({"fn": f"{bname}.{name}", "dtype": work.name,
                                    "case": label, "outcome": out, "reference": r_out,
                                    "same": bool(same), "intact": intact})
    return results


def _stack_args(work, rng, labels=True):
    """Valid arguments of ``pynn._ext.step.dense_stack``: a K-M-2 net, softmax CE."""
    from pynn.backends.cython_backend import _fast_stack_args

    def a(*shape, dt=work):
        return rng.standard_normal(shape).astype(dt)

    target = rng.integers(0, 2, N).astype(np.intp) if labels else np.full((N, 2), 0.5, work)
    args = _fast_stack_args(
        a(N, K), target, [a(K, M), a(M, 2)], [a(M), a(2)], ["relu", "softmax"],
        "softmax_cross_entropy", [a(N, M), a(N, 2)], [a(N, M), a(N, 2)],
        [a(K, M), a(M, 2)], [a(M), a(2)], None, None, None, 0.0)
    return list(args) + [1.0]


def _forward_args(work, rng, labels=True):
    """Valid arguments of ``pynn._ext.step.dense_forward``: the same K-M-2 net."""
    from pynn.backends.cython_backend import _fast_forward_args

    def a(*shape, dt=work):
        return rng.standard_normal(shape).astype(dt)

    return list(_fast_forward_args(a(N, K), [a(K, M), a(M, 2)], [a(M), a(2)],
                                   ["relu", "softmax"], [a(N, M), a(N, 2)], None))


#: entry point -> (argument builder, indices of output arguments, index of the kernel
#: list, (index, bad value) of a bad code)
_STACK_ENTRY_POINTS = {
    "dense_stack": (_stack_args, (6, 8, 9, 10), 4, (13, 99)),
    "dense_forward": (_forward_args, (3,), 1, (4, [99, 0])),
}


def _stack_array_slots(args):
    """(label, getter, setter) for every array in the call, inside the lists too."""
    slots = []
    for i, v in enumerate(args):
        if isinstance(v, np.ndarray):
            slots.append((f"arg{i}", v, (lambda i: lambda args, new: args.__setitem__(i, new))(i)))
        elif isinstance(v, list):
            for j, e in enumerate(v):
                if isinstance(e, np.ndarray):
                    slots.append((f"arg{i}[{j}]", e,
                                  (lambda i, j: lambda args, new: args[i].__setitem__(j, new))(i, j)))
    return slots


def run_stack_cases(progress):
    """Every array of the fused step and of the fused inference pass (lists included)
    mutated: shape, dtype, strides, read-only, None; plus mismatched list lengths, zero
    rows and a bad loss/activation code. Outcome recorded."""
    from pynn._ext import step
    results = []
    for fn, (build, out_idx, k_idx, bad_code) in _STACK_ENTRY_POINTS.items():
        results += _run_stack_entry_point(progress, step, fn, build, out_idx, k_idx, bad_code)
    return results


def _run_stack_entry_point(progress, step, fn, build, out_idx, k_idx, bad_code):
    results = []
    for work in (F32, F64):
        for labels in ((True, False) if fn == "dense_stack" else (True,)):
            rng = np.random.default_rng(0)
            base = build(work, rng, labels)
            plans = [("valid", None)]
            for label, arr, _ in _stack_array_slots(base):
                for ch in ("shape0+1", "shape-1+1", "dtype", "strided", "readonly", "none"):
                    plans.append((f"{label}:{ch}", (label, ch)))
            plans += [("lists:short", "short"), ("zero:n", "zero"), ("loss:bad", "loss")]
            for case, plan in plans:
                progress(f"step.{fn} {work} {case}")
                args = build(work, np.random.default_rng(0), labels)
                role = None
                if isinstance(plan, tuple):
                    for label, arr, put in _stack_array_slots(args):
                        if label != plan[0]:
                            continue
                        ch = plan[1]
                        i = int(label[3:].split("[")[0])
                        role = "out" if i in out_idx else "in"
                        if ch == "shape0+1":
                            new = np.zeros((arr.shape[0] + 1,) + arr.shape[1:], arr.dtype)
                        elif ch == "shape-1+1":
                            new = np.zeros(arr.shape[:-1] + (arr.shape[-1] + 1,), arr.dtype)
                        elif ch == "dtype":
                            new = arr.astype(np.int32 if arr.dtype.kind == "f"
                                             else np.float64)
                        elif ch == "strided":
                            big = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), arr.dtype)
                            new = big[..., ::2]
                        elif ch == "readonly":
                            new = arr.copy()
                            new.flags.writeable = False
                        else:
                            new = None
                        put(args, new)
                elif plan == "short":
                    args[k_idx] = args[k_idx][:1]
                elif plan == "zero":
                    args[0] = args[0][:0]
                    if fn == "dense_stack":
                        args[1] = None if args[1] is None else args[1][:0]
                        args[2] = None if args[2] is None else args[2][:0]
                elif plan == "loss":
                    args[bad_code[0]] = bad_code[1]
                out = _outcome(getattr(step, fn), args)
                results.append({"fn": f"step.{fn}", "dtype": work.name,
                                "case": f"{'labels' if labels else 'dense'}:{case}",
                                "role": role, "outcome": out})
    return results


def _child(path):
    """Entry point of the child process: run everything, write JSON results to ``path``."""
    import pynn.backends as B

    def progress(msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    results = {"ext": [], "methods": []}
    if B.why_unavailable("cython") is None:
        results["ext"] = run_ext_cases(progress)
        results["stack"] = run_stack_cases(progress)
    backends = [b for b in ("numba", "cython") if B.why_unavailable(b) is None]
    results["methods"] = run_method_cases(progress, backends)
    results["backends"] = backends
    with open(path, "w") as f:
        json.dump(results, f)


# ------------------------------------------------------------------------------------------
# the tests (parent side)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    path = tmp_path_factory.mktemp("native") / "results.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PYNN_PATH, HERE, env.get("PYTHONPATH", "")])
    code = f"import test_native_safety as t; t._child({str(path)!r})"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=HERE)
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1:] or ["(nothing)"]
        sig = ""
        if res.returncode < 0:
            sig = f" killed by signal {signal.Signals(-res.returncode).name}"
        pytest.fail(f"native-safety child exited with {res.returncode}{sig}; last case "
                    f"started: {last[0]}\n{res.stderr[-2000:]}")
    with open(path) as f:
        return json.load(f)


def test_child_ran_every_compiled_entry_point(child_results):
    pytest.importorskip("pynn.backends.cython_backend")
    import importlib
    covered = {r["fn"] for r in child_results["ext"] + child_results.get("stack", [])}
    import pkgutil
    import pynn._ext
    modules = sorted(i.name for i in pkgutil.iter_modules(pynn._ext.__path__))
    assert {"dense", "layers", "losses", "optim"} <= set(modules)
    for mod in modules:     # a new compiled module fails here until EXT_CASES covers it
        m = importlib.import_module(f"pynn._ext.{mod}")
        public = {f"{mod}.{n}" for n in dir(m) if not n.startswith("_")
                  and callable(getattr(m, n)) and type(getattr(m, n)).__name__ != "type"}
        assert public <= covered, f"not exercised: {sorted(public - covered)}"


#: axes whose length the kernel does not constrain (any batch size; any number of draws)
FREE_AXES = {("layers.bias_grad", "arg0:axis0-1"), ("layers.bias_grad", "arg0:axis0+1"),
             ("layers.uniform", "arg1:axis0-1"), ("layers.uniform", "arg1:axis0+1"),
             # rows to gather from: any number holding the indices (labels < K < N)
             ("step.take_rows", "arg0:axis0-1"), ("step.take_rows", "arg0:axis0+1"),
             # a convolution's scratch buffer may be larger than one block needs
             ("conv.conv2d_forward", "arg11:axis0+1"),
             ("conv.conv2d_backward_input", "arg7:axis0+1"),
             ("conv.conv2d_backward_kernel", "arg7:axis0+1"),
             # ... and so may the fused ops' scratch, tile and float64 accumulator
             ("conv.conv2d_backward", "arg13:axis0+1"), ("conv.conv2d_backward", "arg14:axis0+1"),
             ("conv.conv2d_pool_forward", "arg13:axis0+1"),
             ("conv.conv2d_pool_forward", "arg15:axis0+1"),
             ("conv.conv2d_pool_backward", "arg15:axis0+1"),
             ("conv.conv2d_pool_backward", "arg16:axis0+1"),
             ("conv.conv2d_pool_backward", "arg18:axis0+1"),
             # one input row fewer: a 4-row output pools 2x2 to the same 2 rows (floor)
             ("conv.conv2d_pool_forward", "arg0:axis1-1"),
             # an embedding table may have any number of rows above the ids
             ("sequence.embedding_forward", "arg1:axis0-1"),
             ("sequence.embedding_forward", "arg1:axis0+1"),
             ("sequence.embedding_backward", "arg2:axis0-1"),
             ("sequence.embedding_backward", "arg2:axis0+1"),
             # unused arguments must be empty (an empty array is contiguous whatever its
             # strides); scratch may be larger than needed
             ("sequence.rnn_forward", "arg6:axis0-1"), ("sequence.rnn_forward", "arg6:strided"),
             ("sequence.rnn_forward", "arg21:axis0+1"),
             ("sequence.rnn_backward", "arg21:axis0-1"),
             ("sequence.rnn_backward", "arg21:strided"),
             ("sequence.rnn_backward", "arg27:axis0+1"),
             ("sequence.rnn_products", "arg12:axis0+1")}


#: array arguments whose None is documented ("this gradient is not wanted"), not a mistake
OPTIONAL = {(f"conv.{fn}", f"arg{i}:none") for fn, first in
            (("conv2d_backward", 10), ("conv2d_pool_backward", 12)) for i in range(first, first + 3)}


#: StepArgumentError subclasses ValueError (the backend catches it to re-check in Python)
_REFUSED = ("ValueError", "TypeError", "StepArgumentError")


def test_compiled_entry_points_reject_bad_arrays_with_python_exceptions(child_results):
    bad = []
    for r in child_results["ext"]:
        case, out = r["case"], r["outcome"]
        where = f"{r['fn']}[{r['dtype']}] {case}: {out}"
        if not r["intact"]:
            bad.append(f"{where} (wrote outside its buffers)")
            continue
        if case == "valid" or (r["fn"], case) in FREE_AXES or (r["fn"], case) in OPTIONAL:
            ok = out == "ok"
        elif case.endswith(":readonly"):
            # const inputs must accept read-only memory; outputs must refuse it
            ok = (out == "ok") if r["role"] == "in" else out.startswith(
                ("ValueError", "StepArgumentError"))
        elif case.endswith(":none"):
            # every array argument is declared ``not None``: refused, never a silent no-op
            # (step's entry points refuse with StepArgumentError, a ValueError)
            ok = out.startswith("TypeError" if not r["fn"].startswith("step.")
                                else _REFUSED)
        elif case.startswith("zero:"):
            # no crash; a no-op or a clean ValueError/TypeError
            ok = out == "ok" or out.startswith(_REFUSED)
        else:  # shape, dtype, strided, list: must be refused
            ok = out.startswith(_REFUSED)
        if not ok:
            bad.append(where)
    assert not bad, "\n".join(bad[:40])


def test_backend_methods_behave_like_the_reference_under_bad_arguments(child_results):
    if not child_results["backends"]:
        pytest.skip("no compiled backend")
    bad = [f"{r['fn']}[{r['dtype']}] {r['case']}: {r['outcome']} vs reference "
           f"{r['reference']}" + ("" if r["intact"] else " (wrote outside its buffers)")
           for r in child_results["methods"] if not (r["same"] and r["intact"])]
    assert not bad, "\n".join(bad[:40])
    by_case = {}
    for r in child_results["methods"]:
        by_case.setdefault(r["case"].split(":")[-1], set()).add(r["outcome"])
    # the mutations really exercised both paths: conversions succeed, bad buffers fail
    assert "ok" in by_case["strided"] and "ValueError" in by_case["strided"]
    assert "ValueError" in by_case["readonly"]


def test_a_crash_in_the_child_is_reported_with_its_signal(tmp_path):
    """The harness itself: a child that segfaults is seen as a failure naming SIGSEGV."""
    code = "import ctypes; ctypes.string_at(0)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                         cwd=PYNN_PATH)
    assert res.returncode < 0 and signal.Signals(-res.returncode).name == "SIGSEGV"


def test_fused_step_entry_point_rejects_bad_arrays(child_results):
    """``step.dense_stack`` takes lists of arrays: each one mutated must be refused with
    a Python exception (read-only inputs accepted), never a crash or a silent run."""
    pytest.importorskip("pynn.backends.cython_backend")
    rows = child_results.get("stack", [])
    assert rows, "the child ran no fused-step case"
    bad = []
    for r in rows:
        case, out = r["case"], r["outcome"]
        if case.endswith(":valid"):
            ok = out == "ok"
        elif case.endswith(":readonly") and r["role"] == "in":
            ok = out == "ok"
        elif case.endswith(":none") and r["role"] == "in" and "]" in case:
            # a None bias/bias-gradient slot is the documented "no bias" marker
            ok = out == "ok" or out.startswith(_REFUSED)
        else:
            ok = out.startswith(_REFUSED)
        if not ok:
            bad.append(f"{r['fn']}[{r['dtype']}] {case}: {out}")
    assert not bad, "\n".join(bad[:40])
