"""Reshaping layers."""
from .flatten import Flatten

__all__ = ["Flatten"]
