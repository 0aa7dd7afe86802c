"""Core layers."""
from .dense import Dense
from .masking import Masking

__all__ = ["Dense", "Masking"]
