"""The ``cuda`` backend's convolution and pooling ops (kernels: :mod:`._cuda_conv`,
loaded on the first such op).

:class:`CudaConvOps` is mixed into :class:`~pynn.backends.cuda_backend.CudaBackend`.
Each op makes the reference's checks in its order with its messages (``prep_conv``/
``prep_pool`` read only the shape and dtype of a device argument, see
``_geometry_arg``; a shape given as such goes to ``conv_geometry``/``pool_geometry``),
then uploads or converts its inputs and launches one kernel. An output buffer may not
overlap an input on the device either. Max-pooling's backward gathers each input
element's gradient from the windows that hold it, so it also refuses an ``index``
entry outside its own window (the reference would scatter to it).
"""
from __future__ import annotations

import numpy as np

from .activation_codes import ACTIVATIONS, UNFUSED, activation_code
from .conv import POOL_MODES, _shape4, conv_geometry, pool_geometry, prep_conv, prep_pool
from .cuda_memory import DeviceMemory as _DeviceMemory
from .validation import activation_alpha, as_float, check_aliasing, work_dtype

__all__ = ["CudaConvOps"]


class CudaConvOps:
    """Convolution and pooling of the cuda backend (see the module docstring)."""

    def _conv_kernels(self):
        """The conv/pool kernel module, imported on first use."""
        from . import _cuda_conv
        return _cuda_conv

    def _foreign(self, a):
        """A GPU array of another library (``__cuda_array_interface__``) as a Numba
        device array without a copy; anything else unchanged."""
        if (a is not None and not self._is_device(a) and not self._simulator
                and hasattr(a, "__cuda_array_interface__")):
            return self._cuda.as_cuda_array(a)
        return a

    def _geometry_arg(self, a, dt, name):
        """What :func:`prep_conv`/:func:`prep_pool` check in place of argument ``a``:
        a host array as given; for a device array, an uninitialised host array of its
        shape in the working dtype ``dt`` (they read only shape and dtype, and
        ``np.empty`` touches no memory), after the reference's dtype check."""
        if not self._is_device(a):
            return a
        work_dtype(a, name)
        return np.empty(tuple(a.shape), dt)

    def _upload(self, given, checked, dt, name):
        """The device array an op reads: a device argument converted on the device
        (dtype, contiguity) or the host array prep_conv/prep_pool converted, copied."""
        if self._is_device(given):
            return self._to_device(given, dt, name)
        return self._cuda.to_device(checked)

    def conv2d_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                       dilation=1, groups=1, activation="linear", out=None):
        x0, k0, b0 = self._foreign(x), self._foreign(kernel), self._foreign(bias)
        dt = work_dtype(x0, "x")
        xc, kc, strides, padding, dilation, groups, (oh, ow) = prep_conv(
            "conv2d_forward", self._geometry_arg(x0, dt, "x"),
            self._geometry_arg(k0, dt, "kernel"), strides, padding, dilation, groups)
        co = kc.shape[3]
        if activation in UNFUSED:
            raise ValueError(f"conv2d_forward: activation {activation!r} is not a convolution "
                             f"epilogue (its backward needs its input, or it has no compiled "
                             f"kernel); run 'linear' and activation_forward")
        if b0 is not None:
            bc = as_float(self._geometry_arg(b0, dt, "bias"), dt, "bias", 1)
            if bc.shape != (co,):
                raise ValueError(f"conv2d_forward: bias must have shape ({co},), got "
                                 f"{bc.shape}")
        code = activation_code(activation)
        alpha = activation_alpha(activation, None)
        n = xc.shape[0]
        out = self._out(out, (n, oh, ow, co), dt)
        check_aliasing("conv2d_forward", [("out", out)],
                       [("x", x0), ("kernel", k0), ("bias", b0)], _DeviceMemory)
        xd = self._upload(x0, xc, dt, "x")
        kd = self._upload(k0, kc, dt, "kernel")
        bd = self._dummy(dt, 1) if b0 is None else self._upload(b0, bc, dt, "bias")
        softmax = code == ACTIVATIONS["softmax"]
        C = self._conv_kernels()
        self._launch(C.conv_forward, out.size, xd, kd, bd, b0 is not None, out,
                     strides[0], strides[1], padding[0][0], padding[1][0], dilation[0],
                     dilation[1], groups, 0 if softmax else code, alpha, dt.type(0))
        if softmax and out.size:  # row-wise over the channels, after the bias
            rows = out.reshape(n * oh * ow, co)
            self._launch(self._K.softmax_rows, n * oh * ow, rows, rows, False)
        return out

    def conv2d_backward_input(self, dy, kernel, input_shape, strides=1,
                              padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        dy0, k0 = self._foreign(dy), self._foreign(kernel)
        dt = work_dtype(dy0, "dy")
        dyc = as_float(self._geometry_arg(dy0, dt, "dy"), dt, "dy", 4)
        n, h, w, ci = _shape4(input_shape, "conv2d_backward_input", "input_shape")
        kc = as_float(self._geometry_arg(k0, dt, "kernel"), dt, "kernel", 4)
        strides, padding, dilation, groups, (oh, ow) = conv_geometry(
            "conv2d_backward_input", (n, h, w, ci), kc.shape, strides, padding, dilation,
            groups)
        co = kc.shape[3]
        if dyc.shape != (n, oh, ow, co):
            raise ValueError(f"conv2d_backward_input: dy must have shape {(n, oh, ow, co)} "
                             f"for input {input_shape} and kernel {kc.shape}, got "
                             f"{dyc.shape}")
        out = self._out(out, (n, h, w, ci), dt)
        check_aliasing("conv2d_backward_input", [("out", out)], [("dy", dy0), ("kernel", k0)],
                       _DeviceMemory)
        dyd = self._upload(dy0, dyc, dt, "dy")
        kd = self._upload(k0, kc, dt, "kernel")
        self._launch(self._conv_kernels().conv_backward_input, out.size, dyd, kd, out,
                     strides[0], strides[1], padding[0][0], padding[1][0], dilation[0],
                     dilation[1], groups, dt.type(0))
        return out

    def conv2d_backward(self, dy, x, kernel, y=None, activation="linear", strides=1,
                        padding=((0, 0), (0, 0)), dilation=1, groups=1, input_grad=True,
                        kernel_grad=True, bias_grad=True, dx=None, dkernel=None, dbias=None):
        """This backend's activation-gradient, kernel-, bias- and input-gradient ops one
        after another on the device (each checks its arguments; ``dz`` is a new device
        array when there is an activation)."""
        op = "conv2d_backward"
        if activation in UNFUSED:
            raise ValueError(f"{op}: activation {activation!r} is not a convolution epilogue "
                             f"(its backward needs its input, or it has no compiled kernel); "
                             f"run 'linear' and activation_backward")
        activation_code(activation)  # an unknown name raises here
        for name, want, out in (("dx", input_grad, dx), ("dkernel", kernel_grad, dkernel),
                                ("dbias", bias_grad, dbias)):
            if not want and out is not None:
                raise ValueError(f"{op}: {name} was given but its gradient was not asked for")
        geometry = dict(strides=strides, padding=padding, dilation=dilation, groups=groups)
        dz = dy
        if activation not in (None, "linear"):
            if y is None:
                raise ValueError(f"{op}: activation {activation!r} needs y, the forward output")
            n, oh, ow, co = dy.shape
            flat = (n * oh * ow, co)
            dz = self.empty(dy.shape, work_dtype(self._foreign(dy), "dy"))
            self.activation_backward(dy.reshape(flat), y.reshape(flat), activation,
                                     out=dz.reshape(flat))
        if kernel_grad:
            dkernel = self.conv2d_backward_kernel(x, dz, kernel.shape, out=dkernel, **geometry)
        if bias_grad:
            n, oh, ow, co = dz.shape
            dbias = self.bias_grad(dz.reshape((n * oh * ow, co)), out=dbias)
        if input_grad:
            dx = self.conv2d_backward_input(dz, kernel, x.shape, out=dx, **geometry)
        return (dx if input_grad else None, dkernel if kernel_grad else None,
                dbias if bias_grad else None)

    def conv2d_backward_kernel(self, x, dy, kernel_shape, strides=1,
                               padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        x0, dy0 = self._foreign(x), self._foreign(dy)
        dt = work_dtype(x0, "x")
        kshape = _shape4(kernel_shape, "conv2d_backward_kernel", "kernel_shape",
                         "(kh, kw, c_in/groups, c_out)")
        xc = as_float(self._geometry_arg(x0, dt, "x"), dt, "x", 4)
        strides, padding, dilation, groups, (oh, ow) = conv_geometry(
            "conv2d_backward_kernel", xc.shape, kshape, strides, padding, dilation, groups)
        dyc = as_float(self._geometry_arg(dy0, dt, "dy"), dt, "dy", 4)
        co = kshape[3]
        if dyc.shape != (xc.shape[0], oh, ow, co):
            raise ValueError(f"conv2d_backward_kernel: dy must have shape "
                             f"{(xc.shape[0], oh, ow, co)}, got {dyc.shape}")
        out = self._out(out, kshape, dt)
        check_aliasing("conv2d_backward_kernel", [("out", out)], [("x", x0), ("dy", dy0)],
                       _DeviceMemory)
        xd = self._upload(x0, xc, dt, "x")
        dyd = self._upload(dy0, dyc, dt, "dy")
        if out.size:  # one block per kernel element, a float64 tree in shared memory
            tpb = self.threads_per_block
            with self._quiet():
                self._conv_kernels().conv_backward_kernel[
                    min(self.max_blocks, out.size), tpb, 0, tpb * 8](
                    xd, dyd, out, strides[0], strides[1], padding[0][0], padding[1][0],
                    dilation[0], dilation[1], groups)
        return out

    def pool2d_forward(self, x, pool_size, strides=None, padding=((0, 0), (0, 0)), mode="max",
                       out=None, index=None):
        x0 = self._foreign(x)
        strides = pool_size if strides is None else strides
        # prep_pool checks the mode before the dtype of x: so does this
        probe = self._geometry_arg(x0, work_dtype(x0, "x"), "x") if mode in POOL_MODES else x0
        xc, pool, strides, padding, (oh, ow) = prep_pool("pool2d_forward", probe, pool_size,
                                                         strides, padding, mode)
        n, h, w, c = xc.shape
        dt = xc.dtype
        out = self._out(out, (n, oh, ow, c), dt)
        is_max = mode == "max"
        index = self._out(index, (n, oh, ow, c), np.int64, "index") if is_max else None
        check_aliasing("pool2d_forward", [("out", out), ("index", index)], [("x", x0)],
                       _DeviceMemory)
        xd = self._upload(x0, xc, dt, "x")
        self._launch(self._conv_kernels().pool_forward, out.size, xd, out,
                     index if is_max else self._dummy(np.int64, 4), is_max, pool[0], pool[1],
                     strides[0], strides[1], padding[0][0], padding[1][0])
        return out, index

    def pool2d_backward(self, dy, input_shape, pool_size, strides=None,
                        padding=((0, 0), (0, 0)), mode="max", index=None, out=None):
        """As :meth:`Backend.pool2d_backward`; for ``'max'``, every ``index`` must also
        lie in its own pooling window (as :meth:`pool2d_forward` gives it), which the
        gather over the windows relies on: ``ValueError`` otherwise."""
        dy0, index = self._foreign(dy), self._foreign(index)
        strides = pool_size if strides is None else strides
        dt = work_dtype(dy0, "dy")
        dyc = as_float(self._geometry_arg(dy0, dt, "dy"), dt, "dy", 4)
        shape = _shape4(input_shape, "pool2d_backward", "input_shape")
        pool, strides, padding, (oh, ow) = pool_geometry("pool2d_backward", shape, pool_size,
                                                         strides, padding, mode)
        n, h, w, c = shape
        if dyc.shape != (n, oh, ow, c):
            raise ValueError(f"pool2d_backward: dy must have shape {(n, oh, ow, c)}, got "
                             f"{dyc.shape}")
        out = self._out(out, shape, dt)
        reads = [("dy", dy0)]
        is_max = mode == "max"
        if is_max:
            if index is None:
                raise ValueError("pool2d_backward: max pooling needs the index "
                                 "pool2d_forward returned")
            on_device = self._is_device(index)
            ic = index if on_device else np.asarray(index)
            if tuple(ic.shape) != dyc.shape or np.dtype(ic.dtype).kind not in "iu":
                raise ValueError(f"pool2d_backward: index must be integers of shape "
                                 f"{dyc.shape}, got {ic.dtype} {tuple(ic.shape)}")
            if not on_device and ic.size and (ic.min() < 0 or ic.max() >= n * h * w * c):
                raise ValueError(f"pool2d_backward: index holds positions outside an input "
                                 f"of shape {shape}")
            reads.append(("index", index))
        check_aliasing("pool2d_backward", [("out", out)], reads, _DeviceMemory)
        dyd = self._upload(dy0, dyc, dt, "dy")
        C = self._conv_kernels()
        if is_max:
            idx = (self._to_device(ic, np.int64, "index") if on_device
                   else self._cuda.to_device(np.ascontiguousarray(ic, dtype=np.int64)))
            self._check_pool_index(idx, shape, pool, strides, padding)
        else:
            idx = self._dummy(np.int64, 4)
        self._launch(C.pool_backward, out.size, dyd, idx, out, is_max, pool[0], pool[1],
                     strides[0], strides[1], padding[0][0], padding[1][0])
        return out

    def _check_pool_index(self, index, shape, pool, strides, padding):
        """ValueError unless every entry of device ``index`` is a position of the
        input (the reference's check) inside its own pooling window."""
        if not index.size:
            return
        bad = self._cuda.to_device(np.zeros(2, dtype=np.int32))
        self._launch(self._conv_kernels().pool_index_check, index.size, index, pool[0],
                     pool[1], strides[0], strides[1], padding[0][0], padding[1][0],
                     shape[1], shape[2], bad)
        outside, elsewhere = bad.copy_to_host()
        if outside:
            raise ValueError(f"pool2d_backward: index holds positions outside an input of "
                             f"shape {shape}")
        if elsewhere:
            raise ValueError(f"pool2d_backward: index holds positions outside their pooling "
                             f"windows (pool {pool}, strides {strides}, padding {padding}) "
                             f"of an input of shape {shape}; pass the index pool2d_forward "
                             f"returned")
