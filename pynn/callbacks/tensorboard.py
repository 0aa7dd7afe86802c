"""``TensorBoard``: training logs as TensorBoard event files (Keras 3's callback).

The files are written by ``tensorboardX`` (the ``tensorboard`` extra:
``pip install pynn[tensorboard]``), never by hand.
"""
from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np

from .callback import Callback

__all__ = ["TensorBoard"]


def _writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ImportError("TensorBoard needs the tensorboardX package, pynn's `tensorboard` "
                          "extra: pip install 'pynn[tensorboard]' (or pip install "
                          "tensorboardX)") from exc
    return SummaryWriter


def _scalars(logs):
    """The scalar entries of ``logs`` as floats (per-class arrays are skipped)."""
    out = {}
    for name, value in (logs or {}).items():
        if np.ndim(value) == 0:
            try:
                out[name] = float(value)
            except (TypeError, ValueError):
                continue
    return out


class TensorBoard(Callback):
    """Write TensorBoard logs: ``log_dir/train`` and ``log_dir/validation``.

    As Keras: at each epoch end the scalars ``epoch_<name>`` (the training logs and
    ``epoch_learning_rate`` in ``train``, the ``val_`` logs without their prefix in
    ``validation``; step = epoch); with ``update_freq`` an int (or ``'batch'`` = 1),
    ``batch_<name>`` every that many training batches (step = the batch count since
    ``fit`` began); ``evaluation_<name>_vs_iterations`` in ``validation`` after every
    validation (step = the optimizer's step count); with ``histogram_freq`` n, a
    histogram ``<weight path>/histogram`` of every weight every n-th epoch.

    Parameters
    ----------
    log_dir : str or os.PathLike
    histogram_freq : int
        Epochs between weight histograms (0: none).
    write_graph : bool
        Write the model's config (JSON) once, as the text summary ``keras_model``
        (pynn has no TensorFlow graph for TensorBoard's graph tab).
    write_images : bool
        Not supported: warns and writes no images.
    write_steps_per_second : bool
        Also log ``epoch_steps_per_second`` (and ``batch_steps_per_second``).
    update_freq : 'epoch', 'batch' or int
    profile_batch : int
        Must be 0 (no profiler; Keras's torch backend refuses it too).
    embeddings_freq, embeddings_metadata
        Not supported: a non-zero ``embeddings_freq`` warns.
    """

    rank_zero_only = True  # writes files / prints: rank 0 of a data-parallel job

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        self._writer_cls = _writer_class()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) \
                or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, "
                             f"got {histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not
                                       isinstance(update_freq, int) or update_freq <= 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a "
                             f"positive integer, got {update_freq!r}")
        if profile_batch:
            raise ValueError(f"TensorBoard: profiling is not available in pynn. Received: "
                             f"profile_batch={profile_batch} (must be 0)")
        if write_images:
            warnings.warn("TensorBoard: write_images is not supported by pynn; no weight "
                          "images are written", UserWarning, stacklevel=2)
        if embeddings_freq:
            warnings.warn("TensorBoard: embeddings_freq is not supported by pynn; no "
                          "projector data is written", UserWarning, stacklevel=2)
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers = {}
        self._global_train_batch = 0
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0

    def _writer(self, which):
        if which not in self._writers:
            path = self._train_dir if which == "train" else self._val_dir
            self._writers[which] = self._writer_cls(logdir=path)
        return self._writers[which]

    def _iterations(self):
        return int(getattr(getattr(self.model, "optimizer", None), "iterations", 0) or 0)

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        if self.write_graph and self.model is not None:
            try:
                config = json.dumps({"class_name": type(self.model).__name__,
                                     "config": self.model.get_config()}, default=str)
            except (NotImplementedError, TypeError, ValueError) as exc:
                config = f"(no config: {exc})"
            self._writer("train").add_text("keras_model", config, 0)

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        step = self._global_train_batch
        writer = self._writer("train")
        for name, value in _scalars(logs).items():
            writer.add_scalar(f"batch_{name}", value, step)
        if self.write_steps_per_second:
            elapsed = time.time() - self._batch_start_time
            if elapsed > 0:
                writer.add_scalar("batch_steps_per_second", 1.0 / elapsed, step)

    def on_test_end(self, logs=None):
        if getattr(self.model, "optimizer", None) is None:
            return
        writer = self._writer("val")
        for name, value in _scalars(logs).items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", value, self._iterations())

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start_time = time.time()
            self._epoch_start_iterations = self._iterations()

    def on_epoch_end(self, epoch, logs=None):
        scalars = _scalars(logs)
        train = {k: v for k, v in scalars.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in scalars.items() if k.startswith("val_")}
        if logs:
            try:
                train["learning_rate"] = float(self.model.optimizer.learning_rate)
            except (AttributeError, TypeError, ValueError):
                pass
        if self.write_steps_per_second:
            elapsed = time.time() - self._epoch_start_time
            if elapsed > 0:
                train["steps_per_second"] = \
                    (self._iterations() - self._epoch_start_iterations) / elapsed
        for which, values in (("train", train), ("val", val)):
            if values:
                writer = self._writer(which)
                for name, value in values.items():
                    writer.add_scalar(f"epoch_{name}", value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for w in self.model.weights:
            name = w.path.replace(":", "_")
            writer.add_histogram(f"{name}/histogram", np.asarray(w.numpy(), np.float64),
                                 epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
