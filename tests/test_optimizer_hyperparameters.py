"""Optimizer hyper-parameters are finite and in range wherever they enter (issue 15,
rule 5, and the optimizer side of rules 8 and 9).

* constructors, attribute setters and ``from_config`` (what a model file feeds);
* schedules: their arguments, and the rate they (or a callable) return, checked
  each time it is read; the learning-rate callbacks;
* ``set_state`` (a loaded file's optimizer state): iterations an integer >= 0,
  state finite, second moments never negative, each refusal naming the entry;
* ``Optimizer.build`` over an already built optimizer continues (same shapes) or
  starts afresh (other shapes), and a second ``compile`` with the same instance
  trains on exactly as if it had not happened.
"""
import math

import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import callbacks as C
from pynn import optimizers as O
from pynn.optimizers import schedules as S

from helpers import CPU_BACKENDS, REFERENCE

F32 = np.float32


# --------------------------------------------------------------------------
# optimizers: constructors, setters, configs, schedules, callbacks, state
# --------------------------------------------------------------------------
OPT_BAD = [
    (O.SGD, "learning_rate", [math.inf, math.nan, -1.0]),
    (O.SGD, "momentum", [math.nan, math.inf, 1.5, -0.1]),
    (O.SGD, "weight_decay", [math.nan, math.inf, -1.0]),
    (O.SGD, "clipnorm", [math.inf, math.nan, -1.0]),
    (O.SGD, "clipvalue", [math.inf]),
    (O.SGD, "global_clipnorm", [math.nan]),
    (O.Adam, "learning_rate", [math.inf]),
    (O.Adam, "beta_1", [math.nan, 1.0, -0.5]),
    (O.Adam, "beta_2", [math.inf, 1.0]),
    (O.Adam, "epsilon", [0.0, math.nan, math.inf, -1e-7]),
    (O.Adam, "weight_decay", [math.nan]),
    (O.AdamW, "weight_decay", [math.inf, math.nan]),
    (O.RMSprop, "rho", [math.nan, 1.0]),
    (O.RMSprop, "epsilon", [math.nan, 0.0]),
    (O.Adagrad, "initial_accumulator_value", [math.nan, math.inf, -1.0]),
    (O.Adagrad, "epsilon", [math.inf]),
    (O.RMSprop, "momentum", [math.nan, -0.1, 1.5]),
    (O.Nadam, "beta_1", [math.nan, 1.0, -0.1]),
    (O.Nadam, "beta_2", [math.inf, 1.0]),
    (O.Nadam, "epsilon", [0.0, -1e-7]),
    (O.Nadam, "weight_decay", [-1.0]),
    (O.Adamax, "beta_1", [1.0, math.nan]),
    (O.Adamax, "beta_2", [1.5]),
    (O.Adamax, "epsilon", [0.0]),
    (O.Adadelta, "rho", [math.nan, -0.1, 1.5]),
    (O.Adadelta, "epsilon", [0.0, math.inf]),
    (O.Adadelta, "learning_rate", [-1.0]),
    (O.Lion, "beta_1", [0.0, 1.5, math.nan]),
    (O.Lion, "beta_2", [-0.1, 1.5]),
    (O.Lion, "clipvalue", [-1.0]),
    (O.SGD, "ema_momentum", [math.nan, -0.1, 1.5]),
    (O.Nadam, "ema_overwrite_frequency", [0, 2.5, -1]),
]
OPT_CASES = [(cls, name, v) for cls, name, values in OPT_BAD for v in values]
OPT_IDS = [f"{c.__name__}-{n}-{v}" for c, n, v in OPT_CASES]


@pytest.mark.parametrize("cls,name,value", OPT_CASES, ids=OPT_IDS)
def test_optimizer_constructor_and_config_refuse(cls, name, value):
    with pytest.raises(ValueError, match=name) as info:
        cls(**{name: value})
    assert repr(value) in str(info.value)
    config = dict(cls().get_config(), **{name: value})  # e.g. read from a model file
    with pytest.raises(ValueError, match=name):
        O.deserialize({"class_name": cls.__name__, "config": config})


@pytest.mark.parametrize("cls,name,value", OPT_CASES, ids=OPT_IDS)
def test_optimizer_attribute_setter_refuses(cls, name, value):
    opt = cls()
    before = getattr(opt, name)
    with pytest.raises(ValueError, match=name):
        setattr(opt, name, value)
    assert getattr(opt, name) == before


def test_infinite_learning_rate_no_longer_makes_every_weight_nan():
    """The defect: SGD(learning_rate=inf) trained one step, every weight became NaN
    while the reported loss still looked finite."""
    model = pynn.Sequential([pynn.layers.Input((2,)), pynn.layers.Dense(3)], seed=0)
    with pytest.raises(ValueError, match="learning_rate"):
        model.compile(optimizer=O.SGD(learning_rate=math.inf), loss="mse")
    model.compile(optimizer=O.SGD(0.1), loss="mse")
    with pytest.raises(ValueError, match="learning_rate"):
        model.optimizer.learning_rate = math.inf
    w = model.get_weights()
    model.fit(np.ones((4, 2), F32), np.zeros((4, 3), F32), epochs=1, verbose=0)
    assert all(np.isfinite(a).all() for a in model.get_weights())
    assert any((a != b).any() for a, b in zip(w, model.get_weights()))


class _Blowup(S.LearningRateSchedule):
    """A schedule whose rate becomes infinite at step 2."""

    def __call__(self, step):
        return 0.1 if step < 2 else math.inf

    def get_config(self):
        return {}


def test_schedule_and_callable_rates_are_checked_when_read():
    w = np.ones(3)
    opt = O.SGD(_Blowup())
    opt.build([w], REFERENCE)
    opt.apply([np.ones(3)])
    opt.apply([np.ones(3)])
    before = w.copy()
    with pytest.raises(ValueError, match="learning_rate from _Blowup at step 2") as info:
        opt.apply([np.ones(3)])
    assert "inf" in str(info.value)
    np.testing.assert_array_equal(w, before)
    assert opt.iterations == 2
    opt = O.Adam(lambda: math.nan)
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate


@pytest.mark.parametrize("make", [
    lambda: S.ExponentialDecay(math.inf, 10, 0.9),
    lambda: S.ExponentialDecay(0.1, math.nan, 0.9),
    lambda: S.ExponentialDecay(0.1, 10, -0.5),
    lambda: S.InverseTimeDecay(0.1, 0, 0.5),
    lambda: S.InverseTimeDecay(0.1, 10, math.inf),
    lambda: S.PolynomialDecay(-0.1, 10),
    lambda: S.PolynomialDecay(0.1, 10, end_learning_rate=math.nan),
    lambda: S.PolynomialDecay(0.1, 10, power=-1.0),
    lambda: S.CosineDecay(0.1, 10, alpha=1.5),
    lambda: S.CosineDecay(0.1, 10, warmup_target=math.inf),
    lambda: S.CosineDecay(0.1, 10, warmup_steps=-3),
    lambda: S.PiecewiseConstantDecay([10], [0.1, math.nan]),
    lambda: S.PiecewiseConstantDecay([math.inf], [0.1, 0.01]),
], ids=lambda f: "")
def test_schedule_constructors_refuse(make):
    with pytest.raises(ValueError):
        make()


class _FakeOptimizer:
    learning_rate = 1.0


class _FakeModel:
    optimizer = _FakeOptimizer()
    stop_training = False


def test_learning_rate_callbacks_refuse():
    for kw in (dict(factor=math.nan), dict(factor=-0.5), dict(min_lr=math.inf),
               dict(min_lr=-1.0), dict(min_delta=math.nan), dict(patience=-1),
               dict(cooldown=1.5)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            C.ReduceLROnPlateau(**kw)
    for bad in (math.inf, math.nan, -0.1):
        cb = C.LearningRateScheduler(lambda epoch, lr, bad=bad: bad)
        cb.set_model(_FakeModel())
        with pytest.raises(ValueError, match="LearningRateScheduler") as info:
            cb.on_epoch_begin(3)
        assert repr(bad) in str(info.value)
        assert _FakeModel.optimizer.learning_rate == 1.0


def _built(cls, **kw):
    opt = cls(**kw)
    params = [np.ones((2, 3)), np.ones(3)]
    opt.build(params, REFERENCE)
    opt.apply([np.full((2, 3), 0.5), np.full(3, -0.5)])
    return opt, params


@pytest.mark.parametrize("cls,entry,value", [
    (O.Adam, "velocity_0", -1e-3), (O.Adam, "velocity_1", -0.5),
    (O.Adam, "momentum_0", math.nan), (O.Adam, "velocity_0", math.inf),
    (O.RMSprop, "velocity_1", -2.0), (O.Adagrad, "accumulator_0", -0.1),
    (O.SGD, "momentum_1", math.inf),
    (O.RMSprop, "momentum_0", math.nan), (O.RMSprop, "average_gradient_1", math.inf),
    (O.Nadam, "velocity_0", -1.0), (O.Nadam, "u_product", 0.0),
    (O.Nadam, "u_product", math.nan), (O.Nadam, "u_product", 1.5),
    (O.Adamax, "norm_1", -1.0), (O.Adamax, "momentum_0", math.inf),
    (O.Adadelta, "accumulated_grad_0", -1.0), (O.Adadelta, "accumulated_delta_var_1", -1.0),
    (O.Lion, "momentum_0", math.nan), (O.Lion, "average_1", math.inf),
], ids=lambda v: str(v))
def test_set_state_refuses_bad_state_naming_the_entry(cls, entry, value):
    kw = {O.SGD: {"momentum": 0.9}, O.RMSprop: {"momentum": 0.9, "centered": True},
          O.Lion: {"use_ema": True}}
    opt, _ = _built(cls, **kw.get(cls, {}))
    state = opt.get_state()
    state[entry] = state[entry].copy()
    state[entry].reshape(-1)[0] = value
    before = opt.get_state()
    with pytest.raises(ValueError, match=entry):
        opt.set_state(state)
    after = opt.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("iterations", [-1, 2.5, math.nan, math.inf])
def test_set_state_and_setter_refuse_bad_iterations(iterations):
    opt, _ = _built(O.Adam)
    state = opt.get_state()
    state["iterations"] = np.asarray(iterations)
    with pytest.raises(ValueError, match="iterations"):
        opt.set_state(state)
    with pytest.raises(ValueError, match="iterations"):
        opt.iterations = iterations
    assert opt.iterations == 1


def test_set_state_still_restores_a_good_state():
    opt, params = _built(O.Adam)
    other, other_params = _built(O.Adam)
    other.apply([np.ones((2, 3)), np.ones(3)])
    opt.set_state(other.get_state())
    assert opt.iterations == 2
    for k, v in other.get_state().items():
        np.testing.assert_array_equal(opt.get_state()[k], v)


# --------------------------------------------------------------------------
# rule 8: building again
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.RMSprop, O.Adagrad, O.Nadam, O.Adamax,
                                 O.Adadelta, O.Lion])
@pytest.mark.parametrize("flat", [False, True], ids=["views", "flat"])
def test_rebuild_over_the_same_shapes_continues(cls, flat):
    """State values and the step count survive a rebuild; training then goes on
    exactly as it would have without it."""
    rng = np.random.default_rng(3)
    kw = {"momentum": 0.9} if cls is O.SGD else {}
    grads = [[rng.standard_normal((4, 3)), rng.standard_normal(3)] for _ in range(4)]

    def params_and_flat(init):
        buf = np.array(init)
        return [buf[:12].reshape(4, 3), buf[12:]], (buf if flat else None)

    init = rng.standard_normal(15)
    ref_params, ref_flat = params_and_flat(init)
    ref = cls(0.05, **kw)
    ref.build(ref_params, REFERENCE, flat_param=ref_flat)
    params, fl = params_and_flat(init)
    opt = cls(0.05, **kw)
    opt.build(params, REFERENCE, flat_param=fl)
    for g in grads[:2]:
        ref.apply([x.copy() for x in g])
        opt.apply([x.copy() for x in g])
    state = opt.get_state()
    new_params, new_fl = params_and_flat(np.concatenate([p.ravel() for p in params]))
    opt.build(new_params, REFERENCE, flat_param=new_fl)  # e.g. compile() again
    assert opt.iterations == 2
    for k, v in state.items():
        np.testing.assert_array_equal(opt.get_state()[k], v)
    for g in grads[2:]:
        ref.apply([x.copy() for x in g])
        opt.apply([x.copy() for x in g])
    for a, b in zip(new_params, ref_params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [O.Adam, O.Adagrad, O.Nadam])
def test_rebuild_over_other_shapes_starts_afresh(cls):
    opt, _ = _built(cls)
    assert opt.iterations == 1
    opt.build([np.ones((3, 3))], REFERENCE)
    assert opt.iterations == 0
    fresh = cls()
    fresh.build([np.ones((3, 3))], REFERENCE)
    for k, v in fresh.get_state().items():
        np.testing.assert_array_equal(opt.get_state()[k], v)


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_compile_again_with_the_same_adam_continues(backend_name):
    """compile() twice with one Adam instance: its moments and step count go on, so
    two epochs around a second compile equal two epochs in one go (bit for bit)."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 4)).astype(F32)
    y = rng.integers(0, 3, 32)

    def model():
        return pynn.Sequential([pynn.layers.Input((4,)), pynn.layers.Dense(5, activation="relu"),
                                pynn.layers.Dense(3, activation="softmax")], seed=1)

    with B.use_backend(backend_name):
        a, opt = model(), O.Adam(0.01)
        a.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        assert opt.iterations == 4
        a.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        assert opt.iterations == 8
        b = model()
        b.compile(optimizer=O.Adam(0.01), loss="sparse_categorical_crossentropy")
        b.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
