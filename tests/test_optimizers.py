"""Optimizers and schedules: hand-computed steps, several steps against an
independent NumPy implementation of Keras's formulas, clipping, the flat-buffer
path, learning-rate handling, config, and (when installed) torch.optim."""
import math

import numpy as np
import pytest

import pynn.optimizers as O
from pynn.backends import Backend
from pynn.optimizers import schedules as S

from helpers import CPU_BACKENDS

REF = Backend()


def make_params(rng, dtype=np.float64, shapes=((3, 2), (2,))):
    """Parameters as views into one flat buffer, plus matching gradient views."""
    sizes = [int(np.prod(s)) for s in shapes]
    flat = rng.normal(size=sum(sizes)).astype(dtype)
    flat_g = np.zeros_like(flat)
    params, grads, o = [], [], 0
    for s, n in zip(shapes, sizes):
        params.append(flat[o:o + n].reshape(s))
        grads.append(flat_g[o:o + n].reshape(s))
        o += n
    return flat, flat_g, params, grads


# --------------------------------------------------------------------------
# one hand-computed step per optimizer
# --------------------------------------------------------------------------
def one_step(opt, w, g, steps=1):
    w = np.array(w, dtype=np.float64)
    opt.build([w], REF)
    for _ in range(steps):
        opt.apply([np.array(g, dtype=np.float64)])
    return w


def test_sgd_hand_step():
    np.testing.assert_allclose(one_step(O.SGD(0.1), [1.0, 2.0], [0.5, -1.0]), [0.95, 2.1])
    # momentum 0.9, two steps: v1 = -0.05, p1 = 0.95; v2 = 0.9*-0.05 - 0.05 = -0.095
    np.testing.assert_allclose(one_step(O.SGD(0.1, momentum=0.9), [1.0], [0.5], steps=2),
                               [1.0 - 0.05 - 0.095])
    # Nesterov: p1 = 1 + 0.9*(-0.05) - 0.05 = 0.905
    np.testing.assert_allclose(one_step(O.SGD(0.1, momentum=0.9, nesterov=True), [1.0], [0.5]),
                               [0.905])
    # decoupled weight decay: p = 1 - 0.1*0.5*1 = 0.95 first, then - 0.1*0.5
    np.testing.assert_allclose(one_step(O.SGD(0.1, weight_decay=0.5), [1.0], [0.5]), [0.9])


def test_adam_hand_step():
    # step 1: m = 0.1*g, v = 0.001*g^2, alpha = lr*sqrt(0.001)/0.1
    g, lr = 0.5, 0.01
    alpha = lr * math.sqrt(0.001) / 0.1
    want = 1.0 - alpha * 0.05 / (math.sqrt(0.001 * 0.25) + 1e-7)
    np.testing.assert_allclose(one_step(O.Adam(lr), [1.0], [g]), [want], rtol=1e-14)
    assert want == pytest.approx(1.0 - lr, rel=1e-5)  # Adam's first step is ~lr * sign(g)
    # AdamW decays first: 1 - 0.01 * 0.004
    np.testing.assert_allclose(one_step(O.AdamW(lr), [1.0], [g]),
                               [want - lr * 0.004], rtol=1e-14)


def test_rmsprop_hand_step():
    # Keras divides by sqrt(v + eps), not sqrt(v) + eps
    g, lr, eps = 1e-3, 0.01, 1e-7
    ms = 0.1 * g * g                                  # 1e-7
    want = 1.0 - lr * g / math.sqrt(2e-7)             # sqrt(ms + eps)
    np.testing.assert_allclose(one_step(O.RMSprop(lr), [1.0], [g]), [want], rtol=1e-14)
    assert ms == pytest.approx(eps)
    # momentum 0.5, two steps of g: increments i1 = lr*g/sqrt(ms1+eps), i2 likewise
    ms1, ms2 = 0.1 * g * g, 0.9 * 0.1 * g * g + 0.1 * g * g
    i1, i2 = lr * g / math.sqrt(ms1 + eps), lr * g / math.sqrt(ms2 + eps)
    np.testing.assert_allclose(one_step(O.RMSprop(lr, momentum=0.5), [1.0], [g], steps=2),
                               [1.0 - i1 - (0.5 * i1 + i2)], rtol=1e-14)
    # centered: a = 0.1 g, denominator sqrt(ms - a^2 + eps) = sqrt(0.09 g^2 + eps)
    np.testing.assert_allclose(one_step(O.RMSprop(lr, centered=True), [1.0], [g]),
                               [1.0 - lr * g / math.sqrt(0.09 * g * g + eps)], rtol=1e-14)


def test_adagrad_hand_step():
    g, lr = 0.5, 0.1
    acc = 0.1 + g * g
    want = 1.0 - lr * g / math.sqrt(acc + 1e-7)
    np.testing.assert_allclose(one_step(O.Adagrad(lr), [1.0], [g]), [want], rtol=1e-14)


def test_nadam_hand_step():
    # t = 1: u1 = 0.9 (1 - 0.48) = 0.468, u2 = 0.9 (1 - 0.5 * 0.9216) = 0.48528
    g, lr = 0.5, 0.01
    u1, u2 = 0.468, 0.48528
    m, v = 0.1 * g, 0.001 * g * g
    m_hat = u2 * m / (1 - u1 * u2) + (1 - u1) * g / (1 - u1)
    want = 1.0 - lr * m_hat / (math.sqrt(v / 0.001) + 1e-7)
    np.testing.assert_allclose(one_step(O.Nadam(lr), [1.0], [g]), [want], rtol=1e-14)


def test_adamax_hand_step():
    # t = 1: m = 0.1 g, u = |g|, p -= lr * m / ((1 - 0.9) (u + eps))  ~ lr * sign(g)
    g, lr = -0.5, 0.01
    want = 1.0 - lr * (0.1 * g) / (0.1 * (0.5 + 1e-7))
    np.testing.assert_allclose(one_step(O.Adamax(lr), [1.0], [g]), [want], rtol=1e-14)


def test_adadelta_hand_step():
    # t = 1: ag = 0.05 g^2, delta = -sqrt(eps) g / sqrt(ag + eps), ad = 0.05 delta^2
    g, lr, eps = 0.5, 1.0, 1e-7
    delta1 = -math.sqrt(eps) * g / math.sqrt(0.05 * g * g + eps)
    ag2 = 0.95 * 0.05 * g * g + 0.05 * g * g
    delta2 = -math.sqrt(0.05 * delta1 ** 2 + eps) * g / math.sqrt(ag2 + eps)
    np.testing.assert_allclose(one_step(O.Adadelta(lr), [1.0], [g], steps=2),
                               [1.0 + delta1 + delta2], rtol=1e-14)


def test_lion_hand_step():
    # step 1: sign(0.1 g) = sign(g); m = 0.01 g. step 2 with -g: sign(0.9*0.01g - 0.1g) = -sign(g)
    w = np.array([1.0, 1.0])
    opt = O.Lion(0.1, weight_decay=0.5)
    opt.build([w], REF)
    opt.apply([np.array([0.5, -2.0])])
    np.testing.assert_allclose(w, [1.0 - 0.05 - 0.1, 1.0 - 0.05 + 0.1])
    opt.apply([np.array([-0.5, 2.0])])
    np.testing.assert_allclose(w, np.array([0.85, 1.05]) * 0.95 + [0.1, -0.1])


# --------------------------------------------------------------------------
# several steps against an independent implementation
# --------------------------------------------------------------------------
def reference_run(kind, params, grads_seq, lr_fn, wd=0.0, **kw):
    """Keras's update formulas written out in NumPy (float64)."""
    ps = [p.astype(np.float64).copy() for p in params]
    st = [dict(m=np.zeros_like(p), v=np.zeros_like(p), vh=np.zeros_like(p), mg=np.zeros_like(p),
               a=np.full_like(p, kw.get("initial_accumulator_value", 0.1))) for p in ps]
    u_product = 1.0
    for t, grads in enumerate(grads_seq):
        lr = lr_fn(t)
        b1 = kw.get("beta_1", 0.9)
        u_t, u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1)), b1 * (1 - 0.5 * 0.96 ** (t + 2))
        u_product *= u_t
        for p, g, s in zip(ps, grads, st):
            p -= p * wd * lr
            if kind == "sgd":
                mu = kw.get("momentum", 0.0)
                if mu:
                    s["m"] = mu * s["m"] - lr * g
                    p += mu * s["m"] - lr * g if kw.get("nesterov") else s["m"]
                else:
                    p -= lr * g
            elif kind == "adam":
                b1, b2, eps = kw.get("beta_1", 0.9), kw.get("beta_2", 0.999), kw.get("epsilon", 1e-7)
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g * g
                v = s["v"]
                if kw.get("amsgrad"):
                    s["vh"] = np.maximum(s["vh"], s["v"])
                    v = s["vh"]
                alpha = lr * math.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
                p -= alpha * s["m"] / (np.sqrt(v) + eps)
            elif kind == "rmsprop":
                rho, eps = kw.get("rho", 0.9), kw.get("epsilon", 1e-7)
                s["v"] = rho * s["v"] + (1 - rho) * g * g
                s["mg"] = rho * s["mg"] + (1 - rho) * g
                mean_sq = s["mg"] ** 2 if kw.get("centered") else 0.0
                inc = lr * g / np.sqrt(s["v"] - mean_sq + eps)
                if kw.get("momentum"):
                    s["m"] = kw["momentum"] * s["m"] + inc
                    inc = s["m"]
                p -= inc
            elif kind == "adagrad":
                s["a"] = s["a"] + g * g
                p -= lr * g / np.sqrt(s["a"] + kw.get("epsilon", 1e-7))
            elif kind == "nadam":
                b2, eps = kw.get("beta_2", 0.999), kw.get("epsilon", 1e-7)
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g * g
                m_hat = (u_next * s["m"] / (1 - u_product * u_next)
                         + (1 - u_t) * g / (1 - u_product))
                p -= lr * m_hat / (np.sqrt(s["v"] / (1 - b2 ** (t + 1))) + eps)
            elif kind == "adamax":
                b2, eps = kw.get("beta_2", 0.999), kw.get("epsilon", 1e-7)
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = np.maximum(b2 * s["v"], np.abs(g))
                p -= lr * s["m"] / ((1 - b1 ** (t + 1)) * (s["v"] + eps))
            elif kind == "adadelta":
                rho, eps = kw.get("rho", 0.95), kw.get("epsilon", 1e-7)
                s["v"] = rho * s["v"] + (1 - rho) * g * g
                delta = -np.sqrt(s["vh"] + eps) * g / np.sqrt(s["v"] + eps)
                s["vh"] = rho * s["vh"] + (1 - rho) * delta * delta
                p += lr * delta
            elif kind == "lion":
                b2 = kw.get("beta_2", 0.99)
                p -= lr * np.sign(b1 * s["m"] + (1 - b1) * g)
                s["m"] = b2 * s["m"] + (1 - b2) * g
    return ps


OPT_CASES = [
    ("sgd", lambda lr, wd: O.SGD(lr, weight_decay=wd), {}),
    ("sgd", lambda lr, wd: O.SGD(lr, momentum=0.8, weight_decay=wd), {"momentum": 0.8}),
    ("sgd", lambda lr, wd: O.SGD(lr, momentum=0.8, nesterov=True, weight_decay=wd),
     {"momentum": 0.8, "nesterov": True}),
    ("adam", lambda lr, wd: O.Adam(lr, beta_1=0.8, beta_2=0.95, weight_decay=wd),
     {"beta_1": 0.8, "beta_2": 0.95}),
    ("adam", lambda lr, wd: O.Adam(lr, amsgrad=True, weight_decay=wd), {"amsgrad": True}),
    ("adam", lambda lr, wd: O.AdamW(lr, weight_decay=wd), {}),
    ("rmsprop", lambda lr, wd: O.RMSprop(lr, rho=0.8, weight_decay=wd), {"rho": 0.8}),
    ("rmsprop", lambda lr, wd: O.RMSprop(lr, momentum=0.7, centered=True, weight_decay=wd),
     {"momentum": 0.7, "centered": True}),
    ("rmsprop", lambda lr, wd: O.RMSprop(lr, momentum=0.7, epsilon=1e-3, weight_decay=wd),
     {"momentum": 0.7, "epsilon": 1e-3}),
    ("adagrad", lambda lr, wd: O.Adagrad(lr, initial_accumulator_value=0.2, weight_decay=wd),
     {"initial_accumulator_value": 0.2}),
    ("nadam", lambda lr, wd: O.Nadam(lr, beta_1=0.8, beta_2=0.95, weight_decay=wd),
     {"beta_1": 0.8, "beta_2": 0.95}),
    ("adamax", lambda lr, wd: O.Adamax(lr, beta_1=0.8, beta_2=0.95, weight_decay=wd),
     {"beta_1": 0.8, "beta_2": 0.95}),
    # a large epsilon: Adadelta's first steps are ~lr * sqrt(eps)
    ("adadelta", lambda lr, wd: O.Adadelta(lr, rho=0.9, epsilon=0.1, weight_decay=wd),
     {"rho": 0.9, "epsilon": 0.1}),
    ("lion", lambda lr, wd: O.Lion(lr, beta_1=0.8, beta_2=0.95, weight_decay=wd),
     {"beta_1": 0.8, "beta_2": 0.95}),
]


@pytest.mark.parametrize("case", range(len(OPT_CASES)), ids=[
    "sgd", "momentum", "nesterov", "adam", "amsgrad", "adamw", "rmsprop",
    "rmsprop_centered_momentum", "rmsprop_momentum", "adagrad", "nadam", "adamax", "adadelta",
    "lion"])
@pytest.mark.parametrize("flat_path", [False, True], ids=["per_param", "flat"])
@pytest.mark.parametrize("schedule", [False, True], ids=["const", "sched"])
def test_several_steps_match_reference(backend, dtype, rng, case, flat_path, schedule):
    kind, make, kw = OPT_CASES[case]
    lr = S.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5) if schedule else 0.05
    lr_fn = (lambda t: 0.05 * 0.5 ** (t / 2)) if schedule else (lambda t: 0.05)
    wd = 0.1
    opt = make(lr, wd)
    flat, flat_g, params, grads = make_params(rng, dtype)
    start = [p.copy() for p in params]
    seq = [[rng.normal(size=p.shape) for p in params] for _ in range(5)]
    opt.build(params, backend, flat_param=flat if flat_path else None)
    for gs in seq:
        for g, new in zip(grads, gs):
            g[...] = new
        opt.apply(grads, params, flat_grad=flat_g if flat_path else None)
    assert opt.iterations == 5
    want = reference_run(kind, start, [[g.astype(dtype) for g in gs] for gs in seq], lr_fn,
                         wd=wd, **kw)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for p, w in zip(params, want):
        np.testing.assert_allclose(p, w, rtol=tol, atol=tol)


def test_flat_path_is_one_backend_call(rng):
    calls = []

    class Counting(Backend):
        def adam_update(self, param, *a, **k):
            calls.append(param.shape)
            return super().adam_update(param, *a, **k)

    flat, flat_g, params, grads = make_params(rng)
    opt = O.Adam(0.01)
    opt.build(params, Counting(), flat_param=flat)
    opt.apply(grads, params, flat_grad=flat_g)
    assert calls == [flat.shape]
    calls.clear()
    opt.apply(grads, params)  # no flat gradient: per-parameter updates on the shared state
    assert calls == [p.shape for p in params]


def test_flat_buffer_is_validated(rng):
    flat, _, params, _ = make_params(rng)
    with pytest.raises(ValueError, match="flat_param holds"):
        O.SGD().build(params[:1], REF, flat_param=flat)
    with pytest.raises(ValueError, match="not the view"):
        O.SGD().build([params[1].copy(), params[0].copy()], REF,
                      flat_param=np.zeros(flat.size))


# --------------------------------------------------------------------------
# clipping
# --------------------------------------------------------------------------
def test_clipnorm_per_variable():
    g1, g2 = np.array([3.0, 4.0]), np.array([0.3, 0.4])  # norms 5 and 0.5
    w1, w2 = np.zeros(2), np.zeros(2)
    opt = O.SGD(1.0, clipnorm=1.0)
    opt.build([w1, w2], REF)
    opt.apply([g1.copy(), g2.copy()])
    np.testing.assert_allclose(w1, -g1 / 5.0)
    np.testing.assert_allclose(w2, -g2)


@pytest.mark.parametrize("flat_path", [False, True])
def test_global_clipnorm(rng, flat_path):
    flat, flat_g, params, grads = make_params(rng)
    flat[...] = 0.0
    flat_g[...] = rng.normal(size=flat_g.size) * 10
    raw = flat_g.copy()
    norm = np.linalg.norm(raw)
    opt = O.SGD(1.0, global_clipnorm=2.0)
    opt.build(params, REF, flat_param=flat if flat_path else None)
    opt.apply(grads, params, flat_grad=flat_g if flat_path else None)
    np.testing.assert_allclose(flat, -raw * 2.0 / norm)
    # below the threshold nothing changes
    flat[...] = 0.0
    flat_g[...] = raw / norm
    opt.apply(grads, params, flat_grad=flat_g if flat_path else None)
    np.testing.assert_allclose(flat, -raw / norm)


def test_clipvalue():
    w = np.zeros(3)
    opt = O.SGD(1.0, clipvalue=0.5)
    opt.build([w], REF)
    opt.apply([np.array([-2.0, 0.1, 3.0])])
    np.testing.assert_allclose(w, [0.5, -0.1, -0.5])


def test_only_one_clip_option():
    with pytest.raises(ValueError, match="Only one of"):
        O.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        O.Adam(clipnorm=-1.0)


# --------------------------------------------------------------------------
# learning rate, weight-decay exclusion, state
# --------------------------------------------------------------------------
def test_learning_rate_settable_during_training():
    w = np.array([1.0])
    opt = O.SGD(0.1)
    opt.build([w], REF)
    opt.apply([np.array([1.0])])
    opt.learning_rate = 0.01
    assert opt.learning_rate == 0.01
    opt.apply([np.array([1.0])])
    np.testing.assert_allclose(w, [1.0 - 0.1 - 0.01])
    opt.learning_rate = S.PiecewiseConstantDecay([2], [1.0, 0.5])
    assert opt.learning_rate == 1.0  # evaluated at iterations == 2
    opt.apply([np.array([1.0])])
    assert opt.learning_rate == 0.5
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.3
    with pytest.raises(ValueError, match="learning_rate"):
        O.SGD(-1.0)


def test_callable_learning_rate():
    opt = O.Adam(learning_rate=lambda: 0.123)
    assert opt.learning_rate == 0.123


def test_exclude_from_weight_decay(rng):
    flat, flat_g, params, grads = make_params(rng)
    start = [p.copy() for p in params]
    opt = O.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build(params, REF, flat_param=flat, names=["dense/kernel", "dense/bias"])
    opt.apply(grads, params, flat_grad=flat_g)  # zero gradients: only the decay acts
    np.testing.assert_allclose(params[0], start[0] * (1 - 0.05))
    np.testing.assert_allclose(params[1], start[1])
    opt2 = O.AdamW(0.1, weight_decay=0.5)
    w1, w2 = np.ones(2), np.ones(2)
    opt2.exclude_from_weight_decay(var_list=[w2])
    opt2.build([w1, w2], REF)
    opt2.apply([np.zeros(2), np.zeros(2)])
    np.testing.assert_allclose(w1, 0.95)
    np.testing.assert_allclose(w2, 1.0)
    with pytest.raises(ValueError, match="names"):
        o = O.SGD(weight_decay=0.1)
        o.exclude_from_weight_decay(var_names=["bias"])
        o.build([np.ones(2)], REF)


def test_state_round_trip(rng):
    _, _, params, grads = make_params(rng)
    for g in grads:
        g[...] = 1.0
    opt = O.Adam(0.01)
    opt.build(params, REF)
    opt.apply(grads)
    state = opt.get_state()
    assert int(state["iterations"]) == 1 and len(opt.variables) == 4
    other_params = [p.copy() for p in params]
    other = O.Adam(0.01)
    other.build(other_params, REF)
    other.set_state(state)
    opt.apply(grads)
    other.apply(grads)
    for a, b in zip(params, other_params):
        np.testing.assert_array_equal(a, b)


def test_adagrad_state_starts_at_initial_value():
    opt = O.Adagrad(initial_accumulator_value=0.3)
    opt.build([np.zeros((2, 2), np.float32)], REF)
    np.testing.assert_array_equal(opt.variables[0], np.full((2, 2), 0.3, np.float32))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="RMSprop.momentum"):
        O.RMSprop(momentum=-0.1)
    with pytest.raises(ValueError, match="Lion.beta_1"):
        O.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="Adadelta.rho"):
        O.Adadelta(rho=1.5)
    with pytest.raises(ValueError, match="Nadam.epsilon"):
        O.Nadam(epsilon=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        O.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(momentum=1.5)


# --------------------------------------------------------------------------
# lookup and config
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("sgd", O.SGD), ("SGD", O.SGD), ("adam", O.Adam),
                                      ("Adam", O.Adam), ("adamw", O.AdamW),
                                      ("rmsprop", O.RMSprop), ("adagrad", O.Adagrad),
                                      ("nadam", O.Nadam), ("Adamax", O.Adamax),
                                      ("adadelta", O.Adadelta), ("lion", O.Lion)])
def test_get_by_name(name, cls):
    assert type(O.get(name)) is cls


def test_default_names_are_keras():
    # Keras 3.15: the class name in snake case (keras.src.utils.naming.to_snake_case)
    want = {O.SGD: "sgd", O.Adam: "adam", O.AdamW: "adam_w", O.RMSprop: "rm_sprop",
            O.Adagrad: "adagrad", O.Nadam: "nadam", O.Adamax: "adamax",
            O.Adadelta: "adadelta", O.Lion: "lion"}
    for cls, name in want.items():
        assert cls().name == name and cls().get_config()["name"] == name
    assert O.Adam(name="mine").get_config()["name"] == "mine"


def test_defaults_are_keras():
    assert O.SGD().learning_rate == 0.01
    for cls in (O.Adam, O.AdamW, O.RMSprop, O.Adagrad):
        assert cls().learning_rate == 0.001
    a = O.Adam()
    assert (a.beta_1, a.beta_2, a.epsilon, a.weight_decay) == (0.9, 0.999, 1e-7, None)
    assert O.AdamW().weight_decay == 0.004
    assert (O.RMSprop().rho, O.RMSprop().epsilon) == (0.9, 1e-7)
    assert O.Adagrad().initial_accumulator_value == 0.1
    r = O.RMSprop()
    assert (r.momentum, r.centered) == (0.0, False)
    for cls in (O.Nadam, O.Adamax):
        o = cls()
        assert (o.learning_rate, o.beta_1, o.beta_2, o.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    d = O.Adadelta()
    assert (d.learning_rate, d.rho, d.epsilon) == (0.001, 0.95, 1e-7)
    lion = O.Lion()
    assert (lion.learning_rate, lion.beta_1, lion.beta_2) == (0.001, 0.9, 0.99)


def test_get_errors_and_config_round_trip():
    with pytest.raises(ValueError, match="adam"):
        O.get("adamax_pro")
    opt = O.SGD(S.CosineDecay(0.1, 100, alpha=0.1), momentum=0.5, nesterov=True, clipnorm=2.0)
    cfg = O.serialize(opt)
    back = O.get(cfg)
    assert type(back) is O.SGD and back.get_config() == opt.get_config()
    assert isinstance(back._learning_rate, S.CosineDecay)
    inst = O.RMSprop()
    assert O.get(inst) is inst
    assert type(O.get(O.Adagrad)) is O.Adagrad


# --------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------
def test_exponential_decay():
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == pytest.approx(0.1)
    assert s(10) == pytest.approx(0.05)
    assert s(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    st = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert st(9) == pytest.approx(0.1) and st(25) == pytest.approx(0.025)


def test_cosine_decay():
    s = S.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.9 * 0.5 + 0.1)
    assert s(100) == pytest.approx(0.1) and s(1000) == pytest.approx(0.1)
    w = S.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    assert w(0) == 0.0 and w(2) == pytest.approx(0.4)
    assert w(5) == pytest.approx(1.0)
    assert w(10) == pytest.approx(0.5)
    assert w(15) == pytest.approx(0.0, abs=1e-12) and w(99) == pytest.approx(0.0, abs=1e-12)


def test_piecewise_constant_decay():
    s = S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 10, 11, 20, 21, 100)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="1 less"):
        S.PiecewiseConstantDecay([10], [1.0])


def test_other_schedules():
    assert S.InverseTimeDecay(1.0, 10, 0.5)(10) == pytest.approx(1 / 1.5)
    p = S.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0)
    assert p(5) == pytest.approx(0.25) and p(50) == pytest.approx(0.0)
    c = S.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert c(15) == pytest.approx(0.25)  # decay_steps stretched to 20


def test_cosine_decay_restarts():
    # periods of 10, 20, 40 steps; each restart at m_mul times the previous peak
    s = S.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    assert [s(t) for t in (0, 5, 10, 20, 30, 50)] == pytest.approx(
        [1.0, 0.5, 0.5, 0.25, 0.25, 0.125 * (1 + math.cos(math.pi * 20 / 40))])
    assert s(9.999) == pytest.approx(0.0, abs=1e-6)
    c = S.CosineDecayRestarts(1.0, first_decay_steps=4, t_mul=1.0, alpha=0.5)
    assert [c(t) for t in (0, 2, 4, 6)] == pytest.approx([1.0, 0.75, 1.0, 0.75])
    assert c.name == "SGDRDecay"
    with pytest.raises(ValueError, match="first_decay_steps"):
        S.CosineDecayRestarts(1.0, first_decay_steps=0)
    with pytest.raises(ValueError, match="alpha"):
        S.CosineDecayRestarts(1.0, 10, alpha=1.5)


ALL_SCHEDULES = [
    S.ExponentialDecay(0.1, 10, 0.9, staircase=True), S.ExponentialDecay(0.1, 3, 0.5),
    S.CosineDecay(0.1, 100, alpha=0.2, warmup_target=0.3, warmup_steps=5),
    S.CosineDecay(0.1, 30), S.PiecewiseConstantDecay([3, 7], [0.3, 0.2, 0.1]),
    S.InverseTimeDecay(0.1, 5, 0.3), S.PolynomialDecay(0.1, 50, power=0.5),
    S.PolynomialDecay(0.1, 7, cycle=True, power=2.0),
    S.CosineDecayRestarts(0.1, 3, t_mul=1.5, m_mul=0.9, alpha=0.1)]


@pytest.mark.parametrize("sched", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedule_takes_arrays_of_steps(sched):
    steps = np.arange(0, 130)
    rates = sched(steps)
    assert isinstance(rates, np.ndarray) and rates.dtype == np.float64
    # (NumPy's vectorised power may round the last bit differently from a scalar's)
    np.testing.assert_allclose(rates, [sched(int(t)) for t in steps], rtol=1e-15, atol=0)
    assert isinstance(sched(3), float) and isinstance(sched(np.int64(3)), float)
    grid = sched(steps[:12].reshape(3, 4).astype(np.float32))
    assert grid.shape == (3, 4)
    np.testing.assert_allclose(grid.ravel(), rates[:12], rtol=1e-15, atol=0)
    with pytest.raises(TypeError, match="step"):
        sched("3")


@pytest.mark.parametrize("sched", [
    S.CosineDecayRestarts(0.1, 4, t_mul=3.0, m_mul=0.5, alpha=0.05),
    S.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    S.CosineDecay(0.1, 100, alpha=0.2, warmup_target=0.3, warmup_steps=5),
    S.PiecewiseConstantDecay([3, 7], [0.3, 0.2, 0.1]),
    S.InverseTimeDecay(0.1, 5, 0.3), S.PolynomialDecay(0.1, 50, power=0.5)])
def test_schedule_config_round_trip(sched):
    back = S.deserialize(S.serialize(sched))
    assert back.get_config() == sched.get_config()
    assert [back(t) for t in range(0, 120, 7)] == [sched(t) for t in range(0, 120, 7)]
    with pytest.raises(ValueError, match="decay_steps"):
        S.ExponentialDecay(0.1, 0, 0.5)


# --------------------------------------------------------------------------
# torch.optim as an independent implementation
# --------------------------------------------------------------------------
TORCH_CASES = [
    ("SGD", lambda: O.SGD(0.05, momentum=0.9), dict(lr=0.05, momentum=0.9)),
    ("SGD", lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
     dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", lambda: O.Adam(0.01, epsilon=1e-8), dict(lr=0.01, eps=1e-8)),
    ("AdamW", lambda: O.AdamW(0.01, weight_decay=0.1, epsilon=1e-8),
     dict(lr=0.01, weight_decay=0.1, eps=1e-8)),
    # torch divides by sqrt(v) + eps, Keras (and pynn) by sqrt(v + eps): a tiny eps
    # makes the two agree and leaves the rest of the rule to compare
    ("RMSprop", lambda: O.RMSprop(0.01, rho=0.9, epsilon=1e-14),
     dict(lr=0.01, alpha=0.9, eps=1e-14)),
    ("Adagrad", lambda: O.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10),
     dict(lr=0.1, initial_accumulator_value=0.1, eps=1e-10)),
]


@pytest.mark.parametrize("case", range(len(TORCH_CASES)),
                         ids=["sgd_momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"])
def test_trajectory_matches_torch(rng, case):
    torch = pytest.importorskip("torch", exc_type=ImportError)
    name, make, kw = TORCH_CASES[case]
    w0 = rng.normal(size=(4, 3))
    target = rng.normal(size=(4, 3))
    tw = torch.tensor(w0.copy(), requires_grad=True)
    topt = getattr(torch.optim, name)([tw], **kw)
    w = w0.copy()
    opt = make()
    opt.build([w], REF)
    for _ in range(20):
        # the same quadratic loss 0.5*|w - target|^2 * scale for both
        g = (w - target) * 0.7
        opt.apply([g])
        topt.zero_grad()
        loss = 0.35 * ((tw - torch.tensor(target)) ** 2).sum()
        loss.backward()
        topt.step()
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------
# the rules without a backend op: state, host-only, in a model
# --------------------------------------------------------------------------
NUMPY_RULES = [lambda: O.RMSprop(0.01, momentum=0.9, centered=True), lambda: O.Nadam(0.01),
               lambda: O.Adamax(0.01), lambda: O.Adadelta(1.0), lambda: O.Lion(0.001),
               lambda: O.Adam(0.01, amsgrad=True)]
NUMPY_RULE_IDS = ["rmsprop_momentum_centered", "nadam", "adamax", "adadelta", "lion", "amsgrad"]


@pytest.mark.parametrize("make", NUMPY_RULES, ids=NUMPY_RULE_IDS)
def test_numpy_rule_state_round_trip(rng, make):
    flat, flat_g, params, grads = make_params(rng)
    opt = make()
    opt.build(params, REF, flat_param=flat)
    for _ in range(3):
        flat_g[...] = rng.normal(size=flat_g.size)
        opt.apply(grads, params, flat_grad=flat_g)
    state = opt.get_state()
    assert len(opt.variables) == len(opt._slots) * len(params)
    other_params = [p.copy() for p in params]
    other = make()
    other.build(other_params, REF)
    other.set_state(state)
    assert other.iterations == 3
    for _ in range(2):
        g = [rng.normal(size=p.shape) for p in params]
        opt.apply([x.copy() for x in g])
        other.apply([x.copy() for x in g])
    for a, b in zip(params, other_params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", NUMPY_RULES, ids=NUMPY_RULE_IDS)
def test_numpy_rule_refuses_a_device_backend(make):
    class Device(Backend):
        name = "device"
        host_memory = False

    with pytest.raises(NotImplementedError, match="host-memory backends only, not on 'device'"):
        make().build([np.zeros(3)], Device())
    O.RMSprop().build([np.zeros(3)], Device())  # the plain rules run through backend ops


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@pytest.mark.parametrize("make", NUMPY_RULES[:5], ids=NUMPY_RULE_IDS[:5])
def test_model_trains_saves_and_resumes(tmp_path, backend_name, make):
    """compile(optimizer=...) and fit on each CPU backend; after save/load the
    optimizer (config and state) goes on exactly where it stopped."""
    import pynn
    import pynn.backends as B
    from pynn.models import load_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    with B.use_backend(backend_name):
        model = pynn.Sequential([pynn.layers.Input((5,)), pynn.layers.Dense(6, activation="relu"),
                                 pynn.layers.Dense(2, activation="softmax")], seed=2)
        model.compile(optimizer=make(), loss="sparse_categorical_crossentropy")
        first = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
        assert np.all(np.isfinite(first)) and first[-1] < first[0]
        model.save(tmp_path / "m.pynn")
        loaded = load_model(tmp_path / "m.pynn")
        assert loaded.optimizer.get_config() == model.optimizer.get_config()
        assert loaded.optimizer.iterations == model.optimizer.iterations == 9
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
        loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# use_ema: Keras's moving average of the parameters
# --------------------------------------------------------------------------
@pytest.mark.parametrize("flat_path", [False, True], ids=["per_param", "flat"])
def test_ema_hand_steps(flat_path):
    # SGD(lr=1) with g = -1: p = 1, 2, 3; average (m = 0 at the first step, then 0.5):
    # 1, 0.5*1 + 0.5*2 = 1.5, 0.5*1.5 + 0.5*3 = 2.25
    flat = np.zeros(2)
    params = [flat[:1], flat[1:]]
    opt = O.SGD(1.0, use_ema=True, ema_momentum=0.5)
    opt.build(params, REF, flat_param=flat if flat_path else None)
    grads = [np.full(1, -1.0), np.full(1, -1.0)]
    for _ in range(3):
        opt.apply([g.copy() for g in grads], flat_grad=-np.ones(2) if flat_path else None)
    np.testing.assert_array_equal(flat, [3.0, 3.0])
    assert opt.get_state()["average_0"].tolist() == [2.25]
    opt.finalize_variable_values()
    np.testing.assert_array_equal(flat, [2.25, 2.25])
    # every 2nd step the averages replace the parameters: p2 = 1.5, then p3 = 2.5,
    # average 0.5 * 1.5 + 0.5 * 2.5 = 2.0
    flat[...] = 0.0
    opt = O.SGD(1.0, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)
    opt.build(params, REF, flat_param=flat if flat_path else None)
    for _ in range(3):
        opt.apply([g.copy() for g in grads], flat_grad=-np.ones(2) if flat_path else None)
    np.testing.assert_array_equal(flat, [2.5, 2.5])
    assert opt.get_state()["average_1"].tolist() == [2.0]


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_fit_with_ema_ends_on_the_averages(backend_name):
    """fit() ends by copying the averages into the weights (Keras's
    finalize_variable_values), on the fused Dense-stack step as on the separate one."""
    import pynn
    import pynn.backends as B

    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)

    def run(**kw):
        with B.use_backend(backend_name):
            model = pynn.Sequential([pynn.layers.Input((4,)), pynn.layers.Dense(3),
                                     pynn.layers.Dense(2, activation="softmax")], seed=4)
            model.compile(optimizer=O.Adam(0.05, **kw), loss="sparse_categorical_crossentropy")
            model.fit(x, y, epochs=2, batch_size=10, verbose=0, shuffle=False)
        return model

    plain = run()
    ema = run(use_ema=True, ema_momentum=0.5)
    state = ema.optimizer.get_state()
    averages = [state[f"average_{i}"] for i in range(4)]
    for w, a in zip(ema.get_weights(), averages):
        np.testing.assert_array_equal(w, a)
    # the averages trail the last weights: they differ from the plain run's
    assert any(np.abs(w - p).max() > 1e-4 for w, p in zip(ema.get_weights(),
                                                          plain.get_weights()))
    # ema_momentum=0: the average is the last step's weights, so the run is the plain one
    same = run(use_ema=True, ema_momentum=0.0)
    for w, p in zip(same.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(w, p)


def test_keras_config_keys():
    cfg = dict(O.Adam().get_config(), loss_scale_factor=None, gradient_accumulation_steps=None)
    assert type(O.get({"class_name": "Adam", "config": cfg})) is O.Adam
    with pytest.raises(NotImplementedError, match="gradient_accumulation_steps=4"):
        O.deserialize({"class_name": "Adam", "config": dict(cfg, gradient_accumulation_steps=4)})
    with pytest.raises(NotImplementedError, match="loss_scale_factor"):
        O.Lion.from_config(dict(O.Lion().get_config(), loss_scale_factor=128.0))
