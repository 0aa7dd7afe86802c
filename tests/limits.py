"""Run risky code (hangs, memory exhaustion) in a child process with limits.

The child gets a time limit (``subprocess`` timeout: a hang fails the test instead
of stalling the suite) and, once its imports are done, an address-space limit
(``RLIMIT_AS``) of its current size plus a budget: code that allocates far more
than the budget fails with ``MemoryError`` instead of exhausting the machine.
"""
import os
import subprocess
import sys
import textwrap

from helpers import PYNN_PATH

#: Defines ``limit_memory(extra_mb)`` in the child; call it after the imports.
PRELUDE = textwrap.dedent('''
    import resource as _resource

    def limit_memory(extra_mb):
        """Cap this process's address space at its present size plus ``extra_mb``."""
        with open("/proc/self/status") as _f:
            size = next(int(line.split()[1]) * 1024 for line in _f
                        if line.startswith("VmSize:"))
        cap = size + int(extra_mb) * 2**20
        _resource.setrlimit(_resource.RLIMIT_AS, (cap, cap))
''')


def run_limited(code, timeout, env=None, cwd=None, args=()):
    """Run ``code`` (after :data:`PRELUDE`) in a fresh interpreter importing the pynn
    under test; returns the ``CompletedProcess``. A child still running after
    ``timeout`` seconds is killed and the test fails, naming the hang."""
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = PYNN_PATH + os.pathsep + e.get("PYTHONPATH", "")
    try:
        return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
                              env=e, cwd=cwd or PYNN_PATH, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the child process hung (killed after {timeout} s); its "
                             f"output: {exc.stdout!r} {exc.stderr!r}") from None
