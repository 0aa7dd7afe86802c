"""Preprocessing layers."""
from .normalization import Normalization

__all__ = ["Normalization"]
