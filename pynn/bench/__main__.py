"""``python -m pynn.bench``: the same as ``python -m pynn bench``."""
import sys

from .cli import main

sys.exit(main())
