"""Core layers."""
from .dense import Dense
from .embedding import Embedding
from .masking import Masking

__all__ = ["Dense", "Embedding", "Masking"]
