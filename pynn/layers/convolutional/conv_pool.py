"""A ``Conv2D`` and the ``MaxPooling2D`` that alone reads its output, run as one step.

The planner (:class:`pynn.trainers.planner.FastPath`) pairs them in a model's graph;
the model then calls this step in place of the two layers, on the backend's fused ops
(:mod:`pynn.backends.conv_pool`), so the convolution's output is never stored. Each
layer keeps its own weights, config and place in summaries and saved files; only the
execution changes, and its results are those of the two layers.
"""
from __future__ import annotations

import numpy as np

from .conv_utils import image_output_hw

__all__ = ["ConvPool"]


class ConvPool:
    """``pool(conv(x))`` for one call site (a pair of graph nodes)."""

    def __init__(self, conv, pool):
        self.conv = conv
        self.pool = pool

    def forward(self, ctx, x, training=False):
        conv = self.conv
        strides, pad, dil = conv._image_geometry(x)
        kernel = conv.kernel.value
        oh, ow = image_output_hw(x.shape[1:3], kernel.shape[:2], strides, pad, dil)
        (ph, pw) = self.pool.pool_size
        shape = (x.shape[0], oh // ph, ow // pw, kernel.shape[3])
        out = ctx.buffer("pooled", shape)
        index = ctx.buffer("index", shape, np.int64)
        conv.backend.conv2d_pool_forward(
            x, kernel, None if conv.bias is None else conv.bias.value, strides=strides,
            padding=pad, dilation=dil, groups=conv.groups, activation=conv._act,
            pool_size=(ph, pw), out=out, index=index)
        ctx.saved = (x, out, index, strides, pad, dil)
        return out

    def backward(self, ctx, dy, input_grad=True):
        conv = self.conv
        x, out, index, strides, pad, dil = ctx.saved
        dk = ctx.grad_out(conv.kernel)
        db = None if conv.bias is None else ctx.grad_out(conv.bias)
        dx, _, _ = conv.backend.conv2d_pool_backward(
            dy, x, conv.kernel.value, out, index, activation=conv._act, strides=strides,
            padding=pad, dilation=dil, groups=conv.groups, pool_size=self.pool.pool_size,
            input_grad=input_grad, kernel_grad=dk is not None, bias_grad=db is not None,
            dx=ctx.buffer("dx", x.shape) if input_grad else None, dkernel=dk, dbias=db)
        return dx
