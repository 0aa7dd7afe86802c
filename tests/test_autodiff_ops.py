"""pynn.ops's keras.ops functions: values equal NumPy's, and every differentiable op's
recorded gradient equals float64 central finite differences; bad shapes and
non-differentiable ops give clear errors."""
import numpy as np
import pytest

from pynn import ops
from pynn.autodiff import Tape, gradients
from pynn.autodiff.tape import NonDifferentiableError

RNG = np.random.default_rng(0)


def positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def normal(*shape):
    return RNG.standard_normal(shape)


# (name, function of the inputs, inputs)
CASES = [
    ("add", ops.add, [normal(3, 4), normal(4)]),
    ("subtract", ops.subtract, [normal(3, 1), normal(1, 4)]),
    ("multiply", ops.multiply, [normal(2, 3), normal(2, 3)]),
    ("divide", ops.divide, [normal(2, 3), positive(3)]),
    ("power", ops.power, [positive(2, 3), normal(2, 3)]),
    ("maximum", ops.maximum, [normal(5), normal(5)]),
    ("minimum", ops.minimum, [normal(5), normal(1)]),
    ("matmul", ops.matmul, [normal(3, 4), normal(4, 2)]),
    ("matmul batched", ops.matmul, [normal(2, 3, 4), normal(4, 5)]),
    ("matmul vector", ops.matmul, [normal(4), normal(4, 3)]),
    ("einsum", lambda a, b: ops.einsum("ij,jk->ik", a, b), [normal(2, 3), normal(3, 2)]),
    ("where", lambda a, b: ops.where(np.arange(6).reshape(2, 3) % 2 == 0, a, b),
     [normal(2, 3), normal(3)]),
    ("clip", lambda a: ops.clip(a, -0.5, 0.5), [normal(4, 3)]),
    ("sum axis", lambda a: ops.sum(a, axis=1), [normal(3, 4)]),
    ("sum keepdims", lambda a: ops.sum(a, axis=(0, 2), keepdims=True), [normal(2, 3, 4)]),
    ("mean", lambda a: ops.mean(a, axis=-1), [normal(3, 4)]),
    ("max", lambda a: ops.max(a, axis=0), [normal(3, 4)]),
    ("min all", ops.min, [normal(3, 4)]),
    ("var", lambda a: ops.var(a, axis=0), [normal(5, 2)]),
    ("std", ops.std, [normal(6)]),
    ("logsumexp", lambda a: ops.logsumexp(a, axis=1), [normal(3, 4)]),
    ("cumsum", lambda a: ops.cumsum(a, axis=1), [normal(2, 4)]),
    ("reshape", lambda a: ops.reshape(a, (4, 3)), [normal(3, 4)]),
    ("transpose", lambda a: ops.transpose(a, (2, 0, 1)), [normal(2, 3, 4)]),
    ("expand_squeeze", lambda a: ops.squeeze(ops.expand_dims(a, 1), 1), [normal(3, 2)]),
    ("broadcast_to", lambda a: ops.broadcast_to(a, (3, 2, 4)), [normal(2, 1)]),
    ("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), [normal(2, 3), normal(2, 1)]),
    ("stack", lambda a, b: ops.stack([a, b], axis=0), [normal(2, 3), normal(2, 3)]),
    ("split", lambda a: ops.split(a, 2, axis=1)[1], [normal(2, 4)]),
    ("tile", lambda a: ops.tile(a, (2, 3)), [normal(2, 2)]),
    ("flip", lambda a: ops.flip(a, axis=0), [normal(3, 2)]),
    ("getitem", lambda a: a[1:, ::2], [normal(3, 4)]),
    ("getitem repeated", lambda a: a[np.array([0, 2, 0])], [normal(3, 2)]),
    ("take", lambda a: ops.take(a, np.array([[0, 1], [1, 1]]), axis=1), [normal(2, 3)]),
    ("take_along_axis", lambda a: ops.take_along_axis(a, np.array([[0], [2]]), axis=1),
     [normal(2, 3)]),
    ("softmax", lambda a: ops.softmax(a, axis=0), [normal(3, 4)]),
    ("log_softmax", ops.log_softmax, [normal(3, 4)]),
    ("binary_crossentropy", lambda t, o: ops.binary_crossentropy(t, o, from_logits=True),
     [RNG.uniform(0, 1, (4, 1)), normal(4, 1)]),
    ("categorical_crossentropy",
     lambda o: ops.categorical_crossentropy(np.eye(3)[[0, 2]], o, from_logits=True),
     [normal(2, 3)]),
    ("norm", lambda a: ops.norm(a, axis=1), [normal(3, 4)]),
    ("gelu tanh", ops.gelu, [normal(3, 3)]),
    ("gelu erf", lambda a: ops.gelu(a, approximate=False), [normal(3, 3)]),
    ("leaky_relu", lambda a: ops.leaky_relu(a, negative_slope=0.1), [normal(4)]),
    ("elu", ops.elu, [normal(5)]),
    ("selu", ops.selu, [normal(5)]),
    ("hard_sigmoid", ops.hard_sigmoid, [normal(5) * 2]),
]
UNARY = ["negative", "absolute", "exp", "expm1", "square", "sin", "cos", "tanh", "sigmoid",
         "relu", "relu6", "softplus", "softsign", "silu", "log_sigmoid", "erf"]
CASES += [(n, getattr(ops, n), [normal(3, 4) * 2]) for n in UNARY]
CASES += [(n, getattr(ops, n), [positive(3, 4)]) for n in ("log", "log1p", "sqrt", "rsqrt",
                                                            "reciprocal")]


def _loss_grads(fn, inputs, w):
    with Tape() as tape:
        leaves = [tape.leaf(np.array(a)) for a in inputs]
        out = fn(*leaves)
    return gradients([out], [w], leaves), np.asarray(out.value)


@pytest.mark.parametrize("name, fn, inputs", CASES, ids=[c[0] for c in CASES])
def test_gradient_equals_finite_differences(name, fn, inputs):
    value = np.asarray(fn(*inputs))
    w = np.random.default_rng(1).standard_normal(value.shape)
    grads, taped = _loss_grads(fn, inputs, w)
    np.testing.assert_allclose(taped, value, rtol=1e-12)  # the tape computes the same
    eps = 1e-6
    for k, a in enumerate(inputs):
        fd = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            for sign in (1, -1):
                args = [np.array(x) for x in inputs]
                args[k][i] += sign * eps
                fd[i] += sign * float(np.sum(np.asarray(fn(*args)) * w)) / (2 * eps)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-5, atol=1e-7, err_msg=f"input {k}")


def test_values_equal_numpy_and_plain_arrays_stay_arrays():
    a, b = normal(3, 4), normal(4, 2)
    assert isinstance(ops.matmul(a, b), np.ndarray)
    np.testing.assert_array_equal(ops.matmul(a, b), a @ b)
    np.testing.assert_array_equal(ops.mean(a, axis=0), a.mean(0))
    np.testing.assert_array_equal(ops.one_hot(np.array([2, 0]), 3), np.eye(3)[[2, 0]])
    np.testing.assert_allclose(ops.softmax(a, axis=0), np.exp(a) / np.exp(a).sum(0))
    assert ops.ones((2, 3)).dtype == np.float32 and ops.shape(a) == (3, 4)
    np.testing.assert_array_equal(ops.convert_to_numpy(ops.convert_to_tensor([1.0, 2.0])),
                                  [1.0, 2.0])


def test_float32_stays_float32():
    x = normal(2, 3).astype(np.float32)
    with Tape() as tape:
        t = tape.leaf(x)
        y = ops.relu(t * 2.0 + 1) / 3
    assert y.dtype == np.float32


def test_bad_shapes_name_the_op():
    with pytest.raises(ValueError, match=r"ops.add: operands of shapes \(3, 4\), \(5,\)"):
        ops.add(normal(3, 4), normal(5))
    with pytest.raises(ValueError, match=r"ops.matmul: shapes \(3, 4\) and \(3, 2\)"):
        ops.matmul(normal(3, 4), normal(3, 2))
    with pytest.raises(ValueError, match=r"ops.reshape: cannot reshape .* \(3, 4\) into"):
        ops.reshape(normal(3, 4), (5,))


def test_non_differentiable_op_on_the_gradient_path_is_named():
    with Tape() as tape:
        x = tape.leaf(normal(3, 4))
        y = ops.cast(x, "int32") * 1.0
    with pytest.raises(NonDifferentiableError, match="cast to int32 has no gradient"):
        gradients([y], [np.ones((3, 4))], [x])
    with Tape() as tape:
        x = tape.leaf(normal(3, 4))
        y = ops.argmax(x, axis=1) * 1.0
    with pytest.raises(NonDifferentiableError, match="argmax has no gradient"):
        gradients([y], [np.ones(3)], [x])
    with Tape() as tape:  # argmax used as an index only: no gradient reaches it
        x = tape.leaf(normal(3, 4))
        y = ops.take_along_axis(x, ops.argmax(x, axis=1, keepdims=True).value, axis=1)
    (g,) = gradients([y], [np.ones((3, 1))], [x])
    assert g.sum() == 3
