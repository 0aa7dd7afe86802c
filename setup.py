"""Build the Cython kernels in csrc/ into pynn._ext.*.

Set PYNN_DEBUG_BUILD=1 to rebuild with bounds checks, wraparound and
initialisation checks on (and without -O3) for debugging.

A source install compiles for the CPU it runs on (``-march=native``: AVX2/AVX-512
vectorise the elementwise and optimizer loops, ~3x faster Adam here). Set
PYNN_PORTABLE_BUILD=1 when building a wheel for other machines. Floating-point
contraction stays off so the kernels round like the NumPy reference.
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
PORTABLE = os.environ.get("PYNN_PORTABLE_BUILD", "") not in ("", "0")


def _native_flag():
    """``-march=native`` when the C compiler accepts it (gcc and clang do on x86-64)."""
    import subprocess
    import sysconfig
    import tempfile
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        try:
            ok = subprocess.run(cc + ["-march=native", "-c", src, "-o", os.path.join(tmp, "t.o")],
                                capture_output=True).returncode == 0
        except OSError:
            ok = False
    return ["-march=native"] if ok else []


if DEBUG:
    compile_args = ["-O0", "-g"]
else:
    compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off"]
    if not PORTABLE:
        compile_args += _native_flag()

extensions = [
    Extension(
        "pynn._ext." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[np.get_include(), "csrc"],
        depends=sorted(glob.glob("csrc/*.h")),
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
