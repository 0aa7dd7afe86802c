"""Convolution layers (Keras 3's ``layers/convolutional``)."""
from .conv1d import Conv1D
from .conv2d import Conv2D
from .conv2d_transpose import Conv2DTranspose
from .depthwise_conv2d import DepthwiseConv2D
from .separable_conv2d import SeparableConv2D

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D"]
