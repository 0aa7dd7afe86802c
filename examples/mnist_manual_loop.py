"""The PyTorch section of tutorial 002 in pynn: a network written as a class and trained by
a hand-written loop over mini-batches (forward, loss, gradients, optimizer step).

The tutorial's ``MNISTNetwork(nn.Module)`` becomes a subclassed ``pynn.Model`` whose
``call`` applies ReLU between two Dense layers; ``loss.backward(); optimizer.step()``
becomes ``tape.gradient`` and ``optimizer.apply``. The Dense layers still run pynn's
compiled kernels inside the loop. Same hyper-parameters: SGD with momentum 0.9, learning
rate 0.01, batches of 100, 3 epochs.

    python examples/mnist_manual_loop.py [--epochs 3] [--data DIR] [--quick]
"""
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops
from pynn.datasets import DatasetError, mnist


class MNISTNetwork(pynn.Model):
    def __init__(self):
        super().__init__()
        self.flatten = layers.Flatten()
        self.fc1 = layers.Dense(128)
        self.fc2 = layers.Dense(10)

    def call(self, x):
        x = self.flatten(x)
        x = self.fc1(x)
        x = ops.relu(x)
        x = self.fc2(x)
        return x


def load(args):
    try:
        data, source = mnist.load_data_or_embedded(args.data, download=False)
    except DatasetError as exc:
        print(exc)
        raise
    (x_train, y_train), (x_test, y_test) = data
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:500], \
            y_test[:500]
    scale = lambda x: ((x.astype("float32") / 255.0) - 0.5) / 0.5  # noqa: E731 (Normalize)
    print(f"Data: {source}, {len(x_train)} training images")
    return (scale(x_train), y_train), (scale(x_test), y_test)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=3, quick_epochs=2)
    p.add_argument("--data", default=None, help="directory holding the MNIST files")
    args = p.parse_args(argv)
    epochs = _common.setup(args)
    (x_train, y_train), (x_test, y_test) = load(args)

    model = MNISTNetwork()
    optimizer = pynn.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    rng = np.random.default_rng(args.seed)
    for epoch in range(epochs):
        running_loss = 0.0
        order = rng.permutation(len(x_train))  # DataLoader(shuffle=True)
        for i, start in enumerate(range(0, len(order), 100)):
            idx = order[start:start + 100]
            inputs, labels = x_train[idx], y_train[idx]
            with pynn.GradientTape() as tape:
                outputs = model(inputs, training=True)
                loss = ops.mean(ops.sparse_categorical_crossentropy(labels, outputs,
                                                                    from_logits=True))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply(grads, model.trainable_weights)
            running_loss += float(loss)
            if i % 100 == 99:
                print(f"Epoch {epoch + 1}, Batch {i + 1}: Loss {running_loss / 100:.3f}")
                running_loss = 0.0
    print("Finished Training")
    pred = np.argmax(model.predict(x_test, batch_size=1000, verbose=0), axis=1)
    print(f"Final test accuracy: {np.mean(pred == y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
