"""``SpatialDropout1D`` and ``SpatialDropout2D``: dropout of whole channels."""
from __future__ import annotations

from ..convolutional.conv_utils import check_rank, standardize_data_format
from .dropout import Dropout

__all__ = ["SpatialDropout1D", "SpatialDropout2D"]


class BaseSpatialDropout(Dropout):
    """Dropout whose mask is shared by every position of a channel (Keras's
    ``BaseSpatialDropout``): :class:`Dropout` with ``noise_shape`` ``(n, 1, c)`` for
    sequences, ``(n, 1, 1, c)`` for images (``(n, c, 1, 1)`` channels_first), so the
    backend's dropout op draws one value per sample and channel."""

    rank = None

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = standardize_data_format(data_format,
                                                   f"{type(self).__name__} {self.name!r}")

    def _mask_shape(self, shape):
        n, c = (shape[0], shape[1]) if self.data_format == "channels_first" else \
            (shape[0], shape[-1])
        ones = (1,) * self.rank
        return (n, c) + ones if self.data_format == "channels_first" else (n,) + ones + (c,)

    def compute_output_shape(self, input_shape):
        check_rank(f"{type(self).__name__} {self.name!r}", input_shape, self.rank)
        return tuple(input_shape)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def get_config(self):
        cfg = super().get_config()
        del cfg["noise_shape"]  # fixed by the layer
        cfg["data_format"] = self.data_format
        return cfg


class SpatialDropout1D(BaseSpatialDropout):
    """Drop whole channels of ``(batch, steps, channels)`` inputs (Keras's
    ``SpatialDropout1D``): with probability ``rate`` a channel is zero at every step of a
    sample; kept channels are scaled by ``1 / (1 - rate)``."""

    rank = 1

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)

    def get_config(self):
        cfg = super().get_config()
        del cfg["data_format"]  # Keras's SpatialDropout1D has none
        return cfg


class SpatialDropout2D(BaseSpatialDropout):
    """Drop whole feature maps of images (Keras's ``SpatialDropout2D``): with probability
    ``rate`` a channel is zero at every position of a sample; kept ones are scaled by
    ``1 / (1 - rate)``."""

    rank = 2

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, data_format=data_format, seed=seed, **kwargs)
