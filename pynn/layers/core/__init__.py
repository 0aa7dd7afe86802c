"""Core layers."""
from .dense import Dense
from .embedding import Embedding

__all__ = ["Dense", "Embedding"]
