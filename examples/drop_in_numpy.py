"""pynn.ops as a drop-in for a from-scratch NumPy network.

The first class below is the ``NeuralNetwork`` of the tutorial "Building a Neural Network
from Scratch in Python" (sigmoid layers, binary cross-entropy, full-batch gradient descent),
kept as written there. The second is the same class rewritten line by line on
:mod:`pynn.ops`:

===============================================  ==========================================
NumPy                                            pynn.ops
===============================================  ==========================================
``z = np.dot(a, W) + b; a = sigmoid(z)``         ``ops.gemm(a, W, bias=b,
                                                 activation="sigmoid", out=buf)``
cost with ``np.clip``/``np.log``; ``dz = out-y``  ``cost, dz = ops.sigmoid_binary_cross_entropy
                                                 (logits, y, grad=buf)`` (stable, from logits)
``dW = (1/m) * np.dot(a.T, dz)``                 ``ops.gemm(a, dz, trans_a=True, out=dW)``
``db = (1/m) * np.sum(dz, axis=0)``              ``ops.bias_grad(dz, out=db)``
``dz = np.dot(dz, W.T) * sigmoid'(z)``           ``ops.gemm(dz, W, trans_b=True, out=da)``;
                                                 ``ops.activation_backward(da, a, "sigmoid",
                                                 out=da)``
``W -= lr * dW``                                 ``ops.sgd_update(W, dW, learning_rate=lr)``
===============================================  ==========================================

Every array the pynn version writes is allocated once and reused each epoch. Both train on
XOR (2-4-1, as in the tutorial) and on two moons from the same initial weights (the same
``np.random`` seed); the script prints the accuracy of each and the time per epoch::

    python examples/drop_in_numpy.py [--backend cython] [--epochs 5000]

On the four XOR samples every call costs more than the arithmetic, so expect little or no
speed-up there; the moons network (larger batch and layers) shows the kernels' effect.
"""
import argparse
import time

import numpy as np

import pynn
from pynn import ops


# ---------------------------------------------------------------------------
# The tutorial's network, in NumPy (unchanged apart from this comment)
# ---------------------------------------------------------------------------
class NeuralNetwork:
    def __init__(self, layers, learning_rate=0.01):
        """
        Initialize the neural network
        Args:
        layers: List of integers representing the number of neurons in each layer
        learning_rate: Learning rate for gradient descent
        """
        self.layers = layers
        self.learning_rate = learning_rate
        self.weights = []
        self.biases = []
        self.costs = []  # To track training progress
        # Initialize weights and biases using Xavier initialization
        for i in range(len(layers) - 1):
            # Xavier initialization for better convergence
            w = np.random.randn(layers[i], layers[i+1]) * np.sqrt(2.0 / layers[i])
            b = np.zeros((1, layers[i+1]))
            self.weights.append(w)
            self.biases.append(b)

    def sigmoid(self, z):
        """Sigmoid activation function"""
        # Clip z to prevent overflow
        z = np.clip(z, -500, 500)
        return 1 / (1 + np.exp(-z))

    def sigmoid_derivative(self, z):
        """Derivative of sigmoid function"""
        s = self.sigmoid(z)
        return s * (1 - s)

    def forward(self, X):
        """
        Forward propagation through the network
        Args:
        X: Input data of shape (m, n_features)
        Returns:
        Output of the network
        """
        self.z_values = []  # Store z values for backpropagation
        self.activations = [X]  # Store activations for backpropagation
        current_input = X
        for i in range(len(self.weights)):
            # Linear transformation: z = Wx + b
            z = np.dot(current_input, self.weights[i]) + self.biases[i]
            self.z_values.append(z)
            # Apply activation function
            if i < len(self.weights) - 1:  # Hidden layers use sigmoid
                a = self.sigmoid(z)
            else:  # Output layer (no activation for regression, sigmoid for binary classification)
                a = self.sigmoid(z)  # For binary classification
            self.activations.append(a)
            current_input = a
        return self.activations[-1]

    def backward(self, X, y, output):
        """
        Backward propagation to compute gradients
        Args:
        X: Input data
        y: True labels
        output: Network output from forward pass
        """
        m = X.shape[0]  # Number of training examples
        # Initialize gradients
        dW = [np.zeros_like(w) for w in self.weights]
        db = [np.zeros_like(b) for b in self.biases]
        # Start with output layer error
        # For binary classification with sigmoid output
        dz = output - y
        # Backpropagate through each layer
        for i in reversed(range(len(self.weights))):
            # Compute gradients for weights and biases
            dW[i] = (1/m) * np.dot(self.activations[i].T, dz)
            db[i] = (1/m) * np.sum(dz, axis=0, keepdims=True)
            # Compute error for previous layer (if not input layer)
            if i > 0:
                dz = np.dot(dz, self.weights[i].T) * self.sigmoid_derivative(self.z_values[i-1])
        return dW, db

    def update_parameters(self, dW, db):
        """
        Update weights and biases using computed gradients
        Args:
        dW: Gradients for weights
        db: Gradients for biases
        """
        for i in range(len(self.weights)):
            self.weights[i] -= self.learning_rate * dW[i]
            self.biases[i] -= self.learning_rate * db[i]

    def compute_cost(self, y_true, y_pred):
        """
        Compute binary cross-entropy loss
        Args:
        y_true: True labels
        y_pred: Predicted probabilities
        Returns:
        Average loss
        """
        m = y_true.shape[0]
        # Prevent log(0) by adding small epsilon
        epsilon = 1e-15
        y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
        cost = -(1/m) * np.sum(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))
        return cost

    def train(self, X, y, epochs=1000, print_cost=True):
        """
        Train the neural network
        Args:
        X: Training data
        y: Training labels
        epochs: Number of training iterations
        print_cost: Whether to print cost during training
        """
        for epoch in range(epochs):
            # Forward propagation
            output = self.forward(X)
            # Compute cost
            cost = self.compute_cost(y, output)
            self.costs.append(cost)
            # Backward propagation
            dW, db = self.backward(X, y, output)
            # Update parameters
            self.update_parameters(dW, db)
            # Print progress
            if print_cost and epoch % 100 == 0:
                print(f"Cost after epoch {epoch}: {cost:.6f}")

    def predict(self, X):
        """
        Make predictions on new data
        Args:
        X: Input data
        Returns:
        Predictions (probabilities for binary classification)
        """
        return self.forward(X)

    def predict_classes(self, X, threshold=0.5):
        """
        Make class predictions
        Args:
        X: Input data
        threshold: Decision threshold
        Returns:
        Predicted classes (0 or 1)
        """
        probabilities = self.predict(X)
        return (probabilities > threshold).astype(int)


# ---------------------------------------------------------------------------
# The same network on pynn.ops
# ---------------------------------------------------------------------------
class PynnNeuralNetwork:
    """``NeuralNetwork`` with every numeric line replaced by a :mod:`pynn.ops` call."""

    def __init__(self, layers, learning_rate=0.01, dtype=np.float32):
        self.layers = layers
        self.learning_rate = learning_rate
        self.dtype = np.dtype(dtype)
        self.weights = []
        self.biases = []
        self.costs = []
        for i in range(len(layers) - 1):
            # the same draws as the NumPy version, so one seed gives the same start
            w = np.random.randn(layers[i], layers[i+1]) * np.sqrt(2.0 / layers[i])
            b = np.zeros(layers[i+1])  # pynn biases are (n,), not (1, n)
            self.weights.append(np.ascontiguousarray(w, dtype=self.dtype))
            self.biases.append(b.astype(self.dtype))
        # gradients: allocated once, overwritten every step
        self.dW = [np.empty_like(w) for w in self.weights]
        self.db = [np.empty_like(b) for b in self.biases]
        self._workspaces = {}

    def _workspace(self, m):
        """Activation and gradient buffers for a batch of ``m`` samples (made once per m)."""
        ws = self._workspaces.get(m)
        if ws is None:
            ws = {
                "a": [np.empty((m, n), self.dtype) for n in self.layers[1:]],
                "logits": np.empty((m, self.layers[-1]), self.dtype),
                "dz": np.empty((m, self.layers[-1]), self.dtype),
                "da": [np.empty((m, n), self.dtype) for n in self.layers[1:-1]],
            }
            self._workspaces[m] = ws
        return ws

    def forward(self, X):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        ws = self._workspace(X.shape[0])
        self.activations = [X]
        current_input = X
        for i in range(len(self.weights)):
            if i < len(self.weights) - 1:
                # z = XW + b and sigmoid(z) in one fused call, into a reused buffer
                a = ops.gemm(current_input, self.weights[i], out=ws["a"][i],
                             bias=self.biases[i], activation="sigmoid")
            else:
                # output layer: keep the logits for the fused sigmoid + cross-entropy
                z = ops.gemm(current_input, self.weights[i], out=ws["logits"],
                             bias=self.biases[i])
                a = ops.activation_forward(z, "sigmoid", out=ws["a"][i])
            self.activations.append(a)
            current_input = a
        return self.activations[-1]

    def compute_cost(self, y_true, y_pred=None):
        """Mean binary cross-entropy, from the logits of the last forward pass.

        One op returns the loss and its gradient with respect to the logits,
        ``(sigmoid(z) - y) / m`` (the tutorial's ``output - y`` with the 1/m folded in).
        """
        ws = self._workspace(y_true.shape[0])
        cost, self._dz = ops.sigmoid_binary_cross_entropy(ws["logits"], y_true,
                                                          grad=ws["dz"])
        return cost

    def backward(self, X, y, output):
        ws = self._workspace(X.shape[0])
        dz = self._dz  # from compute_cost: already divided by m
        for i in reversed(range(len(self.weights))):
            ops.gemm(self.activations[i], dz, out=self.dW[i], trans_a=True)  # a.T @ dz
            ops.bias_grad(dz, out=self.db[i])  # column sums
            if i > 0:
                da = ops.gemm(dz, self.weights[i], out=ws["da"][i-1], trans_b=True)
                # times sigmoid'(z), written from the layer's output a = sigmoid(z)
                dz = ops.activation_backward(da, self.activations[i], "sigmoid", out=da)
        return self.dW, self.db

    def update_parameters(self, dW, db):
        for i in range(len(self.weights)):
            ops.sgd_update(self.weights[i], dW[i], learning_rate=self.learning_rate)
            ops.sgd_update(self.biases[i], db[i], learning_rate=self.learning_rate)

    def train(self, X, y, epochs=1000, print_cost=True):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        y = np.ascontiguousarray(y, dtype=self.dtype)
        for epoch in range(epochs):
            output = self.forward(X)
            cost = self.compute_cost(y, output)
            self.costs.append(cost)
            dW, db = self.backward(X, y, output)
            self.update_parameters(dW, db)
            if print_cost and epoch % 100 == 0:
                print(f"Cost after epoch {epoch}: {cost:.6f}")

    def predict(self, X):
        return self.forward(X).copy()  # the forward buffer is reused by the next call

    def predict_classes(self, X, threshold=0.5):
        probabilities = self.predict(X)
        return (probabilities > threshold).astype(int)


# ---------------------------------------------------------------------------
# data and the comparison
# ---------------------------------------------------------------------------
def make_moons(n_samples, noise, rng):
    """Two interleaving half circles (like scikit-learn's), labels of shape (n, 1)."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.c_[np.cos(t_out), np.sin(t_out)],
                   np.c_[1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]])
    y = np.r_[np.zeros(n_out), np.ones(n_in)].reshape(-1, 1)
    X += rng.normal(scale=noise, size=X.shape)
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]


def compare(title, layers, lr, X, y, X_test, y_test, epochs, seed, dtype):
    """Train both versions from the same initial weights; print accuracy and speed."""
    results = []
    for label, cls, kw in (("NumPy", NeuralNetwork, {}),
                           ("pynn.ops", PynnNeuralNetwork, {"dtype": dtype})):
        np.random.seed(seed)
        nn = cls(layers=layers, learning_rate=lr, **kw)
        nn.train(X[:1], y[:1], epochs=1, print_cost=False)  # warm-up (JIT compile)
        np.random.seed(seed)
        nn = cls(layers=layers, learning_rate=lr, **kw)
        t0 = time.perf_counter()
        nn.train(X, y, epochs=epochs, print_cost=False)
        per_epoch = (time.perf_counter() - t0) / epochs
        acc = float(np.mean(nn.predict_classes(X_test) == y_test)) * 100
        results.append((label, acc, nn.costs[-1], per_epoch, nn.predict(X_test[:4])))
    print(f"\n{title}")
    print(f"  {'version':<10} {'accuracy':>9} {'final loss':>11} {'time/epoch':>12}")
    for label, acc, cost, per_epoch, _ in results:
        print(f"  {label:<10} {acc:>8.2f}% {cost:>11.6f} {per_epoch * 1e6:>9.1f} µs")
    print(f"  speed-up of pynn.ops over NumPy: {results[0][3] / results[1][3]:.2f}x")
    for label, *_, out in results:
        print(f"  {label} outputs on the first 4 samples: "
              + " ".join(f"{v:.3f}" for v in np.ravel(out)))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None,
                   help=f"pynn backend (available: {', '.join(pynn.backends.available())}; "
                        "default: pynn's default)")
    p.add_argument("--epochs", type=int, default=5000, help="epochs of each run (5000)")
    p.add_argument("--samples", type=int, default=2000, help="two-moons samples (2000)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="dtype of the pynn version (the NumPy version is float64)")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.samples < 10:
        p.error(f"--samples must be >= 10, got {args.samples}")
    if args.backend:
        pynn.set_backend(args.backend)
    print(f"pynn backend: {pynn.get_backend().name}, pynn.ops in {args.dtype}; "
          f"NumPy {np.__version__} in float64")

    X_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y_xor = np.array([[0], [1], [1], [0]], dtype=float)
    compare(f"XOR, layers [2, 4, 1], lr 1.0, {args.epochs} epochs", [2, 4, 1], 1.0,
            X_xor, y_xor, X_xor, y_xor, args.epochs, args.seed, args.dtype)

    rng = np.random.default_rng(args.seed)
    X, y = make_moons(args.samples, 0.15, rng)
    n_train = int(0.8 * len(X))
    compare(f"Two moons, layers [2, 32, 32, 1], lr 2.0, {args.epochs} epochs, "
            f"{n_train} train / {len(X) - n_train} test samples (test accuracy)",
            [2, 32, 32, 1], 2.0, X[:n_train], y[:n_train], X[n_train:], y[n_train:],
            args.epochs, args.seed, args.dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
