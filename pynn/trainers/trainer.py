"""The trainer: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` calls.

A mixin of :class:`~pynn.models.Model` (Keras 3's ``trainers/trainer.py``). It runs
the model through its graph (``_run_forward``/``_run_backward``) or, where
:mod:`pynn.trainers.planner` says so, through one fused backend call. A training
step::

    forward (each node's backend ops, into its call context's workspaces)
    each output's loss.loss_and_grad   (fused softmax/sigmoid + cross-entropy from
                                        logits when the output's layer ends in the
                                        loss's activation)
    backward (nodes in reverse; nodes that lead to no trainable weight are skipped)
    regularizer gradients added, optimizer.apply over the flat buffers

Randomness (initialisers, shuffling, dropout, nothing else) comes from the
model's ``numpy.random.Generator``, so one seed gives bit-identical runs.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import threading
import warnings

import numpy as np

from . import data as data_mod
from . import data_adapters as adapters
from . import custom_steps
from . import data_parallel_step
from ..distribution.distribution_lib import active as active_distribution
from ..layers import added_losses
from .compile_utils import CompileLoss, CompileMetrics
from .epoch_iterator import RAN_OUT, EpochIterator
from .step_guard import StepGuard

__all__ = ["Trainer"]

#: guards the lazy creation of each model's lock
_LOCK_CREATION = threading.Lock()
#: one id per backward pass (a shared weight's later uses add to its gradient)
_PASS_IDS = itertools.count(1)


class Trainer:
    """Training and inference entry points of a model (see the module docstring)."""

    def _init_trainer(self):
        self.compiled = False
        self.optimizer = None
        self._compiled_loss = None
        self._compiled_metrics = None
        self._compile_config = None
        self._opt_layout_id = None
        self.stop_training = False
        self.history = None
        self._fit_thread = None
        self._buffers = {}
        self._loss_sum = 0.0
        self._loss_count = 0
        self._out_loss_sums = []
        self._trackers_built = False
        self._dp_logs = None  # the logs reduced across ranks (DataParallel), else None
        self._dp_layout_id = None  # the weight layout rank 0 last broadcast (DataParallel)

    # ------------------------------------------------------------------------------------
    # compile
    # ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, jit_compile="auto"):
        """Configure training: optimizer, loss and metrics (Keras 3 arguments).

        ``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` take one value,
        a list (one entry per output) or a dict keyed by output name.
        ``jit_compile=False`` or ``run_eagerly=True`` runs every step layer by layer
        instead of through the fused Dense-stack kernels (see
        :mod:`pynn.trainers.planner`); the results agree, the speed does not.
        """
        from .. import optimizers as optimizers_mod
        if jit_compile not in ("auto", True, False):
            raise ValueError(f"jit_compile: expected 'auto', True or False, got {jit_compile!r}")
        if not isinstance(run_eagerly, bool):
            raise ValueError(f"run_eagerly: expected a bool, got {run_eagerly!r}")
        names = self.output_names
        self.optimizer = optimizers_mod.get(optimizer)
        self._compiled_loss = CompileLoss(loss, loss_weights, names)
        self._compiled_metrics = CompileMetrics(metrics, weighted_metrics, names,
                                                self._compiled_loss.losses)
        self._fast_path.enabled = not run_eagerly and jit_compile is not False
        self._opt_layout_id = None
        self.compiled = True
        self._trackers_built = False
        self.reset_metrics()  # Keras 3: a new compile starts fresh trackers
        self._compile_config = {"optimizer": optimizer, "loss": loss,
                                "loss_weights": loss_weights, "metrics": metrics,
                                "weighted_metrics": weighted_metrics,
                                "run_eagerly": run_eagerly, "jit_compile": jit_compile}

    @property
    def jit_compile(self):
        """Whether the fused compiled paths may run (Keras's attribute; settable)."""
        return self._fast_path.enabled

    @jit_compile.setter
    def jit_compile(self, value):
        if value not in ("auto", True, False):
            raise ValueError(f"jit_compile: expected 'auto', True or False, got {value!r}")
        self._fast_path.enabled = value is not False

    @property
    def run_eagerly(self):
        """True when every step runs layer by layer (Keras's attribute; settable)."""
        return not self._fast_path.enabled

    @run_eagerly.setter
    def run_eagerly(self, value):
        if not isinstance(value, bool):
            raise ValueError(f"run_eagerly: expected a bool, got {value!r}")
        self._fast_path.enabled = not value

    @property
    def loss(self):
        """The compiled loss: one object for a one-output model, else the list."""
        if self._compiled_loss is None:
            return None
        ls = self._compiled_loss.losses
        return ls[0] if len(ls) == 1 else ls

    def get_compile_config(self):
        """What :meth:`compile` was given, serialised (for saving)."""
        if not self.compiled:
            return None
        from .. import metrics as metrics_mod
        from .. import optimizers as optimizers_mod
        cc = self._compile_config

        def metric_cfg(arg, objs):
            if arg is None:
                return None
            if isinstance(arg, dict):
                return {k: metric_cfg(v, []) for k, v in arg.items()}
            items = [arg] if isinstance(arg, str) or not isinstance(arg, (list, tuple)) else arg
            out = []
            for j, item in enumerate(items):
                if isinstance(item, (str, type(None))):
                    out.append(item)
                elif isinstance(item, (list, tuple)):
                    out.append(metric_cfg(list(item), []))
                else:
                    obj = objs[j] if j < len(objs) else metrics_mod.get(item)
                    out.append(metrics_mod.serialize(obj))
            return out

        cm = self._compiled_metrics
        single = len(self.output_names) == 1
        return {
            "optimizer": optimizers_mod.serialize(self.optimizer),
            "loss": self._compiled_loss.serialize(),
            "loss_weights": cc["loss_weights"],
            "metrics": metric_cfg(cc["metrics"], cm.metrics[0] if single else []),
            "weighted_metrics": metric_cfg(cc["weighted_metrics"],
                                           cm.weighted[0] if single else []),
            "run_eagerly": cc["run_eagerly"],
            "jit_compile": cc["jit_compile"],
        }

    def compile_from_config(self, config):
        self.compile(**config)

    @property
    def metrics(self):
        """The compiled metric objects."""
        return self._compiled_metrics.all() if self._compiled_metrics is not None else []

    @property
    def metrics_names(self):
        """Keras 3's list: the names of the model's metric trackers, not of the logged
        values. ``[]`` before compile; ``'loss'``; ``'compile_metrics'`` when metrics were
        compiled; then, for a model with several outputs, the per-output losses once a
        train or test step has run. :meth:`evaluate` lists its values in the order of
        ``'loss'``, the per-output losses, then the metrics."""
        if not self.compiled:
            return []
        names = ["loss"]
        cc = self._compile_config
        if cc["metrics"] is not None or cc["weighted_metrics"] is not None:
            names.append("compile_metrics")
        if self._trackers_built:
            names += self._compiled_loss.tracker_names()
        return names

    def _result_names(self):
        """The names of the values :meth:`evaluate` and ``*_on_batch`` list."""
        return ["loss"] + self._compiled_loss.tracker_names() + [m.name for m in self.metrics]

    def reset_metrics(self):
        self._loss_sum, self._loss_count = 0.0, 0
        self._dp_logs = None
        n = len(self._compiled_loss.losses) if self._compiled_loss is not None else 0
        self._out_loss_sums = [0.0] * n
        for m in self.metrics:
            m.reset_state()

    # ------------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------------
    def _prepare_xy(self, x, y, sample_weight=None, class_weight=None, what=""):
        """Validated ``(inputs, targets, sample_weight)`` lists for fit/evaluate."""
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model for "
                               "training or evaluation.")
        if all(l is None for l in self._compiled_loss.losses):
            raise ValueError("The model was compiled without a loss; pass loss=... to "
                             "compile() before fit/evaluate")
        xs = data_mod.prepare_inputs(self, x, what + "x")
        n = xs[0].shape[0]
        ys = data_mod.prepare_targets(self, y, n, what)
        sw = data_mod.prepare_sample_weight(sample_weight, class_weight, ys, n, what)
        return xs, ys, sw

    def _take(self, arr, idx, key):
        """Rows ``idx`` of host array ``arr`` (a slice view, or gathered into a buffer)."""
        be = self._backend
        if isinstance(idx, slice):
            part = arr[idx]
            return part if be.host_memory else be.asarray(part)
        if not be.host_memory:
            return be.asarray(np.take(arr, idx, axis=0))
        shape = (len(idx),) + arr.shape[1:]
        bkey = (key, shape, arr.dtype.str)
        buf = self._buffers.get(bkey)
        if buf is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            buf = self._buffers[bkey] = np.empty(shape, dtype=arr.dtype)
        return be.take_rows(arr, idx, buf)

    def _buffer(self, key, shape):
        bkey = (key, tuple(shape))
        buf = self._buffers.get(bkey)
        if buf is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            buf = self._buffers[bkey] = self._backend.empty(tuple(shape),
                                                             np.dtype(self._dtype))
        return buf

    # ------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------
    def _fused(self):
        """Per output: True when its loss takes the output layer's pre-activation logits."""
        out = []
        acts = self._output_activations()
        for i, loss in enumerate(self._compiled_loss.losses):
            fa = getattr(loss, "fused_activation", None)
            out.append(fa is not None and not getattr(loss, "from_logits", False)
                       and acts[i] == fa)
        return tuple(out)

    def _regularization(self, with_grad):
        total = 0.0
        be = self._backend
        for w in self._layout.regularized:
            total += w.regularizer.loss(be, w.value)
            if with_grad:
                w.regularizer.add_grad_(be, w.value, w.grad)
        return total

    def _output_masks(self, n):
        """The masks of the last forward pass's ``n`` outputs (None where unmasked; see
        :mod:`pynn.layers.masking_rules`)."""
        masks = self._root_ctx.output_mask
        return masks if isinstance(masks, list) and len(masks) == n else [None] * n

    def _losses(self, outs, ys, swb, fused):
        """The weighted total loss and each output's loss gradient (None: no loss)."""
        be = self._backend
        cl = self._compiled_loss
        total = 0.0
        grads = []
        per = []
        masks = self._output_masks(len(outs))
        for i, (loss, out, y) in enumerate(zip(cl.losses, outs, ys)):
            if loss is None:
                grads.append(None)
                per.append(0.0)
                continue
            rows, y, sw = data_mod.as_rows(out, y, swb, masks[i], loss.reduction)
            grad = self._buffer(("loss_grad", i), rows.shape)
            value, grad = loss.loss_and_grad(be, be.asarray(y) if not be.host_memory else y,
                                             rows, sample_weight=sw, grad=grad, logits=fused[i])
            grad = grad.reshape(out.shape)
            per.append(float(value))
            w = cl.weights[i]
            if w != 1.0:
                value *= w
                be.scale_(grad, w)
            total += float(value)
            grads.append(grad)
        return float(total), grads, per

    def _backward(self, dys):
        ctx = self._root_ctx
        ctx.pass_id = next(_PASS_IDS)
        self._run_backward(ctx, dys, input_grad=False)

    def _compute_gradients(self, xs, ys, swb, fused):
        """Forward, losses and backward: fills the flat gradient buffer; returns
        ``(loss, outputs, per-output losses)``. A chain of Dense layers with a fusable
        loss runs as ONE backend call (see :mod:`pynn.trainers.planner`)."""
        spec = self._fast_path.train_spec(xs[0].ndim) if len(xs) == 1 else None
        self._root_ctx.output_mask = None
        self._reached = None
        if spec is not None:
            loss, out = self._fast_path.train_step(spec, xs[0], ys[0], swb)
            outs, per = [out], [loss]
        else:
            with added_losses.collecting() as added:
                outs = self._run_forward(self._root_ctx, xs, True, fused)
            loss, grads, per = self._losses(outs, ys, swb, fused)
            self._backward(grads)  # the added losses' gradients flow in their layers
            self._reached = self._weights_reached()
            if added.values:
                loss += added.total()
        loss += self._regularization(with_grad=True)
        return loss, outs, per

    def _weights_reached(self):
        """None when the last backward pass wrote every trainable weight's gradient;
        otherwise one flag per weight (``_layout.train`` order). A subclassed ``call()``
        that skipped a layer this step leaves that layer's gradient from an earlier
        step: it is zeroed here, and the update skips the weight, as Keras updates only
        the weights that have a gradient (a regularized one has its penalty's)."""
        pid = self._root_ctx.pass_id
        train = self._layout.train
        reached = [w._grad_pass == pid for w in train]
        if all(reached):
            return None
        for w, r in zip(train, reached):
            if not r:
                self._backend.copy_(0.0, w.grad)
        return [r or w.regularizer is not None for w, r in zip(train, reached)]

    def _ensure_optimizer(self):
        if self._opt_layout_id != self._layout.id:
            params = [w.value for w in self._layout.train]
            names = [w.path for w in self._layout.train]
            self.optimizer.build(params, self._backend, flat_param=self._layout.params,
                                 names=names)
            self._opt_layout_id = self._layout.id

    def _train_step(self, xs, ys, swb, fused):
        dp = active_distribution()
        if dp is not None:  # gradients -> allreduce -> update; never the fused update
            return data_parallel_step.train_step(self, dp, xs, ys, swb, fused)
        spec = self._fast_path.train_spec(xs[0].ndim) if len(xs) == 1 else None
        update = self._fast_path.stack_update(spec) if spec is not None else None
        self._root_ctx.output_mask = None  # the fused step has no masks
        if update is not None:
            # the optimizer step runs inside the backend's fused step, layer by layer
            # while each gradient is in cache; it is skipped there on a non-finite loss
            loss, out = self._fast_path.train_step(spec, xs[0], ys[0], swb, update)
            if not math.isfinite(loss):
                return loss
            self.optimizer._finish_step()
            outs, per = [out], [loss]
        else:
            loss, outs, per = self._compute_gradients(xs, ys, swb, fused)
            if not math.isfinite(loss):
                # checked BEFORE the update: the weights stay those of the last good
                # step, nothing is accumulated; the caller (fit / train_on_batch) reports it
                return loss
            train = self._layout.train
            if train:
                skip = {} if self._reached is None else {"present": self._reached}
                self.optimizer.apply([w.grad for w in train], [w.value for w in train],
                                     flat_grad=self._layout.grads, **skip)
        self._track(loss, per, ys, outs, swb, fused, xs[0].shape[0])
        return loss

    def _test_step(self, xs, ys, swb, fused):
        dp = active_distribution()
        if dp is not None:
            return data_parallel_step.test_step(self, dp, xs, ys, swb, fused)
        return self._local_test_step(xs, ys, swb, fused)

    def _local_test_step(self, xs, ys, swb, fused):
        with added_losses.collecting() as added:
            outs = self._inference(xs, fused)
        loss, _, per = self._losses(outs, ys, swb, fused)
        loss += self._regularization(with_grad=False) + added.total()
        self._track(loss, per, ys, outs, swb, fused, xs[0].shape[0])
        return loss

    def _track(self, loss, per, ys, outs, swb, fused, n):
        self._trackers_built = True
        self._loss_sum += loss * n
        self._loss_count += n
        if len(per) > 1:
            for i, v in enumerate(per):
                self._out_loss_sums[i] += v * n
        cm = self._compiled_metrics
        if not cm.all():
            return
        be = self._backend
        acts = self._output_activations() if any(fused) else None
        masks = self._output_masks(len(outs))
        for i, (ms, wms) in enumerate(cm.per_output()):
            if not (ms or wms):
                continue
            out, y_true, sw = data_mod.as_rows(outs[i], ys[i], swb, masks[i])
            if fused[i]:
                out = be.activation_forward(out, acts[i], out=self._buffer(("probs", i),
                                                                           out.shape))
            y_pred = be.to_numpy(out)
            mask_w = None
            if masks[i] is not None:  # masked rows count in no metric (Keras)
                mask_w = data_mod.as_rows(outs[i], ys[i], None, masks[i])[2]
            for m in ms:
                if mask_w is None:
                    m.update_state(y_true, y_pred)
                else:
                    m.update_state(y_true, y_pred, sample_weight=mask_w)
            for m in wms:
                m.update_state(y_true, y_pred, sample_weight=sw)

    def _logs(self):
        """The running loss and metrics: under DataParallel those the last step reduced
        across ranks (equal on every rank), else this process's."""
        if self._dp_logs is not None and active_distribution() is not None:
            return dict(self._dp_logs)
        return self._local_logs()

    def _local_logs(self):
        count = self._loss_count
        logs = {"loss": self._loss_sum / count if count else 0.0}
        cl = self._compiled_loss
        if cl is not None and cl.multi:
            for name, loss, s in zip(cl.names, cl.losses, self._out_loss_sums):
                if loss is not None:
                    logs[f"{name}_loss"] = s / count if count else 0.0
        for m in self.metrics:
            r = m.result()  # an array for per-class / per-threshold metrics (F1Score, ...)
            logs[m.name] = float(r) if np.ndim(r) == 0 else np.asarray(r, dtype=np.float64)
        return logs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras 3's ``compute_loss`` for an overridden ``train_step``: the compiled loss
        plus regularization, differentiable inside a ``GradientTape``
        (:mod:`pynn.trainers.custom_steps`)."""
        return custom_steps.compute_loss(self, x, y, y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras 3's ``compute_metrics``: update the loss tracker and the compiled metrics;
        returns the logs."""
        return custom_steps.compute_metrics(self, x, y, y_pred, sample_weight)

    def test_step(self, data):
        """One evaluation step on one batch (Keras's ``test_step``; override it to
        customise ``evaluate``): ``data`` as in :meth:`train_step`. Returns the logs."""
        x, y, sw = (tuple(data) + (None,))[:3]
        xs = data_mod.by_name(x, self.input_names, "x")
        ys = data_mod.by_name(y, self.output_names, "y")
        with self._forward_lock():
            self._sync()
            self._test_step(xs, ys, sw, self._fused())
        return self._logs()

    def train_step(self, data):
        """One optimizer step on one batch already in the model's dtypes (Keras's
        ``train_step``): ``data`` is ``(x, y)`` or ``(x, y, sample_weight)`` with ``x``
        and ``y`` arrays, lists or dicts as ``fit`` takes them. Returns the logs.
        No conversion or checking beyond matching the structure: ``fit`` and
        :meth:`train_on_batch` check the data; this is the bare step they run."""
        x, y, sw = (tuple(data) + (None,))[:3]
        xs = data_mod.by_name(x, self.input_names, "x")
        ys = data_mod.by_name(y, self.output_names, "y")
        with self._forward_lock():
            self._sync()
            self._ensure_optimizer()
            self._train_step(xs, ys, sw, self._fused())
        return self._logs()

    # ------------------------------------------------------------------------------------
    # fit / evaluate / predict
    # ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns the :class:`~pynn.callbacks.History`.

        ``x`` is array data (with ``y``; ``batch_size`` defaults to 32), or a source of
        whole batches: a :class:`pynn.utils.PyDataset`, a generator or another iterable
        of ``(x, y)`` / ``(x, y, sample_weight)`` batches (see
        :mod:`pynn.trainers.data_adapters`; how epochs and ``steps_per_epoch`` walk
        through them: :mod:`pynn.trainers.epoch_iterator`). ``validation_split`` holds
        out the LAST fraction of the arrays (before shuffling), as Keras does;
        ``validation_data`` (``(x, y)``, ``(x, y, sample_weight)`` or a batch source,
        read for ``validation_steps`` batches) takes precedence. ``class_weight`` maps
        class indices to weights of the training samples. Epoch logs hold ``loss``, the
        metrics and their ``val_`` counterparts (on the epochs ``validation_freq``
        names: every n-th, or a list of 1-based epochs).

        Threads: every step holds the model's lock, so ``get_weights``/``save`` from
        another thread see the weights between two steps; a second ``fit`` of the same
        model while one runs is refused with ``RuntimeError``.
        """
        with _LOCK_CREATION:
            other = self.__dict__.get("_fit_thread")
            if other is not None:
                raise RuntimeError(
                    f"fit: model {self.name!r} is already being trained by `fit` in thread "
                    f"{other!r}; two fits of one model are refused (their steps would "
                    f"interleave). Wait for it, or train a copy of the model.")
            self._fit_thread = threading.current_thread().name
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, shuffle, class_weight, sample_weight,
                             initial_epoch, steps_per_epoch, validation_steps,
                             validation_batch_size, validation_freq)
        finally:
            self._fit_thread = None

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, class_weight, sample_weight, initial_epoch,
             steps_per_epoch, validation_steps, validation_batch_size, validation_freq):
        from ..callbacks import CallbackList
        if batch_size is not None:
            batch_size = data_mod.check_batch_size(batch_size)
        if validation_batch_size is not None:
            validation_batch_size = data_mod.check_batch_size(validation_batch_size)
        for nm, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"{nm}: expected a non-negative integer, got {v!r}")
        try:
            validation_split = float(validation_split)
        except (TypeError, ValueError):
            raise ValueError(f"validation_split: expected a float in [0, 1), got "
                             f"{validation_split!r}") from None
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split: expected a float in [0, 1), got "
                             f"{validation_split!r}")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"shuffle: expected True, False or 'batch', got {shuffle!r}")
        self._should_validate(0, validation_freq)  # checks the argument
        verbose = data_mod.resolve_verbose(verbose)
        train, val = adapters.fit_adapters(
            self, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
            validation_split, validation_data, validation_batch_size, validation_steps)
        train = EpochIterator(train, steps_per_epoch)
        if val is not None:
            val = EpochIterator(val, validation_steps, "validation_steps")
        steps = train.num_batches

        if not isinstance(callbacks, CallbackList):
            callbacks = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                     model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        lock = self._forward_lock()
        fused = None
        custom_train = custom_steps.overrides(self, "train_step")
        callbacks.on_train_begin()
        # BackupAndRestore sets where an interrupted fit resumes (Keras's _initial_epoch)
        initial_epoch = self.__dict__.pop("_initial_epoch", None) or initial_epoch
        dp = active_distribution()
        if dp is not None:  # rank 0's weights, optimizer state and epoch everywhere
            initial_epoch = data_parallel_step.begin_fit(self, dp, initial_epoch)
        logs = {}
        epoch_logs = {}
        try:
            with StepGuard() as guard:
                for epoch in range(initial_epoch, epochs):
                    self.reset_metrics()
                    callbacks.on_epoch_begin(epoch)
                    logs = None
                    with contextlib.closing(train.epoch()) as batches:
                        for step, (xbs, ybs, swb) in batches:
                            callbacks.on_train_batch_begin(step)
                            with lock:
                                guard.in_step = True
                                self._sync()
                                self._ensure_optimizer()
                                if fused is None:
                                    fused = self._fused()
                                if custom_train:
                                    loss, logs = custom_steps.run_step(self, "train_step",
                                                                       xbs, ybs, swb)
                                else:
                                    loss = self._train_step(xbs, ybs, swb, fused)
                                    logs = None
                                guard.end_step()
                            logs = logs if custom_train else self._logs()
                            if not math.isfinite(loss):
                                self._stop_on_nonfinite_loss(loss, epoch, epochs, step, steps)
                                logs["loss"] = loss
                                callbacks.on_train_batch_end(step, logs)
                                break
                            callbacks.on_train_batch_end(step, logs)
                            if self.stop_training:
                                break
                    if logs is None:  # the data gave no batch: it is spent (warned)
                        self.stop_training = True
                        break
                    epoch_logs = dict(logs)
                    if val is not None and self._should_validate(epoch, validation_freq):
                        val.reset()
                        with lock:
                            val_logs = self._test_loop(val, callbacks, fused)
                        if val_logs is not None:
                            epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                    callbacks.on_epoch_end(epoch, epoch_logs)
                    if self.stop_training:
                        break
        except KeyboardInterrupt:
            # Ctrl-C: the weights are those of the last finished step (a SIGINT during a
            # step is deferred to its end by StepGuard); the History holds every finished
            # epoch. Keras semantics: on_train_end is not called; re-raise.
            if callbacks.history is not None:
                self.history = callbacks.history
            raise
        if self.optimizer.built:
            with lock:  # Keras: an optimizer with use_ema leaves its moving averages
                self.optimizer.finalize_variable_values()
        callbacks.on_train_end(epoch_logs)
        if callbacks.history is not None:
            self.history = callbacks.history
        return self.history

    def _forward_lock(self):
        """The model's re-entrant lock around every pass (contexts hold workspaces)."""
        lock = self.__dict__.get("_fwd_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.get("_fwd_lock")
                if lock is None:
                    lock = self._fwd_lock = threading.RLock()
        return lock

    def _stop_on_nonfinite_loss(self, loss, epoch, epochs, step, steps):
        """A NaN/Inf training loss: stop like Keras's TerminateOnNaN, with a warning.

        Keras semantics (``stop_training``, no exception): the batch and epoch logs of
        the aborted epoch carry the non-finite ``loss`` (so the History shows it) and
        ``on_epoch_end``/``on_train_end`` run as after any stop. Unlike Keras, the
        offending step's optimizer update is NOT applied (``_train_step`` checks the
        loss first), so the weights are those of the last finished step, not NaN.
        """
        self.stop_training = True
        state = "so the weights are those of the previous step"
        be = self._backend
        params = self._layout.params
        if params is not None and not be.all_finite(params):
            # a previous update overflowed (finite loss, non-finite gradient): say so
            state = ("but the weights already hold NaN/Inf from an earlier update whose "
                     "gradient overflowed; restore them from a checkpoint")
        warnings.warn(f"fit: the training loss became {loss} at epoch {epoch + 1}/{epochs}, "
                      f"step {step + 1}{'' if steps is None else f'/{steps}'} (1-based); "
                      f"training stopped and that step's "
                      f"update was not applied, {state}. Lower the learning rate or check "
                      f"the data.", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _should_validate(epoch, freq):
        if isinstance(freq, numbers.Integral) and not isinstance(freq, bool):
            if freq <= 0:
                raise ValueError(f"validation_freq: expected a positive integer, got {freq}")
            return (epoch + 1) % freq == 0
        try:
            return (epoch + 1) in freq
        except TypeError:
            raise ValueError(f"validation_freq: expected an int or a list of epochs, got "
                             f"{freq!r}") from None

    def _test_loop(self, batches, callbacks, fused):
        """One pass of ``batches`` (an :class:`EpochIterator`); the logs, or None when
        the data gave no batch."""
        self.reset_metrics()
        callbacks.on_test_begin()
        logs = None
        with contextlib.closing(batches.epoch()) as epoch:
            for step, (xbs, ybs, swb) in epoch:
                callbacks.on_test_batch_begin(step)
                self._sync()
                if fused is None:
                    fused = self._fused()
                if custom_steps.overrides(self, "test_step"):
                    _, logs = custom_steps.run_step(self, "test_step", xbs, ybs, swb)
                else:
                    self._test_step(xbs, ybs, swb, fused)
                    logs = self._logs()
                callbacks.on_test_batch_end(step, logs)
        if logs is None:
            return None
        logs = self._logs()
        callbacks.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss (and metrics) on ``(x, y)``: a float, ``[loss, *metrics]`` or a dict.

        ``x`` may be a batch source as for :meth:`fit`; ``steps`` limits the pass to
        that many batches."""
        from ..callbacks import CallbackList
        if batch_size is not None:
            batch_size = data_mod.check_batch_size(batch_size)
        verbose = data_mod.resolve_verbose(verbose)
        batches = EpochIterator(adapters.get_adapter(self, x, y, sample_weight,
                                                     batch_size=batch_size, steps=steps,
                                                     what="evaluate"), steps, "steps")
        if not isinstance(callbacks, CallbackList):
            callbacks = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=1, steps=batches.num_batches)
        with self._forward_lock():
            logs = self._test_loop(batches, callbacks, None)
        if logs is None:
            raise ValueError("evaluate: x gave no batch (an exhausted generator?)")
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return dict(logs)
        names = self._result_names()
        if len(names) == 1:
            return logs["loss"]
        return [logs[k] for k in names]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for ``x``, computed in batches: a NumPy array of the model dtype
        (a list of arrays for a model with several outputs).

        ``x`` may be a batch source as for :meth:`fit` (a batch's targets, if any, are
        ignored); ``steps`` limits the pass to that many batches.

        Under :class:`pynn.distribution.DataParallel`, array ``x`` is split into one
        contiguous block of rows per rank, and EVERY rank returns the whole result in
        the order of ``x``. A batch source is not split: each rank predicts its own."""
        dp = active_distribution()
        if dp is not None and dp.auto_shard_dataset and not adapters.is_batch_source(x):
            return data_parallel_step.predict(self, dp, x, batch_size, verbose, steps,
                                              callbacks)
        if adapters.is_batch_source(x):
            return self._predict_batches(x, batch_size, verbose, steps, callbacks)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps <= 0):
            raise ValueError(f"steps: expected a positive integer or None, got {steps!r}")
        verbose = data_mod.resolve_verbose(verbose)
        lock = self._forward_lock()  # contexts reuse their workspaces
        with lock:
            xs = data_mod.prepare_inputs(self, x)
            n = xs[0].shape[0]
            batch_size = adapters.array_batch_size(batch_size, n, steps)
            if steps is not None:
                if steps * batch_size < n:
                    n = steps * batch_size
                    xs = [xa[:n] for xa in xs]
                elif -(-n // batch_size) < steps:
                    warnings.warn(RAN_OUT, UserWarning, stacklevel=2)
            results = self._new_results(n, xs)
        # with nothing listening (no callbacks, verbose=0) no callback machinery is built,
        # and one batch is one call: single-sample predict stays cheap
        if callbacks is None and verbose == 0 and 0 < n <= batch_size:
            with lock:
                self._sync()
                self._predict_into(xs, results)
            return self._pack_outputs(results)
        callbacks = self._predict_callbacks(callbacks, verbose, -(-n // batch_size))
        if callbacks is not None:
            callbacks.on_predict_begin()
        for step, start in enumerate(range(0, n, batch_size)):
            stop = min(n, start + batch_size)
            if callbacks is not None:
                callbacks.on_predict_batch_begin(step)
            with lock:
                self._sync()  # a callback may have switched backends or frozen layers
                self._predict_into([xa[start:stop] for xa in xs],
                                   [r[start:stop] for r in results])
            if callbacks is not None:
                callbacks.on_predict_batch_end(
                    step, {"outputs": self._pack_outputs([r[start:stop] for r in results])})
        if callbacks is not None:
            callbacks.on_predict_end()
        return self._pack_outputs(results)

    def _predict_callbacks(self, callbacks, verbose, steps):
        if callbacks is None and verbose == 0:
            return None
        from ..callbacks import CallbackList
        if isinstance(callbacks, CallbackList):
            return callbacks
        return CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                            epochs=1, steps=steps)

    def _predict_batches(self, x, batch_size, verbose, steps, callbacks):
        """:meth:`predict` of a batch source: each batch's outputs, concatenated."""
        verbose = data_mod.resolve_verbose(verbose)
        batches = EpochIterator(adapters.get_adapter(self, x, batch_size=batch_size,
                                                     what="predict", targets=False),
                                steps, "steps")
        callbacks = self._predict_callbacks(callbacks, verbose, batches.num_batches)
        lock = self._forward_lock()
        parts = []
        if callbacks is not None:
            callbacks.on_predict_begin()
        with contextlib.closing(batches.epoch()) as epoch:
            for step, (xbs, _, _) in epoch:
                if callbacks is not None:
                    callbacks.on_predict_batch_begin(step)
                with lock:
                    self._sync()
                    out = self._predict_into(xbs, self._new_results(xbs[0].shape[0], xbs))
                parts.append(out)
                if callbacks is not None:
                    callbacks.on_predict_batch_end(step, {"outputs": self._pack_outputs(out)})
        if callbacks is not None:
            callbacks.on_predict_end()
        if not parts:
            raise ValueError("predict: x gave no batch (an exhausted generator?)")
        return self._pack_outputs([np.concatenate(col) for col in zip(*parts)])

    def _pack_outputs(self, arrays):
        return arrays[0] if len(arrays) == 1 else list(arrays)

    def _predict_into(self, xs, dsts):
        """Inference on one batch into ``dsts`` (host arrays of the outputs' shapes).

        A model whose inference is a chain of Dense layers runs as ONE backend call
        that writes the last layer's output straight into the destination."""
        plan = self._fast_path.inference_plan() if len(xs) == 1 else None
        xb, dst = xs[0], dsts[0]
        if plan is None or xb.ndim != 2 or dst.ndim != 2 or not dst.flags.c_contiguous:
            be = self._backend
            xin = xs if be.host_memory else [be.asarray(a) for a in xs]
            outs = self._run_forward(self._root_ctx, xin, False, None)
            for d, o in zip(dsts, outs):
                d[...] = be.to_numpy(o)
            return dsts
        self._fast_path.forward_into(plan, xb, dst)
        return dsts

    def _inference(self, xs, fused):
        """The outputs of one batch at inference (an output's logits where ``fused``):
        one fused call for a chain of Dense layers, else node by node."""
        plan = self._fast_path.inference_plan() if len(xs) == 1 else None
        self._root_ctx.output_mask = None
        if plan is None or xs[0].ndim != 2:
            return self._run_forward(self._root_ctx, xs, False, fused)
        dst = self._buffer("inference", (xs[0].shape[0], plan[0][-1].shape[1]))
        return [self._fast_path.forward_into(plan, xs[0], dst, fused[0] if fused else False)]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False, reset_metrics=True):
        """One gradient step on one batch; the loss and metrics of that batch.

        Keras 3 resets the metrics before every call; ``reset_metrics=False`` (Keras 2's
        argument) keeps the running means across calls instead."""
        xs, ys, sw = self._prepare_xy(x, y, sample_weight, class_weight)
        if xs[0].shape[0] == 0:
            raise ValueError("train_on_batch: x is empty (0 samples)")
        self._ensure_optimizer()
        if reset_metrics:
            self.reset_metrics()
        with self._forward_lock():
            self._sync()
            loss = self._train_step(xs, ys, sw, self._fused())
        logs = self._logs()
        if not math.isfinite(loss):
            warnings.warn(f"train_on_batch: the loss is {loss}; the weights were not updated",
                          RuntimeWarning, stacklevel=2)
            logs["loss"] = loss
        return self._format_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False,
                      reset_metrics=True):
        """Loss and metrics on one batch (the metrics are reset first, as in Keras 3;
        ``reset_metrics=False`` keeps the running means across calls)."""
        xs, ys, sw = self._prepare_xy(x, y, sample_weight)
        if xs[0].shape[0] == 0:
            raise ValueError("test_on_batch: x is empty (0 samples)")
        if reset_metrics:
            self.reset_metrics()
        with self._forward_lock():
            self._sync()
            self._test_step(xs, ys, sw, self._fused())
        return self._format_result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch, as a NumPy array (a list for several outputs)."""
        with self._forward_lock():
            xs = data_mod.prepare_inputs(self, x)
            results = self._new_results(xs[0].shape[0], xs)
            self._predict_into(xs, results)
        return self._pack_outputs(results)

    def _new_results(self, n, xs):
        """Host arrays for ``n`` samples of every output. An output with axes of unknown
        size (a model on ``Input((None,))`` returning sequences) takes their sizes from a
        one-sample run on ``xs``."""
        shapes = [tuple(s[1:]) for s in self._output_shapes()]
        if n and any(d is None for s in shapes for d in s):
            self._sync()
            be = self._backend
            outs = self._run_forward(self._root_ctx, [be.asarray(a[:1]) for a in xs], False,
                                     None)
            shapes = [tuple(o.shape[1:]) for o in outs]
        return [np.empty((n,) + tuple(0 if d is None else d for d in s),
                         dtype=np.dtype(self._dtype)) for s in shapes]
