"""What ``fit``/``evaluate``/``predict`` can be fed, as one kind of batch source
(Keras 3's ``trainers/data_adapters``).

* arrays (one array, a list or a dict of arrays, as :mod:`.data` checks them): cut into
  batches of ``batch_size`` (shuffled with the model's generator when asked);
* a :class:`pynn.utils.PyDataset`: ``dataset[i]`` for ``i`` in ``range(len(dataset))``
  (in a random order with ``shuffle``), or for ever when its ``num_batches`` is None;
* a Python generator, an iterator, or any other iterable that is not an array, a list,
  a tuple or a dict (a list means several inputs, as in Keras): its items are the batches.

A batch from a PyDataset or a generator is ``x``, ``(x,)``, ``(x, y)`` or
``(x, y, sample_weight)`` (Keras's ``unpack_x_y_sample_weight``); each one is checked
and converted by the trainer as array data is. Every adapter yields batches already
prepared: ``(inputs, targets, sample_weight)`` lists of arrays for the trainer's step.
"""
from __future__ import annotations

import collections.abc
import types
import warnings

import numpy as np

from ..distribution.distribution_lib import active as active_distribution
from ..utils.py_dataset import PyDataset
from .data import check_batch_size, prepare_inputs, prepare_sample_weight

__all__ = ["is_batch_source", "unpack", "check_batch_source_args", "ArrayAdapter",
           "IterableAdapter", "PyDatasetAdapter", "batch_source_adapter", "get_adapter",
           "array_adapter", "fit_adapters"]


def is_batch_source(x):
    """True when ``x`` yields whole batches (a PyDataset, generator or other iterable)
    rather than being array data to cut into batches."""
    if isinstance(x, PyDataset):
        return True
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or x is None:
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return isinstance(x, (types.GeneratorType, collections.abc.Iterator,
                          collections.abc.Iterable))


def _kind(x):
    if isinstance(x, PyDataset):
        return "PyDataset"
    if isinstance(x, types.GeneratorType):
        return "generator"
    return "iterable of batches"


def unpack(batch, where):
    """``(x, y, sample_weight)`` of one batch (missing parts ``None``), Keras's rule."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if 1 <= len(batch) <= 3:
        return (tuple(batch) + (None, None))[:3]
    raise ValueError(f"{where}: a batch must be x, (x,), (x, y) or (x, y, sample_weight); "
                     f"got a tuple of {len(batch)} items")


def check_batch_source_args(x, what, y=None, sample_weight=None, class_weight=None,
                            validation_split=0.0, batch_size=None):
    """Keras's errors for arguments that a batch source carries itself (``y``,
    ``sample_weight``; ``class_weight`` for a generator; ``validation_split``), and a
    warning for a ``batch_size`` that the source's own batches override."""
    kind = _kind(x)
    for name, value, desc in (("y", y, "the targets"),
                              ("sample_weight", sample_weight, "the sample weights")):
        if value is not None:
            raise ValueError(f"{what}: when providing `x` as a {kind}, `{name}` should not "
                             f"be passed. Instead, {desc} should be included as part of the "
                             f"{kind}.")
    if class_weight is not None and kind != "PyDataset":
        raise ValueError(f"{what}: argument `class_weight` is not supported for {kind} "
                         f"inputs. Received: class_weight={class_weight}")
    if validation_split:
        raise ValueError(f"{what}: argument `validation_split` is only supported for arrays; "
                         f"got x as a {kind}. Pass validation_data instead.")
    if batch_size is not None:
        warnings.warn(f"{what}: batch_size={batch_size} is ignored: x is a {kind}, whose "
                      f"batches have their own size.", UserWarning, stacklevel=4)


class ArrayAdapter:
    """Batches of checked arrays ``xs``/``ys``/``sw`` (see :mod:`.data`).

    ``take(array, index, key)`` gathers the rows of one batch (the trainer's reusable
    buffers); ``rng`` shuffles (``shuffle``: True, False or ``'batch'``, as Keras).
    ``shard`` (a :class:`pynn.distribution.DataParallel`): ``batch_size`` is the global
    batch, the order is rank 0's, and each rank yields its rows of every batch."""

    def __init__(self, xs, ys, sw, batch_size, shuffle, rng, take, shard=None):
        self.xs, self.ys, self.sw = xs, ys, sw
        self.n = xs[0].shape[0]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = rng
        self._take = take
        self._shard = shard
        self.num_batches = -(-self.n // batch_size)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def _order(self):
        n, bs = self.n, self.batch_size
        if not self.shuffle:
            return None
        if self.shuffle == "batch":
            starts = self._rng.permutation(self.num_batches) * bs
            return np.concatenate([np.arange(s, min(n, s + bs)) for s in starts])
        return self._rng.permutation(n)

    def __iter__(self):
        order = self._order()
        shard = self._shard
        if shard is not None:
            order = shard.shared_order(order)
        n, bs, sw = self.n, self.batch_size, self.sw
        for start in range(0, n, bs):
            stop = min(n, start + bs)
            idx = slice(start, stop) if order is None else order[start:stop]
            if shard is not None:
                idx = shard.local_rows(idx)
            gathered = order is not None
            xbs = [self._take(xa, idx, ("x", i)) for i, xa in enumerate(self.xs)]
            ybs = [None if a is None else (np.take(a, idx, axis=0) if gathered else a[idx])
                   for a in self.ys]
            swb = None if sw is None else (np.take(sw, idx) if gathered else sw[idx])
            yield xbs, ybs, swb


class IterableAdapter:
    """The batches of a generator, iterator or iterable, each passed through
    ``prepare(x, y, sample_weight)``. ``iter()`` of a generator or iterator is itself,
    so a later epoch continues where the last one stopped; a re-iterable (whose
    ``__iter__`` starts afresh) starts over every epoch. The number of batches is
    unknown (``None``)."""

    num_batches = None

    def __init__(self, source, prepare, where):
        self.source = source
        self._prepare = prepare
        self._where = where

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def __iter__(self):
        for batch in iter(self.source):
            yield self._prepare(*unpack(batch, self._where))


class PyDatasetAdapter:
    """The batches of a :class:`~pynn.utils.PyDataset`, in index order or (``shuffle``)
    in an order drawn from ``rng``; ``class_weight`` turns each batch's targets into
    sample weights (Keras)."""

    def __init__(self, dataset, prepare, where, shuffle=False, rng=None, class_weight=None):
        self.dataset = dataset
        self._prepare = prepare
        self._where = where
        self.shuffle = bool(shuffle)
        self._rng = rng
        self.class_weight = class_weight
        n = dataset.num_batches
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 0):
            raise ValueError(f"{where}: len() of the PyDataset must be a non-negative "
                             f"integer (or num_batches None for an infinite one), got {n!r}")
        self.num_batches = None if n is None else int(n)
        if dataset.workers > 1 or dataset.use_multiprocessing:
            warnings.warn(f"{where}: the PyDataset asks for workers={dataset.workers}, "
                          f"use_multiprocessing={dataset.use_multiprocessing}; pynn calls "
                          f"__getitem__ in the training thread, one batch at a time.",
                          UserWarning, stacklevel=4)

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()

    def _indices(self):
        n = self.num_batches
        if n is None:
            i = 0
            while True:
                yield i
                i += 1
        order = self._rng.permutation(n) if self.shuffle and self._rng is not None \
            else None
        dp = active_distribution()
        if dp is not None and order is not None:  # one order on every rank (rank 0's)
            order = dp.shared_order(order)
        order = range(n) if order is None else order
        for i in order:
            yield int(i)

    def __iter__(self):
        for i in self._indices():
            x, y, sw = unpack(self.dataset[i], f"{self._where}[{i}]")
            if self.class_weight is not None:
                if sw is not None:
                    raise ValueError("You cannot specify `class_weight` and `sample_weight` "
                                     "at the same time.")
                yield self._prepare(x, y, None, self.class_weight)
            else:
                yield self._prepare(x, y, sw)


def batch_source_adapter(x, prepare, where, shuffle=False, rng=None, class_weight=None):
    """The adapter of a batch source ``x`` (see :func:`is_batch_source`). ``shuffle`` is
    used by a PyDataset of known length; for a generator it is ignored with Keras's
    warning."""
    if isinstance(x, PyDataset):
        if shuffle and x.num_batches is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` "
                          "was provided as an infinite PyDataset. The PyDataset is expected "
                          "to already be shuffled.", UserWarning, stacklevel=3)
        return PyDatasetAdapter(x, prepare, where, shuffle, rng, class_weight)
    if shuffle:
        warnings.warn(f"`shuffle=True` was passed, but will be ignored since the data `x` "
                      f"was provided as a {_kind(x)}. The {_kind(x)} is expected to yield "
                      f"already-shuffled data.", UserWarning, stacklevel=3)
    return IterableAdapter(x, prepare, where)


# ---------------------------------------------------------------------------------------------
# the adapters of one fit / evaluate / predict call
# ---------------------------------------------------------------------------------------------
def array_batch_size(batch_size, n, steps):
    """Keras's rule: ``batch_size``, else ``ceil(n / steps)`` with ``steps``, else 32."""
    if batch_size is None and steps:
        return max(1, -(-n // steps))
    return check_batch_size(batch_size)


def _batch_preparer(model, what, targets=True):
    """``prepare(x, y, sample_weight, class_weight=None)`` of one batch from a source."""
    def prepare(x, y, sw, class_weight=None):
        if targets:
            xs, ys, sw = model._prepare_xy(x, y, sw, class_weight)
        else:
            xs, ys, sw = prepare_inputs(model, x), None, None
        if xs[0].shape[0] == 0:
            raise ValueError(f"{what}: a batch of x has 0 samples")
        return xs, ys, sw
    return prepare


def get_adapter(model, x, y=None, sample_weight=None, class_weight=None, batch_size=None,
                shuffle=False, steps=None, what="fit", targets=True):
    """The adapter of ``x`` (arrays, or a batch source) for ``fit``/``evaluate``
    (``targets``) or ``predict``."""
    if is_batch_source(x):
        check_batch_source_args(x, what, y, sample_weight, class_weight,
                                batch_size=batch_size)
        return batch_source_adapter(x, _batch_preparer(model, what, targets), f"{what}: x",
                                    shuffle, model._rng, class_weight)
    if targets:
        xs, ys, sw = model._prepare_xy(x, y, sample_weight, class_weight)
    else:
        xs, ys, sw = prepare_inputs(model, x), [], None
    return array_adapter(model, xs, ys, sw, batch_size, shuffle, steps, what)


def array_adapter(model, xs, ys, sw, batch_size, shuffle, steps, what):
    n = xs[0].shape[0]
    if n == 0:
        raise ValueError(f"{what}: x is empty (0 samples)")
    bs = array_batch_size(batch_size, n, steps)
    return ArrayAdapter(xs, ys, sw, bs, shuffle, model._rng, model._take,
                        active_distribution())


def fit_adapters(model, x, y, sample_weight, class_weight, batch_size, shuffle, steps,
                 validation_split, validation_data, validation_batch_size, validation_steps):
    """``(train adapter, validation adapter or None)`` of one ``fit`` call.

    ``validation_split`` holds out the LAST fraction of the arrays (before shuffling)
    with their sample weights, as Keras does; ``class_weight`` weights the training
    part only."""
    if is_batch_source(x) or not validation_split:
        if validation_split and validation_data is None:
            check_batch_source_args(x, "fit", validation_split=validation_split)
        train = get_adapter(model, x, y, sample_weight, class_weight, batch_size, shuffle,
                            steps, "fit")
        val = None
        if validation_data is not None:
            val = _validation_adapter(model, validation_data, validation_batch_size
                                      or (batch_size if not is_batch_source(x) else None),
                                      validation_steps)
        return train, val
    if sample_weight is not None and class_weight is not None:
        raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
    xs, ys, sw = model._prepare_xy(x, y, sample_weight)
    n = xs[0].shape[0]
    split_at = int(np.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"Training data contains {n} samples, which is not sufficient to "
                         f"split it into a validation and training set as specified by "
                         f"`validation_split={validation_split}`. Either provide more data, "
                         f"or a different value for the `validation_split` argument.")
    head, tail = slice(0, split_at), slice(split_at, None)

    def part(arrays, s):
        return [None if a is None else a[s] for a in arrays]

    txs, tys = part(xs, head), part(ys, head)
    tsw = None if sw is None else sw[head]
    if class_weight is not None:
        tsw = prepare_sample_weight(None, class_weight, tys, split_at)
    train = array_adapter(model, txs, tys, tsw, batch_size, shuffle, steps, "fit")
    if validation_data is not None:
        val = _validation_adapter(model, validation_data, validation_batch_size or batch_size,
                                  validation_steps)
    else:
        val = array_adapter(model, part(xs, tail), part(ys, tail),
                            None if sw is None else sw[tail],
                            validation_batch_size or batch_size, False, validation_steps,
                            "fit: validation_split")
    return train, val


def _validation_adapter(model, validation_data, batch_size, steps):
    if is_batch_source(validation_data):
        return get_adapter(model, validation_data, what="fit: validation_data")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, "
                         "val_sample_weight), or a generator / PyDataset of batches")
    vx, vy, vsw = (tuple(validation_data) + (None,))[:3]
    xs, ys, sw = model._prepare_xy(vx, vy, vsw, what="val_")
    return array_adapter(model, xs, ys, sw, batch_size, False, steps, "fit: validation_data")
