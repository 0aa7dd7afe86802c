"""What ``compile`` was given, resolved per model output (Keras's ``compile_utils``).

``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` may each be one
value, a list (one entry per output) or a dict keyed by output name. With one
output, logs name metrics plainly (``accuracy``); with several, Keras's names:
``<output>_loss`` for each output's (unweighted) loss and ``<output>_<metric>``.
"""
from __future__ import annotations

import math

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .data import by_name

__all__ = ["CompileLoss", "CompileMetrics"]


def _is_serialized(arg):
    """A dict that is one serialised loss or metric (``{'class_name', 'config'}``)."""
    return isinstance(arg, dict) and "class_name" in arg


def _per_output(arg, names, what):
    """A list or dict ``arg`` as a list with one entry per output (``None`` where absent)."""
    if isinstance(arg, (list, tuple)) and len(names) == 1 and len(arg) != 1:
        raise ValueError(f"{what}: the model has 1 output {list(names)}, but {len(arg)} "
                         f"entries were given")
    return by_name(arg, names, what, kind="outputs", require_all=False)


class CompileLoss:
    """One loss object (or None) and one weight per output."""

    def __init__(self, loss, loss_weights, output_names):
        self.names = list(output_names)
        n = len(self.names)
        if loss is None:
            self.config = None
            self.losses = [None] * n
        else:
            if isinstance(loss, (list, tuple, dict)) and not _is_serialized(loss):
                items = _per_output(loss, self.names, "loss")
            else:
                items = [loss] * n  # Keras: one loss is applied to every output
            self.losses = [None if l is None else losses_mod.get(l) for l in items]
            self.config = loss
        self.weights = self._parse_weights(loss_weights)

    def _parse_weights(self, loss_weights):
        n = len(self.names)
        if loss_weights is None:
            return [1.0] * n
        if isinstance(loss_weights, (dict, list, tuple)):
            items = _per_output(loss_weights, self.names, "loss_weights")
            items = [1.0 if w is None else w for w in items]
        else:
            items = [loss_weights] * n
        out = []
        for w in items:
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise ValueError(f"loss_weights: expected numbers, got "
                                 f"{loss_weights!r}") from None
            if not math.isfinite(w):
                raise ValueError(f"loss_weights: must be finite, got {loss_weights!r}")
            out.append(w)
        return out

    @property
    def multi(self):
        return len(self.names) > 1

    def tracker_names(self):
        """Log names of the per-output losses (none for one output)."""
        if not self.multi:
            return []
        return [f"{name}_loss" for name, l in zip(self.names, self.losses) if l is not None]

    def serialize(self):
        if self.config is None:
            return None
        if isinstance(self.config, dict) and not _is_serialized(self.config):
            return {k: losses_mod.serialize(losses_mod.get(v)) if v is not None else None
                    for k, v in self.config.items()}
        if isinstance(self.config, (list, tuple)):
            return [None if l is None else losses_mod.serialize(l) for l in self.losses]
        return losses_mod.serialize(self.losses[0])


class CompileMetrics:
    """Metric objects per output, named as Keras names them."""

    def __init__(self, metrics, weighted_metrics, output_names, losses):
        self.names = list(output_names)
        self.metrics = self._build(metrics, "metrics", losses)
        self.weighted = self._build(weighted_metrics, "weighted_metrics", losses)
        multi = len(self.names) > 1
        taken = {"loss"} | {f"{n}_loss" for n in self.names}
        for group, prefix in ((self.metrics, ""), (self.weighted, "weighted_")):
            for out_name, ms in zip(self.names, group):
                for m in ms:
                    name = m.name
                    if multi:
                        name = f"{out_name}_{name}"
                    if name in taken and prefix:
                        name = (f"{out_name}_{prefix}{m.name}" if multi else prefix + m.name)
                    m.name = name
                    taken.add(name)

    def _build(self, arg, what, losses):
        n = len(self.names)
        if arg is None:
            return [[] for _ in range(n)]
        if isinstance(arg, dict) and not _is_serialized(arg):
            items = _per_output(arg, self.names, what)
        elif isinstance(arg, (list, tuple)):
            if n == 1:
                items = [arg]
            elif all(isinstance(a, (list, tuple)) or a is None for a in arg):
                items = _per_output(arg, self.names, what)
            elif len(arg) == n:
                items = list(arg)
            else:
                raise ValueError(f"{what}: the model has {n} outputs {self.names}; pass a list "
                                 f"of {n} lists (one per output) or a dict keyed by output "
                                 f"name, got {arg!r}")
        else:
            items = [arg] * n
        out = []
        for item, loss in zip(items, losses):
            if item is None:
                out.append([])
                continue
            if isinstance(item, (str, bytes)) or not isinstance(item, (list, tuple)):
                item = [item]
            out.append([metrics_mod.get(m, loss=loss) for m in item])
        return out

    def all(self):
        return [m for ms in self.metrics for m in ms] + [m for ms in self.weighted for m in ms]

    def per_output(self):
        return list(zip(self.metrics, self.weighted))
