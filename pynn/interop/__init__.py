"""Files other programs write and read: Keras 3's ``.keras`` archives and
``.weights.h5`` files (:mod:`.keras_archive`), with the configs translated both ways
(:mod:`.keras_config`) and the weights laid out as Keras lays them out
(:mod:`.keras_weights`). Reading needs ``h5py`` (the ``keras`` extra); nothing in a file
is unpickled or executed.
"""
