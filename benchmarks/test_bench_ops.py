"""Microbenchmarks: every op of ``pynn.ops`` on every available backend, and one dense layer.

Shapes are those of the 784-256-128-10 MNIST MLP at batch 32, 128 and 1024, float32, with
every output buffer preallocated (see :func:`pynn.bench.op_cases`). Each op and shape is
one pytest-benchmark group, so the backends read side by side::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/ --benchmark-enable

Without ``--benchmark-enable`` (the default ``addopts``) each benchmark runs once: a smoke
test that every op runs at these shapes on every backend. Nothing here asserts a timing.
"""
import re

import pytest

from pynn.bench import dense_step, op_cases
from pynn.ops import _OPS

CASES = op_cases()
DENSE_BATCHES = (32, 128, 1024)


def _id(text):
    return re.sub(r"[^0-9A-Za-z_.,>@+-]+", "_", text).strip("_")


def test_every_op_has_a_benchmark():
    # a new op in pynn.ops must get a case in pynn.bench.op_cases
    assert sorted({c.op for c in CASES}) == sorted(_OPS)


@pytest.mark.parametrize("case", CASES, ids=[_id(c.name) for c in CASES])
def test_op(benchmark, backend, backend_name, case):
    benchmark.group = case.name
    benchmark.extra_info["backend"] = backend_name
    fn = case.make(backend)
    fn()  # warm-up outside the timing: Numba compiles on first call
    benchmark(fn)


@pytest.mark.parametrize("part", ["forward", "backward", "forward+backward"])
@pytest.mark.parametrize("batch", DENSE_BATCHES)
def test_dense_784_256_relu(benchmark, backend, backend_name, batch, part):
    """forward: GEMM + fused bias/ReLU; backward: activation_backward, GEMM trans_a (dW),
    bias_grad, GEMM trans_b (dX)."""
    forward, backward, step = dense_step(backend, batch)
    fn = {"forward": forward, "backward": backward, "forward+backward": step}[part]
    benchmark.group = f"dense 784->256 relu {part} batch {batch}"
    benchmark.extra_info["backend"] = backend_name
    fn()
    benchmark(fn)
