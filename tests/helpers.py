"""One helper that runs an op on a backend and compares it with the reference.

The tolerance table: float32 kernels may order sums differently from NumPy
(BLAS blocking, fused loops), so they get rtol 1e-5 relative to the scale of the
result (atol = rtol * max|ref|) - the same as comparing with an ULP budget that
grows with the reduction length. float64 gets 1e-10 on the same basis.
"""
import numpy as np

import pynn.backends as B

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
REFERENCE = B.Backend()


def tol(dtype, loose=1.0):
    r = RTOL[np.dtype(dtype)] * loose
    return r


def assert_close(got, want, dtype, loose=1.0, what=""):
    """Compare arrays/floats/tuples with the dtype's tolerance (scaled to the result)."""
    assert_close_scaled(got, want, dtype, 1.0, loose, what)


def _copy_args(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _run_both(backend, op, args, kwargs):
    """``(got, want, got_args, ref_args)``: ``op`` on ``backend`` and on the reference,
    each with its own copies of the array arguments."""
    kwargs = kwargs or {}
    ref_args, got_args = _copy_args(args), _copy_args(args)
    ref_kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    got_kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    want = getattr(REFERENCE, op)(*ref_args, **ref_kw)
    got = getattr(backend, op)(*got_args, **got_kw)
    return got, want, got_args, ref_args


def check_op(backend, op, args, kwargs=None, dtype=np.float64, loose=1.0, inplace=()):
    """Run ``op`` on ``backend`` and on the reference with copies of the same
    arguments; compare the results and every argument index in ``inplace``
    (arrays the op updates in place)."""
    got, want, got_args, ref_args = _run_both(backend, op, args, kwargs)
    assert_close(got, want, dtype, loose, f"{backend.name}.{op}")
    for i in inplace:
        assert_close(got_args[i], ref_args[i], dtype, loose, f"{backend.name}.{op} arg {i}")
    return got, want


# --------------------------------------------------------------------------
# extensions: exact type checks, a caller-chosen scale, non-contiguous views
# --------------------------------------------------------------------------
def assert_same_kind(got, want, what=""):
    """Same structure as the reference: tuples of the same length, arrays of the
    same shape and dtype, Python floats where the reference returns floats."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), \
            f"{what}: expected a tuple of {len(want)}, got {type(got).__name__}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_kind(g, w, f"{what}[{i}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{what}: expected ndarray, got {type(got).__name__}"
        assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    elif isinstance(want, float):
        assert isinstance(got, float), f"{what}: expected a float, got {type(got).__name__}"


def assert_close_scaled(got, want, dtype, scale, loose=1.0, what=""):
    """Like :func:`assert_close`, but the absolute tolerance is ``rtol * scale``
    for a caller-chosen ``scale`` (the magnitude of the op's *inputs* when the
    result is a cancellation of large terms, e.g. a pre-activation); the scale is
    never below 1 or the result's own largest magnitude."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_scaled(g, w, dtype, scale, loose, f"{what}[{i}]")
        return
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    if w.size == 0:
        return
    assert np.all(np.isfinite(g) == np.isfinite(w)), f"{what}: finiteness differs"
    fin = np.isfinite(w)
    r = tol(dtype, loose)
    s = max(1.0, float(scale), float(np.max(np.abs(w[fin]))) if fin.any() else 1.0)
    np.testing.assert_allclose(g[fin], w[fin], rtol=r, atol=r * s, err_msg=what)


def check_op_exact(backend, op, args, kwargs=None, dtype=np.float64, loose=1.0, inplace=(),
                   scale=None):
    """:func:`check_op` plus result types (shape/dtype/float) and an optional scale."""
    got, want, got_args, ref_args = _run_both(backend, op, args, kwargs)
    what = f"{backend.name}.{op}"
    assert_same_kind(got, want, what)
    assert_close_scaled(got, want, dtype, 1.0 if scale is None else scale, loose, what)
    for i in inplace:
        assert_close(got_args[i], ref_args[i], dtype, loose, f"{what} arg {i}")
        assert got_args[i].dtype == ref_args[i].dtype
    return got, want


def strided(a, kind):
    """A non-contiguous view holding the values of ``a``.

    ``kind`` is ``"step"`` (every other row and every third column, read
    backwards, of a larger array; negative strides included) or ``"T"`` (a
    transposed view of a C-contiguous array, i.e. Fortran order)."""
    a = np.asarray(a)
    if kind == "T":
        v = np.ascontiguousarray(a.T).T
    elif kind == "step":
        steps = [2, -3, 2, 2][: a.ndim]
        big = np.full(tuple(abs(st) * s + 1 for st, s in zip(steps, a.shape)), np.nan,
                      dtype=a.dtype) if a.dtype.kind == "f" else \
            np.zeros(tuple(abs(st) * s + 1 for st, s in zip(steps, a.shape)), dtype=a.dtype)
        v = big[tuple(slice(None, None, st) for st in steps)]
        v = v[tuple(slice(0, s) for s in a.shape)]
        v[...] = a
    else:
        raise ValueError(f"strided: unknown kind {kind!r}")
    np.testing.assert_array_equal(v, a)
    return v


# --------------------------------------------------------------------------
# deliberately broken backends: each test module proves it can fail on them
# (tests/test_backend_ops.py::test_suite_catches_*). They are also usable from
# the whole suite: PYNN_TEST_EXTRA_BACKENDS="broken_relu=helpers:BrokenReluBackward".
# --------------------------------------------------------------------------
class BrokenReluBackward(B.Backend):
    """relu'(0) taken as 1 (``y >= 0``)."""
    name = "broken_relu"

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        if activation == "relu":
            dy = np.asarray(dy)
            return super().activation_backward(
                np.where(np.asarray(y) >= 0, dy, 0).astype(dy.dtype), np.ones_like(dy),
                "linear", out=out)
        return super().activation_backward(dy, y, activation, x=x, out=out, alpha=alpha)


class BrokenUnshiftedSoftmax(B.Backend):
    """Softmax without subtracting the row maximum (overflows for large logits)."""
    name = "broken_softmax"

    def softmax(self, x, out=None):
        x = np.asarray(x)
        out = B.base.check_out(out, x.shape, x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x)
            out[...] = e / e.sum(axis=1, keepdims=True)
        return out


class BrokenFloat32BiasGrad(B.Backend):
    """Bias gradient accumulated in the input dtype (float32) instead of float64."""
    name = "broken_bias"

    def bias_grad(self, dy, out=None):
        dy = np.asarray(dy)
        out = B.base.check_out(out, (dy.shape[1],), dy.dtype)
        acc = np.zeros(dy.shape[1], dtype=dy.dtype)
        for row in dy:          # sequential, like a naive compiled loop
            acc += row
        out[...] = acc
        return out


class BrokenDropoutRng(B.Backend):
    """Dropout masks from NumPy's generator: right statistics, different units."""
    name = "broken_dropout"

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        x = np.asarray(x)
        u = np.random.default_rng(abs(int(seed))).random(x.shape)
        m = np.where(u >= rate, 1.0 / (1.0 - rate), 0.0).astype(x.dtype)
        if mask is not None:
            mask[...] = m
            m = mask
        return self.dropout_backward(x, m, out=out), m


class BrokenAdamNoFlush(B.Backend):
    """Adam that leaves float32 subnormal moments in place."""
    name = "broken_adam"

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        grad = np.asarray(grad, dtype=param.dtype)
        alpha = learning_rate * np.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
        param -= param * (learning_rate * weight_decay)
        m += (grad - m) * (1.0 - beta_1)
        v += (grad * grad - v) * (1.0 - beta_2)
        param -= (alpha * m / (np.sqrt(v) + epsilon)).astype(param.dtype)
        return param


class BrokenStrideBlindGemm(B.Backend):
    """gemm that reads a Fortran-ordered input as if it were C-ordered memory."""
    name = "broken_strides"

    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        def raw(x):
            x = np.asarray(x)
            return x.ravel(order="K").reshape(x.shape)
        return super().gemm(raw(a), raw(b), out=out, trans_a=trans_a, trans_b=trans_b,
                            alpha=alpha, beta=beta, bias=bias, activation=activation,
                            act_alpha=act_alpha)


class BrokenLabelCheck(B.Backend):
    """Out-of-range labels silently clipped instead of rejected."""
    name = "broken_labels"

    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        t = np.asarray(target)
        if t.ndim == 1 and t.dtype.kind in "iu":
            t = np.clip(t, 0, np.shape(logits)[1] - 1)
        return super().softmax_cross_entropy(logits, t, grad=grad, sample_weight=sample_weight,
                                             label_smoothing=label_smoothing)


class BrokenOutCheck(B.Backend):
    """activation_forward that writes into any out= without validating it."""
    name = "broken_out"

    def activation_forward(self, x, activation, out=None, alpha=None):
        r = super().activation_forward(x, activation, alpha=alpha)
        if out is None:
            return r
        out[...] = r
        return out


class BrokenGeluGrad(B.Backend):
    """gelu'(x) approximated by the normal CDF alone (drops the x * pdf term)."""
    name = "broken_gelu"

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        if activation == "gelu":
            from math import erf, sqrt
            xd = np.asarray(x, dtype=np.float64)
            cdf = 0.5 * (1.0 + np.vectorize(erf)(xd / sqrt(2.0)))
            return super().activation_backward(np.asarray(dy) * cdf, y, "linear", out=out)
        return super().activation_backward(dy, y, activation, x=x, out=out, alpha=alpha)


class BrokenBatchnormVariance(B.Backend):
    """Batch-norm statistics by a one-pass float32 E[x^2] - E[x]^2."""
    name = "broken_batchnorm"

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        x = np.asarray(x)
        if not training or x.dtype != np.float32:
            return super().batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training,
                                             momentum=momentum, epsilon=epsilon, out=out)
        mean = x.mean(axis=0, dtype=np.float32)
        var = np.maximum((x * x).mean(axis=0, dtype=np.float32) - mean * mean, 0)
        moving_mean[...] = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var[...] = momentum * moving_var + (1.0 - momentum) * var
        inv_std = 1.0 / np.sqrt(var.astype(np.float64) + epsilon)
        out = B.base.check_out(out, x.shape, x.dtype)
        out[...] = (x - mean) * (inv_std * gamma) + beta
        return out, mean.astype(np.float64), inv_std


class BrokenSignature(B.Backend):
    """Overrides an op with a different signature and leaves another to the reference."""
    name = "broken_signature"

    def softmax(self, x, out=None, axis=-1):  # extra parameter
        return super().softmax(x, out=out)


BROKEN_BACKENDS = [BrokenReluBackward, BrokenUnshiftedSoftmax, BrokenFloat32BiasGrad,
                   BrokenDropoutRng, BrokenAdamNoFlush, BrokenStrideBlindGemm, BrokenLabelCheck,
                   BrokenOutCheck, BrokenGeluGrad, BrokenBatchnormVariance, BrokenSignature]


# The directory the imported pynn package lives in: site-packages after an install,
# the repository root when running from a source tree. Subprocess tests put this (not
# the repository) on PYTHONPATH so they test the same build the suite imports.
import os as _os  # noqa: E402

import pynn as _pynn  # noqa: E402

PYNN_PATH = _os.path.dirname(_os.path.dirname(_os.path.abspath(_pynn.__file__)))


# ---------------------------------------------------------------------------------------
# Which backends the suite runs on (conftest.py's fixtures and test modules import these
# from here: `from conftest import` is ambiguous with tests/cuda/conftest.py).
# Extra backends to run the whole suite against, e.g. a deliberately broken one
# to see the suite fail: PYNN_TEST_EXTRA_BACKENDS="broken_relu=helpers:BrokenReluBackward"
EXTRA_BACKENDS = []
for _item in filter(None, _os.environ.get("PYNN_TEST_EXTRA_BACKENDS", "").split(",")):
    _name, _spec = _item.split("=", 1)
    B.register(_name.strip(), _spec.strip())
    EXTRA_BACKENDS.append(_name.strip())

# Only CPU backends are loaded here: loading "cuda" would import numba.cuda before
# tests/cuda/conftest.py can switch the simulator on.
CPU_BACKENDS = [n for n in ("numpy", "cython", "numba", *EXTRA_BACKENDS)
                if B.why_unavailable(n) is None]
FAST_BACKENDS = [n for n in CPU_BACKENDS if n != "numpy"]


def import_keras():
    """Keras 3 on its torch backend (the backend this project compares against), or skip.

    Sets ``KERAS_BACKEND=torch`` unless already chosen; skips when Keras is missing or
    runs on another backend."""
    import os

    import pytest
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("compared on Keras's torch backend (KERAS_BACKEND=torch)")
    return keras


# --------------------------------------------------------------------------
# convolutions: a case's arrays and geometry, an output gradient
# --------------------------------------------------------------------------
def pad_pair(p):
    """A padding given as one int (all sides) as ``((top, bottom), (left, right))``."""
    return ((p, p), (p, p)) if isinstance(p, int) else p


def conv_case(case, dt, rng):
    """``(x, kernel, geometry)`` of a convolution case ``(id, n, h, w, c_in, kh, kw,
    c_out, strides, padding, dilation, groups)``, random values of dtype ``dt``."""
    _, n, h, w, ci, kh, kw, co, strides, padding, dilation, groups = case
    x = rng.standard_normal((n, h, w, ci)).astype(dt)
    kernel = rng.standard_normal((kh, kw, ci // groups, co)).astype(dt)
    geo = dict(strides=strides, padding=pad_pair(padding), dilation=dilation, groups=groups)
    return x, kernel, geo


def dy_for(x, kernel, geo, rng):
    """A random output gradient of the shape of the reference's convolution output."""
    y = REFERENCE.conv2d_forward(x, kernel, **geo)
    return rng.standard_normal(y.shape).astype(x.dtype)


# --------------------------------------------------------------------------
# allocation and gradient checks
# --------------------------------------------------------------------------
def transient_bytes(call):
    """Peak bytes Python allocates (tracemalloc) during warm calls of ``call`` beyond
    what it holds before and after: a kernel that allocates nothing shows only the
    argument checks' Python objects."""
    import tracemalloc
    call()  # warm: scratch buffers grow here
    tracemalloc.start()
    try:
        call()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(3):
            call()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - max(base, current))


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar ``f()`` w.r.t. each entry of ``x`` (perturbed
    in place and restored), in float64."""
    g = np.zeros(x.shape, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


# --------------------------------------------------------------------------
# the fused Dense-stack ops: bad arguments they share
# --------------------------------------------------------------------------
def stack_bad_cases():
    """``(mutate, exception, text)`` for the bad arguments every fused Dense-stack op
    (``dense_stack_forward``, ``dense_stack_forward_backward``) rejects alike, on a
    float32 6-5-3 stack (relu, softmax) over 4 rows: ``mutate`` edits the op's keyword
    arguments, ``text`` must appear in the error (a regular expression, see
    :func:`raises_naming`)."""
    def k_chain(a):
        a["kernels"][1] = np.zeros((4, 3), np.float32)

    def out_shape(a):
        a["outs"][1] = np.zeros((4, 2), np.float32)

    def list_length(a):
        a["outs"] = a["outs"][:1]

    def unknown_act(a):
        a["activations"] = ["swishy", "softmax"]

    def x_width(a):
        a["x"] = np.zeros((4, 7), np.float32)

    def x_rank(a):
        a["x"] = np.zeros((4, 6, 1), np.float32)

    def kernels_not_list(a):
        a["kernels"] = np.zeros((6, 5), np.float32)

    return [(k_chain, ValueError, "kernels[1]"), (out_shape, ValueError, "outs[1]"),
            (list_length, ValueError, "outs"), (unknown_act, ValueError, "swishy"),
            (x_width, ValueError, "kernels[0]"), (x_rank, ValueError, "x"),
            (kernels_not_list, TypeError, "kernels")]


def raises_naming(exc, text):
    """``pytest.raises(exc)`` whose message must match ``text``, a regular expression
    in which ``[`` and ``]`` are literal (argument names like ``outs[1]``)."""
    import pytest
    return pytest.raises(exc, match=text.replace("[", r"\[").replace("]", r"\]"))


def assert_grads_match_fd(loss, weights, grads, x=None, dx=None, rtol=1e-6, atol=1e-8,
                          eps=1e-6):
    """Each weight's ``grads`` entry (and ``dx``, the gradient w.r.t. the array ``x``)
    equals central finite differences of the scalar ``loss()`` (weights perturbed in
    place through their values, float64)."""
    for w, g in zip(weights, grads):
        np.testing.assert_allclose(g, numerical_grad(loss, w.value, eps), rtol=rtol,
                                   atol=atol, err_msg=w.path)
    if x is not None:
        np.testing.assert_allclose(dx, numerical_grad(loss, x, eps), rtol=rtol, atol=atol,
                                   err_msg="input")
