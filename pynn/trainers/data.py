"""Data handling for the trainer: checking and converting ``x``, ``y`` and weights.

``x`` is one array for a one-input model, else a list (in ``model.inputs`` order) or
a dict keyed by input name; ``y`` likewise per output. Everything is checked once
per ``fit``/``evaluate``/``predict`` call, with errors naming the argument and the
shapes, and converted to C-contiguous arrays of the dtype each input takes.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from ..layers.layer import check_input

__all__ = ["resolve_verbose", "check_batch_size", "as_array", "prepare_inputs",
           "prepare_targets", "prepare_sample_weight", "class_weights_to_sample_weights",
           "by_name"]


def resolve_verbose(verbose):
    if verbose == "auto":
        return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2
    if isinstance(verbose, bool):
        return int(verbose)
    if verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")


def check_batch_size(batch_size):
    if type(batch_size) is int and batch_size > 0:
        return batch_size
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def n_samples(a):
    return int(np.shape(a)[0]) if np.ndim(a) else 0


def as_array(value, what):
    """``np.asarray(value)`` with an error naming the argument for ragged/odd input."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: cannot be converted to a numeric array (ragged nested "
                         f"sequences or mixed types?): {exc}") from None


def by_name(value, names, what, kind=None, require_all=None):
    """One value, a list or a dict keyed by ``names`` -> a list in ``names`` order.

    ``kind`` ('inputs'/'outputs', default from ``what``) words the errors; a dict must
    name every entry when ``require_all`` (default: for inputs), else absent names give
    ``None``. One value for several names is an error for data (``kind`` given as
    'inputs'/'outputs' by the data paths); :mod:`.compile_utils` repeats it itself.
    """
    kind = kind or ("inputs" if what.endswith("x") else "outputs")
    require_all = kind == "inputs" if require_all is None else require_all
    n = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what}: keys {unknown} match no name of the model's {kind} "
                             f"{list(names)}")
        missing = [k for k in names if k not in value]
        if missing and require_all:
            raise ValueError(f"{what}: missing data for {missing}; the model takes "
                             f"{list(names)}")
        return [value.get(k) for k in names]
    if isinstance(value, (list, tuple)) and n > 1:
        if len(value) != n:
            raise ValueError(f"{what}: the model has {n} {kind} {list(names)}, but "
                             f"{len(value)} entries were given; pass one per name or a dict "
                             f"keyed by name")
        return list(value)
    if n > 1:
        raise ValueError(f"{what}: the model has {n} {kind} {list(names)}; pass a list or a "
                         f"dict keyed by name, got one value")
    return [value]


def adjust_rank(a, want):
    """Keras 3's rank adjustment of an input for a model input of shape ``want`` (batch
    axis included): one axis short and the model wants a last axis of 1 (``(n,)`` for a
    one-feature model) -> that axis is added; one axis too many, of size 1 -> dropped."""
    if a.ndim == len(want) - 1 and want[-1] == 1:
        return a.reshape(a.shape + (1,))
    if a.ndim == len(want) + 1 and a.shape[-1] == 1:
        return a.reshape(a.shape[:-1])
    return a


def prepare_inputs(model, x, what="x"):
    """``x`` as a list of checked C-contiguous arrays, one per model input (builds a
    model whose input shape was unknown)."""
    if x is None:
        raise ValueError(f"{what} is required")
    model._require_layers()
    if not model.built:
        first = next(iter(x.values())) if isinstance(x, dict) and len(x) == 1 else x
        a = as_array(first, what)
        if a.ndim < 2:
            raise ValueError(
                f"{what}: expected an array of shape (samples, features...), got shape "
                f"{a.shape}. Use x.reshape(-1, 1) for one feature or x.reshape(1, -1) for "
                f"one sample.")
        model.build((None,) + a.shape[1:])
    model._sync()
    items = by_name(x, model.input_names, what)
    out = []
    n = None
    for i, (item, spec) in enumerate(zip(items, model._input_specs())):
        name = what if len(items) == 1 else f"{what}[{model.input_names[i]!r}]"
        a = as_array(item, name)
        if isinstance(item, np.ma.MaskedArray):
            raise TypeError(f"{name}: masked arrays are not supported (the mask would be "
                            f"ignored); pass x.filled(value) or drop the masked rows")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numeric data, got dtype {a.dtype}")
        a = adjust_rank(a, spec.shape)
        if a.ndim < 2 and len(spec.shape) >= 2:
            raise ValueError(
                f"{name}: expected an array of shape (samples, features...), got shape "
                f"{a.shape}. Use x.reshape(-1, 1) for one feature or x.reshape(1, -1) for "
                f"one sample.")
        check_input(spec.layer, a.shape, want=spec.shape, index=i)
        if n is not None and a.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous: {what} arrays have different "
                             f"numbers of samples ({n} and {a.shape[0]} for "
                             f"{model.input_names[i]!r})")
        n = a.shape[0]
        dt = np.dtype(spec.dtype)
        if dt.kind in "iu" and a.dtype.kind == "f":
            if not np.array_equal(a, np.round(a)):
                raise ValueError(f"{name}: the input takes integer ids ({dt.name}), got "
                                 f"non-integer values")
        a = np.ascontiguousarray(a, dtype=dt)
        if dt.kind == "f":
            be = model._backend
            if not (be.all_finite(a) if be.host_memory else bool(np.isfinite(a).all())):
                raise ValueError(f"{name} contains NaN or infinite values")
        out.append(a)
    return out


def prepare_targets(model, y, n, what=""):
    """``y`` as a list of checked target arrays, one per output (``None`` for an output
    without a loss)."""
    if y is None:
        raise ValueError(f"{what}y is required (the model trains on (x, y) pairs)")
    names = model.output_names
    items = by_name(y, names, what + "y")
    out = []
    for i, (item, loss) in enumerate(zip(items, model._compiled_loss.losses)):
        name = f"{what}y" if len(items) == 1 else f"{what}y[{names[i]!r}]"
        if loss is None:
            if item is not None and len(items) > 1:
                raise ValueError(f"{name}: targets were given for output {names[i]!r}, "
                                 f"which has no loss")
            out.append(None)
            continue
        if item is None:
            raise ValueError(f"{name}: output {names[i]!r} has a loss but no targets")
        if isinstance(item, np.ma.MaskedArray):
            raise TypeError(f"{name}: masked arrays are not supported (the mask would be "
                            f"ignored)")
        ya = as_array(item, name)
        if ya.ndim == 0 or ya.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous. Make sure all arrays contain "
                             f"the same number of samples. '{what}x' sizes: {n}, '{name}' "
                             f"sizes: {n_samples(ya)}")
        yp = _targets_for(loss, ya, model._output_shapes()[i], name)
        if yp.dtype.kind == "f" and not np.isfinite(yp).all():
            bad = np.argwhere(~np.isfinite(yp))[0]
            raise ValueError(f"{name} contains NaN or infinite values (first at index "
                             f"{tuple(int(j) for j in bad)}, value {yp[tuple(bad)]}); "
                             f"targets of shape {ya.shape}")
        out.append(yp)
    return out


def _targets_for(loss, ya, shape, name):
    """``loss.prepare_targets`` for an output of any rank: an output ``(n, d..., k)`` is
    ``n * d...`` rows of ``k`` for the loss (Keras averages over all of them), so its
    targets are checked as rows and given back in the output's sample layout."""
    if len(shape) <= 2:
        return loss.prepare_targets(ya, shape)
    got = tuple(ya.shape[1:len(shape) - 1])
    mid = tuple(g if w is None else w for w, g in zip(shape[1:-1], got))
    if got != mid:
        raise ValueError(f"{name}: targets of shape {ya.shape} do not match the output shape "
                         f"{tuple(shape)}")
    n = ya.shape[0]
    rows = ya.reshape((n * int(np.prod(mid)),) + ya.shape[1 + len(mid):])
    yp = loss.prepare_targets(rows, (None, shape[-1]))
    return yp.reshape((n,) + mid + yp.shape[1:])


def as_rows(out, y, sample_weight, mask=None, reduction="sum"):
    """An output of rank > 2 and its targets as rows of the last axis (sample weights
    repeated per row), for losses and metrics; rank-2 outputs unchanged.

    ``mask`` (the output's mask, shape ``out.shape[:-1]``, or None) weights the rows as
    Keras's ``apply_mask`` does: masked rows get weight 0; for a loss reduced by
    ``'sum_over_batch_size'``/``'mean'`` the others get ``total / valid``, so the mean
    runs over the unmasked rows only; for sums (and metrics: ``'sum'``) they get 1."""
    rows = int(np.prod(out.shape[:-1])) if out.ndim > 1 else out.shape[0]
    sw = sample_weight
    if out.ndim > 2 and sw is not None:
        sw = np.repeat(sw, rows // out.shape[0] if out.shape[0] else 0)
    if mask is not None:
        sw = _mask_weights(mask, out.shape[:-1], sw, reduction)
    if out.ndim <= 2:
        return out, y, sw
    return out.reshape(rows, out.shape[-1]), y.reshape((rows,) + y.shape[out.ndim - 1:]), sw


def _mask_weights(mask, shape, sample_weight, reduction):
    """Per-row weights of a masked output (see :func:`as_rows`), times the sample
    weights when there are some."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != tuple(shape):
        raise ValueError(f"the mask of a model output has shape {m.shape}, but the output "
                         f"needs one of shape {tuple(shape)} (all but its last axis)")
    m = m.reshape(-1)
    w = m.astype(np.float64)
    if reduction in ("sum_over_batch_size", "mean"):
        valid = int(m.sum())
        w *= m.size / valid if valid else 0.0
    return w if sample_weight is None else w * sample_weight


def prepare_sample_weight(sample_weight, class_weight, targets, n, what=""):
    """One float64 weight per sample, or None."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
    if sample_weight is not None:
        try:
            sw = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}sample_weight: expected numbers, got "
                             f"{type(sample_weight).__name__}") from None
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.shape != (n,):
            raise ValueError(f"{what}sample_weight: expected shape ({n},) to match "
                             f"{what}x, got {np.shape(sample_weight)}")
        if not np.all(np.isfinite(sw)):
            raise ValueError(f"{what}sample_weight contains NaN or infinite values")
        return np.ascontiguousarray(sw)
    if class_weight is not None:
        first = next((t for t in targets if t is not None), None)
        return class_weights_to_sample_weights(first, class_weight)
    return None


def class_weights_to_sample_weights(y, class_weight):
    """Keras's rule: labels, arg-max of one-hot rows, or rounded single outputs."""
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight: expected a dict {{class index: weight}}, got "
                         f"{type(class_weight).__name__}")
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype(np.int64)
    sw = np.ones(labels.shape[0], dtype=np.float64)
    for cls, weight in class_weight.items():
        try:
            cls_i = int(cls)
            w = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"class_weight: expected {{int class index: float weight}}, got "
                             f"the entry {cls!r}: {weight!r}") from None
        if isinstance(weight, bool) or not np.isfinite(w):
            raise ValueError(f"class_weight: the weight of class {cls!r} must be a finite "
                             f"number, got {weight!r}")
        sw[labels == cls_i] = w
    return sw
