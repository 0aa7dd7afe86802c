"""Keras's device names and ``DeviceMesh``, for the scripts that pass them to
``DataParallel`` (the keras-io distribution guide does)::

    devices = pynn.distribution.list_devices()
    mesh = pynn.distribution.DeviceMesh((len(devices),), ["batch"], devices)
    pynn.distribution.set_distribution(pynn.distribution.DataParallel(device_mesh=mesh))

Under MPI a "device" is one rank's process: ``"cpu:<rank>"``. Data parallelism over a
1-D mesh of all of them is what pynn runs; anything else is refused by name.
"""
from __future__ import annotations

from . import distribution_lib

__all__ = ["list_devices", "DeviceMesh", "check_devices"]

_TYPES = (None, "cpu")


def list_devices(device_type=None):
    """``["cpu:0", ..., "cpu:<N-1>"]``: one device per process of the job (Keras)."""
    if device_type is not None and str(device_type).lower() not in ("cpu",):
        raise ValueError(f"list_devices: device_type={device_type!r}: pynn's distribution "
                         f"runs one CPU process per rank; use None or 'cpu'")
    return [f"cpu:{i}" for i in range(distribution_lib.num_processes())]


class DeviceMesh:
    """A mesh of devices with named axes (Keras's ``DeviceMesh``); pynn runs data
    parallelism over a 1-D mesh of every process."""

    def __init__(self, shape, axis_names, devices=None):
        shape = tuple(int(s) for s in shape)
        axis_names = list(axis_names)
        if len(shape) != len(axis_names):
            raise ValueError(f"DeviceMesh: shape {shape} and axis_names {axis_names} must "
                             f"have the same length")
        devices = list_devices() if devices is None else list(devices)
        size = 1
        for s in shape:
            size *= s
        if size != len(devices):
            raise ValueError(f"DeviceMesh: shape {shape} holds {size} devices, but "
                             f"{len(devices)} were given")
        self.shape, self.axis_names, self.devices = shape, axis_names, devices

    def __repr__(self):
        return f"DeviceMesh(shape={self.shape}, axis_names={self.axis_names})"


def check_devices(device_mesh, devices):
    """Refuse a mesh or device list that is not every process once, in rank order."""
    if device_mesh is not None and devices is not None:
        raise ValueError("DataParallel: pass device_mesh or devices, not both")
    if device_mesh is not None:
        if not isinstance(device_mesh, DeviceMesh):
            raise TypeError(f"DataParallel: device_mesh must be a DeviceMesh, got "
                            f"{type(device_mesh).__name__}")
        if len(device_mesh.shape) != 1:
            raise ValueError(f"DataParallel: device_mesh of shape {device_mesh.shape}: "
                             f"data parallelism runs over a 1-D mesh of every process")
        devices = device_mesh.devices
    if devices is not None:
        want = list_devices()
        got = [str(d).lower() for d in devices]
        if got != want:
            raise ValueError(f"DataParallel: devices {list(devices)}: pynn runs one model "
                             f"copy per MPI process, so the devices must be every process "
                             f"in rank order, {want} (pynn.distribution.list_devices())")
