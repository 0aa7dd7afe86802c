"""Keras-style layers (one module per layer, grouped as Keras 3 groups them).

Every layer follows the contract of :mod:`pynn.layers.layer`: it owns its weights and
a fused ``forward(ctx, x, training)`` / ``backward(ctx, dy, input_grad)`` pair whose
per-call state lives in the :class:`~pynn.layers.context.CallContext` the engine
gives it. Calling a layer on :func:`Input` tensors records a graph node.
"""
from .activations import Activation, LeakyReLU, Softmax
from .context import CallContext
from .core import Dense
from .input_layer import Input, InputLayer
from .layer import Layer, Weight, clear_session
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract,
                      add, average, concatenate, dot, maximum, minimum, multiply, subtract)
from .node import KerasTensor
from .normalization import BatchNormalization
from .regularization import Dropout
from .reshaping import Flatten
from .serialization import deserialize, get, register, serialize

register(InputLayer, Dense, Activation, Dropout, BatchNormalization, Flatten, LeakyReLU,
         Softmax, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot)

__all__ = ["Layer", "Weight", "CallContext", "KerasTensor", "InputLayer", "Input", "Dense",
           "Activation", "Dropout", "BatchNormalization", "Flatten", "LeakyReLU", "Softmax",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "clear_session", "get", "serialize", "deserialize", "register"]
