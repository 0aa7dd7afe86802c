"""Build the Cython kernels in csrc/ into pynn._ext.*.

Set PYNN_DEBUG_BUILD=1 to rebuild with bounds checks, wraparound and
initialisation checks on (and without -O3) for debugging.
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("PYNN_DEBUG_BUILD", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}
compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-math-errno"]

extensions = [
    Extension(
        "pynn._ext." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[np.get_include(), "csrc"],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for path in sorted(glob.glob("csrc/*.pyx"))
]

setup(
    # The debug build writes its C files elsewhere, so a later normal build never
    # reuses checked C code (and vice versa).
    ext_modules=cythonize(extensions, compiler_directives=directives,
                          include_path=["csrc"],
                          build_dir="build/cython-debug" if DEBUG else None),
)
