"""Keras-style layers (one module per layer, grouped as Keras 3 groups them).

Every layer follows the contract of :mod:`pynn.layers.layer`: it owns its weights and
a fused ``forward(ctx, x, training)`` / ``backward(ctx, dy, input_grad)`` pair whose
per-call state lives in the :class:`~pynn.layers.context.CallContext` the engine
gives it. Calling a layer on :func:`Input` tensors records a graph node.
"""
from .activations import Activation, LeakyReLU, Softmax
from .context import CallContext
from .convolutional import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Dense, Embedding, Masking
from .core.wrapper import Wrapper
from .input_layer import Input, InputLayer
from .layer import Layer, Weight, clear_session
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract,
                      add, average, concatenate, dot, maximum, minimum, multiply, subtract)
from .node import KerasTensor
from .normalization import BatchNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                      MaxPooling1D, MaxPooling2D)
from .regularization import Dropout, SpatialDropout1D, SpatialDropout2D
from .rnn import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed
from .reshaping import (Cropping1D, Cropping2D, Flatten, Reshape, UpSampling1D, UpSampling2D,
                        ZeroPadding1D, ZeroPadding2D)
from .serialization import deserialize, get, register, serialize

register(InputLayer, Dense, Activation, Dropout, BatchNormalization, Flatten, LeakyReLU,
         Softmax, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot)
register(Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, MaxPooling1D,
         MaxPooling2D, AveragePooling1D, AveragePooling2D, GlobalMaxPooling1D,
         GlobalMaxPooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D, Reshape,
         ZeroPadding1D, ZeroPadding2D, Cropping1D, Cropping2D, UpSampling1D, UpSampling2D,
         SpatialDropout1D, SpatialDropout2D, Masking)
register(Embedding, SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed)

__all__ = ["Layer", "Weight", "CallContext", "KerasTensor", "InputLayer", "Input", "Dense",
           "Masking",
           "Activation", "Dropout", "BatchNormalization", "Flatten", "LeakyReLU", "Softmax",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "clear_session", "get", "serialize", "deserialize", "register",
           "Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
           "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "Reshape", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
           "Cropping2D", "UpSampling1D", "UpSampling2D", "SpatialDropout1D", "SpatialDropout2D",
           "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional",
           "TimeDistributed", "Wrapper"]
