"""Plots for training runs: loss/metric curves, 2-D decision boundaries, confusion matrices.

matplotlib is optional (``pip install "pynn[plot]"``) and imported only when a plot is made;
without a display the non-interactive Agg backend is selected. Every function returns the
``matplotlib.figure.Figure`` and saves it to ``path`` when one is given.
"""
from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["plot_history", "plot_decision_boundary", "plot_confusion_matrix"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError('pynn.plot needs matplotlib: pip install "pynn[plot]"') from exc
    headless = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY"))
    if headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def plot_history(history, metrics=None, path=None, title=None):
    """Curves of ``loss`` and metrics per epoch, with their ``val_`` twins when present.

    Parameters
    ----------
    history : ``History`` (from ``model.fit``), its ``.history`` dict, or a list of losses
    metrics : names to plot, one panel each (default: every key without the ``val_`` prefix,
        except ``learning_rate``)
    path : file to save the figure to (format from the extension)
    """
    epochs = None
    if hasattr(history, "history"):
        epochs = getattr(history, "epoch", None)
        history = history.history
    if not isinstance(history, dict):
        history = {"loss": list(history)}
    if metrics is None:
        metrics = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
        if not metrics:
            metrics = list(history)
    elif isinstance(metrics, str):
        metrics = [metrics]
    missing = [m for m in metrics if m not in history]
    if missing:
        raise ValueError(f"plot_history: {missing} not in the history; available: "
                         f"{sorted(history)}")
    if not metrics:
        raise ValueError("plot_history: the history is empty")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        values = np.asarray(history[name], dtype=float)
        x = (np.asarray(epochs) + 1 if epochs is not None and len(epochs) == len(values)
             else np.arange(1, len(values) + 1))
        ax.plot(x, values, label=f"train {name}" if f"val_{name}" in history else name)
        if f"val_{name}" in history:
            ax.plot(x[:len(history[f"val_{name}"])], history[f"val_{name}"], label=f"val {name}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(name)
        ax.set_title(name.replace("_", " ").capitalize())
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _predict(model, points):
    if hasattr(model, "predict"):
        try:
            return np.asarray(model.predict(points, verbose=0))
        except TypeError:
            return np.asarray(model.predict(points))
    if callable(model):
        return np.asarray(model(points))
    raise TypeError(f"plot_decision_boundary: model must have predict() or be callable, got "
                    f"{type(model).__name__}")


def plot_decision_boundary(model, X, y, path=None, resolution=200, margin=1.0, logits=False,
                           title="Decision boundary", ax=None, cmap="RdYlBu"):
    """Colour the plane by the model's prediction and scatter the samples on top.

    Parameters
    ----------
    model : object with ``predict(points)`` (a pynn/Keras model) or a callable
    X : array (n, 2) of inputs; y : labels (n,), (n, 1) or one-hot (n, k)
    resolution : grid points per axis; margin : padding around the data range
    logits : True when the model outputs logits (sigmoid/softmax is applied before plotting)

    A one-column output is drawn as the probability of class 1 (the 0.5 contour is the
    boundary); a k-column output as the arg-max class.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: X must have shape (n, 2), got {X.shape}")
    y = np.asarray(y)
    y = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"plot_decision_boundary: y has {y.shape[0]} labels for {X.shape[0]} "
                         "samples")
    x0 = np.linspace(X[:, 0].min() - margin, X[:, 0].max() + margin, int(resolution))
    x1 = np.linspace(X[:, 1].min() - margin, X[:, 1].max() + margin, int(resolution))
    xx, yy = np.meshgrid(x0, x1)
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
    out = _predict(model, grid).reshape(grid.shape[0], -1).astype(float)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 6))
    else:
        fig = ax.figure
    if out.shape[1] == 1:
        z = out[:, 0]
        if logits:
            z = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        z = z.reshape(xx.shape)
        filled = ax.contourf(xx, yy, z, levels=np.linspace(0, 1, 21), alpha=0.8, cmap=cmap,
                             extend="both")
        ax.contour(xx, yy, z, levels=[0.5], colors="k", linewidths=1)
        fig.colorbar(filled, ax=ax, label="P(class 1)")
    else:
        z = np.argmax(out, axis=1).reshape(xx.shape)
        k = out.shape[1]
        ax.contourf(xx, yy, z, levels=np.arange(-0.5, k), alpha=0.6, cmap=cmap)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, edgecolors="k", s=20)
    ax.set_xlim(x0[0], x0[-1])
    ax.set_ylim(x1[0], x1[-1])
    ax.set_xlabel("Feature 1")
    ax.set_ylabel("Feature 2")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def plot_confusion_matrix(y_true=None, y_pred=None, labels=None, path=None, normalize=False,
                          cm=None, title="Confusion matrix", cmap="Blues", ax=None):
    """Heat map of a confusion matrix, each cell annotated.

    Pass ``y_true`` and ``y_pred`` (labels, or one-hot/probability rows) or a precomputed
    square matrix as ``cm=`` (or as ``y_true`` alone when ``y_pred`` is None and it is a
    square 2-D integer matrix). ``labels`` names the classes on the axes. ``normalize``:
    False for counts, True or ``'true'`` to divide rows by their totals, ``'pred'`` for
    columns, ``'all'`` for the grand total.
    """
    from .metrics import confusion_matrix

    if cm is None and y_pred is None and y_true is not None:
        cm = y_true
    if cm is None:
        if y_true is None or y_pred is None:
            raise ValueError("plot_confusion_matrix: pass y_true and y_pred, or cm=")
        cm = confusion_matrix(y_true, y_pred)
        if labels is not None and len(labels) > cm.shape[0]:  # top classes never seen
            cm = confusion_matrix(y_true, y_pred, num_classes=len(labels))
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be a square matrix, got {cm.shape}")
    k = cm.shape[0]
    if labels is None:
        labels = [str(i) for i in range(k)]
    elif len(labels) != k:
        raise ValueError(f"plot_confusion_matrix: {len(labels)} labels for a {k}x{k} matrix")
    if normalize is True:
        normalize = "true"
    if normalize:
        cm = cm.astype(float)
        if normalize == "true":
            denom = cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            denom = cm.sum(axis=0, keepdims=True)
        elif normalize == "all":
            denom = cm.sum()
        else:
            raise ValueError("plot_confusion_matrix: normalize must be False, True, 'true', "
                             f"'pred' or 'all', got {normalize!r}")
        cm = np.divide(cm, denom, out=np.zeros_like(cm), where=np.asarray(denom) != 0)
    plt = _pyplot()
    if ax is None:
        size = max(4.0, 0.6 * k + 2)
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    image = ax.imshow(cm, interpolation="nearest", cmap=cmap)
    fig.colorbar(image, ax=ax)
    ax.set_xticks(np.arange(k), labels=[str(v) for v in labels], rotation=45 if k > 10 else 0)
    ax.set_yticks(np.arange(k), labels=[str(v) for v in labels])
    threshold = (cm.max() + cm.min()) / 2.0 if cm.size else 0
    for i in range(k):
        for j in range(k):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8 if k > 6 else 10,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    if title:
        ax.set_title(title)
    return _finish(fig, path)
