"""pynn.plot: figures are returned and written; matplotlib stays optional."""
import builtins
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import PYNN_PATH

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pynn import plot  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class FakeHistory:
    def __init__(self):
        self.epoch = [0, 1, 2]
        self.history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
                        "val_loss": [1.1, 0.7, 0.5], "val_accuracy": [0.4, 0.6, 0.75],
                        "learning_rate": [0.001] * 3}


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000


def test_plot_history_panels_and_file(tmp_path):
    path = tmp_path / "sub" / "history.png"
    fig = plot.plot_history(FakeHistory(), path=path)
    assert isinstance(fig, Figure) and _png(path)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]  # no learning_rate
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # train and val
    np.testing.assert_allclose(lines[1].get_ydata(), [1.1, 0.7, 0.5])
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3])
    fig = plot.plot_history({"loss": [3, 2, 1]}, metrics="loss")
    assert len(fig.axes) == 1 and fig.axes[0].get_legend_handles_labels()[1] == ["loss"]
    assert len(plot.plot_history([0.9, 0.5]).axes[0].get_lines()[0].get_ydata()) == 2
    with pytest.raises(ValueError, match="'precision'.*available"):
        plot.plot_history(FakeHistory(), metrics=["precision"])


class LinearModel:
    """Stand-in with a Keras-style predict(x, verbose=...)."""

    def __init__(self, width=1):
        self.width = width
        self.calls = []

    def predict(self, x, batch_size=32, verbose="auto"):
        self.calls.append((x.shape, verbose))
        s = x[:, :1] + x[:, 1:2]
        if self.width == 1:
            return 1 / (1 + np.exp(-s))
        return np.hstack([-s, s, np.zeros_like(s)])


def test_plot_decision_boundary(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = (X.sum(1) > 0).astype(int)
    model = LinearModel()
    path = tmp_path / "boundary.png"
    fig = plot.plot_decision_boundary(model, X, y.reshape(-1, 1), path=path, resolution=40)
    assert isinstance(fig, Figure) and _png(path)
    assert model.calls == [((1600, 2), 0)]
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((X[:, 0].min() - 1, X[:, 0].max() + 1))
    # a callable returning logits, and a multi-class output
    fig = plot.plot_decision_boundary(lambda p: p[:, :1] - p[:, 1:2], X, y, logits=True,
                                      resolution=20)
    assert isinstance(fig, Figure)
    fig = plot.plot_decision_boundary(LinearModel(width=3), X, np.eye(3)[y], resolution=20)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)"):
        plot.plot_decision_boundary(model, np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="labels for 50 samples"):
        plot.plot_decision_boundary(model, X, y[:10])


def test_plot_confusion_matrix(tmp_path):
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 2])
    path = tmp_path / "cm.png"
    fig = plot.plot_confusion_matrix(y, p, labels=["a", "b", "c"], path=path)
    assert isinstance(fig, Figure) and _png(path)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c"]
    fig = plot.plot_confusion_matrix(cm=np.array([[3, 1], [0, 4]]), normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.75", "0.25", "0.00", "1.00"]
    fig = plot.plot_confusion_matrix(np.array([[3, 1], [0, 4]]), normalize="pred")
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.00", "0.20", "0.00", "0.80"]
    with pytest.raises(ValueError, match="square"):
        plot.plot_confusion_matrix(cm=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 labels"):
        plot.plot_confusion_matrix(y, p, labels=["a", "b"])
    with pytest.raises(ValueError, match="normalize"):
        plot.plot_confusion_matrix(cm=np.eye(2), normalize="rows")


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "pynn\[plot\]"'):
        plot.plot_history({"loss": [1.0]})
    with pytest.raises(ImportError, match=r'pip install "pynn\[plot\]"'):
        plot.plot_confusion_matrix(cm=np.eye(2))


def test_headless_selects_agg_and_import_is_lazy(tmp_path):
    code = (
        "import sys, pynn.plot\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        "fig = pynn.plot.plot_history({'loss': [1, 0.5]}, path=sys.argv[1])\n"
        "import matplotlib\n"
        "print(matplotlib.get_backend().lower())\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = PYNN_PATH + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "h.png")], env=env, cwd=PYNN_PATH,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg"
    assert _png(tmp_path / "h.png")
