"""The trainer's steps under :class:`pynn.distribution.DataParallel`.

A training step on every rank, for its rows of the global batch (``n`` of ``N``)::

    forward, loss, backward          (the same code as one process; the fused Dense-stack
                                      gradient kernel too, but never the fused update)
    track the loss and metrics of the local rows
    ONE small float64 Allreduce      the step's loss sum and row count, the running loss
                                      sums and every metric's state (sums and counts)
    -> the logs (equal on every rank); a non-finite global loss stops here on every rank
    gradients *= n / N               (local means -> this rank's share of the global mean;
                                      regularization gradients, added on every rank, sum
                                      to one copy)
    ONE Allreduce of the flat gradient buffer, in place, fixed element order
    optimizer.apply                  (the same bits on every rank: weights stay identical)

For losses that average over the batch (``sum_over_batch_size``, Keras's default) this
is the single-process step on the global batch, up to float32 summation order.
Evaluation steps reduce the statistics only.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["check_model", "begin_fit", "train_step", "test_step", "predict"]

#: the loss reductions whose gradient is a mean over the batch's samples
_MEAN_REDUCTIONS = ("sum_over_batch_size",)


def check_model(model):
    """Refuse what the data-parallel step cannot average correctly, naming it."""
    from . import custom_steps
    if custom_steps.overrides(model, "train_step"):
        raise NotImplementedError(
            f"DataParallel: model {model.name!r} overrides train_step, whose gradients "
            f"pynn cannot average across ranks; use the built-in step (custom losses and "
            f"layers are fine)")
    for name, loss in zip(model._compiled_loss.names, model._compiled_loss.losses):
        r = getattr(loss, "reduction", "sum_over_batch_size")
        if loss is not None and r not in _MEAN_REDUCTIONS:
            raise ValueError(f"DataParallel: the loss of output {name!r} has "
                             f"reduction={r!r}; data-parallel training averages per-sample "
                             f"gradients, which needs reduction='sum_over_batch_size'")
    for m in model.metrics:
        _state_of(m)  # raises for a metric whose state cannot be summed


def begin_fit(model, dp, initial_epoch):
    """At the start of ``fit`` (after ``on_train_begin``, where BackupAndRestore may have
    restored rank 0): rank 0's weights, optimizer state and initial epoch everywhere."""
    check_model(model)
    _broadcast(model, dp)
    return dp.comm.bcast(initial_epoch)


def _broadcast(model, dp):
    dp.broadcast_model(model)
    model._dp_layout_id = model._layout.id


# ---------------------------------------------------------------------------------------
# the statistics: loss sums and metric states as one float64 vector
# ---------------------------------------------------------------------------------------
def _state_of(metric):
    """``[(get, set)]`` of the metric's state arrays, each a sum over samples."""
    variables = metric.__dict__.get("_variables")
    if variables:
        for v in variables:
            if getattr(v, "aggregation", "sum") != "sum":
                raise ValueError(f"DataParallel: metric {metric.name!r} has variable "
                                 f"{v.name!r} with aggregation={v.aggregation!r}; only "
                                 f"'sum' variables can be reduced across ranks")
        return [((lambda v=v: v.value), (lambda x, v=v: v.assign(x))) for v in variables]
    names = getattr(metric, "sum_state", None)
    if not names:
        raise ValueError(f"DataParallel: metric {metric.name!r} ({type(metric).__name__}) "
                         f"declares no state to sum across ranks; keep its state in "
                         f"add_variable(..., aggregation='sum') variables, or name its sum "
                         f"attributes in a class attribute sum_state = ('total', ...)")

    def setter(name):
        def put(x):
            old = getattr(metric, name)
            setattr(metric, name, type(old)(x.reshape(())) if np.ndim(old) == 0
                    and not isinstance(old, np.ndarray) else x.reshape(np.shape(old)))
        return put
    return [((lambda n=n: getattr(metric, n)), setter(n)) for n in names]


def _pack(model, step_loss_sum, step_n):
    """The statistics vector and the metric states it holds (for :func:`_logs_from`)."""
    parts = [np.array([step_loss_sum, step_n, model._loss_sum, model._loss_count],
                      np.float64), np.asarray(model._out_loss_sums, np.float64)]
    states = []
    for m in model.metrics:
        for get, put in _state_of(m):
            value = get()
            if value is None:
                raise ValueError(f"DataParallel: metric {m.name!r} has not seen a sample on "
                                 f"rank {model_rank()} yet; its state takes its shape from "
                                 f"the first batch. Use a global batch of at least one row "
                                 f"per rank.")
            arr = np.asarray(value, np.float64)
            states.append((get, put, arr.size))
            parts.append(arr.ravel())
    return np.concatenate(parts), states


def model_rank():
    from ..distribution import process_id
    return process_id()


def _logs_from(model, stats, states):
    """The logs of the reduced ``stats``: the model's and metrics' local state swapped
    for the global sums while ``_local_logs`` reads them, then put back."""
    saved = (model._loss_sum, model._loss_count, list(model._out_loss_sums))
    k = len(model._out_loss_sums)
    model._loss_sum, model._loss_count = float(stats[2]), int(round(stats[3]))
    model._out_loss_sums = [float(v) for v in stats[4:4 + k]]
    local = [np.array(get(), copy=True) if isinstance(get(), np.ndarray) else get()
             for get, _, _ in states]
    off = 4 + k
    try:
        for get, put, size in states:
            put(stats[off:off + size].copy())
            off += size
        return model._local_logs()
    finally:
        model._loss_sum, model._loss_count, model._out_loss_sums = saved
        for (get, put, _), value in zip(states, local):
            put(np.asarray(value, np.float64))


def _reduce_stats(model, dp, step_loss_sum, step_n):
    stats, states = _pack(model, step_loss_sum, step_n)
    dp.reduce_(stats, "the step's loss and metric sums")
    model._dp_logs = _logs_from(model, stats, states)
    return stats


# ---------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------
def _refuse_masked_losses(model):
    """A masked output's loss is a mean over its unmasked steps, whose count differs
    between ranks, so weighting each rank by its rows would be silently wrong: refuse
    it (the error ends every rank, see :mod:`pynn.distribution.faults`)."""
    outs = model._compiled_loss.losses
    masks = model._output_masks(len(outs))
    masked = [name for name, loss, mask in zip(model._compiled_loss.names, outs, masks)
              if loss is not None and mask is not None]
    if masked:
        raise NotImplementedError(
            f"DataParallel: model {model.name!r} outputs {masked} carry a mask (their loss "
            f"averages over unmasked steps, a count that differs between ranks); "
            f"data-parallel training of masked outputs is not supported: return the last "
            f"step (return_sequences=False) or pool the sequence before the loss")


def train_step(model, dp, xs, ys, swb, fused):
    """One data-parallel training step (module docstring); the global mean loss."""
    if model._dp_layout_id != model._layout.id:
        # train_on_batch / train_step without fit, or new weights: rank 0's everywhere
        check_model(model)
        _broadcast(model, dp)
    n = xs[0].shape[0]
    grads = model._layout.grads
    be = model._backend
    if n:
        loss, outs, per = model._compute_gradients(xs, ys, swb, fused)
        _refuse_masked_losses(model)
        if math.isfinite(loss):
            model._track(loss, per, ys, outs, swb, fused, n)
    else:  # an uneven last batch left this rank no row: it adds nothing
        synced = [l.name for l in model._all_layers() if getattr(l, "synchronized", False)]
        if synced:  # its peers wait in the layers' reductions: end the job, not hang
            raise ValueError(f"DataParallel: rank {dp.process_id} got no row of a global "
                             f"batch, but BatchNormalization layers {synced} reduce their "
                             f"statistics over every rank; use a batch_size (and a data "
                             f"size) that gives every one of the {dp.num_processes} ranks at "
                             f"least one row per batch")
        loss = 0.0
        if grads is not None:
            be.scale_(grads, 0.0)
    stats = _reduce_stats(model, dp, loss * n, n)
    total = stats[1]
    global_loss = float(stats[0] / total) if total else 0.0
    if not math.isfinite(global_loss):
        return global_loss  # every rank sees it: no update anywhere
    train = model._layout.train
    if train and grads is not None:
        be.scale_(grads, n / total)
        if be.host_memory:
            dp.reduce_(grads, "the gradient allreduce")
        else:
            host = np.ascontiguousarray(be.to_numpy(grads))
            dp.reduce_(host, "the gradient allreduce")
            be.copy_(be.asarray(host), grads)
        model.optimizer.apply([w.grad for w in train], [w.value for w in train],
                              flat_grad=grads)
    return global_loss


def test_step(model, dp, xs, ys, swb, fused):
    """One data-parallel evaluation step: local loss and metrics, then one reduction."""
    n = xs[0].shape[0]
    loss = model._local_test_step(xs, ys, swb, fused) if n else 0.0
    if n:
        _refuse_masked_losses(model)
    stats = _reduce_stats(model, dp, loss * n, n)
    return float(stats[0] / stats[1]) if stats[1] else 0.0


def predict(model, dp, x, batch_size, verbose, steps, callbacks):
    """``predict`` of array data: each rank computes its contiguous block of rows, and
    every rank returns the whole result, in order."""
    from ..distribution import distribution_lib
    from . import data as data_mod
    from .data_adapters import array_batch_size
    xs = data_mod.prepare_inputs(model, x)
    n = xs[0].shape[0]
    if steps is not None:
        n = min(n, steps * array_batch_size(batch_size, n, steps))
    start, stop = dp.bounds(n)
    with distribution_lib.suspended():
        if stop > start:
            local = model.predict([xa[start:stop] for xa in xs] if len(xs) > 1
                                  else xs[0][start:stop], batch_size=batch_size,
                                  verbose=verbose if dp.process_id == 0 else 0,
                                  callbacks=callbacks)
            local = [local] if not isinstance(local, list) else local
        else:
            local = model._new_results(0, xs)
    return model._pack_outputs(dp.gather_rows(local))
