"""Reshaping layers (Keras 3's ``layers/reshaping``)."""
from .cropping1d import Cropping1D
from .cropping2d import Cropping2D
from .flatten import Flatten
from .reshape import Reshape
from .up_sampling1d import UpSampling1D
from .up_sampling2d import UpSampling2D
from .zero_padding1d import ZeroPadding1D
from .zero_padding2d import ZeroPadding2D

__all__ = ["Flatten", "Reshape", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
           "UpSampling1D", "UpSampling2D"]
