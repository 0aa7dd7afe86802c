"""The legacy ``keras.preprocessing`` paths older tutorials import."""
from . import sequence

__all__ = ["sequence"]
