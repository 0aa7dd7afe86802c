"""Numba kernels for the fused Dense stack, generated for the activations in use.

A kernel that chooses the activation by a runtime code has to compile every
activation, loss and update rule the library knows, about 9 s on the first
call with a cold cache. Here the training step and the forward pass are written
out as Python source for the *set* of activation codes of a stack, its loss, the
kind of its targets (labels or dense), its update rule (SGD with and without
momentum apart) and which layers have a bias, so only what the network uses is
compiled: the tutorial network's step compiles in about 1.5 s. The depth stays
a runtime loop: the per-layer arrays are rows of one int64 table (:func:`table`,
read through ``K.mat``/``K.flat``), which Numba neither unboxes per array on
each call nor compiles a tuple switch for.

The source goes to a file (Numba caches only functions that have one) in
pynn's checked cache directory (:func:`._numba_cache.generated_dir`: owned by
this user, writable by nobody else); the file name is the hash of the source,
which embeds the hash of :mod:`._numba_kernels`, so a changed kernel file gives
new files and a stale compiled step is never loaded. The module is always
executed from the text generated here; an existing file is kept only when it is
a regular file holding exactly that text, and replaced otherwise (a symbolic
link, a FIFO or other text there is never opened or followed). Without a usable
directory the kernels compile from memory, without a disk cache.

The generated functions call the scalar helpers and loops of
:mod:`._numba_kernels` (``act_<name>``, ``grad_<name>``, losses, updates), so
their arithmetic is the reference's, operation for operation.
"""
from __future__ import annotations

import hashlib
import os
import sys
import textwrap
import threading
import types

import numpy as np

from .._files import read_regular, replace_atomically
from . import _numba_cache
from . import _numba_kernels as K
from .activation_codes import ACTIVATIONS, NEEDS_INPUT_FOR_BACKWARD

__all__ = ["stack_step", "stack_forward", "gemm", "activation_forward", "activation_backward",
           "STEP_SLOTS", "FORWARD_SLOTS", "BIASES", "biases_kind", "table", "STEP_OK",
           "STEP_OVERLAP", "STEP_BAD_LABEL"]

_SOFTMAX = ACTIVATIONS["softmax"]
#: Elementwise codes whose backward reads the pre-activation (kept in training).
_NEEDS_INPUT = frozenset(ACTIVATIONS[name] for name in NEEDS_INPUT_FOR_BACKWARD
                         if ACTIVATIONS[name] in K.ACT_NAMES)
#: The update rule of SGD with momentum in generated steps (the stack's rule codes are
#: 0 none, 1 SGD, 2 Adam; plain SGD folds its kernel update into a GEMM, momentum
#: SGD has a velocity to update: a kernel each).
SGD_MOMENTUM = 3
_LOSS_CALLS = {
    # the softmax cross-entropy against labels or dense targets: a kernel for each
    # (one that handles both compiles both, 0.1 s more)
    (0, True): "total = softmax_cross_entropy_labels(z, labels, w, label_smoothing, g)",
    (0, False): "total = softmax_cross_entropy_dense(z, t, w, label_smoothing, g)",
    (1, False): "total = sigmoid_binary_cross_entropy(z, t, w, g)",
    (2, False): "total = regression_loss(z, t, w, True, g)",
    (3, False): "total = regression_loss(z, t, w, False, g)",
}
#: Kernels the generated functions call, inlined there (Numba IR level) rather than
#: compiled on their own and linked: one compilation instead of two.
_INLINED = ("softmax_cross_entropy_labels", "softmax_cross_entropy_dense",
            "sigmoid_binary_cross_entropy", "regression_loss",
            "sgd_update", "sgd_momentum_update", "adam_update", "softmax_rows",
            "softmax_backward")
_lock = threading.Lock()
_memo = {}


def stack_step(codes, loss_code, rule, labels=False, biases="some"):
    """The step kernel for a stack whose activations (after folding the output
    activation into the loss) are ``codes``, with loss ``loss_code`` and update
    ``rule`` (0 none, 1 SGD without momentum, 2 Adam, :data:`SGD_MOMENTUM`), for
    class ``labels`` or dense targets (the softmax cross-entropy only; the other
    losses take dense targets) and a bias on ``biases`` layers (:data:`BIASES`).
    The kernel reads ``table`` by :data:`STEP_SLOTS`; its other arguments are
    documented in the source."""
    labels = bool(labels) and loss_code == 0
    return _kernel(("step", tuple(sorted(set(codes))), int(loss_code), int(rule), labels,
                    _biases(biases)))


def stack_forward(codes, biases="some"):
    """The inference kernel ``(x, result, table, codes, alphas)`` (``table`` by
    :data:`FORWARD_SLOTS`, the last layer's output in ``result``); ``biases`` as for
    :func:`stack_step`."""
    return _kernel(("forward", tuple(sorted(set(codes))), _biases(biases)))


def _biases(kind):
    if kind not in BIASES:
        raise ValueError(f"biases: expected one of {BIASES}, got {kind!r}")
    return kind


def gemm(trans_a, trans_b, code):
    """``out = act(alpha * op(a) @ op(b) + beta * out + bias)`` for one activation:
    ``(a, b, out, dst, dst_is_out, alpha, beta, bias, act_alpha)``. ``dst`` is
    ``out`` (``dst_is_out``) unless ``beta != 0`` or ``out`` overlaps an operand, in
    which case it is a scratch array for the product; ``bias`` has size 0 when absent."""
    return _kernel(("gemm", bool(trans_a), bool(trans_b), int(code)))


def activation_forward(code):
    """Elementwise ``out = act(x)`` over flat arrays: ``(x, out, act_alpha)``."""
    return _kernel(("activation_forward", int(code)))


def activation_backward(code):
    """Elementwise ``out = dy * act'(.)`` over flat arrays: ``(dy, y, x, out, act_alpha)``
    (``x``, the input, is read only by the codes that need it)."""
    return _kernel(("activation_backward", int(code)))


def table(layers):
    """The int64 table ``(address, rows, cols)`` the fused kernels read their
    per-layer arrays from: ``layers`` holds, per layer, the C-contiguous arrays
    in slot order (1-D arrays as one column). The caller keeps the arrays alive
    while a kernel runs."""
    rows = []
    for arrays in layers:
        for a in arrays:
            rows.append((a.__array_interface__["data"][0], a.shape[0] if a.ndim else 1,
                         a.shape[1] if a.ndim == 2 else 1))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _kernel(spec):
    fn = _memo.get(spec)
    if fn is None:
        with _lock:
            fn = _memo.get(spec)
            if fn is None:
                fn = _memo[spec] = _load(spec)
    return fn


# --------------------------------------------------------------------------
# source
# --------------------------------------------------------------------------
#: Which layers of a stack have a bias, in a spec: every one, none, or some (then each
#: layer checks the size of its ``b``). A stack of one kind compiles one loop.
BIASES = ("all", "none", "some")


def biases_kind(biases):
    """:data:`BIASES` entry for a list of bias arrays (``None`` where a layer has none)."""
    present = [b is not None for b in biases]
    return "all" if all(present) else "none" if not any(present) else "some"


def _bias_loop(target, name, biases="some"):
    """``target = act(target + b)`` over the rows of 2-D ``target``, when ``b`` has size
    (``biases`` says whether that is known)."""
    if biases == "none":
        return []
    loop = ["for r in range(n):",
            "    for j in range(units):",
            f"        {target}[r, j] = K.act_{name}(float({target}[r, j]) + float(b[j]), a)"]
    if biases == "all":
        return loop
    return ["if b.shape[0] > 0:"] + _indent(loop, 1)


def _flat_loop(out, value):
    """``of[q] = value`` over the flat view ``of`` of ``out`` (``value`` reads ``[q]``)."""
    return [f"of = K.ravel({out})",
            "for q in range(of.shape[0]):",
            f"    of[q] = {value}"]


def _forward_epilogue(code, train, biases="some"):
    """Lines after ``dst = h @ W`` for one activation code: bias and activation
    into ``out`` (an activation whose backward needs its input keeps the
    pre-activation in ``dst`` in training)."""
    if code == _SOFTMAX:
        return _bias_loop("dst", "linear", biases) + ["softmax_rows(out, out)"]
    name = K.ACT_NAMES[code]
    if train and code in _NEEDS_INPUT:
        return (_bias_loop("dst", "linear", biases) + ["pf = K.ravel(dst)"]
                + _flat_loop("out", f"K.act_{name}(float(pf[q]), a)"))
    lines = _bias_loop("out", name, biases)
    unbiased = _flat_loop("out", f"K.act_{name}(float(of[q]), a)") if code != 0 else []
    if biases == "none":
        return unbiased
    if biases == "some" and unbiased:
        lines += ["else:"] + _indent(unbiased, 1)
    return lines


def _backward_activation(code):
    """Lines turning ``d`` (gradient of the output ``y``) into the gradient of the
    pre-activation, in place."""
    if code == _SOFTMAX:
        return ["softmax_backward(d, y, d)"]
    if code == 0:
        return []
    name = K.ACT_NAMES[code]
    lines = ["yf = K.ravel(y)"]
    x = "yf[q]"  # read only by the codes that need the input
    if code in _NEEDS_INPUT:
        lines += [f"pf = {_view('preact', shape='flat')}"]
        x = "pf[q]"
    return lines + _flat_loop("d", f"K.grad_{name}(float(of[q]), float(yf[q]), float({x}), a)")


def _indent(lines, levels):
    """``lines`` indented by ``levels`` blocks of four spaces."""
    pad = "    " * levels
    return [pad + ln for ln in lines]


def _dispatch(codes, body):
    """``if code == c: <body(c)>`` over the codes present."""
    lines = []
    first = True
    for c in codes:
        inner = body(c)
        if not inner:
            continue
        lines.append(("if" if first else "elif") + f" code == {c}:")
        lines += _indent(inner, 1)
        first = False
    return lines


#: Rows of the kernel table per layer (``table[l * len(SLOTS) + SLOTS.index(name)]``
#: holds ``(address, rows, cols)`` of that layer's array; vectors have ``cols == 1``
#: and absent arrays size 0). The forward pass uses the first three.
STEP_SLOTS = ("kernel", "bias", "out", "preact", "delta", "dkernel", "dbias",
              "ks0", "ks1", "bs0", "bs1")
FORWARD_SLOTS = STEP_SLOTS[:3]


#: What a generated step returns first: done, refused (an input overlaps an array it
#: writes), refused (a label out of range).
STEP_OK, STEP_OVERLAP, STEP_BAD_LABEL = 0, 1, 2


def _mask(slots, names):
    """Bit mask of the slots ``names`` (for ``K.rows_clear_of``)."""
    return sum(1 << slots.index(name) for name in names)


def _written(rule):
    """The slots a step writes: its workspaces, and with an update the weights and
    their optimizer state."""
    written = ["out", "preact", "delta", "dkernel", "dbias"]
    if rule:
        written += ["kernel", "bias", "ks0", "ks1", "bs0", "bs1"]
    return written


def _view(name, layer="s", shape="mat", slots=STEP_SLOTS):
    """Source of one per-layer array: ``K.mat``/``K.flat`` of its table row."""
    return f"K.{shape}(table, {layer} + {slots.index(name)}, x)"


def _forward_loop(codes, train, slots, biases):
    keep = sorted(_NEEDS_INPUT.intersection(codes)) if train else []
    kept = " or ".join(f"code == {c}" for c in keep)
    dst = f"{_view('preact')} if {kept} else out" if keep else "out"
    ns = len(slots)
    # inference writes the last layer into ``result`` (a model's fresh output array)
    out = _view('out', slots=slots)
    if not train:
        out = f"result if l == depth - 1 else {out}"
    lines = ["for l in range(depth):",
             f"    s = l * {ns}",
             f"    h = x if l == 0 else {_view('out', f's - {ns}', slots=slots)}",
             f"    out = {out}",
             "    code = codes[l]",
             "    a = alphas[l]",
             f"    b = {_view('bias', shape='flat', slots=slots)}",
             "    units = out.shape[1]",
             f"    dst = {dst}",
             f"    K.dot_into(h, {_view('kernel', slots=slots)}, dst)"]
    lines += _indent(_dispatch(codes, lambda c: _forward_epilogue(c, train, biases)), 1)
    return lines


_UPDATE = {
    0: """\
K.dot_into(h.T, d, {dkernel})
if db.shape[0] > 0:
    K.column_sums(d, acc, db)
""",
    # each update call is an inlined copy of the update loop; the arrays are passed
    # straight in (a loop over kernel and bias reassigning them stops the loop from
    # being vectorised: measured 10x slower)
    1: """\
kernel = {kernel}
if update and kernel.size > 0:
    # plain SGD inside the weight-gradient GEMM: W <- (1 - decay) W - lr h^T dZ
    K.gemm_update(h.T, d, kernel, -lr, 1.0 - decay)
else:
    K.dot_into(h.T, d, {dkernel})
if db.shape[0] > 0:
    K.column_sums(d, acc, db)
    if update:
        sgd_update({bias_flat}, db, lr, decay)
""",
    SGD_MOMENTUM: """\
K.dot_into(h.T, d, {dkernel})
if db.shape[0] > 0:
    K.column_sums(d, acc, db)
if update:
    sgd_momentum_update({kernel_flat}, {dkernel_flat}, {ks0_flat}, lr, momentum, nesterov,
                        decay, tiny)
    if db.shape[0] > 0:
        sgd_momentum_update({bias_flat}, db, {bs0_flat}, lr, momentum, nesterov, decay,
                            tiny)
""",
    2: """\
K.dot_into(h.T, d, {dkernel})
if db.shape[0] > 0:
    K.column_sums(d, acc, db)
if update:
    adam_update({kernel_flat}, {dkernel_flat}, {ks0_flat}, {ks1_flat},
                alpha, c1, c2, epsilon, decay, tiny)
    if db.shape[0] > 0:
        adam_update({bias_flat}, db, {bs0_flat}, {bs1_flat},
                    alpha, c1, c2, epsilon, decay, tiny)
""",
}


def _update_lines(rule):
    names = {name: _view(name) for name in STEP_SLOTS}
    names.update({name + "_flat": _view(name, shape="flat") for name in STEP_SLOTS})
    return _UPDATE[rule].format(**names).splitlines()


def _step_source(codes, loss_code, rule, labels, biases):
    ns = len(STEP_SLOTS)
    lines = [
        "@K._jit",
        "def step(x, labels, t, w, table, codes, alphas, label_smoothing, loss_scale, tiny,",
        "         acc, lr, decay, momentum, nesterov, alpha, c1, c2, epsilon):",
        '    """Forward, loss, backward and the update of a Dense stack (n >= 1) whose',
        "    per-layer arrays ``table`` names (rows by ``STEP_SLOTS``); returns",
        "    ``(STEP_OK, scaled mean loss)``, or, with nothing written, ``STEP_OVERLAP``",
        "    when an input meets an array the step writes and ``STEP_BAD_LABEL`` for a",
        "    label out of range. The loss and the update rule are this kernel's own.",
        '    """',
        "    depth = codes.shape[0]",
        "    n = x.shape[0]",
        # the inputs the validator checks (x, the target and the sample weights)
        # against what is written; the weights' span is spelt out: K.span on a fourth
        # array type cost ~0.08 s more of the step's first compile
        "    w_lo = K.address(w)",
        "    spans = (K.span(x), K.span(labels), K.span(t), (w_lo, w_lo + w.size * w.itemsize))",
        f"    if not K.rows_clear_of(spans, table, {ns}, {_mask(STEP_SLOTS, _written(rule))}, "
        "x.itemsize):",
        f"        return {STEP_OVERLAP}, np.nan",
    ]
    if labels:
        lines += [
            f"    k_last = table[(depth - 1) * {ns} + {STEP_SLOTS.index('kernel')}, 2]",
            "    for r in range(n):",
            "        if labels[r] < 0 or labels[r] >= k_last:",
            f"            return {STEP_BAD_LABEL}, np.nan",
        ]
    lines += _indent(_forward_loop(codes, True, STEP_SLOTS, biases), 1)
    last = f"(depth - 1) * {ns}"
    lines += [
        f"    z = {_view('out', last)}",
        f"    g = {_view('delta', last)}",
        "    " + _LOSS_CALLS[loss_code, labels],
        "    K.flush_scale(g, loss_scale, tiny)",
        "    value = total / n * loss_scale",
        f"    update = {'np.isfinite(value)' if rule else 'False'}",
        "    # backward: each layer's input gradient is taken before its weights change",
        "    for l in range(depth - 1, -1, -1):",
        f"        s = l * {ns}",
        f"        d = {_view('delta')}",
        f"        y = {_view('out')}",
        "        code = codes[l]",
        "        a = alphas[l]",
    ]
    lines += _indent(_dispatch(codes, _backward_activation), 2)
    lines += [
        "        if l > 0:",
        f"            K.dot_into(d, {_view('kernel')}.T, {_view('delta', f's - {ns}')})",
        f"        h = x if l == 0 else {_view('out', f's - {ns}')}",
        f"        db = {_view('dbias', shape='flat')}",
    ]
    lines += _indent(_update_lines(rule), 2)
    lines += [f"    return {STEP_OK}, value"]
    return lines


def _forward_source(codes, biases):
    lines = [
        "@K._jit",
        "def forward(x, result, table, codes, alphas):",
        '    """Inference through a Dense stack whose per-layer arrays ``table`` names',
        "    (rows by ``FORWARD_SLOTS``; the last layer's output row is empty: it goes to",
        "    ``result``), every activation applied; n may be 0. Returns 1 (nothing",
        "    written) when ``x`` or ``result`` overlaps an array it must not, else 0.",
        '    """',
        "    x_span, r_span = K.span(x), K.span(result)",
        # x must not meet an output, the result no array at all (x included)
        f"    if not (K.rows_clear_of((x_span,), table, {len(FORWARD_SLOTS)}, "
        f"{_mask(FORWARD_SLOTS, ['out'])}, x.itemsize)",
        f"            and K.rows_clear_of((r_span,), table, {len(FORWARD_SLOTS)}, "
        f"{_mask(FORWARD_SLOTS, FORWARD_SLOTS)}, x.itemsize)",
        "            and not (x_span[0] < x_span[1] and r_span[0] < r_span[1]",
        "                     and r_span[0] < x_span[1] and x_span[0] < r_span[1])):",
        "        return 1",
        "    depth = codes.shape[0]",
        "    n = x.shape[0]",
        "    if n == 0:",
        "        return 0",
    ]
    lines += _indent(_forward_loop(codes, False, FORWARD_SLOTS, biases), 1)
    return lines + ["    return 0"]


def _gemm_source(trans_a, trans_b, code):
    lines = [
        "@K._jit",
        "def gemm(x, y, out, dst, dst_is_out, alpha, beta, bias, act_alpha):",
        f"    K.dot_into(x{'.T' if trans_a else ''}, y{'.T' if trans_b else ''}, dst)",
        "    n, units = out.shape",
        "    b = bias",
        "    a = act_alpha",
        "    if alpha == 1.0 and beta == 0.0 and dst_is_out:",
        # the common case: one fused pass of bias + activation over the product
    ]
    lines += _indent(_forward_epilogue(code, False), 2)
    lines += [
        "    else:",
        "        for r in range(n):",
        "            for j in range(units):",
        "                v = alpha * float(dst[r, j])",
        "                if beta != 0.0:",
        "                    v += beta * float(out[r, j])",
        "                if b.shape[0] > 0:",
        "                    v += float(b[j])",
        "                out[r, j] = v",
    ]
    if code == _SOFTMAX:
        lines += ["        softmax_rows(out, out)"]
    elif code != 0:
        lines += _indent(_flat_loop("out", f"K.act_{K.ACT_NAMES[code]}(float(of[q]), a)"), 2)
    return lines


def _activation_source(direction, code):
    name = K.ACT_NAMES[code]
    if direction == "activation_forward":
        return (["@K._jit", "def activation_forward(x, out, a):"]
                + _indent(_flat_loop("out", f"K.act_{name}(float(x[q]), a)"), 1))
    return (["@K._jit", "def activation_backward(dy, y, x, out, a):"]
            + _indent(_flat_loop(
                "out", f"K.grad_{name}(float(dy[q]), float(y[q]), float(x[q]), a)"), 1))


def _source(spec):
    kind = spec[0]
    if kind == "step":
        body = _step_source(*spec[1:])
    elif kind == "forward":
        body = _forward_source(*spec[1:])
    elif kind == "gemm":
        body = _gemm_source(*spec[1:])
    else:
        body = _activation_source(*spec)
    header = textwrap.dedent(f"""\
        # Generated by pynn.backends._numba_codegen; do not edit.
        # spec: {spec!r}
        # kernels: {_kernels_hash()}
        import numpy as np

        from pynn.backends import _numba_kernels as K

        """) + "".join(f"{name} = K._inline(K.{name}.py_func)\n" for name in _INLINED) + "\n\n"
    return header + "\n".join(body) + "\n"


_KERNELS_HASH = None


def _kernels_hash():
    """Hash of the kernel module's source: generated files name it, so a compiled
    step cached against older kernels is never reused."""
    global _KERNELS_HASH
    if _KERNELS_HASH is None:
        with open(K.__file__, "rb") as f:
            _KERNELS_HASH = hashlib.sha256(f.read()).hexdigest()[:20]
    return _KERNELS_HASH


# --------------------------------------------------------------------------
# files and import
# --------------------------------------------------------------------------
def _write_source(path, source):
    """Make ``path`` hold exactly ``source``; ``False`` when it cannot.

    An existing file is kept when it is a regular file (not a symbolic link, a
    FIFO or a device: opened with ``O_NOFOLLOW``, checked with ``fstat``) holding
    exactly that text (rewriting would change its time stamp and void Numba's
    cache); anything else there is replaced, atomically."""
    data = source.encode("utf-8")
    try:
        if read_regular(path, len(data), follow_symlinks=False) == data:
            return True
    except (OSError, ValueError):  # missing, too long, not a regular file
        pass
    try:
        replace_atomically(path, lambda f: f.write(data))
    except OSError:  # e.g. a directory in the way
        return False
    return True


def _load(spec):
    source = _source(spec)
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"pynn_generated_{spec[0]}_{digest}"
    module = sys.modules.get(name)
    if module is None:
        directory = _numba_cache.generated_dir()
        path = None
        if directory is not None:
            path = os.path.join(directory, name + ".py")
            if not _write_source(path, source):
                path = None
        module = types.ModuleType(name)
        if path is not None:
            module.__file__ = path
        # executed from pynn's own text, never from the file: compile() with the
        # file's name so Numba can cache against it (a function without a file
        # compiles in each process)
        code = compile(source, path or f"<pynn generated {name}>", "exec")
        # Numba's cache rebuilds a function's globals by importing its module by name
        sys.modules[name] = module
        exec(code, module.__dict__)
    return getattr(module, spec[0])
