"""Keras-style progress output: :class:`Progbar` (the callback that drives it during
``fit`` is :class:`pynn.callbacks.ProgbarLogger`).

verbose=1, on a terminal, redraws one line in place (at most every ``interval``
seconds)::

    Epoch 1/10
    1500/1500 ━━━━━━━━━━━━━━━━━━━━ 3s 2ms/step - accuracy: 0.9012 - loss: 0.3120

with the ETA in place of the elapsed time while the epoch runs. When stdout is
not a terminal (a log file, a pipe, pytest's capture) the bar is printed as
whole lines, sparsely (every ``sparse_interval`` seconds and at the end).
verbose=2 prints one line per epoch: ``1500/1500 - 3s - 2ms/step - loss: 0.3120``.
verbose=0 prints nothing. Output goes to ``sys.stdout`` as looked up at each
write, so redirection (and pytest's ``capsys``) works.
"""
from __future__ import annotations

import math
import re
import sys
import time

__all__ = ["Progbar", "write", "format_time_per_unit", "format_value", "format_eta"]

_BOLD, _RESET, _GREEN, _GREY = "\x1b[1m", "\x1b[0m", "\x1b[32m", "\x1b[37m"
_BAR_CHAR = "\u2501"  # ━ (heavy horizontal)
_REST_CHAR = "\u2500"  # ─ (light horizontal): the part still to do, without colours
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_tty():
    out = sys.stdout
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def write(text):
    out = sys.stdout
    out.write(text)
    out.flush()


def format_time_per_unit(time_per_unit, unit_name="step"):
    """``' 2ms/step'`` style text (Keras's rules: s, ms or us)."""
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1e3:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1e6:.0f}us/{unit_name}"


def format_value(v):
    """A metric value as Keras prints it: 4 decimals, or scientific when tiny."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return f" {v}"
    if abs(f) > 1e-3:
        return f" {f:.4f}"
    return f" {f:.4e}"


def format_eta(eta):
    if eta > 3600:
        return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
    if eta > 60:
        return "%d:%02d" % (eta // 60, eta % 60)
    return "%ds" % eta


class Progbar:
    """A progress bar for ``target`` steps.

    Parameters
    ----------
    target : int or None
        Total number of steps (None: unknown).
    width : int
        Bar width in characters.
    verbose : int
        1: bar, 2: one line when finished, 0: silent.
    interval : float
        Minimum seconds between redraws on a terminal.
    stateful_metrics : iterable of str, optional
        Names whose values are shown as given; others are averaged over steps.
        ``None`` (the default) means every value is shown as given.
    unit_name : str
    dynamic : bool, optional
        Redraw in place with ``\\r`` (default: whether stdout is a terminal).
    sparse_interval : float
        Minimum seconds between lines when not redrawing in place.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 unit_name="step", dynamic=None, sparse_interval=10.0):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.all_stateful = stateful_metrics is None
        self.stateful_metrics = set(stateful_metrics or ())
        self._dynamic_display = _is_tty() if dynamic is None else bool(dynamic)
        self.sparse_interval = sparse_interval
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_total_width = 0

    # ------------------------------------------------------------------
    def update(self, current, values=None, finalize=None):
        """Advance to step ``current`` with ``values`` = list of ``(name, value)``."""
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self.all_stateful or k in self.stateful_metrics or finalize:
                self._values[k] = [v, 1]
            else:
                base = max(current - self._seen_so_far, 1)
                if k not in self._values:
                    self._values[k] = [v * base, base]
                else:
                    self._values[k][0] += v * base
                    self._values[k][1] += base
        self._seen_so_far = current
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            wait = self.interval if self._dynamic_display else self.sparse_interval
            if now - self._last_update < wait and not finalize:
                return
            self._draw(current, now, time_per_unit, finalize)
        elif self.verbose == 2 and finalize:
            target = self.target if self.target is not None else current
            numdigits = int(math.log10(max(target, 1))) + 1
            line = ("%" + str(numdigits) + "d/%d") % (current, target)
            line += f" - {now - self._start:.0f}s -"
            line += format_time_per_unit(time_per_unit, self.unit_name)
            line += self._metrics_text()
            write(line + "\n")
        self._last_update = now

    def add(self, n, values=None):
        """Advance by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    # ------------------------------------------------------------------
    def _metrics_text(self):
        info = ""
        for k in self._values_order:
            total, count = self._values[k]
            try:
                avg = float(total) / max(1, count)
            except (TypeError, ValueError):
                info += f" - {k}: {total}"
                continue
            info += f" - {k}:" + format_value(avg)
        return info

    def _draw(self, current, now, time_per_unit, finalize):
        color = self._dynamic_display
        bold = (lambda s: f"{_BOLD}{s}{_RESET}") if color else (lambda s: s)
        if self.target is not None:
            numdigits = int(math.log10(max(self.target, 1))) + 1
            count = ("%" + str(numdigits) + "d/%d") % (current, self.target)
            filled = int(self.width * min(float(current) / max(self.target, 1), 1.0))
            if color:
                bar = (f"{_GREEN}{_BAR_CHAR * filled}{_RESET}" if filled else "") + \
                      f"{_GREY}{_BAR_CHAR * (self.width - filled)}{_RESET}"
            else:
                bar = _BAR_CHAR * filled + _REST_CHAR * (self.width - filled)
            text = f"{bold(count)} {bar}"
        else:
            text = "%7d/Unknown" % current
        if self.target is not None and not finalize:
            timing = format_eta(time_per_unit * (self.target - current))
        else:
            timing = f"{now - self._start:.0f}s"
        info = f" {bold(timing)}" + format_time_per_unit(time_per_unit, self.unit_name)
        message = text + info + self._metrics_text()
        width = len(_ANSI.sub("", message))
        if self._dynamic_display:
            pad = " " * max(self._prev_total_width - width, 0)
            message = "\r" + message + pad + ("\n" if finalize else "")
        else:
            message += "\n"
        write(message)
        self._prev_total_width = width

    def _estimate_step_duration(self, current, now):
        """Seconds per step, ignoring the (often slower) first step once past it."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            tpu = (now - self._time_after_first_step) / (current - 1)
        else:
            tpu = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return tpu
