"""Learning-rate schedules (Keras 3 formulas), evaluated at the optimizer's step count.

An optimizer given a schedule as ``learning_rate`` calls ``schedule(iterations)``
before each update, where ``iterations`` is the number of updates already done
(so the first update uses ``schedule(0)``), and checks the rate it gets. The
constructors check their hyper-parameters: finite and in range.

Every schedule takes an int (or float) step and returns a float, or a NumPy array of
steps and returns an array of rates of the same shape (as Keras's ops do: e.g.
plotting ``schedule(np.arange(1000))``). Subclasses implement :meth:`_rate` on a
float64 array; :meth:`LearningRateSchedule.__call__` does the conversions.
"""
from __future__ import annotations

import math

import numpy as np

from ..backends.validation import FINITE, NONNEGATIVE, POSITIVE, UNIT, Range, check_hyper

__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay", "PolynomialDecay",
           "CosineDecay", "CosineDecayRestarts", "PiecewiseConstantDecay", "serialize",
           "deserialize"]


def _hyper(cls, name, value, where):
    """``value`` of ``cls``'s hyper-parameter ``name``, checked (see ``check_hyper``);
    a Python int is kept as given (configs keep ``decay_steps=1000``)."""
    checked = check_hyper(f"{cls}: {name}", value, where)
    return value if type(value) is int else checked


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float`` learning rate (an array of rates for an
    array of steps). Subclasses implement :meth:`_rate`, or override ``__call__``."""

    def __call__(self, step):
        steps = np.asarray(step)
        if steps.dtype == bool or steps.dtype.kind not in "iuf":
            raise TypeError(f"{type(self).__name__}: step must be a number or an array of "
                            f"numbers, got {step!r}")
        rates = self._rate(steps.astype(np.float64))
        return float(rates) if steps.ndim == 0 else np.asarray(rates, dtype=np.float64)

    def _rate(self, step):
        """The rate at each of ``step`` (a float64 array)."""
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _StepDecay(LearningRateSchedule):
    """Shared state of the decays driven by ``step / decay_steps`` (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name=None):
        cls = type(self).__name__
        self.initial_learning_rate = _hyper(cls, "initial_learning_rate", initial_learning_rate,
                                            NONNEGATIVE)
        self.decay_steps = _hyper(cls, "decay_steps", decay_steps, POSITIVE)
        self.decay_rate = _hyper(cls, "decay_rate", decay_rate, NONNEGATIVE)
        self.staircase = staircase
        self.name = name or type(self).__name__

    def _progress(self, step):
        p = step / float(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _rate(self, step):
        return float(self.initial_learning_rate) * float(self.decay_rate) ** self._progress(step)


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _rate(self, step):
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate)
                                                    * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``.

    Without ``cycle`` the step is capped at ``decay_steps``; with ``cycle``
    ``decay_steps`` is stretched to the first multiple above the step.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        cls = "PolynomialDecay"
        self.initial_learning_rate = _hyper(cls, "initial_learning_rate", initial_learning_rate,
                                            NONNEGATIVE)
        self.decay_steps = _hyper(cls, "decay_steps", decay_steps, POSITIVE)
        self.end_learning_rate = _hyper(cls, "end_learning_rate", end_learning_rate,
                                        NONNEGATIVE)
        self.power = _hyper(cls, "power", power, NONNEGATIVE)
        self.cycle = cycle
        self.name = name

    def _rate(self, step):
        decay_steps = float(self.decay_steps)
        if self.cycle:
            decay_steps = decay_steps * np.where(step == 0, 1.0, np.ceil(step / decay_steps))
        else:
            step = np.minimum(step, decay_steps)
        p = step / decay_steps
        init, end = float(self.initial_learning_rate), float(self.end_learning_rate)
        return (init - end) * (1.0 - p) ** float(self.power) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup (Keras 3).

    Without warmup: ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``
    with ``s = min(step, decay_steps)``. With ``warmup_target``: the rate rises
    linearly from ``initial_learning_rate`` to ``warmup_target`` over
    ``warmup_steps``, then decays from ``warmup_target`` over ``decay_steps``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        cls = "CosineDecay"
        self.initial_learning_rate = _hyper(cls, "initial_learning_rate", initial_learning_rate,
                                            NONNEGATIVE)
        self.decay_steps = _hyper(cls, "decay_steps", decay_steps, POSITIVE)
        self.alpha = _hyper(cls, "alpha", alpha, UNIT)
        self.name = name
        self.warmup_target = _hyper(cls, "warmup_target", warmup_target,
                                    Range(0.0, optional=True))
        self.warmup_steps = _hyper(cls, "warmup_steps", warmup_steps, NONNEGATIVE)

    def _decay(self, step, decay_from):
        fraction = step / float(self.decay_steps)
        cosine = 0.5 * (1.0 + np.cos(math.pi * fraction))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def _rate(self, step):
        init = float(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(np.minimum(step, float(self.decay_steps)), init)
        target = float(self.warmup_target)
        warm = float(self.warmup_steps)
        step = np.minimum(step, float(self.decay_steps) + warm)
        with np.errstate(divide="ignore", invalid="ignore"):  # warm == 0: never selected
            warming = (target - init) * (step / warm) + init
        return np.where(step < warm, warming, self._decay(step - warm, target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries = [_hyper("PiecewiseConstantDecay", f"boundaries[{i}]", b, FINITE)
                      for i, b in enumerate(boundaries)]
        values = [_hyper("PiecewiseConstantDecay", f"values[{i}]", v, NONNEGATIVE)
                  for i, v in enumerate(values)]
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: the length of boundaries should be 1 less than the "
                f"length of values; got {len(boundaries)} boundaries and {len(values)} values")
        if any(b2 < b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must be increasing, got "
                             f"{boundaries}")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def _rate(self, step):
        # values[i] where boundaries[i-1] < step <= boundaries[i]
        index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), step,
                                side="left")
        return np.asarray(self.values, dtype=np.float64)[index]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter), Keras 3's form.

    The first period lasts ``first_decay_steps``; each next one ``t_mul`` times longer,
    starting from ``m_mul`` times the previous initial rate. Within period ``i`` at
    fraction ``f`` of it: ``lr = initial * ((1 - alpha) * 0.5 * m_mul**i *
    (1 + cos(pi * f)) + alpha)``.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        cls = "CosineDecayRestarts"
        self.initial_learning_rate = _hyper(cls, "initial_learning_rate", initial_learning_rate,
                                            NONNEGATIVE)
        self.first_decay_steps = _hyper(cls, "first_decay_steps", first_decay_steps, POSITIVE)
        self.t_mul = _hyper(cls, "t_mul", t_mul, POSITIVE)
        self.m_mul = _hyper(cls, "m_mul", m_mul, NONNEGATIVE)
        self.alpha = _hyper(cls, "alpha", alpha, UNIT)
        self.name = name

    def _rate(self, step):
        fraction = step / float(self.first_decay_steps)
        t_mul = float(self.t_mul)
        if t_mul == 1.0:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:  # periods 1, t, t^2, ...: restart i begins at (1 - t^i) / (1 - t)
            restart = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
            begun = (1.0 - t_mul ** restart) / (1.0 - t_mul)
            fraction = (fraction - begun) / t_mul ** restart
        cosine = 0.5 * float(self.m_mul) ** restart * (1.0 + np.cos(math.pi * fraction))
        alpha = float(self.alpha)
        return float(self.initial_learning_rate) * ((1.0 - alpha) * cosine + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PolynomialDecay,
                                      CosineDecay, CosineDecayRestarts,
                                      PiecewiseConstantDecay)}


def serialize(schedule):
    """``{'class_name': ..., 'config': ...}`` for a schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    name = config.get("class_name")
    if name not in _SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {name!r}; expected one of "
                         f"{sorted(_SCHEDULES)}")
    return _SCHEDULES[name].from_config(dict(config.get("config") or {}))
