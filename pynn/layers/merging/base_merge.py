"""``Merge``: the base of the layers that combine a list of inputs (Keras 3's rules).

A merge layer is called on a LIST of inputs, each with the batch axis first. The
elementwise merges (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``) broadcast like Keras's ``Merge``:

* inputs of lower rank are expanded with size-1 axes right after the batch axis
  until every input has the rank of the highest (``(n, 3)`` next to ``(n, 4, 3)``
  is read as ``(n, 1, 3)``);
* then the per-sample shapes broadcast as in NumPy: along each axis the sizes must
  be equal, or one of them 1 (``None``, unknown until run time, matches anything);
* the batch sizes must be equal (no broadcasting along the batch axis).

The gradient of an input that was broadcast is the output gradient summed over the
broadcast axes (accumulated in float64), so it has that input's own shape.

Subclasses that are elementwise implement ``_merge_forward(ctx, xs, y)`` and
``_input_grad(ctx, dy, i, out)``; ``Concatenate`` and ``Dot`` replace the shape rules
and the passes but share the list checks here.
"""
from __future__ import annotations

import functools

import numpy as np

from ..layer import Layer
from ..node import shape_str

__all__ = ["Merge", "broadcast_plan", "elementwise_output_shape"]


def elementwise_output_shape(shapes):
    """The broadcast of per-sample ``shapes`` (tuples without the batch axis).

    Shapes are aligned at their last axis (lower ranks get leading 1s, which is
    Keras's expansion after the batch axis). ``None`` is an unknown size.

    Raises
    ------
    ValueError
        ``"incompatible shapes"`` when two known sizes differ and neither is 1.
    """
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(-rank, 0):
        sizes = [s[axis] for s in shapes if len(s) >= -axis]
        if any(d is None for d in sizes):
            known = {d for d in sizes if d is not None and d != 1}
            if len(known) > 1:
                raise ValueError("incompatible shapes")
            out.append(None)
            continue
        big = {d for d in sizes if d != 1}
        if len(big) > 1:
            raise ValueError("incompatible shapes")
        out.append(big.pop() if big else 1)
    return tuple(out)


@functools.lru_cache(maxsize=256)
def broadcast_plan(shapes):
    """How concrete input ``shapes`` (batch axis first) combine elementwise.

    Returns ``(out_shape, expanded, reduce_axes)``: the output shape, each input's
    shape after Keras's rank expansion, and per input the axes (of the output) its
    gradient is summed over (empty when the input was not broadcast).
    """
    batches = {s[0] for s in shapes}
    if len(batches) > 1:
        raise ValueError("inputs have different batch sizes")
    per_sample = elementwise_output_shape([s[1:] for s in shapes])
    out_shape = (shapes[0][0],) + per_sample
    rank = len(out_shape)
    expanded = tuple((s[0],) + (1,) * (rank - len(s)) + tuple(s[1:]) for s in shapes)
    reduce_axes = tuple(tuple(a for a in range(rank) if e[a] == 1 and out_shape[a] != 1)
                        for e in expanded)
    return out_shape, expanded, reduce_axes


class Merge(Layer):
    """Base class of the merge layers (elementwise by default, see the module docstring).

    Parameters
    ----------
    **kwargs
        Standard layer arguments (``name``, ``dtype``, ``trainable``).
    """

    #: how many inputs the layer takes: at least ``_min_inputs``, at most ``_max_inputs``
    _min_inputs = 1
    _max_inputs = None

    def compute_mask(self, inputs, previous_mask):
        """Keras's rule for the elementwise merges: the OR of the inputs' masks, or no
        mask unless every input has one."""
        if previous_mask is None:
            return None
        if any(m is None for m in previous_mask):
            return None
        out = np.asarray(previous_mask[0], dtype=bool)
        for m in previous_mask[1:]:
            out = np.logical_or(out, m)
        return out

    # -- input checks ------------------------------------------------------------------
    def _fail(self, problem, shapes):
        """A ValueError naming the layer and the input shapes."""
        shown = shape_str(list(shapes)) if isinstance(shapes, list) else repr(shapes)
        return ValueError(f"Layer {self.name!r} ({type(self).__name__}): {problem}. "
                          f"Received input shapes: {shown}")

    def _count_phrase(self):
        lo, hi = self._min_inputs, self._max_inputs
        if hi == lo:
            return f"exactly {lo} inputs"
        return f"at least {lo} input" + ("s" if lo > 1 else "")

    def _check_shapes(self, input_shape):
        """Check that ``input_shape`` is a list of shapes, as many as the layer takes."""
        if not isinstance(input_shape, list) or not all(
                isinstance(s, (tuple, list)) for s in input_shape):
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}): a merge layer "
                             f"should be called on a list of inputs. Received: input "
                             f"shape {input_shape!r} (not a list of shapes)")
        n = len(input_shape)
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            raise self._fail(f"should be called on a list of {self._count_phrase()}, "
                             f"got {n}", input_shape)
        for s in input_shape:
            if len(s) < 1:
                raise self._fail("every input needs a batch axis", input_shape)
        return [tuple(s) for s in input_shape]

    def _check_inputs(self, inputs):
        """Check the arrays given to ``forward``; returns their shapes."""
        if not isinstance(inputs, (list, tuple)):
            shape = getattr(inputs, "shape", None)
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}): a merge layer "
                             f"should be called on a list of inputs. Received: one input "
                             f"of shape {None if shape is None else tuple(shape)} "
                             f"(not a list)")
        be = self.backend
        if not be.host_memory:
            raise NotImplementedError(f"Layer {self.name!r} ({type(self).__name__}) runs on "
                                      f"host-memory backends only (not {be.name!r})")
        return self._check_shapes([tuple(x.shape) for x in inputs])

    def _check_dy(self, dy, out_shape):
        if tuple(dy.shape) != tuple(out_shape):
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}): output gradient "
                             f"of shape {tuple(dy.shape)}, expected {tuple(out_shape)}")

    def _batch_size(self, input_shape):
        batches = {s[0] for s in input_shape} - {None}
        if len(batches) > 1:
            raise self._fail("cannot merge tensors with different batch sizes", input_shape)
        return batches.pop() if batches else None

    # -- shapes ------------------------------------------------------------------------
    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        input_shape = self._check_shapes(input_shape)
        batch = self._batch_size(input_shape)
        try:
            per_sample = elementwise_output_shape([s[1:] for s in input_shape])
        except ValueError:
            raise self._fail("inputs have incompatible shapes (each axis needs equal sizes "
                             "or a size of 1)", input_shape) from None
        return (batch,) + per_sample

    def _plan(self, shapes):
        try:
            return broadcast_plan(tuple(shapes))
        except ValueError as exc:
            raise self._fail(f"{exc} (each axis needs equal sizes or a size of 1, and the "
                             f"batch sizes must be equal)", shapes) from None

    # -- computation -------------------------------------------------------------------
    def forward(self, ctx, inputs, training=False):
        shapes = self._check_inputs(inputs)
        out_shape, expanded, reduce_axes = self._plan(shapes)
        xs = [x if tuple(x.shape) == e else x.reshape(e) for x, e in zip(inputs, expanded)]
        y = ctx.buffer("y", out_shape)
        extra = self._merge_forward(ctx, xs, y)
        ctx.saved = (xs, shapes, expanded, reduce_axes, out_shape, extra)
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        xs, shapes, expanded, reduce_axes, out_shape, _ = ctx.saved
        self._check_dy(dy, out_shape)
        grads = []
        for i, (shape, e, axes) in enumerate(zip(shapes, expanded, reduce_axes)):
            dx = ctx.buffer(("dx", i), shape)
            target = dx.reshape(e)
            if not axes:
                g = self._input_grad(ctx, dy, i, target)
                if g is not target:
                    np.copyto(target, g)
            else:
                g = self._input_grad(ctx, dy, i, ctx.buffer("scratch", out_shape))
                np.add.reduce(g, axis=axes, keepdims=True, dtype=np.float64, out=target)
            grads.append(dx)
        return grads

    def _merge_forward(self, ctx, xs, y):
        """Write the merge of ``xs`` (rank-expanded inputs, broadcastable) into ``y``.

        May return what ``_input_grad`` needs besides the inputs (``ctx.saved[-1]``).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _merge_forward()")

    def _input_grad(self, ctx, dy, i, out):
        """d loss / d input ``i`` at the output's shape (before the broadcast sum).

        ``ctx.saved`` is ``(xs, shapes, expanded, reduce_axes, out_shape, extra)``:
        the rank-expanded inputs first, ``_merge_forward``'s return value last.

        Write it into ``out`` and return ``out``, or return an array that already
        holds it (``dy`` itself for a sum); the caller reduces it to the input's shape.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _input_grad()")
