"""A convolution followed by non-overlapping max pooling, as one pair of ops.

``Conv2D(..., activation) -> MaxPooling2D(p)`` (strides = pool size, no padding) is
the commonest block of a small convnet. Run layer by layer, the convolution's whole
output is written, read back by the pooling, and in the backward pass a gradient of
that size is scattered, read and multiplied by the activation's derivative. The fused
ops never hold the convolution's output: compiled backends compute it a tile of images
at a time, pool the tile while it is in cache, and in the backward pass rebuild the
tile's gradient from the pooled gradient and the positions of the maxima.
:class:`pynn.trainers.planner.FastPath` decides where a model uses them.

:class:`ConvPoolOps` is mixed into :class:`~pynn.backends.base.Backend`: the reference
is the composition of the single ops (:mod:`pynn.backends.conv`), so the fused ops
mean exactly ``pool2d_forward(conv2d_forward(...), pool, mode='max')`` and its
gradient. ``index`` is the pooling's: the flat position of each maximum in the
convolution's output ``(n, oh, ow, c_out)``.
"""
from __future__ import annotations

import numpy as np

from .activation_codes import UNFUSED, activation_code
from .conv import GRAD_NAMES, _pair, check_grads, prep_conv
from .validation import ALIASING, as_float, check_aliasing, check_out

__all__ = ["ConvPoolOps", "composed_conv_pool_backward", "prep_conv_pool",
           "prep_conv_pool_backward"]

ALIASING.update({
    "conv2d_pool_forward": {"out": (), "index": ()},
    "conv2d_pool_backward": {"dx": (), "dkernel": (), "dbias": ()},
})


def _geometry(op, x, kernel, strides, padding, dilation, groups, pool_size, activation):
    """The checked convolution, its output shape and the pooled shape."""
    x, kernel, strides, padding, dilation, groups, (oh, ow) = prep_conv(
        op, x, kernel, strides, padding, dilation, groups)
    pool = _pair(pool_size, f"{op}: pool_size", 1)
    if activation in UNFUSED or activation == "softmax":
        raise ValueError(f"{op}: activation {activation!r} is not elementwise from the "
                         f"output; run conv2d_forward and pool2d_forward")
    activation_code(activation)  # an unknown name raises here
    if oh < pool[0] or ow < pool[1]:
        raise ValueError(f"{op}: the pool {pool} does not fit the convolution's output "
                         f"{(oh, ow)}")
    co = kernel.shape[3]
    conv_shape = (x.shape[0], oh, ow, co)
    pooled = (x.shape[0], oh // pool[0], ow // pool[1], co)
    return x, kernel, strides, padding, dilation, groups, pool, conv_shape, pooled


def prep_conv_pool(x, kernel, bias, strides, padding, dilation, groups, activation,
                   pool_size, out, index):
    """Checked arguments of ``conv2d_pool_forward``: ``(x, kernel, bias, strides,
    padding, dilation, groups, pool, conv_shape, out, index)``."""
    op = "conv2d_pool_forward"
    x0 = x
    x, kernel, strides, padding, dilation, groups, pool, conv_shape, pooled = _geometry(
        op, x, kernel, strides, padding, dilation, groups, pool_size, activation)
    dt = x.dtype
    co = kernel.shape[3]
    if bias is not None:
        bias = as_float(bias, dt, "bias", 1)
        if bias.shape != (co,):
            raise ValueError(f"{op}: bias must have shape ({co},), got {bias.shape}")
    out = check_out(out, pooled, dt)
    index = check_out(index, pooled, np.dtype(np.int64), "index")
    check_aliasing(op, [("out", out), ("index", index)],
                   [("x", x0), ("kernel", kernel), ("bias", bias)])
    return x, kernel, bias, strides, padding, dilation, groups, pool, conv_shape, out, index


def prep_conv_pool_backward(dy, x, kernel, out, index, activation, strides, padding,
                            dilation, groups, pool_size, wanted, grads, index_range=True):
    """Checked arguments of ``conv2d_pool_backward``: ``(dy, x, kernel, out, index,
    strides, padding, dilation, groups, pool, conv_shape, (dx, dkernel, dbias))``; each
    gradient ``None`` unless its flag in ``wanted`` (input, kernel, bias) is set. With
    ``index_range`` every index is checked to lie in the convolution's output (a kernel
    that checks while it scatters passes False)."""
    op = "conv2d_pool_backward"
    x0, dy0, out0 = x, dy, out
    x, kernel, strides, padding, dilation, groups, pool, conv_shape, pooled = _geometry(
        op, x, kernel, strides, padding, dilation, groups, pool_size, activation)
    dt = x.dtype
    dy = as_float(dy, dt, "dy", 4)
    out = as_float(out, dt, "out", 4)
    for name, arr in (("dy", dy), ("out", out)):
        if arr.shape != pooled:
            raise ValueError(f"{op}: {name} must have the pooled shape {pooled}, got "
                             f"{arr.shape}")
    if not isinstance(index, np.ndarray) or index.dtype != np.int64 or index.shape != pooled:
        raise ValueError(f"{op}: index must be the int64 array of shape {pooled} that "
                         f"conv2d_pool_forward returned")
    size = int(np.prod(conv_shape))
    if index_range and index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(f"{op}: index holds positions outside the convolution's output "
                         f"{conv_shape}")
    index = np.ascontiguousarray(index)
    checked = check_grads(op, wanted, grads, (x.shape, kernel.shape, (kernel.shape[3],)), dt)
    check_aliasing(op, list(zip(GRAD_NAMES, checked)),
                   [("dy", dy0), ("x", x0), ("kernel", kernel), ("out", out0),
                    ("index", index)])
    return (dy, x, kernel, out, index, strides, padding, dilation, groups, pool, conv_shape,
            checked)


def composed_conv_pool_backward(be, dy, x, kernel, out, index, activation, geometry, pool,
                                grads, dyc, y):
    """``conv2d_pool_backward`` as backend ``be``'s pooling gradient (into ``dyc``, the
    convolution output's shape) and its ``conv2d_backward``, on checked arguments
    (:func:`prep_conv_pool_backward`). ``y`` (that shape too) gets ``out`` at the maxima
    and zeros elsewhere, where the gradient is zero."""
    be.pool2d_backward(dy, dyc.shape, pool, mode="max", index=index, out=dyc)
    y.fill(0)
    y.reshape(-1)[index.reshape(-1)] = out.reshape(-1)
    dx, dkernel, dbias = grads
    return be.conv2d_backward(dyc, x, kernel, y=y, activation=activation,
                              input_grad=dx is not None, kernel_grad=dkernel is not None,
                              bias_grad=dbias is not None, dx=dx, dkernel=dkernel,
                              dbias=dbias, **geometry)


class ConvPoolOps:
    """The reference convolution + max-pooling ops (see the module docstring)."""

    def conv2d_pool_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                            dilation=1, groups=1, activation="linear", pool_size=2,
                            out=None, index=None):
        """``pool2d_forward(conv2d_forward(x, kernel, bias, ..., activation), pool_size,
        mode='max')`` with the pool's strides equal to its size and no padding:
        ``(out, index)``, ``out`` ``(n, oh // ph, ow // pw, c_out)``."""
        x, kernel, bias, strides, padding, dilation, groups, pool, _, out, index = (
            prep_conv_pool(x, kernel, bias, strides, padding, dilation, groups, activation,
                           pool_size, out, index))
        y = self.conv2d_forward(x, kernel, bias, strides=strides, padding=padding,
                                dilation=dilation, groups=groups, activation=activation)
        return self.pool2d_forward(y, pool, out=out, index=index)

    def conv2d_pool_backward(self, dy, x, kernel, out, index, activation="linear", strides=1,
                             padding=((0, 0), (0, 0)), dilation=1, groups=1, pool_size=2,
                             input_grad=True, kernel_grad=True, bias_grad=True, dx=None,
                             dkernel=None, dbias=None):
        """The gradients ``(dx, dkernel, dbias)`` of :meth:`conv2d_pool_forward` from
        ``dy``, the gradient of its ``out``; ``out`` and ``index`` are what it returned.
        Only the maxima get a gradient, and the activation's derivative is taken from
        their values (``out``), as the unfused layers take it from the convolution's
        output there."""
        (dy, x, kernel, out, index, strides, padding, dilation, groups, pool, conv_shape,
         (dx, dkernel, dbias)) = prep_conv_pool_backward(
            dy, x, kernel, out, index, activation, strides, padding, dilation, groups,
            pool_size, (input_grad, kernel_grad, bias_grad), (dx, dkernel, dbias))
        return composed_conv_pool_backward(
            self, dy, x, kernel, out, index, activation,
            dict(strides=strides, padding=padding, dilation=dilation, groups=groups), pool,
            (dx, dkernel, dbias), np.empty(conv_shape, x.dtype), np.empty(conv_shape, x.dtype))
