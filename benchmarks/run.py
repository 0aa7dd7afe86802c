"""Run pynn's benchmark tables: a thin wrapper around :func:`pynn.bench.main`.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --json bench.json

Same options as ``python -m pynn bench`` (``--help``).
"""
import os
import sys

try:
    import pynn  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pynn.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
