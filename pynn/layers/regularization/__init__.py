"""Regularization layers."""
from .dropout import Dropout
from .spatial_dropout import SpatialDropout1D, SpatialDropout2D

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D"]
