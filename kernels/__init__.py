"""minidl's compute kernels: plain array-in, array-out functions.

This folder sits at the top of the repository and ships inside the wheel as
``minidl.kernels``. Kernels know nothing of tensors or autograd; each is testable on its own
against NumPy. ``reference`` holds the NumPy versions (clear, and the baseline every faster
kernel is checked against); ``cpu`` holds Numba kernels.
"""
