"""Convolution and pooling ops of the reference backend (NumPy; channels-last).

:class:`ConvOps` is mixed into :class:`~pynn.backends.base.Backend`: these are the
oracle's convolution and pooling ops, written to be obviously right (one NumPy
product per kernel tap, accumulated in float64), and the argument checks every
backend's versions start with (``prep_conv``, ``prep_pool``).

Layout: images are ``(n, h, w, c)`` (Keras's ``channels_last``), kernels
``(kh, kw, c_in / groups, c_out)`` (Keras's layout). 1-D ops are 2-D ops with
``h = 1``. ``padding`` is explicit: ``((top, bottom), (left, right))`` zeros (the
layers turn Keras's ``'same'``/``'valid'`` into it). Output size per axis:
``(size + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1``.

Groups: input channels ``[g * c_in/groups, (g+1) * c_in/groups)`` feed output channels
``[g * c_out/groups, (g+1) * c_out/groups)``.
"""
from __future__ import annotations

import numpy as np

from .activation_codes import UNFUSED, activation_code
from .validation import ALIASING, as_float, check_aliasing, check_out, work_dtype

__all__ = ["ConvOps", "conv_output_size", "prep_conv", "prep_conv_backward", "prep_pool",
           "POOL_MODES", "GRAD_NAMES", "check_grads", "composed_conv_backward"]

POOL_MODES = ("max", "avg")

# what each op writes and which input it may be (none: conv and pooling never work in place)
ALIASING.update({
    "conv2d_forward": {"out": ()},
    "conv2d_backward_input": {"out": ()},
    "conv2d_backward_kernel": {"out": ()},
    "conv2d_backward": {"dx": (), "dkernel": (), "dbias": ()},
    "pool2d_forward": {"out": (), "index": ()},
    "pool2d_backward": {"out": ()},
})


def _pair(value, name, minimum):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}") from None
    if a < minimum or b < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return a, b


def _padding(padding):
    try:
        (t, b), (l, r) = padding
        out = ((int(t), int(b)), (int(l), int(r)))
    except (TypeError, ValueError):
        raise ValueError(f"padding: expected ((top, bottom), (left, right)), got "
                         f"{padding!r}") from None
    if min(out[0] + out[1]) < 0:
        raise ValueError(f"padding: expected sizes >= 0, got {padding!r}")
    return out


def _shape4(value, op, what, names="(n, h, w, c)"):
    """``value`` as a tuple of 4 ints, or ValueError naming ``op`` and ``what``."""
    try:
        shape = tuple(int(s) for s in value)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"{op}: {what} must be {names}, got {value!r}")
    return shape


def conv_output_size(size, k, stride, dilation, pad):
    """Output length of one axis (0 or less: the window does not fit)."""
    return (size + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def prep_conv(op, x, kernel, strides, padding, dilation, groups, x_name="x",
              kernel_name="kernel"):
    """Checked geometry of a convolution: ``(x, kernel, strides, padding, dilation,
    groups, (oh, ow))`` with ``x`` ``(n, h, w, c_in)`` and ``kernel``
    ``(kh, kw, c_in / groups, c_out)`` converted to the working dtype."""
    dt = work_dtype(x, x_name)
    x = as_float(x, dt, x_name, 4)
    kernel = as_float(kernel, dt, kernel_name, 4)
    return (x, kernel) + conv_geometry(op, x.shape, kernel.shape, strides, padding, dilation,
                                       groups, x_name)


def conv_geometry(op, x_shape, kernel_shape, strides, padding, dilation, groups,
                  x_name="x"):
    """``(strides, padding, dilation, groups, (oh, ow))`` of a convolution of input
    ``x_shape`` ``(n, h, w, c_in)`` with a kernel of ``kernel_shape``, checked."""
    strides = _pair(strides, f"{op}: strides", 1)
    dilation = _pair(dilation, f"{op}: dilation", 1)
    padding = _padding(padding)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    kh, kw, cig, co = kernel_shape
    n, h, w, ci = x_shape
    if ci != cig * groups:
        raise ValueError(f"{op}: {x_name} has {ci} channels, but the kernel "
                         f"{tuple(kernel_shape)} takes {cig} per group x {groups} groups")
    if co % groups:
        raise ValueError(f"{op}: {co} output channels do not divide into {groups} groups")
    oh = conv_output_size(h, kh, strides[0], dilation[0], padding[0])
    ow = conv_output_size(w, kw, strides[1], dilation[1], padding[1])
    if kh < 1 or kw < 1 or oh < 1 or ow < 1:
        raise ValueError(f"{op}: the kernel {(kh, kw)} (dilation {dilation}) does not "
                         f"fit the padded input {(h + sum(padding[0]), w + sum(padding[1]))}")
    return strides, padding, dilation, int(groups), (oh, ow)


def prep_pool(op, x, pool_size, strides, padding, mode, x_name="x"):
    """Checked geometry of a pooling: ``(x, pool_size, strides, padding, (oh, ow))``."""
    if mode not in POOL_MODES:
        raise ValueError(f"{op}: mode must be one of {POOL_MODES}, got {mode!r}")
    dt = work_dtype(x, x_name)
    x = as_float(x, dt, x_name, 4)
    return (x,) + pool_geometry(op, x.shape, pool_size, strides, padding, mode)


def pool_geometry(op, x_shape, pool_size, strides, padding, mode):
    """``(pool_size, strides, padding, (oh, ow))`` of a pooling of input ``x_shape``."""
    if mode not in POOL_MODES:
        raise ValueError(f"{op}: mode must be one of {POOL_MODES}, got {mode!r}")
    pool = _pair(pool_size, f"{op}: pool_size", 1)
    strides = _pair(strides, f"{op}: strides", 1)
    padding = _padding(padding)
    if max(padding[0]) >= pool[0] or max(padding[1]) >= pool[1]:
        raise ValueError(f"{op}: padding {padding} must be smaller than the pool {pool}")
    oh = conv_output_size(x_shape[1], pool[0], strides[0], 1, padding[0])
    ow = conv_output_size(x_shape[2], pool[1], strides[1], 1, padding[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: the pool {pool} does not fit the padded input "
                         f"{(x_shape[1] + sum(padding[0]), x_shape[2] + sum(padding[1]))}")
    return pool, strides, padding, (oh, ow)


# ---------------------------------------------------------------------------
# the checks of each op, shared by every backend's version of it
# ---------------------------------------------------------------------------
def prep_conv_forward(x, kernel, bias, strides, padding, dilation, groups, activation, out):
    """Checked arguments of ``conv2d_forward``: ``(x, kernel, bias, strides, padding,
    dilation, groups, out)``."""
    op = "conv2d_forward"
    x0 = x
    x, kernel, strides, padding, dilation, groups, (oh, ow) = prep_conv(
        op, x, kernel, strides, padding, dilation, groups)
    co = kernel.shape[3]
    dt = x.dtype
    if activation in UNFUSED:
        raise ValueError(f"{op}: activation {activation!r} is not a convolution epilogue "
                         f"(its backward needs its input, or it has no compiled kernel); "
                         f"run 'linear' and activation_forward")
    if bias is not None:
        bias = as_float(bias, dt, "bias", 1)
        if bias.shape != (co,):
            raise ValueError(f"{op}: bias must have shape ({co},), got {bias.shape}")
    out = check_out(out, (x.shape[0], oh, ow, co), dt)
    check_aliasing(op, [("out", out)], [("x", x0), ("kernel", kernel), ("bias", bias)])
    return x, kernel, bias, strides, padding, dilation, groups, out


def prep_conv_backward_input(dy, kernel, input_shape, strides, padding, dilation, groups,
                             out):
    """Checked arguments of ``conv2d_backward_input``: ``(dy, kernel, input_shape,
    strides, padding, dilation, groups, out)``."""
    op = "conv2d_backward_input"
    dy0 = dy
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 4)
    shape = _shape4(input_shape, op, "input_shape")
    kernel = as_float(kernel, dt, "kernel", 4)
    strides, padding, dilation, groups, (oh, ow) = conv_geometry(
        op, shape, kernel.shape, strides, padding, dilation, groups)
    co = kernel.shape[3]
    if dy.shape != (shape[0], oh, ow, co):
        raise ValueError(f"{op}: dy must have shape {(shape[0], oh, ow, co)} for input "
                         f"{input_shape} and kernel {kernel.shape}, got {dy.shape}")
    out = check_out(out, shape, dt)
    check_aliasing(op, [("out", out)], [("dy", dy0), ("kernel", kernel)])
    return dy, kernel, shape, strides, padding, dilation, groups, out


def prep_conv_backward_kernel(x, dy, kernel_shape, strides, padding, dilation, groups, out):
    """Checked arguments of ``conv2d_backward_kernel``: ``(x, dy, kernel_shape,
    strides, padding, dilation, groups, out)``."""
    op = "conv2d_backward_kernel"
    x0, dy0 = x, dy
    dt = work_dtype(x, "x")
    kshape = _shape4(kernel_shape, op, "kernel_shape", "(kh, kw, c_in/groups, c_out)")
    x = as_float(x, dt, "x", 4)
    strides, padding, dilation, groups, (oh, ow) = conv_geometry(
        op, x.shape, kshape, strides, padding, dilation, groups)
    dy = as_float(dy, dt, "dy", 4)
    co = kshape[3]
    if dy.shape != (x.shape[0], oh, ow, co):
        raise ValueError(f"{op}: dy must have shape {(x.shape[0], oh, ow, co)}, got "
                         f"{dy.shape}")
    out = check_out(out, kshape, dt)
    check_aliasing(op, [("out", out)], [("x", x0), ("dy", dy0)])
    return x, dy, kshape, strides, padding, dilation, groups, out


def prep_pool_forward(x, pool_size, strides, padding, mode, out, index):
    """Checked arguments of ``pool2d_forward``: ``(x, pool_size, strides, padding, out,
    index)`` (``index`` None unless ``mode`` is ``'max'``)."""
    op = "pool2d_forward"
    x0 = x
    strides = pool_size if strides is None else strides
    x, pool, strides, padding, (oh, ow) = prep_pool(op, x, pool_size, strides, padding, mode)
    n, _, _, c = x.shape
    out = check_out(out, (n, oh, ow, c), x.dtype)
    if mode == "max":
        index = check_out(index, (n, oh, ow, c), np.dtype(np.int64), "index")
    else:
        index = None
    check_aliasing(op, [("out", out), ("index", index)], [("x", x0)])
    return x, pool, strides, padding, out, index


def prep_pool_backward(dy, input_shape, pool_size, strides, padding, mode, index, out,
                       index_range=True):
    """Checked arguments of ``pool2d_backward``: ``(dy, input_shape, pool_size,
    strides, padding, index, out)``. With ``index_range`` every index is checked to lie
    in the input (a kernel that checks while it scatters passes False)."""
    op = "pool2d_backward"
    dy0 = dy
    strides = pool_size if strides is None else strides
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 4)
    shape = _shape4(input_shape, op, "input_shape")
    pool, strides, padding, (oh, ow) = pool_geometry(op, shape, pool_size, strides, padding,
                                                     mode)
    n, h, w, c = shape
    if dy.shape != (n, oh, ow, c):
        raise ValueError(f"{op}: dy must have shape {(n, oh, ow, c)}, got {dy.shape}")
    out = check_out(out, shape, dt)
    reads = [("dy", dy0)]
    if mode == "max":
        if index is None:
            raise ValueError(f"{op}: max pooling needs the index pool2d_forward returned")
        index = np.asarray(index)
        if index.shape != dy.shape or index.dtype.kind not in "iu":
            raise ValueError(f"{op}: index must be integers of shape {dy.shape}, got "
                             f"{index.dtype} {index.shape}")
        if index_range and index.size and (index.min() < 0 or index.max() >= n * h * w * c):
            raise ValueError(f"{op}: index holds positions outside an input of shape "
                             f"{shape}")
        reads.append(("index", index))
    else:
        index = None
    check_aliasing(op, [("out", out)], reads)
    return dy, shape, pool, strides, padding, index, out


GRAD_NAMES = ("dx", "dkernel", "dbias")


def check_grads(op, wanted, outs, shapes, dtype):
    """The gradient outputs ``(dx, dkernel, dbias)`` of a convolution's backward op:
    each ``None`` when its flag in ``wanted`` is false (and refused if given), else
    checked (or allocated) for its shape in ``shapes``."""
    checked = []
    for name, want, out, shape in zip(GRAD_NAMES, wanted, outs, shapes):
        if not want:
            if out is not None:
                raise ValueError(f"{op}: {name} was given but its gradient was not asked "
                                 f"for")
            checked.append(None)
        else:
            checked.append(check_out(out, shape, dtype, name))
    return tuple(checked)


def composed_conv_backward(be, dy, x, kernel, y, activation, geometry, grads, dz=None):
    """``conv2d_backward`` as backend ``be``'s single ops one after another, on checked
    arguments (:func:`prep_conv_backward`): ``dz = dy * act'(y)`` into ``dz`` (allocated
    when ``None``), then the kernel, bias and input gradients into ``grads``."""
    dx, dkernel, dbias = grads
    m, co = dy.shape[0] * dy.shape[1] * dy.shape[2], dy.shape[3]
    if activation in (None, "linear"):
        dz = dy
    else:
        dz = be.activation_backward(dy.reshape(m, co), y.reshape(m, co), activation,
                                    out=None if dz is None else dz.reshape(m, co))
        dz = dz.reshape(dy.shape)
    if dkernel is not None:
        be.conv2d_backward_kernel(x, dz, kernel.shape, out=dkernel, **geometry)
    if dbias is not None:
        be.bias_grad(dz.reshape(m, co), out=dbias)
    if dx is not None:
        be.conv2d_backward_input(dz, kernel, x.shape, out=dx, **geometry)
    return grads


def prep_conv_backward(x, kernel, strides, padding, dilation, groups, dy, y, activation,
                       wanted, outs):
    """Checked arguments of ``conv2d_backward``: ``(x, kernel, strides, padding,
    dilation, groups, dy, y, (dx, dkernel, dbias))``; each output is ``None`` when its
    flag in ``wanted`` (input, kernel, bias) is false, else checked or allocated."""
    op = "conv2d_backward"
    x0, dy0, y0 = x, dy, y
    x, kernel, strides, padding, dilation, groups, (oh, ow) = prep_conv(
        op, x, kernel, strides, padding, dilation, groups)
    dt = x.dtype
    dy = as_float(dy, dt, "dy", 4)
    n, co = x.shape[0], kernel.shape[3]
    if dy.shape != (n, oh, ow, co):
        raise ValueError(f"{op}: dy must have shape {(n, oh, ow, co)} for x {x.shape} and "
                         f"kernel {kernel.shape}, got {dy.shape}")
    if activation in UNFUSED:
        raise ValueError(f"{op}: activation {activation!r} is not a convolution epilogue "
                         f"(its backward needs its input, or it has no compiled kernel); "
                         f"run 'linear' and activation_backward")
    activation_code(activation)  # an unknown name raises here
    if activation in (None, "linear"):
        y = None
    elif y is None:
        raise ValueError(f"{op}: activation {activation!r} needs y, the forward output")
    else:
        y = as_float(y, dt, "y", 4)
        if y.shape != dy.shape:
            raise ValueError(f"{op}: y must have the shape of dy {dy.shape}, got {y.shape}")
    checked = check_grads(op, wanted, outs, (x.shape, kernel.shape, (co,)), dt)
    check_aliasing(op, list(zip(GRAD_NAMES, checked)),
                   [("dy", dy0), ("x", x0), ("kernel", kernel), ("y", y0)])
    return x, kernel, strides, padding, dilation, groups, dy, y, checked


def _taps(kh, kw, strides, dilation, oh, ow):
    """Per kernel tap ``(a, b)``: the slices of the padded input it reads."""
    sh, sw = strides
    dh, dw = dilation
    for a in range(kh):
        for b in range(kw):
            yield a, b, (slice(a * dh, a * dh + (oh - 1) * sh + 1, sh),
                         slice(b * dw, b * dw + (ow - 1) * sw + 1, sw))


def _padded(x, padding, value=0.0, dtype=np.float64):
    (t, b), (l, r) = padding
    xp = np.full((x.shape[0], x.shape[1] + t + b, x.shape[2] + l + r, x.shape[3]), value,
                 dtype=dtype)
    xp[:, t:t + x.shape[1], l:l + x.shape[2], :] = x
    return xp


class ConvOps:
    """The reference convolution and pooling ops (see the module docstring)."""

    def conv2d_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                       dilation=1, groups=1, activation="linear", out=None):
        """``activation(conv(x, kernel) + bias)``: ``(n, oh, ow, c_out)``.

        ``activation`` is any name :meth:`activation_forward` takes except those whose
        backward needs the pre-activation (``gelu``: run ``'linear'`` and the
        activation op after).
        """
        x, kernel, bias, strides, padding, dilation, groups, out = prep_conv_forward(
            x, kernel, bias, strides, padding, dilation, groups, activation, out)
        kh, kw, cig, co = kernel.shape
        _, oh, ow, _ = out.shape
        xp = _padded(x, padding)
        acc = np.zeros((x.shape[0], oh, ow, co))
        cog = co // groups
        k64 = kernel.astype(np.float64)
        for a, b, (rs, cs) in _taps(kh, kw, strides, dilation, oh, ow):
            for g in range(groups):
                xs = xp[:, rs, cs, g * cig:(g + 1) * cig]
                acc[..., g * cog:(g + 1) * cog] += xs @ k64[a, b, :, g * cog:(g + 1) * cog]
        if bias is not None:
            acc += bias
        out[...] = acc
        if activation not in (None, "linear"):
            flat = out.reshape(x.shape[0] * oh * ow, co)  # -1 fails when co is 0
            self.activation_forward(flat.copy(), activation, out=flat)
        return out

    def conv2d_backward_input(self, dy, kernel, input_shape, strides=1,
                              padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        """The gradient of :meth:`conv2d_forward` (before its activation) with respect
        to ``x`` of ``input_shape`` ``(n, h, w, c_in)``, from ``dy`` ``(n, oh, ow,
        c_out)``. (Also the forward pass of a transposed convolution.)"""
        dy, kernel, (n, h, w, ci), strides, padding, dilation, groups, out = (
            prep_conv_backward_input(dy, kernel, input_shape, strides, padding, dilation,
                                     groups, out))
        kh, kw, cig, co = kernel.shape
        _, oh, ow, _ = dy.shape
        (t, _), (l, _) = padding
        dxp = np.zeros((n, h + sum(padding[0]), w + sum(padding[1]), ci))
        cog = co // groups
        d64 = dy.astype(np.float64)
        k64 = kernel.astype(np.float64)
        for a, b, (rs, cs) in _taps(kh, kw, strides, dilation, oh, ow):
            for g in range(groups):
                dxp[:, rs, cs, g * cig:(g + 1) * cig] += (
                    d64[..., g * cog:(g + 1) * cog] @ k64[a, b, :, g * cog:(g + 1) * cog].T)
        out[...] = dxp[:, t:t + h, l:l + w, :]
        return out

    def conv2d_backward_kernel(self, x, dy, kernel_shape, strides=1,
                               padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        """The gradient of :meth:`conv2d_forward` (before its activation) with respect to
        the kernel of ``kernel_shape`` ``(kh, kw, c_in / groups, c_out)``."""
        x, dy, kshape, strides, padding, dilation, groups, out = prep_conv_backward_kernel(
            x, dy, kernel_shape, strides, padding, dilation, groups, out)
        kh, kw, cig, co = kshape
        _, oh, ow, _ = dy.shape
        xp = _padded(x, padding)
        m = x.shape[0] * oh * ow  # not -1: a reshape cannot infer it when co or cig is 0
        d64 = dy.astype(np.float64).reshape(m, co)
        cog = co // groups
        acc = np.zeros(kshape)
        for a, b, (rs, cs) in _taps(kh, kw, strides, dilation, oh, ow):
            for g in range(groups):
                xs = xp[:, rs, cs, g * cig:(g + 1) * cig].reshape(m, cig)
                acc[a, b, :, g * cog:(g + 1) * cog] = xs.T @ d64[:, g * cog:(g + 1) * cog]
        out[...] = acc
        return out

    def conv2d_backward(self, dy, x, kernel, y=None, activation="linear", strides=1,
                        padding=((0, 0), (0, 0)), dilation=1, groups=1, input_grad=True,
                        kernel_grad=True, bias_grad=True, dx=None, dkernel=None, dbias=None):
        """The whole backward pass of ``y = conv2d_forward(x, kernel, bias, ...,
        activation)``: ``(dx, dkernel, dbias)``, each ``None`` unless asked for.

        ``dz = activation_backward(dy, y)`` (``y`` is needed unless ``activation`` is
        ``'linear'``; activations whose backward needs the pre-activation are refused,
        as in :meth:`conv2d_forward`), then ``dkernel`` as
        :meth:`conv2d_backward_kernel`, ``dbias`` the sum of ``dz`` over ``(n, oh, ow)``
        and ``dx`` as :meth:`conv2d_backward_input`. Compiled backends do it in one
        pass over blocks of output pixels; here it is those ops one after another.
        """
        x, kernel, strides, padding, dilation, groups, dy, y, (dx, dkernel, dbias) = (
            prep_conv_backward(x, kernel, strides, padding, dilation, groups, dy, y,
                               activation, (input_grad, kernel_grad, bias_grad),
                               (dx, dkernel, dbias)))
        return composed_conv_backward(
            self, dy, x, kernel, y, activation,
            dict(strides=strides, padding=padding, dilation=dilation, groups=groups),
            (dx, dkernel, dbias))

    def pool2d_forward(self, x, pool_size, strides=None, padding=((0, 0), (0, 0)), mode="max",
                       out=None, index=None):
        """Max or average pooling: ``(out, index)``.

        ``out`` is ``(n, oh, ow, c)``. Padding never wins a max and is not counted in
        an average (Keras's ``'same'``). For ``'max'``, ``index`` (int64, the shape of
        ``out``) receives the flat position in ``x`` of each maximum (the first one on
        ties), which :meth:`pool2d_backward` needs; for ``'avg'`` it is ``None``.
        """
        x, pool, strides, padding, out, index = prep_pool_forward(
            x, pool_size, strides, padding, mode, out, index)
        n, h, w, c = x.shape
        _, oh, ow, _ = out.shape
        (t, _), (l, _) = padding
        fill = -np.inf if mode == "max" else 0.0
        xp = _padded(x, padding, fill)
        pos = _padded(np.arange(n * h * w * c, dtype=np.float64).reshape(x.shape), padding,
                      -1.0)
        ones = _padded(np.ones(x.shape), padding, 0.0)
        if mode == "max":
            best = np.full((n, oh, ow, c), -np.inf)
            where = np.full((n, oh, ow, c), -1.0)
            for a, b, (rs, cs) in _taps(pool[0], pool[1], strides, (1, 1), oh, ow):
                v = xp[:, rs, cs, :]
                take = (v > best) | ((where < 0) & (pos[:, rs, cs, :] >= 0))
                best = np.where(take, v, best)
                where = np.where(take, pos[:, rs, cs, :], where)
            out[...] = best
            index[...] = where.astype(np.int64)
        else:
            total = np.zeros((n, oh, ow, c))
            count = np.zeros((n, oh, ow, c))
            for a, b, (rs, cs) in _taps(pool[0], pool[1], strides, (1, 1), oh, ow):
                total += xp[:, rs, cs, :]
                count += ones[:, rs, cs, :]
            out[...] = total / count
        return out, index

    def pool2d_backward(self, dy, input_shape, pool_size, strides=None,
                        padding=((0, 0), (0, 0)), mode="max", index=None, out=None):
        """The gradient of :meth:`pool2d_forward` with respect to its input of
        ``input_shape``: each output's gradient goes to its maximum (``index``), or is
        shared equally by the real elements of its window (``'avg'``)."""
        dy, shape, pool, strides, padding, index, out = prep_pool_backward(
            dy, input_shape, pool_size, strides, padding, mode, index, out)
        n, h, w, c = shape
        _, oh, ow, _ = dy.shape
        if mode == "max":
            acc = np.zeros(n * h * w * c)
            np.add.at(acc, index.reshape(-1), dy.reshape(-1).astype(np.float64))
            out[...] = acc.reshape(shape)
            return out
        (t, _), (l, _) = padding
        ones = _padded(np.ones(shape), padding, 0.0)
        count = np.zeros((n, oh, ow, c))
        for a, b, (rs, cs) in _taps(pool[0], pool[1], strides, (1, 1), oh, ow):
            count += ones[:, rs, cs, :]
        share = dy.astype(np.float64) / count
        dxp = np.zeros(ones.shape)
        for a, b, (rs, cs) in _taps(pool[0], pool[1], strides, (1, 1), oh, ow):
            dxp[:, rs, cs, :] += share
        out[...] = dxp[:, t:t + h, l:l + w, :]
        return out
