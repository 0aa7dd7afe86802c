"""Convolution and pooling layers against PyTorch (issue 16), on every CPU backend.

Each test runs a layer forward and backward in float64 and PyTorch's ``conv1d``,
``conv2d``, ``conv_transpose2d``, ``max_pool1d/2d`` and ``avg_pool1d/2d`` on the same
numbers, and compares the output, the input gradient and every weight gradient
(``dkernel``, ``dbias``; the depthwise and pointwise kernels of SeparableConv2D). The
PyTorch side takes the arrays in pynn's layouts (channels_last data, Keras's kernel
layouts) and maps them with ``permute``/``reshape`` inside the autograd graph, so its
gradients come back in those layouts. Keras's 'same' padding (the odd pixel at the end)
is padded explicitly with ``F.pad``, from the formulas in test_conv_layers.py (written
from Keras's source).

PyTorch is optional: the module is skipped without it (CI installs it for its
peer-comparison step).
"""
import numpy as np
import pytest

from pynn.layers import (AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                         DepthwiseConv2D, MaxPooling1D, MaxPooling2D, SeparableConv2D)
from test_conv_layers import (CONV2D_CASES, TRANSPOSE_CASES, keras_jax_transpose_pads,
                              keras_transpose_length, same_or_valid_pads)
from test_layers import build, bwd, fwd

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: float64 on both sides: only the order of the sums differs
RTOL = 1e-10

TORCH_ACTIVATIONS = {"linear": lambda t: t, "relu": F.relu, "tanh": torch.tanh,
                     "sigmoid": torch.sigmoid, "gelu": F.gelu}


def assert_near(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch's {want.shape}"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def compare_with_torch(layer, x, torch_forward, seed=0):
    """``layer`` (built, float64) forward and backward on ``x`` against
    ``torch_forward(x, *layer.weights)`` (torch tensors in pynn's layouts) and autograd,
    with the same random output gradient."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:  # random weights and biases (a zero bias checks nothing)
        w.assign(rng.standard_normal(w.shape) * 0.5)
    y = np.array(fwd(layer, x, training=True), copy=True)
    dy = rng.standard_normal(y.shape)
    dx = np.array(bwd(layer, dy.copy(), input_grad=True), copy=True)
    grads = {w.name: np.array(w.grad, copy=True) for w in layer.trainable_weights}

    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True)
               for a in [x] + [w.numpy() for w in layer.weights]]
    yt = torch_forward(*tensors)
    yt.backward(torch.from_numpy(dy))
    name = type(layer).__name__
    assert_near(y, yt.detach().numpy(), f"{name}: forward")
    assert_near(dx, tensors[0].grad.numpy(), f"{name}: dx")
    assert sorted(grads) == sorted(w.name for w in layer.weights)
    for w, t in zip(layer.weights, tensors[1:]):
        assert_near(grads[w.name], t.grad.numpy(), f"{name}: d{w.name}")


def torch_pad(pads):
    """Per-axis ``(before, after)`` pairs, first axis first, as ``F.pad``'s argument
    (last axis first)."""
    return tuple(p for pair in reversed(pads) for p in pair)


def to_nc(t, rank, data_format):
    """channels_last -> PyTorch's channels-first (a no-op for channels_first data)."""
    if data_format == "channels_first":
        return t
    return t.permute(0, 2, 1) if rank == 1 else t.permute(0, 3, 1, 2)


def from_nc(t, rank, data_format):
    if data_format == "channels_first":
        return t
    return t.permute(0, 2, 1) if rank == 1 else t.permute(0, 2, 3, 1)


def spatial_of(x, rank, data_format):
    return x.shape[2:] if data_format == "channels_first" else x.shape[1:1 + rank]


# -------------------------------------------------------------------------------------------
# Conv2D
# -------------------------------------------------------------------------------------------
def torch_conv2d(ks, st, padding, dil, groups, act, data_format="channels_last"):
    def run(x, kernel, bias=None):
        pads = same_or_valid_pads(padding, spatial_of(x, 2, data_format), ks, st, dil)
        xt = F.pad(to_nc(x, 2, data_format), torch_pad(pads))
        # (kh, kw, in/groups, out) -> (out, in/groups, kh, kw)
        y = F.conv2d(xt, kernel.permute(3, 2, 0, 1), bias, stride=st, dilation=dil,
                     groups=groups)
        return from_nc(TORCH_ACTIVATIONS[act](y), 2, data_format)
    return run


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_matches_torch(backend, case):
    (h, w), ks, st, padding, dil, groups = case
    act = "tanh"
    x = np.random.default_rng(1).standard_normal((3, h, w, 4))
    layer = build(Conv2D(6, ks, strides=st, padding=padding, dilation_rate=dil,
                         groups=groups, activation=act, dtype="float64"), x)
    compare_with_torch(layer, x, torch_conv2d(ks, st, padding, dil, groups, act))


@pytest.mark.parametrize("act", ["relu", "gelu", "linear"])
def test_conv2d_channels_first_and_no_bias_match_torch(backend, act):
    x = np.random.default_rng(2).standard_normal((2, 4, 7, 6))
    layer = build(Conv2D(4, (2, 3), strides=(2, 1), padding="same", groups=2, activation=act,
                         use_bias=act != "linear", data_format="channels_first",
                         dtype="float64"), x)
    compare_with_torch(layer, x, torch_conv2d((2, 3), (2, 1), "same", (1, 1), 2, act,
                                              "channels_first"))


def test_conv2d_same_even_kernel_is_torch_padding_same(backend):
    """PyTorch's own ``padding='same'`` (stride 1) also puts the odd pixel at the end."""
    x = np.random.default_rng(3).standard_normal((2, 6, 7, 3))
    layer = build(Conv2D(2, (4, 2), padding="same", dtype="float64"), x)

    def run(x, kernel, bias):
        y = F.conv2d(x.permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias, padding="same")
        return y.permute(0, 2, 3, 1)
    compare_with_torch(layer, x, run)


# -------------------------------------------------------------------------------------------
# Conv1D
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding,strides,dil,groups,data_format", [
    ("valid", 1, 1, 1, "channels_last"), ("same", 2, 1, 1, "channels_last"),
    ("same", 1, 2, 3, "channels_last"), ("causal", 1, 2, 1, "channels_last"),
    ("valid", 3, 1, 3, "channels_last"), ("same", 1, 1, 1, "channels_first"),
    ("causal", 1, 1, 3, "channels_first")])
def test_conv1d_matches_torch(backend, padding, strides, dil, groups, data_format):
    x = np.random.default_rng(4).standard_normal((2, 9, 6))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    k = 4 if padding == "same" else 3     # an even kernel for 'same': the odd pad at the end
    layer = build(Conv1D(6, k, strides=strides, padding=padding, dilation_rate=dil,
                         groups=groups, activation="sigmoid", data_format=data_format,
                         dtype="float64"), x)

    def run(x, kernel, bias):
        if padding == "causal":
            pad = ((k - 1) * dil, 0)
        else:
            pad = same_or_valid_pads(padding, spatial_of(x, 1, data_format), (k,), (strides,),
                                     (dil,))[0]
        xt = F.pad(to_nc(x, 1, data_format), pad)
        # (k, in/groups, out) -> (out, in/groups, k)
        y = F.conv1d(xt, kernel.permute(2, 1, 0), bias, stride=strides, dilation=dil,
                     groups=groups)
        return from_nc(torch.sigmoid(y), 1, data_format)
    compare_with_torch(layer, x, run)


# -------------------------------------------------------------------------------------------
# Conv2DTranspose
# -------------------------------------------------------------------------------------------
def torch_conv_transpose2d(ks, st, padding, op, dil, act, data_format="channels_last"):
    """PyTorch's full transposed convolution (no padding), then cut to Keras's output.

    torch's ``(padding, output_padding)`` (symmetric, plus extra at the end) cannot
    express Keras's asymmetric padding for, e.g., ``kernel 3, strides 2, 'same'``; Keras
    3.15's own torch backend does as here. Keras's JAX rule is general: the full
    transposed convolution pads the stride-dilated input with ``k - 1`` zeros on each
    side, Keras with ``(left, right)``, so Keras's output is the full one with
    ``left - (k - 1)`` and ``right - (k - 1)`` added at the ends (negative: cut off)."""
    def run(x, kernel, bias=None):
        pads = keras_jax_transpose_pads(ks, st, padding, op, dil)
        # (kh, kw, out, in) -> (in, out, kh, kw)
        y = F.conv_transpose2d(to_nc(x, 2, data_format), kernel.permute(3, 2, 0, 1),
                               stride=st, dilation=dil)
        k_eff = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
        y = F.pad(y, torch_pad([(left - k + 1, right - k + 1)
                                for (left, right), k in zip(pads, k_eff)]))
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return from_nc(TORCH_ACTIVATIONS[act](y), 2, data_format)
    return run


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv2d_transpose_matches_torch(backend, case):
    (h, w), ks, st, padding, op, dil = case
    x = np.random.default_rng(5).standard_normal((2, h, w, 3))
    layer = build(Conv2DTranspose(4, ks, strides=st, padding=padding, output_padding=op,
                                  dilation_rate=dil, activation="tanh", dtype="float64"), x)
    want_hw = tuple(keras_transpose_length(s, k, stt, d, padding, o) for s, k, stt, d, o in
                    zip((h, w), ks, st, dil, op or (None, None)))
    assert layer.output_shape == (None,) + want_hw + (4,)
    compare_with_torch(layer, x, torch_conv_transpose2d(ks, st, padding, op, dil, "tanh"))


def test_conv2d_transpose_channels_first_matches_torch(backend):
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 3))
    layer = build(Conv2DTranspose(2, (3, 2), strides=(2, 3), padding="same",
                                  activation="relu", data_format="channels_first",
                                  dtype="float64"), x)
    compare_with_torch(layer, x, torch_conv_transpose2d((3, 2), (2, 3), "same", None, (1, 1),
                                                        "relu", "channels_first"))


# -------------------------------------------------------------------------------------------
# DepthwiseConv2D, SeparableConv2D
# -------------------------------------------------------------------------------------------
def torch_depthwise(x, kernel, ks, st, padding, dil):
    """Keras's depthwise kernel ``(kh, kw, c, m)`` as torch's grouped ``(c * m, 1, kh,
    kw)``: output channel ``c * m + j``."""
    kh, kw, c, m = kernel.shape
    pads = same_or_valid_pads(padding, x.shape[1:3], ks, st, dil)
    weight = kernel.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    return F.conv2d(F.pad(x.permute(0, 3, 1, 2), torch_pad(pads)), weight, stride=st,
                    dilation=dil, groups=c)


DEPTHWISE_CASES = [((3, 2), "valid", (1, 1), (1, 1), 1), ((3, 3), "same", (2, 1), (1, 1), 3),
                   ((2, 3), "same", (1, 1), (2, 2), 2), ((4, 4), "same", (3, 2), (2, 1), 1)]


@pytest.mark.parametrize("ks,padding,strides,dil,dm", DEPTHWISE_CASES, ids=str)
def test_depthwise_conv2d_matches_torch(backend, ks, padding, strides, dil, dm):
    x = np.random.default_rng(7).standard_normal((2, 7, 6, 3))
    layer = build(DepthwiseConv2D(ks, strides=strides, padding=padding, depth_multiplier=dm,
                                  dilation_rate=dil, activation="tanh", dtype="float64"), x)

    def run(x, kernel, bias):
        y = torch_depthwise(x, kernel, ks, strides, padding, dil) + bias.reshape(1, -1, 1, 1)
        return torch.tanh(y).permute(0, 2, 3, 1)
    compare_with_torch(layer, x, run)


@pytest.mark.parametrize("ks,padding,strides,dil,dm", DEPTHWISE_CASES, ids=str)
def test_separable_conv2d_matches_torch(backend, ks, padding, strides, dil, dm):
    x = np.random.default_rng(8).standard_normal((2, 7, 6, 3))
    layer = build(SeparableConv2D(5, ks, strides=strides, padding=padding, dilation_rate=dil,
                                  depth_multiplier=dm, activation="relu", dtype="float64"), x)

    def run(x, depthwise_kernel, pointwise_kernel, bias):
        mid = torch_depthwise(x, depthwise_kernel, ks, strides, padding, dil)
        # (1, 1, c * m, filters) -> (filters, c * m, 1, 1)
        y = F.conv2d(mid, pointwise_kernel.permute(3, 2, 0, 1), bias)
        return F.relu(y).permute(0, 2, 3, 1)
    compare_with_torch(layer, x, run)


# -------------------------------------------------------------------------------------------
# pooling
# -------------------------------------------------------------------------------------------
def torch_pool(mode, rank, pool, strides, pads):
    """PyTorch's max or average pooling with Keras's padding ``pads`` (per axis
    ``(before, after)``) on channels-first tensors. Padding never wins a max nor counts
    in an average: symmetric padding of at most half the window is torch's own
    (``count_include_pad=False``); otherwise the input is padded explicitly (-inf for
    the max) and the average is the window sums over the window counts of real
    elements (``divisor_override=1``: plain sums)."""
    max_pool = F.max_pool1d if rank == 1 else F.max_pool2d
    avg_pool = F.avg_pool1d if rank == 1 else F.avg_pool2d
    native = all(b == a and 2 * b <= p for (b, a), p in zip(pads, pool))

    def run(xt):
        if native:
            pad = [b for b, _ in pads]
            if mode == "max":
                return max_pool(xt, pool, strides, pad)
            return avg_pool(xt, pool, strides, pad, count_include_pad=False)
        if mode == "max":
            return max_pool(F.pad(xt, torch_pad(pads), value=-np.inf), pool, strides)
        if rank == 1:
            # avg_pool1d has no divisor_override: a 1-D window is a (1, k) 2-D one
            sums = F.avg_pool2d(F.pad(xt, torch_pad(pads))[:, :, None], (1,) + tuple(pool),
                                (1,) + tuple(strides), divisor_override=1)[:, :, 0]
            counts = F.avg_pool2d(F.pad(torch.ones_like(xt), torch_pad(pads))[:, :, None],
                                  (1,) + tuple(pool), (1,) + tuple(strides),
                                  divisor_override=1)[:, :, 0]
        else:
            sums = F.avg_pool2d(F.pad(xt, torch_pad(pads)), pool, strides, divisor_override=1)
            counts = F.avg_pool2d(F.pad(torch.ones_like(xt), torch_pad(pads)), pool, strides,
                                  divisor_override=1)
        return sums / counts
    return run, native


#: (input hw, pool, strides, padding); 'same' cases with torch's own symmetric padding and
#: with Keras's asymmetric one
POOL2D_CASES = [((7, 8), (2, 2), None, "valid"), ((7, 8), (3, 2), (1, 2), "valid"),
                ((7, 7), (3, 3), (2, 2), "same"), ((7, 8), (3, 3), (1, 1), "same"),
                ((7, 8), (3, 3), (2, 2), "same"), ((7, 8), (2, 3), (3, 1), "same"),
                ((8, 8), (4, 4), (3, 3), "same"), ((6, 5), (2, 2), (1, 1), "same")]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", POOL2D_CASES, ids=str)
def test_pooling2d_matches_torch(backend, mode, data_format, case):
    hw, pool, strides, padding = case
    st = strides or pool
    x = np.random.default_rng(9).standard_normal((2,) + hw + (3,))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    cls = MaxPooling2D if mode == "max" else AveragePooling2D
    layer = build(cls(pool, strides=strides, padding=padding, data_format=data_format,
                      dtype="float64"), x)
    pooling, _ = torch_pool(mode, 2, pool, st, same_or_valid_pads(padding, hw, pool, st,
                                                                  (1, 1)))
    compare_with_torch(layer, x,
                       lambda x: from_nc(pooling(to_nc(x, 2, data_format)), 2, data_format))


def test_pool_cases_use_torch_padding_and_explicit_padding():
    """Both reference paths are exercised: torch's own ``count_include_pad=False`` and
    the explicit asymmetric padding."""
    paths = set()
    for hw, pool, strides, padding in POOL2D_CASES:
        st = strides or pool
        if padding == "same":
            _, native = torch_pool("avg", 2, pool, st,
                                   same_or_valid_pads(padding, hw, pool, st, (1, 1)))
            paths.add(native)
    assert paths == {True, False}


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("steps,pool,strides,padding,data_format", [
    (9, 2, None, "valid", "channels_last"), (9, 3, 2, "same", "channels_last"),
    (8, 3, 1, "same", "channels_last"), (8, 2, 1, "same", "channels_first"),
    (10, 4, 3, "same", "channels_first"), (7, 3, 2, "valid", "channels_first")])
def test_pooling1d_matches_torch(backend, mode, steps, pool, strides, padding, data_format):
    st = strides or pool
    x = np.random.default_rng(10).standard_normal((2, steps, 3))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    cls = MaxPooling1D if mode == "max" else AveragePooling1D
    layer = build(cls(pool, strides=strides, padding=padding, data_format=data_format,
                      dtype="float64"), x)
    pooling, _ = torch_pool(mode, 1, (pool,), (st,),
                            same_or_valid_pads(padding, (steps,), (pool,), (st,), (1,)))
    compare_with_torch(layer, x,
                       lambda x: from_nc(pooling(to_nc(x, 1, data_format)), 1, data_format))
