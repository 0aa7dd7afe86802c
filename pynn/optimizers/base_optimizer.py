"""The optimizer base class: state, clipping, weight decay, EMA, config (Keras 3's
``optimizers/base_optimizer.py``). Each update rule is a subclass in its own module.

Every update runs through backend ops (``sgd_update``, ``adam_update``,
``rmsprop_update``, ``adagrad_update``; ``sum_squares``/``scale_``/``clip_`` for
gradient clipping), except the rules no backend op implements: ``Nadam``, ``Adamax``,
``Adadelta``, ``Lion``, ``Adam(amsgrad=True)`` and ``RMSprop(momentum > 0 or
centered=True)`` update in NumPy, in place over the same (flat) buffers, on host-memory
backends only (:attr:`Optimizer._numpy_rule`; :func:`host_grad` starts such a step).
State arrays are allocated through the backend.

Usage by a model::

    opt = pynn.optimizers.get("adam")
    opt.build(params, backend, flat_param=flat)   # params: views into ``flat``
    ...
    opt.apply(grads, params, flat_grad=flat_g)    # one step, in place

When the model hands over flat buffers holding every trainable parameter (and
their gradients) with ``params[i]`` / ``grads[i]`` consecutive views into them,
the whole update is ONE backend call over the flat buffer; per-variable
clipping (``clipnorm``) and ``exclude_from_weight_decay`` still work (they touch
the per-parameter views first). Gradients may be modified in place by clipping.

A model whose layers are a plain Dense stack runs the stock SGD, Adam and AdamW step
inside the backend's fused training step instead (``Optimizer._stack_rule``; the same
arithmetic per parameter, except that compiled backends fold plain SGD into the
weight-gradient product, rounding once instead of twice; ``iterations`` counted the
same), unless clipping, weight
regularizers, ``amsgrad``, decay exclusions or a subclass's own ``apply``/``_update``
need the separate call.

Step semantics follow Keras: clipping, then decoupled weight decay
``p -= p * lr * weight_decay``, then the update; the learning rate (a schedule is
evaluated at ``iterations``, the number of steps done) is read once per step,
and ``iterations`` is incremented after the update.

Hyper-parameters are finite and in range wherever they enter: each class lists its
own in ``_HYPER`` (attribute -> :class:`~pynn.backends.validation.Range`), checked
whenever the attribute is set (constructor, assignment, ``from_config``); the
learning rate is checked when set and, from a schedule or callable, each time it is
read; ``iterations`` and the state arrays when set (:meth:`Optimizer.set_state`).
Subclass constructors take their own hyper-parameters and pass the shared ones
(``weight_decay``, clipping, EMA, ``name``) on as keywords.
"""
from __future__ import annotations

import math
import numbers
import re

import numpy as np

from ..backends.validation import COUNT, NONNEGATIVE, POSITIVE, UNIT, UNIT_OPEN, Range, \
    check_hyper
from . import schedules
from .schedules import LearningRateSchedule


#: A hyper-parameter that may be left unset (``None``), else a finite number >= 0.
_OPTIONAL_NONNEGATIVE = Range(0.0, optional=True)
#: (0, 1]: Lion's beta_1 (0 would make it SignSGD).
UNIT_LOW_OPEN = Range(0.0, 1.0, low_open=True)
#: ``None`` or an integer >= 1 (``ema_overwrite_frequency``).
_OPTIONAL_PERIOD = Range(1, integer=True, optional=True)
#: Keras optimizer arguments pynn does not implement: accepted (from a Keras config)
#: only at their default ``None``.
_UNSUPPORTED_KERAS_ARGS = ("loss_scale_factor", "gradient_accumulation_steps")


def default_name(cls_name):
    """Keras's default optimizer name: the class name in snake case
    (``SGD`` -> ``sgd``, ``RMSprop`` -> ``rm_sprop``, ``AdamW`` -> ``adam_w``).
    Keras also appends ``_1``, ``_2``, ... to repeated names within a process;
    pynn does not."""
    name = re.sub(r"\W+", "", cls_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def host_grad(param, grad, lr, weight_decay):
    """Start a NumPy update rule's step: apply Keras's decoupled weight decay
    ``p -= p * lr * wd`` to ``param`` in place and return ``grad`` as an array of
    ``param``'s dtype."""
    if weight_decay:
        param -= param * (lr * weight_decay)
    return np.asarray(grad, dtype=param.dtype)


class Optimizer:
    """Base class of optimizers.

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable
        A callable that is not a schedule is called with no arguments each step.
    weight_decay : float, optional
        Decoupled weight decay applied before each update: ``p -= p * lr * wd``.
    clipnorm : float, optional
        Each gradient is rescaled so its L2 norm is at most ``clipnorm``.
    clipvalue : float, optional
        Each gradient is clipped to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        All gradients are rescaled together so their joint L2 norm is at most
        ``global_clipnorm``. Only one of the three clipping options may be set.
    use_ema : bool
        Keep Keras's exponential moving average of the parameters: after each step
        ``average = m * average + (1 - m) * p`` (``m = ema_momentum``, 0 at the first
        step). :meth:`finalize_variable_values` (called at the end of ``fit``) copies
        the averages into the parameters.
    ema_momentum : float
        In [0, 1] (default 0.99).
    ema_overwrite_frequency : int, optional
        With ``use_ema``: copy the averages into the parameters every this many steps.
    name : str, optional
        Defaults to Keras's: the class name in snake case (:func:`default_name`).
    """

    #: Names of the per-parameter state slots (set by subclasses).
    _slots = ()
    #: The rule's own hyper-parameters (attributes), saved by :meth:`get_config`.
    _CONFIG = ()
    #: State slots that can never be negative (second moments); set_state checks them.
    _nonnegative_slots = ()
    #: Hyper-parameter attribute -> where it may lie, checked whenever it is set.
    _HYPER = {"weight_decay": _OPTIONAL_NONNEGATIVE, "clipnorm": _OPTIONAL_NONNEGATIVE,
              "clipvalue": _OPTIONAL_NONNEGATIVE, "global_clipnorm": _OPTIONAL_NONNEGATIVE,
              "ema_momentum": UNIT, "ema_overwrite_frequency": _OPTIONAL_PERIOD}

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, name=None):
        given = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in given.values()) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.name = name if name is not None else default_name(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = bool(use_ema)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self._learning_rate = None
        self.learning_rate = learning_rate
        self._iterations = 0
        self._exclude_vars = []
        self._exclude_names = []
        self.built = False
        self._backend = None
        self._params = []
        self._names = None
        self._flat_param = None
        self._flat_state = {}
        self._state = {}
        self._decay_mask = []

    def __setattr__(self, name, value):
        where = type(self)._HYPER.get(name)
        if where is not None:
            value = check_hyper(f"{type(self).__name__}.{name}", value, where)
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------
    # learning rate and step count
    # ------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate of the next step, as a float (a schedule's or a
        callable's value is checked each time: finite and >= 0)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return check_hyper(f"{type(self).__name__}.learning_rate from "
                               f"{type(lr).__name__} at step {self._iterations}",
                               lr(self._iterations), NONNEGATIVE)
        if callable(lr):
            return check_hyper(f"{type(self).__name__}.learning_rate from {lr!r}", lr(),
                               NONNEGATIVE)
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule) or (callable(value) and
                                                       not isinstance(value, (int, float))):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument.")
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray)):
            raise TypeError(f"learning_rate must be a float, a LearningRateSchedule or a "
                            f"callable, got {value!r}")
        self._learning_rate = check_hyper(f"{type(self).__name__}.learning_rate", value,
                                          NONNEGATIVE)

    @property
    def iterations(self):
        """Number of update steps applied so far."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = check_hyper(f"{type(self).__name__}.iterations", value, COUNT)

    # ------------------------------------------------------------------
    # weight decay exclusions
    # ------------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude parameters from weight decay.

        Parameters
        ----------
        var_list : list of arrays, optional
            Parameter arrays (as passed to :meth:`build`) to exclude.
        var_names : list of str, optional
            Regular expressions searched in the parameter names the model passes
            to :meth:`build` (e.g. ``'bias'``).
        """
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the "
                             "optimizer is built.")
        self._exclude_vars = list(var_list or [])
        self._exclude_names = list(var_names or [])

    def _use_weight_decay(self, i, param):
        if any(param is v for v in self._exclude_vars):
            return False
        if self._exclude_names and self._names is not None:
            name = self._names[i]
            if any(re.search(pat, name) for pat in self._exclude_names):
                return False
        return True

    # ------------------------------------------------------------------
    # build and apply
    # ------------------------------------------------------------------
    def build(self, params, backend=None, flat_param=None, names=None):
        """Allocate the optimizer state for ``params``.

        Parameters
        ----------
        params : list of arrays
            The trainable parameters, updated in place by :meth:`apply`.
        backend : Backend, optional
            Defaults to the active backend.
        flat_param : array, optional
            One 1-D buffer holding all of ``params`` back to back, in list order
            (``params[i]`` being views into it). Enables the one-call update.
        names : list of str, optional
            Parameter names (e.g. ``'dense/kernel'``) for ``exclude_from_weight_decay``.

        Notes
        -----
        Building an optimizer that is already built (``compile`` called again with
        the same instance, or a model whose weights were re-laid out) continues its
        training when the new parameters have the same shapes, in the same order, as
        the old ones: the state arrays keep their values and ``iterations`` its
        count (Keras continues likewise). Over parameters of other shapes both start
        afresh: new state, ``iterations`` 0.
        """
        if backend is None:
            from ..backends import get_backend
            backend = get_backend()
        params = list(params)
        if names is not None:
            names = list(names)
            if len(names) != len(params):
                raise ValueError(f"build: got {len(names)} names for {len(params)} parameters")
        if self._numpy_rule and not backend.host_memory:
            raise NotImplementedError(f"{type(self).__name__}: this update rule runs in NumPy, on "
                                      f"host-memory backends only, not on {backend.name!r}")
        if self._exclude_names and names is None:
            raise ValueError("exclude_from_weight_decay(var_names=...) needs parameter names: "
                             "pass names=... to Optimizer.build")
        previous = self._host_state() if self.built else None
        same_shapes = previous is not None and \
            [tuple(p.shape) for p in params] == [tuple(p.shape) for p in self._params]
        self._backend = backend
        self._params = params
        self._names = names
        self._flat_param = None
        self._flat_state = {}
        self._state = {slot: [] for slot in self._state_slots}
        offsets = None
        if flat_param is not None:
            offsets = self._check_flat(params, flat_param)
            self._flat_param = flat_param
            for slot in self._state_slots:
                self._flat_state[slot] = self._slot_state(backend, slot, flat_param.shape,
                                                          flat_param.dtype)
        for i, p in enumerate(params):
            for slot in self._state_slots:
                if offsets is not None:
                    o = offsets[i]
                    arr = self._flat_state[slot][o:o + p.size].reshape(p.shape)
                else:
                    arr = self._slot_state(backend, slot, p.shape, p.dtype)
                self._state[slot].append(arr)
        self._decay_mask = [self._use_weight_decay(i, p) for i, p in enumerate(params)]
        self.built = True
        if same_shapes:  # continue: the same state values, the same step count
            for slot, arrays in self._state.items():
                for arr, old in zip(arrays, previous.get(slot, ())):
                    backend.copy_(backend.asarray(old, dtype=arr.dtype), arr)
        elif previous is not None:
            self._iterations = 0

    #: Whether the update runs in NumPy (no backend op implements it), which needs a
    #: host-memory backend (a subclass sets it, or makes it a property).
    _numpy_rule = False

    @property
    def _state_slots(self):
        """Every state slot: the update rule's (:attr:`_slots`), then the moving
        average of the parameters with ``use_ema``."""
        return self._slots + (("average",) if self.use_ema else ())

    def _host_state(self):
        """Host copies of the state arrays, slot by slot."""
        be = self._backend
        return {s: [np.array(be.to_numpy(a)) for a in self._state.get(s, [])]
                for s in self._state_slots}

    def _slot_state(self, backend, slot, shape, dtype):
        """A new state array of ``slot``: the moving average starts at zero (the
        first step sets it), the rule's slots where :meth:`_new_state` says."""
        if slot == "average":
            return backend.zeros(shape, dtype=dtype)
        return self._new_state(backend, shape, dtype)

    def _new_state(self, backend, shape, dtype):
        """A zero-filled state array (subclasses may start elsewhere)."""
        return backend.zeros(shape, dtype=dtype)

    @staticmethod
    def _check_flat(params, flat):
        """Offsets of ``params`` in ``flat``; they must tile it in list order."""
        if getattr(flat, "ndim", None) != 1:
            raise ValueError(f"flat_param: expected a 1-D array, got shape "
                             f"{getattr(flat, 'shape', None)}")
        offsets, o = [], 0
        for i, p in enumerate(params):
            if p.dtype != flat.dtype:
                raise ValueError(f"params[{i}]: dtype {p.dtype} differs from flat_param's "
                                 f"{flat.dtype}")
            offsets.append(o)
            o += p.size
        if o != flat.size:
            raise ValueError(f"flat_param holds {flat.size} values but the parameters hold {o}; "
                             "it must contain exactly the trainable parameters")
        if isinstance(flat, np.ndarray):
            base = flat.__array_interface__["data"][0]
            for i, (p, off) in enumerate(zip(params, offsets)):
                if (not isinstance(p, np.ndarray) or
                        p.__array_interface__["data"][0] != base + off * flat.itemsize or
                        not p.flags.c_contiguous):
                    raise ValueError(f"params[{i}] (shape {p.shape}) is not the view of "
                                     f"flat_param at offset {off}")
        return offsets

    def apply_gradients(self, grads_and_vars):
        """Keras's ``apply_gradients(zip(grads, variables))``."""
        pairs = list(grads_and_vars)
        return self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def apply(self, grads, params=None, flat_grad=None, present=None):
        """Apply one update step in place.

        Parameters
        ----------
        grads : list of arrays
            One gradient per parameter (may be rescaled/clipped in place); None for a
            parameter without one (it is skipped, as in Keras).
        params : list of arrays, optional
            The parameters; the optimizer is built on them at the first call.
        flat_grad : array, optional
            The flat buffer ``grads`` are views of (used when built with
            ``flat_param``): the update then runs as one backend call.
        present : list of bool, optional
            Which parameters have a gradient this step (None: all). The others, whose
            ``grads`` entries must hold zeros, are left untouched, their optimizer
            state included, as Keras skips the variables whose gradient is None.
        """
        grads = [g if g is None or isinstance(g, np.ndarray)
                 else np.asarray(getattr(g, "value", g)) for g in grads]
        if params is not None:  # layer weights (Keras's variables) update their values
            params = [getattr(p, "value", p) for p in params]
        if not self.built:
            if params is None:
                raise ValueError("apply: the optimizer is not built; pass params or call build()")
            self.build(params)
        if len(grads) != len(self._params):
            raise ValueError(f"apply: got {len(grads)} gradients for {len(self._params)} "
                             "parameters")
        if any(g is None for g in grads):  # Keras: a None gradient leaves its variable be
            have = [g is not None for g in grads]
            present = have if present is None else [a and b for a, b in zip(present, have)]
            grads = [self._backend.zeros(p.shape, p.dtype) if g is None else g
                     for g, p in zip(grads, self._params)]
            flat_grad = None
        be = self._backend
        lr = self.learning_rate
        flat = self._flat_param is not None and flat_grad is not None
        if flat and flat_grad.shape != self._flat_param.shape:
            raise ValueError(f"flat_grad: expected shape {self._flat_param.shape}, got "
                             f"{flat_grad.shape}")
        if present is not None:
            if len(present) != len(grads):
                raise ValueError(f"apply: present has {len(present)} flags for "
                                 f"{len(grads)} parameters")
            if all(present):
                present = None
            else:
                flat = False  # the one flat call would move every parameter
        self._clip(be, grads, flat_grad if flat else None)
        self._begin_step()
        wd = float(self.weight_decay or 0.0)
        if flat:
            if wd and not all(self._decay_mask):
                for p, use in zip(self._params, self._decay_mask):
                    if use:
                        be.scale_(p, 1.0 - lr * wd)
                wd = 0.0
            state = [self._flat_state[s] for s in self._slots]
            self._update(be, self._flat_param, flat_grad, state, lr, wd)
        else:
            for i, (p, g) in enumerate(zip(self._params, grads)):
                if present is not None and not present[i]:
                    continue
                state = self._param_state(i)
                self._update(be, p, g, state, lr, wd if self._decay_mask[i] else 0.0)
        self._end_step()

    def _clip(self, be, grads, flat_grad):
        if self.clipnorm:
            c = float(self.clipnorm)
            for g in grads:
                norm = math.sqrt(be.sum_squares(g))
                if norm > c:
                    be.scale_(g, c / norm)
        elif self.global_clipnorm:
            c = float(self.global_clipnorm)
            if flat_grad is not None:
                ss = be.sum_squares(flat_grad)
            else:
                ss = sum(be.sum_squares(g) for g in grads)
            norm = math.sqrt(ss)
            # Keras: scale = c * min(1 / norm, 1 / c); NaN when the norm is not finite
            scale = float("nan") if not math.isfinite(norm) else (c / norm if norm > c else 1.0)
            if scale != 1.0:
                for g in ([flat_grad] if flat_grad is not None else grads):
                    be.scale_(g, scale)
        elif self.clipvalue:
            v = float(self.clipvalue)
            for g in ([flat_grad] if flat_grad is not None else grads):
                be.clip_(g, -v, v)

    def _begin_step(self):
        """Once per step, before the per-parameter updates (Nadam's momentum schedule)."""

    def _update(self, backend, param, grad, state, lr, weight_decay):
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    # ------------------------------------------------------------------
    # the update folded into a backend's fused Dense-stack step
    # ------------------------------------------------------------------
    def _stack_rule(self):
        """The next step's rule and hyperparameters as keyword arguments of
        :class:`~pynn.backends.base.StackUpdate` (without the state arrays) when the
        update can run inside the backend's fused step, else ``None``. Gradient
        clipping needs every gradient before any update, and only the stock rules
        (not a subclass's own ``_update``) fold; those cases take :meth:`apply`."""
        return None

    def _foldable(self, cls):
        # a subclass with its own apply() or _update() is called as written
        return (self.built and type(self)._update is cls._update
                and type(self).apply is Optimizer.apply
                and not (self.clipnorm or self.clipvalue or self.global_clipnorm)
                and (not self.weight_decay or all(self._decay_mask)))

    def _param_state(self, i):
        """The state arrays of parameter ``i``, slot by slot."""
        return tuple(self._state[s][i] for s in self._slots)

    def _finish_step(self):
        """End a step whose update ran inside the backend's fused step."""
        self._end_step()

    def _end_step(self):
        """After the update: Keras's moving average of the parameters (``use_ema``;
        copied into them every ``ema_overwrite_frequency`` steps), then count the step."""
        if self.use_ema:
            be = self._backend
            m = float(self.ema_momentum) if self._iterations else 0.0
            if self._flat_param is not None:
                pairs = [(self._flat_param, self._flat_state["average"])]
            else:
                pairs = zip(self._params, self._state["average"])
            for p, average in pairs:
                be.scale_(average, m)
                be.axpy_(1.0 - m, p, average)
            period = self.ema_overwrite_frequency
            if period and (self._iterations + 1) % period == 0:
                self.finalize_variable_values()
        self._iterations += 1

    def finalize_variable_values(self, var_list=None):
        """With ``use_ema``, copy the moving averages into the parameters
        (``var_list``: the parameters, in build order; default those built on).
        ``fit`` calls this when it ends, as Keras's does; without ``use_ema`` it does
        nothing."""
        if not (self.use_ema and self.built):
            return
        targets = self._params if var_list is None else list(var_list)
        if len(targets) != len(self._params):
            raise ValueError(f"finalize_variable_values: got {len(targets)} variables, the "
                             f"optimizer was built on {len(self._params)}")
        for p, average in zip(targets, self._state["average"]):
            self._backend.copy_(average, p)

    # ------------------------------------------------------------------
    # state and config
    # ------------------------------------------------------------------
    @property
    def variables(self):
        """The state arrays, slot by slot, parameter by parameter."""
        return [a for s in self._state_slots for a in self._state.get(s, [])]

    def get_state(self):
        """Host copies of the step count and every state array (for saving)."""
        be = self._backend
        out = {"iterations": np.asarray(self._iterations, dtype=np.int64)}
        for s in self._state_slots:
            for i, a in enumerate(self._state.get(s, [])):
                out[f"{s}_{i}"] = np.array(be.to_numpy(a))
        return out

    def set_state(self, state):
        """Restore what :meth:`get_state` returned (the optimizer must be built).

        Everything is checked before anything is set: ``iterations`` must be an
        integer >= 0, every state array finite, of the expected shape, and the
        second moments (:attr:`_nonnegative_slots`) never negative; a ValueError
        names the entry that is not.
        """
        if not self.built:
            raise ValueError("set_state: build the optimizer first")
        if "iterations" not in state:
            raise ValueError("set_state: missing 'iterations'")
        iterations = check_hyper("set_state: iterations", state["iterations"], COUNT)
        values = []
        for s in self._state_slots:
            for i, a in enumerate(self._state[s]):
                key = f"{s}_{i}"
                if key not in state:
                    raise ValueError(f"set_state: missing {key!r}")
                v = np.asarray(state[key])
                if v.shape != a.shape:
                    raise ValueError(f"set_state: {key} has shape {v.shape}, expected {a.shape}")
                if v.dtype.kind not in "biuf":
                    raise TypeError(f"set_state: {key} has dtype {v.dtype}, expected numbers")
                if not np.isfinite(v).all():
                    raise ValueError(f"set_state: {key} holds {np.size(v) - np.isfinite(v).sum()}"
                                     f" non-finite values")
                if s in self._nonnegative_slots and v.size and v.min() < 0:
                    raise ValueError(f"set_state: {key} holds negative values (min {v.min()}); "
                                     f"it is a second moment, never negative")
                values.append((v, a))
        self._iterations = iterations
        for v, a in values:
            self._backend.copy_(self._backend.asarray(v, dtype=a.dtype), a)

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                **{key: getattr(self, key) for key in self._CONFIG}}

    @classmethod
    def from_config(cls, config):
        """The optimizer ``config`` describes (:meth:`get_config`'s, or Keras's: its
        ``loss_scale_factor`` and ``gradient_accumulation_steps`` only when ``None``,
        as pynn implements neither)."""
        config = dict(config)
        for key in _UNSUPPORTED_KERAS_ARGS:
            value = config.pop(key, None)
            if value is not None:
                raise NotImplementedError(f"{cls.__name__}.from_config: {key} is not "
                                          f"supported (got {key}={value!r}); use None")
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} learning_rate={self.learning_rate} " \
               f"iterations={self._iterations}>"


class MomentsOptimizer(Optimizer):
    """Base of the Adam family (Adam, Nadam, Adamax): the moment decay rates
    ``beta_1``, ``beta_2`` in (0, 1) and ``epsilon`` > 0, checked and saved in the
    config. Other keywords: :class:`Optimizer`'s."""

    _HYPER = {**Optimizer._HYPER, "beta_1": UNIT_OPEN, "beta_2": UNIT_OPEN, "epsilon": POSITIVE}
    _CONFIG = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
