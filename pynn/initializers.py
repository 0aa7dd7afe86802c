"""Weight initialisers with Keras 3's names, defaults and formulas.

Every initialiser is called as ``init(shape, dtype=None, rng=None)`` and returns a
NumPy array. Values are drawn in float64 from ``rng`` (the model's
``numpy.random.Generator``, so :func:`pynn.set_seed` makes runs bit-identical) and
then cast to ``dtype`` (default :func:`pynn.floatx`). An initialiser built with an
integer ``seed`` ignores ``rng`` and returns the same values on every call, as
Keras's seeded initialisers do.

Variance scaling (Keras ``VarianceScaling``)::

    scale /= max(1, fan_in | fan_out | (fan_in + fan_out) / 2)
    truncated_normal: stddev = sqrt(scale) / .87962566103423978, cut at 2 stddev
    untruncated_normal: stddev = sqrt(scale)
    uniform: limit = sqrt(3 * scale)

``glorot_*`` = (1, fan_avg), ``he_*`` = (2, fan_in), ``lecun_*`` = (1, fan_in).
"""
from __future__ import annotations

import math

import numpy as np

from . import _config
from ._identifiers import resolve

__all__ = ["Initializer", "Constant", "Zeros", "Ones", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "compute_fans",
           "get", "serialize", "deserialize"]


def compute_fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape`` (Keras's rule)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    elif len(shape) == 2:
        fan_in, fan_out = shape
    else:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return int(fan_in), int(fan_out)


def _check_shape(shape):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        shape = (int(shape),)
    if any(s < 0 for s in shape):
        raise ValueError(f"initializer: shape must be non-negative, got {shape}")
    return shape


def _dtype(dtype):
    dt = np.dtype(dtype if dtype is not None else _config.floatx())
    if dt.kind != "f":
        raise ValueError(f"initializer: expected a float dtype, got {dt}")
    return dt


def _truncated_normal(rng, shape, mean, stddev):
    """Normal draws, redrawing any beyond two standard deviations (Keras/TF)."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return mean + stddev * z


class Initializer:
    """Base class: subclasses implement ``_draw(shape, rng) -> float64 array``."""

    #: whether the initialiser consumes randomness
    random = False

    def __init__(self, seed=None):
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def __call__(self, shape, dtype=None, rng=None):
        shape = _check_shape(shape)
        dt = _dtype(dtype)
        if self.random:
            if self.seed is not None:
                rng = np.random.default_rng(self.seed)
            elif rng is None:
                rng = _config.make_rng()
        values = self._draw(shape, rng)
        # np.asarray, not np.ascontiguousarray: a shape-() weight stays 0-d
        return np.asarray(values, dtype=dt, order="C")

    def _draw(self, shape, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed} if self.random else {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


class Constant(Initializer):
    """Fill with ``value`` (Keras default 0.0)."""

    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def _draw(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)

    def get_config(self):
        return {"value": self.value}


class Zeros(Initializer):
    """Fill with 0."""

    def _draw(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """Fill with 1."""

    def _draw(self, shape, rng):
        return np.ones(shape)


class RandomNormal(Initializer):
    """Normal distribution (Keras defaults ``mean=0.0, stddev=0.05``)."""

    random = True

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, shape, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal distribution cut at two standard deviations (redrawn)."""

    def _draw(self, shape, rng):
        return _truncated_normal(rng, shape, self.mean, self.stddev)


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)`` (Keras defaults -0.05, 0.05)."""

    random = True

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras ``VarianceScaling(scale=1.0, mode='fan_in', distribution='truncated_normal')``."""

    random = True
    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale}")
        if mode not in self._MODES:
            raise ValueError(f"VarianceScaling: mode must be one of {self._MODES}, got {mode!r}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: distribution must be one of "
                             f"{self._DISTRIBUTIONS}, got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _draw(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        scale = self.scale
        if self.mode == "fan_in":
            scale /= max(1.0, fan_in)
        elif self.mode == "fan_out":
            scale /= max(1.0, fan_out)
        else:
            scale /= max(1.0, (fan_in + fan_out) / 2.0)
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return math.sqrt(scale) * rng.standard_normal(shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _variance_preset(name, scale, mode, distribution, doc):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc, "__module__": __name__})


GlorotUniform = _variance_preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                                 "Uniform on ±sqrt(6 / (fan_in + fan_out)) (Keras default).")
GlorotNormal = _variance_preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                "Truncated normal, stddev sqrt(2 / (fan_in + fan_out)).")
HeUniform = _variance_preset("HeUniform", 2.0, "fan_in", "uniform",
                             "Uniform on ±sqrt(6 / fan_in).")
HeNormal = _variance_preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                            "Truncated normal, stddev sqrt(2 / fan_in).")
LecunUniform = _variance_preset("LecunUniform", 1.0, "fan_in", "uniform",
                                "Uniform on ±sqrt(3 / fan_in).")
LecunNormal = _variance_preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                               "Truncated normal, stddev sqrt(1 / fan_in).")


class Orthogonal(Initializer):
    """Orthogonal matrix from the QR decomposition of a normal draw, times ``gain``."""

    random = True

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def _draw(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape of rank >= 2, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain * eye`` for 2-D shapes."""

    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = float(gain)

    def _draw(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"Identity: needs a 2-D shape, got {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


_CLASSES = {c.__name__: c for c in (Constant, Zeros, Ones, RandomNormal, RandomUniform,
                                     TruncatedNormal, VarianceScaling, GlorotUniform,
                                     GlorotNormal, HeUniform, HeNormal, LecunUniform,
                                     LecunNormal, Orthogonal, Identity)}
_NAMES = {
    "constant": Constant, "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones,
    "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity,
}


def serialize(initializer):
    """``{'class_name': ..., 'config': ...}`` (Keras's layout)."""
    initializer = get(initializer)
    return {"module": "pynn.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild an initialiser from :func:`serialize`'s dict."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"initializers.deserialize: expected a dict with 'class_name', "
                         f"got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _NAMES.get(name)
    if cls is None:
        raise ValueError(f"Unknown initializer class {name!r}; expected one of "
                         f"{sorted(_CLASSES)}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """An :class:`Initializer` from a name, class, instance, config dict or callable."""
    return resolve(identifier, Initializer, _NAMES, _CLASSES, deserialize, "initializer",
                   allow_callable=True)
