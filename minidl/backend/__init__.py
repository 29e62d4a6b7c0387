"""The backend: devices, their array modules, and the per-device kernel registry.

This is the bottom layer of minidl (with ``dtypes``). See ``device.py`` for devices and
``registry.py`` for how ops find the kernel that computes them, ``memory.py`` for why
minidl asks the C allocator to keep freed memory.
"""

from . import memory
from .device import Device, array_module, cpu, device, device_of
from .kernel_loader import register_cpu_kernels, register_cuda_kernels
from .registry import kernel_choice, kernels_for, register_kernel, tables, use_kernel

register_cpu_kernels()
register_cuda_kernels()
memory.apply_default()

__all__ = [
    "Device",
    "device",
    "cpu",
    "device_of",
    "array_module",
    "kernels_for",
    "register_kernel",
    "use_kernel",
    "kernel_choice",
    "tables",
]
