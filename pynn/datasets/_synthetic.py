"""Synthetic data sets used by the tutorials.

``make_classification``, ``make_moons`` and ``make_circles`` follow scikit-learn's
algorithms and random-number consumption, so with the same integer ``random_state`` they
return the same arrays as scikit-learn (no scikit-learn needed). ``random_state`` is an int,
a ``numpy.random.RandomState`` or None (NumPy's global RandomState, which
``pynn.set_seed`` seeds).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_random_state", "make_classification", "make_moons", "make_circles", "xor",
           "quadrants"]


def check_random_state(seed):
    """A ``numpy.random.RandomState`` from None, an int or a RandomState."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy.random.RandomState, "
                     f"got {seed!r}")


def _shuffle_rows(rng, *arrays):
    idx = np.arange(arrays[0].shape[0])
    rng.shuffle(idx)
    return tuple(a[idx] for a in arrays)


def _sample_without_replacement(n_population, n_samples, rng):
    """scikit-learn's ``sample_without_replacement(method='auto')``."""
    ratio = n_samples / n_population if n_population else 1.0
    if 0.01 < ratio < 0.99:
        return rng.permutation(n_population)[:n_samples]
    out = np.empty(n_samples, dtype=np.int64)
    if ratio < 0.2:  # tracking selection
        selected = set()
        for i in range(n_samples):
            j = rng.randint(n_population)
            while j in selected:
                j = rng.randint(n_population)
            selected.add(j)
            out[i] = j
        return out
    out[:] = np.arange(n_samples)  # reservoir sampling
    for i in range(n_samples, n_population):
        j = rng.randint(0, i + 1)
        if j < n_samples:
            out[j] = i
    return out


def _hypercube(samples, dimensions, rng):
    """``samples`` distinct vertices of the unit hypercube in ``dimensions`` dimensions."""
    if dimensions > 30:
        return np.hstack([rng.randint(2, size=(samples, dimensions - 30)),
                          _hypercube(samples, 30, rng)])
    out = _sample_without_replacement(2 ** dimensions, samples, rng).astype(">u4")
    return np.unpackbits(out.view(">u1")).reshape((-1, 32))[:, -dimensions:]


def make_classification(n_samples=100, n_features=20, *, n_informative=2, n_redundant=2,
                        n_repeated=0, n_classes=2, n_clusters_per_class=2, weights=None,
                        flip_y=0.01, class_sep=1.0, hypercube=True, shift=0.0, scale=1.0,
                        shuffle=True, random_state=None):
    """Random n-class problem: Gaussian clusters on the vertices of a hypercube.

    Same arguments, algorithm and output as ``sklearn.datasets.make_classification``:
    ``n_informative`` features hold clusters (``n_clusters_per_class`` per class, each
    ``class_sep`` from the origin along every axis, with a random covariance), then
    ``n_redundant`` random linear combinations of them, ``n_repeated`` copies, and noise
    features; ``flip_y`` of the labels are reassigned at random.

    Returns
    -------
    X : float64 array (n_samples, n_features)
    y : int64 array (n_samples,) of labels in [0, n_classes)
    """
    rng = check_random_state(random_state)
    if n_informative + n_redundant + n_repeated > n_features:
        raise ValueError("make_classification: n_informative + n_redundant + n_repeated "
                         f"({n_informative} + {n_redundant} + {n_repeated}) must be at most "
                         f"n_features ({n_features})")
    if n_informative < np.log2(n_classes * n_clusters_per_class):
        raise ValueError(f"make_classification: n_classes ({n_classes}) * n_clusters_per_class "
                         f"({n_clusters_per_class}) must be at most 2**n_informative "
                         f"({2 ** n_informative})")
    if weights is not None:
        if len(weights) not in (n_classes, n_classes - 1):
            raise ValueError(f"make_classification: weights has {len(weights)} entries for "
                             f"n_classes={n_classes}")
        weights = list(weights)
        if len(weights) == n_classes - 1:
            weights.append(1.0 - sum(weights))
    else:
        weights = [1.0 / n_classes] * n_classes

    n_useless = n_features - n_informative - n_redundant - n_repeated
    n_clusters = n_classes * n_clusters_per_class
    per_cluster = [int(n_samples * weights[k % n_classes] / n_clusters_per_class)
                   for k in range(n_clusters)]
    for i in range(n_samples - sum(per_cluster)):
        per_cluster[i % n_clusters] += 1

    X = np.zeros((n_samples, n_features))
    y = np.zeros(n_samples, dtype=np.int64)

    centroids = _hypercube(n_clusters, n_informative, rng).astype(float)
    centroids *= 2 * class_sep
    centroids -= class_sep
    if not hypercube:
        centroids *= rng.uniform(size=(n_clusters, 1))
        centroids *= rng.uniform(size=(1, n_informative))

    X[:, :n_informative] = rng.standard_normal(size=(n_samples, n_informative))
    stop = 0
    for k, centroid in enumerate(centroids):
        start, stop = stop, stop + per_cluster[k]
        y[start:stop] = k % n_classes
        X_k = X[start:stop, :n_informative]
        A = 2 * rng.uniform(size=(n_informative, n_informative)) - 1
        X_k[...] = np.dot(X_k, A)
        X_k += centroid

    if n_redundant > 0:
        B = 2 * rng.uniform(size=(n_informative, n_redundant)) - 1
        X[:, n_informative:n_informative + n_redundant] = np.dot(X[:, :n_informative], B)
    if n_repeated > 0:
        n = n_informative + n_redundant
        indices = ((n - 1) * rng.uniform(size=n_repeated) + 0.5).astype(np.intp)
        X[:, n:n + n_repeated] = X[:, indices]
    if n_useless > 0:
        X[:, -n_useless:] = rng.standard_normal(size=(n_samples, n_useless))

    if flip_y >= 0.0:
        flip = rng.uniform(size=n_samples) < flip_y
        y[flip] = rng.randint(n_classes, size=flip.sum())

    if shift is None:
        shift = (2 * rng.uniform(size=n_features) - 1) * class_sep
    X += shift
    if scale is None:
        scale = 1 + 100 * rng.uniform(size=n_features)
    X *= scale

    if shuffle:
        X, y = _shuffle_rows(rng, X, y)
        indices = np.arange(n_features)
        rng.shuffle(indices)
        X[:, :] = X[:, indices]
    return X, y


def _split_counts(n_samples, fn):
    if isinstance(n_samples, numbers.Integral):
        n_out = n_samples // 2
        return n_out, n_samples - n_out
    try:
        n_out, n_in = n_samples
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: n_samples must be an int or a pair (n_outer, n_inner), got "
                         f"{n_samples!r}") from None
    return int(n_out), int(n_in)


def make_moons(n_samples=100, *, shuffle=True, noise=None, random_state=None):
    """Two interleaving half circles (``sklearn.datasets.make_moons``).

    Returns ``X`` float64 ``(n, 2)`` and ``y`` int64 ``(n,)``; ``noise`` is the standard
    deviation of Gaussian noise added to ``X``.
    """
    n_out, n_in = _split_counts(n_samples, "make_moons")
    rng = check_random_state(random_state)
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    if shuffle:
        X, y = _shuffle_rows(rng, X, y)
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def make_circles(n_samples=100, *, shuffle=True, noise=None, random_state=None, factor=0.8):
    """A large circle containing a smaller one, radius ratio ``factor``
    (``sklearn.datasets.make_circles``). Returns ``X`` float64 ``(n, 2)``, ``y`` int64."""
    if not 0 <= factor < 1:
        raise ValueError(f"make_circles: factor must be in [0, 1), got {factor}")
    n_out, n_in = _split_counts(n_samples, "make_circles")
    rng = check_random_state(random_state)
    lin_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    lin_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.append(np.cos(lin_out), np.cos(lin_in) * factor),
                   np.append(np.sin(lin_out), np.sin(lin_in) * factor)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    if shuffle:
        X, y = _shuffle_rows(rng, X, y)
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def xor(dtype="float32"):
    """The four XOR points: ``X`` ``(4, 2)`` in {0, 1} and ``y`` ``(4, 1)`` = x0 XOR x1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return X, y


def quadrants(n_samples=1000, random_state=None, dtype="float64"):
    """Standard-normal points in 2-D, class 1 in the first and third quadrants.

    The data of the tutorials' ``generate_data``: with ``random_state=42`` it is exactly
    ``np.random.seed(42); X = np.random.randn(n_samples, 2)``. Returns ``X`` ``(n, 2)`` and
    ``y`` ``(n, 1)`` (both ``dtype``), as the tutorial's target column.
    """
    rng = check_random_state(random_state)
    X = rng.randn(n_samples, 2)
    y = np.zeros((n_samples, 1))
    y[(X[:, 0] > 0) & (X[:, 1] > 0)] = 1
    y[(X[:, 0] < 0) & (X[:, 1] < 0)] = 1
    return X.astype(dtype, copy=False), y.astype(dtype, copy=False)
