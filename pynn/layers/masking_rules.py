"""How masks flow through a graph: Keras 3's rules, in one place.

A mask is a boolean NumPy array over the leading axes of a tensor (``(n, T)`` for a
batch of sequences: True where the step is real). Layers that make one (``Embedding(
mask_zero=True)``, ``Masking``) override :meth:`Layer.compute_mask`; the engine
(:class:`pynn.models.functional.Functional`) carries masks from tensor to tensor:

* the *previous mask* of a call is the mask of its input, or for a list input the
  list of their masks (``None`` when no input has one);
* a layer whose ``forward`` takes a ``mask`` argument receives the previous mask
  there (only when there is one);
* the output mask is what the layer's ``forward`` put in ``ctx.output_mask``
  (a model inside a model does), else ``compute_mask(inputs, previous_mask)`` when the
  layer ``supports_masking`` (by default the previous mask passes through), else
  ``None``: a layer that does not support masking drops it, with a warning, as
  Keras does;
* a multi-output call gets one mask per output from a list, or the mask for its first
  output only.
"""
from __future__ import annotations

import inspect
import warnings

__all__ = ["UNSET", "previous_mask", "takes_mask", "output_masks"]

#: ``ctx.output_mask`` before ``forward`` ran (a forward may set a mask, or None)
UNSET = object()

_TAKES_MASK = {}


def takes_mask(layer):
    """True when ``type(layer).forward`` has a ``mask`` parameter (cached per class)."""
    cls = type(layer)
    got = _TAKES_MASK.get(cls)
    if got is None:
        got = _TAKES_MASK[cls] = "mask" in inspect.signature(cls.forward).parameters
    return got


def makes_masks(layer):
    """True when the layer may create a mask from unmasked inputs (it overrides
    ``compute_mask``)."""
    from .layer import Layer
    return type(layer).compute_mask is not Layer.compute_mask


def previous_mask(masks, inputs, structure):
    """The previous mask of a call on ``inputs`` (tensors) given the known ``masks``
    (tensor id -> mask)."""
    if not masks:
        return None
    ms = [masks.get(id(t)) for t in inputs]
    if all(m is None for m in ms):
        return None
    return ms[0] if structure is None else ms


def output_masks(layer, ctx, arg, prev, n_outputs):
    """The masks of a call's ``n_outputs`` outputs (a list, entries may be None)."""
    m = ctx.output_mask
    if m is UNSET:
        if not layer.supports_masking:
            if prev is not None and not getattr(layer, "_mask_warned", False):
                layer._mask_warned = True
                warnings.warn(f"Layer {layer.name!r} (of type {type(layer).__name__}) was "
                              f"passed an input with a mask attached to it. However, this "
                              f"layer does not support masking and will therefore destroy "
                              f"the mask information. Downstream layers will not see the "
                              f"mask.", stacklevel=3)
            return [None] * n_outputs
        if prev is None and not makes_masks(layer):
            return [None] * n_outputs
        m = layer.compute_mask(arg, prev)
    if isinstance(m, (list, tuple)):
        out = list(m)[:n_outputs]
        return out + [None] * (n_outputs - len(out))
    return [m] + [None] * (n_outputs - 1)
