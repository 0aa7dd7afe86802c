"""Activation layers."""
from .activation import Activation
from .leaky_relu import LeakyReLU
from .softmax import Softmax

__all__ = ["Activation", "LeakyReLU", "Softmax"]
