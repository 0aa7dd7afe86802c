"""Timing: calls per sample, one sample, and medians of samples taken round-robin
(:func:`interleaved`) or one contestant after another (:func:`blocked`); training
epochs of contestants taken round-robin (:func:`epoch_rounds`)."""
from __future__ import annotations

import gc
import math
import statistics
import time


def calibrate(fn, target_s):
    """Calls per timed sample so that one sample lasts about ``target_s``."""
    if target_s <= 0:
        return 1
    # the fastest of a few short runs: one stall (a descheduled BLAS thread on a busy
    # machine) during calibration must not shrink every later sample to a single call
    n, best, spent = 1, math.inf, 0.0
    while spent < 0.5 * target_s or best == math.inf:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = min(best, dt / n)
        if dt < 0.05 * target_s and n < 1 << 20:
            n *= 4
    return max(1, min(1 << 20, int(round(target_s / max(best, 1e-9)))))


def sample(fn, n):
    """Seconds per call over ``n`` back-to-back calls (garbage collector off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    finally:
        if enabled:
            gc.enable()


def interleaved(fns, repeats, target_s, pause=0.0):
    """Median seconds per call of each callable, samples taken round-robin.

    ``fns`` maps a name to a zero-argument callable (or to an error string, which is
    passed through). Each callable is warmed up and calibrated first; ``pause``
    seconds are slept before each of them runs, so that the thread pool of the one
    before has gone to sleep. Returns ``{name: (median_s or None, [samples], error)}``.
    """
    counts, result = {}, {}
    for name, fn in fns.items():
        if isinstance(fn, str):
            result[name] = (None, [], fn)
            continue
        try:
            if pause:
                time.sleep(pause)
            fn()  # warm-up: JIT compilation, workspaces, caches
            counts[name] = calibrate(fn, target_s)
        except Exception as exc:  # a broken backend must not hide the others
            result[name] = (None, [], f"error: {type(exc).__name__}: {exc}")
    samples = {name: [] for name in counts}
    for _ in range(max(1, repeats)):
        for name in counts:
            if pause:
                time.sleep(pause)
            samples[name].append(sample(fns[name], counts[name]))
    for name, s in samples.items():
        result[name] = (statistics.median(s), s, None)
    return {name: result[name] for name in fns}


def blocked(fns, repeats, target_s, pause=0.0):
    """Like :func:`interleaved`, but all samples of one callable back to back.

    Used for the op and dense tables, where a sample lasts milliseconds: switching
    contestant costs one ``pause`` instead of one per sample. The pause matters: the
    cython and numba backends reach SciPy's OpenBLAS while NumPy carries its own
    copy, and a product on one copy right after work on the other stalls for as long
    as the other's workers spin (measured: 6 ms instead of 0.25 ms per call).
    """
    result = {}
    for name, fn in fns.items():
        if pause and not isinstance(fn, str):
            time.sleep(pause)
        result.update(interleaved({name: fn}, repeats, target_s))
    return result


def epoch_rounds(contestants, build, x, y, warm_n, repeats, pause=0.0):
    """Seconds of whole training epochs of each contestant, taken round-robin.

    Each contestant whose ``status`` is ``"ok"`` is built (``build(c)``) and warmed up
    on one epoch over the first ``warm_n`` rows (JIT compilation, workspaces); then
    ``repeats`` rounds each run one epoch over ``(x, y)`` of every contestant in turn,
    ``pause`` seconds (and a garbage collection) before each. Returns ``(samples,
    errors)``: ``{name: [seconds]}`` and ``{name: "error: ..."}`` of the contestants
    that raised (a broken one must not hide the others).
    """
    errors = {}
    for c in contestants:
        if c.status != "ok":
            continue
        try:
            build(c)
            c.epoch(x[:warm_n], y[:warm_n])
        except Exception as exc:
            errors[c.name] = f"error: {type(exc).__name__}: {exc}"
    samples = {c.name: [] for c in contestants}
    for _ in range(max(1, repeats)):
        for c in contestants:
            if c.status != "ok" or c.name in errors:
                continue
            if pause:
                time.sleep(pause)
                gc.collect()
            t0 = time.perf_counter()
            try:
                c.epoch(x, y)
            except Exception as exc:
                errors[c.name] = f"error: {type(exc).__name__}: {exc}"
                continue
            samples[c.name].append(time.perf_counter() - t0)
    return samples, errors
