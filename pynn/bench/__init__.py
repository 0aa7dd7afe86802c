"""Benchmarks: pynn's backends side by side, and beside PyTorch, NumPy and scikit-learn.

Run ``python -m pynn bench`` (or ``python benchmarks/run.py``). It prints Markdown tables
and, with ``--json PATH``, writes every measurement as JSON:

(a) ``--ops``: every op of :mod:`pynn.ops` on every available backend at the shapes of the
    MNIST MLP (batch 32/128/1024 x 784/256/128/10, float32, preallocated ``out=``
    buffers): median microseconds per call and the speed-up over the NumPy reference.
(b) ``--dense``: one 784->256 ReLU layer, forward (GEMM with fused bias+ReLU) and backward
    (activation_backward, GEMM for dW, bias_grad, GEMM for dX) per backend and batch
    size, beside the bare NumPy matrix products of that step.
(c) ``--train``: one epoch of a 784-256-128-10 ReLU softmax/cross-entropy MLP on 60,000
    MNIST-shaped samples (random, or real MNIST with ``--data``) with SGD and Adam at batch
    32/128/1024, for every backend through :class:`pynn.models.Sequential`, interleaved
    with the peers that are installed (PyTorch eager CPU on 2 threads, a hand-written
    NumPy MLP, scikit-learn's ``MLPClassifier.partial_fit``), with the GEMM-only floor of
    the epoch beside them; then ``predict`` at batch 1 and 1024.
(d) ``--startup`` (only when asked): ``import pynn`` in fresh processes; per backend the
    first and second training epoch in a fresh process with a cold and then a warm Numba
    cache (a new, empty ``NUMBA_CACHE_DIR``), so the first epoch's compilation shows as
    the difference; and the NumPy memory a training step allocates once warm
    (``tracemalloc``, NumPy's domain: 0 means no array is made per step); for the MLP
    and for the convnet of (e).
(e) ``--cnn`` (only when asked): one epoch of the keras-io "Simple MNIST convnet"
    (Conv2D 32 - MaxPool - Conv2D 64 - MaxPool - Flatten - Dropout - Dense 10, Adam) on
    60,000 MNIST-shaped samples at batch 32 and 128, for the compiled backends (the
    NumPy reference when named), PyTorch eager CPU on 2 threads in NCHW and in
    channels-last, Keras 3 on its torch backend (in a process of its own) and the
    im2col matrix products of every step alone; then ``predict`` throughput at batch
    1024.
(f) ``--rnn`` (only when asked): one epoch of the keras-io "Bidirectional LSTM on IMDB"
    classifier (Embedding 20000x128 - two Bidirectional LSTM(64) - Dense(1, sigmoid),
    Adam, 200 random tokens) and its GRU variant, 25,000 samples extrapolated from a few
    timed batches, at batch 32 and 128, for the compiled backends, PyTorch eager
    (``nn.LSTM``/``nn.GRU``, 2 threads), Keras 3 on torch and the recurrent kernels'
    products alone; then one LSTM/GRU layer's training step beside its own products.
(g) ``--custom`` (only when asked): one epoch of the MLP of (c) written three ways
    (built-in layers, a subclassed ``Model`` of built-in layers, custom layers whose
    ``call()`` uses ``pynn.ops``), Adam, 16,384 samples at batch 32 and 128, per compiled
    backend, with each way's ratio to the built-in layers; then the op path's per-op
    overhead (an op recorded on the tape and its backward, beside NumPy's own work).
(h) ``--mpi`` (only when asked, needs ``pynn[mpi]``): allreduce latency and bandwidth on
    loopback; the tutorial MLP's and the convnet's step on 2 MPI ranks x 1 thread against
    one process; the share spent communicating; a scaling estimate for N machines.

Timing rules: every contestant is warmed up first (Numba compiles lazily); timed samples
are taken round-robin over the contestants so that drift of a shared machine hits all of
them alike, with a short pause between contestants in (c) because OpenBLAS worker threads
keep spinning after a call and would steal a core from the next one. Reported figures are
medians of ``--repeats`` samples.

OpenBLAS environment overrides such as ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` make
NumPy's matrix products slower; the report warns when they are set. To benchmark, unset
them for that one command: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pynn
bench``.

The code is split by concern: :mod:`~pynn.bench.timing` (calibrated samples, medians),
:mod:`~pynn.bench.op_cases` (a), :mod:`~pynn.bench.dense` (b and the GEMM floors),
:mod:`~pynn.bench.contestants` (c's contestants), :mod:`~pynn.bench.data`,
:mod:`~pynn.bench.environment` (thread pools, overrides, the report's header),
:mod:`~pynn.bench.tables` (Markdown), :mod:`~pynn.bench.sections` (a-c),
:mod:`~pynn.bench.startup` (d), :mod:`~pynn.bench.cnn` (e's network, data and
products), :mod:`~pynn.bench.cnn_contestants`, :mod:`~pynn.bench.cnn_section` (e),
:mod:`~pynn.bench.rnn`, :mod:`~pynn.bench.rnn_contestants`, :mod:`~pynn.bench.rnn_section`
(f), :mod:`~pynn.bench.custom`, :mod:`~pynn.bench.custom_section` (g),
:mod:`~pynn.bench.mpi_worker`, :mod:`~pynn.bench.mpi_section` (h),
:mod:`~pynn.bench.plot` and :mod:`~pynn.bench.cli`.
Every section uses pynn's public API; the two model internals that timing one step
needs go through :mod:`~pynn.bench.pynn_api` alone.
"""
from __future__ import annotations

from .cli import build_parser, main
from .cnn import cnn_data, cnn_flops_per_sample, cnn_gemm_floor, cnn_model
from .cnn_section import run_cnn
from .constants import (ARCH, BATCHES, CNN_BATCHES, CNN_PREDICT_BATCH, LEARNING_RATES,
                        NOT_INSTALLED, OPS_PAUSE_S, PAUSE_S, PREDICT_BATCHES, QUICK_BATCHES,
                        QUICK_CNN_BATCHES, QUICK_CNN_PREDICT_BATCH, QUICK_CNN_SAMPLES,
                        QUICK_PREDICT_BATCHES, QUICK_RNN_BATCHES, QUICK_RNN_LENGTH,
                        QUICK_RNN_TIMED_STEPS, QUICK_SAMPLES, QUICK_TRAIN_BATCHES,
                        RNN_BATCHES, RNN_LENGTH, RNN_SAMPLES, RNN_TIMED_STEPS)
from .contestants import PEERS, default_peers, models_status, tutorial_model
from .custom import custom_model, op_overhead
from .custom_section import run_custom
from .data import training_data
from .dense import dense_step
from .environment import OPENBLAS_OVERRIDES, blas_info, default_backends, openblas_overrides
from .op_cases import OpCase, mlp_param_count, op_cases
from .rnn import rnn_data, rnn_flops_per_sample, rnn_layer_model, rnn_model, rnn_products
from .rnn_section import run_rnn
from .sections import run_dense, run_ops, run_train
from .startup import run_startup, step_allocations

__all__ = [
    "main", "build_parser", "OpCase", "op_cases", "mlp_param_count", "dense_step",
    "blas_info", "openblas_overrides", "default_backends", "default_peers", "models_status",
    "tutorial_model", "training_data", "run_ops", "run_dense", "run_train", "run_startup",
    "step_allocations", "cnn_model", "cnn_data", "cnn_gemm_floor", "cnn_flops_per_sample",
    "run_cnn", "CNN_BATCHES", "CNN_PREDICT_BATCH", "QUICK_CNN_BATCHES",
    "QUICK_CNN_PREDICT_BATCH", "QUICK_CNN_SAMPLES", "ARCH", "BATCHES", "PREDICT_BATCHES",
    "QUICK_BATCHES",
    "QUICK_PREDICT_BATCHES", "QUICK_SAMPLES", "QUICK_TRAIN_BATCHES", "PAUSE_S", "OPS_PAUSE_S",
    "OPENBLAS_OVERRIDES", "NOT_INSTALLED", "LEARNING_RATES", "PEERS",
    "rnn_model", "rnn_layer_model", "rnn_data", "rnn_products", "rnn_flops_per_sample",
    "run_rnn", "RNN_BATCHES", "RNN_LENGTH", "RNN_SAMPLES", "RNN_TIMED_STEPS",
    "QUICK_RNN_BATCHES", "QUICK_RNN_LENGTH", "QUICK_RNN_TIMED_STEPS",
    "custom_model", "op_overhead", "run_custom",
]
