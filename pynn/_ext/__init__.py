"""Compiled Cython kernels (built from csrc/)."""
