"""Input dropout with one mask per gate, as Keras's LSTM and GRU cells draw it when
``recurrent_dropout`` is set (Keras then runs the cells' ``implementation=1``, which
multiplies the inputs of gate ``j`` by their own mask ``j`` before ``x @ kernel_j``).

The recurrent ops take one input and one kernel, so the layer hands them an equivalent
problem: the input repeated once per gate, each copy times its gate's mask
(``(n, t, k*d)``), and a block-diagonal kernel whose block ``j`` is ``kernel_j``
(``(k*d, k*u)``): ``x_gates @ kernel_blocks`` is then ``[x*m_1 @ kernel_1, ...]``. The
backward pass maps the gradients back: ``kernel_j``'s gradient is the diagonal block
``j``, the input's is the sum over gates of each copy's gradient times its mask. This
runs only in training with both dropouts on (k times the input product's work); the
masks are drawn per sequence (shared by every step), per gate and input feature.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GateInputDropout"]


class GateInputDropout:
    """The per-gate input masks of one call, and the mapping in and out of the ops."""

    def __init__(self, ctx, backend, rate, seed, x, kernel, gates):
        n, t, d = x.shape
        self.d, self.k = d, gates
        self.u = kernel.shape[1] // gates
        src = ctx.buffer("gate_idrop_src", (n, gates * d))
        self.mask = ctx.buffer("gate_idrop_mask", (n, gates * d))
        src[...] = 0
        backend.dropout_forward(src, rate, seed, out=src, mask=self.mask)
        self.x = ctx.buffer("gate_idrop_x", (n, t, gates * d))
        for j, cols in enumerate(self._blocks(d)):
            np.multiply(x, self.mask[:, None, cols], out=self.x[:, :, cols])
        self.kernel = ctx.buffer("gate_idrop_kernel", (gates * d, gates * self.u))
        self.kernel[...] = 0
        for rows, cols in zip(self._blocks(d), self._blocks(self.u)):
            self.kernel[rows, cols] = kernel[:, cols]
        self._ctx = ctx

    def _blocks(self, width):
        return [slice(j * width, (j + 1) * width) for j in range(self.k)]

    def kernel_grad_buffer(self):
        """Where the op writes the block-diagonal kernel's gradient."""
        return self._ctx.buffer("gate_idrop_dkernel", self.kernel.shape)

    def kernel_grad(self, dblocks, dkernel):
        """``dkernel[:, block j] = dblocks[block j, block j]``."""
        for rows, cols in zip(self._blocks(self.d), self._blocks(self.u)):
            dkernel[:, cols] = dblocks[rows, cols]

    def input_grad(self, dx_gates, dx):
        """``dx = sum_j dx_gates[..., block j] * mask_j`` (into ``dx``)."""
        tmp = self._ctx.buffer("gate_idrop_tmp", dx.shape)
        for j, cols in enumerate(self._blocks(self.d)):
            if j == 0:
                np.multiply(dx_gates[:, :, cols], self.mask[:, None, cols], out=dx)
            else:
                np.multiply(dx_gates[:, :, cols], self.mask[:, None, cols], out=tmp)
                dx += tmp
        return dx
