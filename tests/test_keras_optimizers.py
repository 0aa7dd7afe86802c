"""Optimizers and learning-rate schedules against Keras 3 itself (differential tests).

The same start weights and the same gradient sequence go through a pynn optimizer (on
the NumPy reference backend) and the Keras optimizer with the same arguments; the
trajectories must agree at every step. Skipped when Keras (with the torch backend)
is not installed: tests/test_optimizers.py checks the same rules against NumPy
versions of Keras's formulas everywhere. CI installs keras 3.15.1 for this file
(.ci/run, the torch step).
"""
import os
import re

import numpy as np
import pytest

import pynn.optimizers as O
from pynn.backends import Backend
from pynn.optimizers import schedules as S

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", exc_type=ImportError)

REF = Backend()
SHAPES = ((4, 3), (3,))
STEPS = 6
# learning rates that float32 holds exactly: Keras keeps the rate in a float32 variable
LR = 0.0625

#: (id, pynn/Keras class name, keyword arguments accepted by both)
CASES = [
    ("sgd", "SGD", dict(learning_rate=LR)),
    ("sgd_momentum_wd", "SGD", dict(learning_rate=LR, momentum=0.9, weight_decay=0.125)),
    ("sgd_nesterov", "SGD", dict(learning_rate=LR, momentum=0.75, nesterov=True)),
    ("adam", "Adam", dict(learning_rate=LR)),
    ("adam_custom", "Adam", dict(learning_rate=LR, beta_1=0.8, beta_2=0.95, epsilon=1e-3,
                                 weight_decay=0.25)),
    ("adam_amsgrad", "Adam", dict(learning_rate=LR, amsgrad=True)),
    # (AdamW's default weight_decay=0.004 is pinned by the config test: Keras rounds
    # it to float32 in the step, 2e-8 apart from pynn's float64)
    ("adamw", "AdamW", dict(learning_rate=LR, weight_decay=0.125)),
    ("rmsprop", "RMSprop", dict(learning_rate=LR)),
    ("rmsprop_small_grads", "RMSprop", dict(learning_rate=LR, rho=0.8, epsilon=1e-7)),
    ("rmsprop_momentum", "RMSprop", dict(learning_rate=LR, momentum=0.9)),
    ("rmsprop_centered", "RMSprop", dict(learning_rate=LR, centered=True, epsilon=1e-4)),
    ("rmsprop_centered_momentum_wd", "RMSprop", dict(learning_rate=LR, momentum=0.5,
                                                     centered=True, weight_decay=0.125)),
    ("adagrad", "Adagrad", dict(learning_rate=LR)),
    ("adagrad_custom", "Adagrad", dict(learning_rate=LR, initial_accumulator_value=0.5,
                                       epsilon=1e-3, weight_decay=0.125)),
    ("nadam", "Nadam", dict(learning_rate=LR)),
    ("nadam_custom", "Nadam", dict(learning_rate=LR, beta_1=0.8, beta_2=0.95, epsilon=1e-3,
                                   weight_decay=0.125)),
    ("adamax", "Adamax", dict(learning_rate=LR)),
    ("adamax_custom", "Adamax", dict(learning_rate=LR, beta_1=0.8, beta_2=0.95, epsilon=1e-3,
                                     weight_decay=0.125)),
    ("adadelta", "Adadelta", dict(learning_rate=1.0)),
    ("adadelta_custom", "Adadelta", dict(learning_rate=0.5, rho=0.9, epsilon=1e-3,
                                         weight_decay=0.125)),
    ("lion", "Lion", dict(learning_rate=LR)),
    ("lion_custom", "Lion", dict(learning_rate=LR, beta_1=0.5, beta_2=0.75,
                                 weight_decay=0.125)),
    # gradient clipping, on rules with and without a backend op
    ("adam_clipnorm", "Adam", dict(learning_rate=LR, clipnorm=0.5)),
    ("nadam_global_clipnorm", "Nadam", dict(learning_rate=LR, global_clipnorm=0.75)),
    ("lion_clipvalue", "Lion", dict(learning_rate=LR, clipvalue=0.25)),
    ("rmsprop_clipvalue", "RMSprop", dict(learning_rate=LR, momentum=0.5, clipvalue=0.25)),
    # the moving average of the weights, copied into them every 4th step (momenta that
    # float32 holds: Keras multiplies by a float32 constant, 3e-8 off for 0.99)
    ("sgd_ema", "SGD", dict(learning_rate=LR, momentum=0.5, use_ema=True, ema_momentum=0.875)),
    ("adam_ema_overwrite", "Adam", dict(learning_rate=LR, use_ema=True, ema_momentum=0.75,
                                        ema_overwrite_frequency=4)),
    ("lion_ema_overwrite", "Lion", dict(learning_rate=LR, use_ema=True, ema_momentum=0.5,
                                        ema_overwrite_frequency=4)),
]

#: (id, pynn schedule, the same Keras schedule's class name and arguments)
SCHEDULES = [
    ("exponential", dict(initial_learning_rate=0.5, decay_steps=3, decay_rate=0.5),
     "ExponentialDecay"),
    ("exponential_staircase", dict(initial_learning_rate=0.5, decay_steps=3, decay_rate=0.5,
                                   staircase=True), "ExponentialDecay"),
    ("inverse_time", dict(initial_learning_rate=0.5, decay_steps=2, decay_rate=0.75,
                          staircase=True), "InverseTimeDecay"),
    ("polynomial", dict(initial_learning_rate=0.5, decay_steps=7, end_learning_rate=0.0625,
                        power=2.0), "PolynomialDecay"),
    ("polynomial_cycle", dict(initial_learning_rate=0.5, decay_steps=4, power=0.5,
                              cycle=True), "PolynomialDecay"),
    ("cosine", dict(initial_learning_rate=0.5, decay_steps=9, alpha=0.25), "CosineDecay"),
    ("cosine_warmup", dict(initial_learning_rate=0.125, decay_steps=8, warmup_target=0.5,
                           warmup_steps=5), "CosineDecay"),
    ("cosine_restarts", dict(initial_learning_rate=0.5, first_decay_steps=3),
     "CosineDecayRestarts"),
    ("cosine_restarts_custom", dict(initial_learning_rate=0.5, first_decay_steps=4,
                                    t_mul=1.0, m_mul=0.5, alpha=0.125),
     "CosineDecayRestarts"),
    ("cosine_restarts_t_mul", dict(initial_learning_rate=0.5, first_decay_steps=2, t_mul=3.0,
                                   m_mul=0.75), "CosineDecayRestarts"),
    ("piecewise", dict(boundaries=[3, 8], values=[0.5, 0.25, 0.125]), "PiecewiseConstantDecay"),
]


def _start(dtype, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    # gradients of mixed scales, small ones included (where sqrt(v) + eps and
    # sqrt(v + eps) differ most), and a step with a zero gradient entry
    grads = [[(rng.normal(size=s) * 10.0 ** rng.integers(-4, 1, size=s)).astype(dtype)
              for s in SHAPES] for _ in range(STEPS)]
    grads[2][0][0, 0] = 0.0
    return weights, grads


def _keras_run(cls_name, kw, weights, grads, dtype):
    """The weights after each step, then after ``finalize_variable_values``."""
    variables = [keras.Variable(w.copy(), dtype=np.dtype(dtype).name) for w in weights]
    opt = getattr(keras.optimizers, cls_name)(**kw)
    opt.build(variables)
    out = []
    for step in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)
                             for g, v in zip(step, variables)])
        out.append([np.array(keras.ops.convert_to_numpy(v)) for v in variables])
    opt.finalize_variable_values(variables)
    out.append([np.array(keras.ops.convert_to_numpy(v)) for v in variables])
    return out


def _pynn_run(opt, weights, grads, flat_path):
    sizes = [w.size for w in weights]
    flat = np.concatenate([w.ravel() for w in weights])
    flat_g = np.zeros_like(flat)
    params, views, o = [], [], 0
    for w, n in zip(weights, sizes):
        params.append(flat[o:o + n].reshape(w.shape))
        views.append(flat_g[o:o + n].reshape(w.shape))
        o += n
    opt.build(params, REF, flat_param=flat if flat_path else None)
    out = []
    for step in grads:
        for v, g in zip(views, step):
            v[...] = g
        opt.apply(views, params, flat_grad=flat_g if flat_path else None)
        out.append([p.copy() for p in params])
    opt.finalize_variable_values()
    out.append([p.copy() for p in params])
    return out


def _tolerance(dtype):
    # float32: Keras rounds its step factors (bias corrections, clipping scale) to
    # float32 in another order than pynn (float64: clipnorm in Keras differs by ~1e-10);
    # parameters are O(1), steps O(0.06)
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("flat_path", [False, True], ids=["per_param", "flat"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_keras(case, dtype, flat_path):
    name, cls_name, kw = case
    weights, grads = _start(dtype, seed=len(name))
    want = _keras_run(cls_name, kw, weights, grads, dtype)
    got = _pynn_run(getattr(O, cls_name)(**kw), weights, grads, flat_path)
    assert len(got) == len(want) == STEPS + 1
    for t, (g_step, w_step) in enumerate(zip(got, want), start=1):
        for i, (g, w) in enumerate(zip(g_step, w_step)):
            np.testing.assert_allclose(g, w, **_tolerance(dtype),
                                       err_msg=f"{name}: step {t}, parameter {i}")


@pytest.mark.parametrize("sched", SCHEDULES[::3], ids=[s[0] for s in SCHEDULES[::3]])
@pytest.mark.parametrize("cls_name", ["SGD", "RMSprop", "Nadam", "Lion"])
def test_trajectory_with_schedule_matches_keras(sched, cls_name):
    _, kw, sched_cls = sched
    weights, grads = _start(np.float64, seed=7)
    want = _keras_run(cls_name, dict(learning_rate=getattr(keras.optimizers.schedules,
                                                           sched_cls)(**kw)),
                      weights, grads, np.float64)
    got = _pynn_run(getattr(O, cls_name)(learning_rate=getattr(S, sched_cls)(**kw)),
                    weights, grads, flat_path=True)
    # Keras evaluates its schedules in float32
    for g_step, w_step in zip(got, want):
        for g, w in zip(g_step, w_step):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sched", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_keras(sched):
    _, kw, cls_name = sched
    ours = getattr(S, cls_name)(**kw)
    theirs = getattr(keras.optimizers.schedules, cls_name)(**kw)
    steps = np.arange(0, 40)
    want = np.array([float(keras.ops.convert_to_numpy(theirs(int(t)))) for t in steps])
    got = ours(steps)  # an array of steps gives an array of rates
    assert isinstance(got, np.ndarray) and got.shape == steps.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # Keras computes in float32
    np.testing.assert_allclose([ours(int(t)) for t in steps], got, rtol=0, atol=0)
    assert ours.get_config() == theirs.get_config()
    # a schedule Keras serialised loads, also inside an optimizer's config
    back = S.deserialize(keras.optimizers.schedules.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    opt = O.get(keras.optimizers.serialize(keras.optimizers.SGD(learning_rate=theirs)))
    assert opt._learning_rate.get_config() == ours.get_config()


@pytest.mark.parametrize("cls_name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam",
                                      "Adamax", "Adadelta", "Lion"])
def test_names_defaults_and_config_match_keras(cls_name):
    ours, theirs = getattr(O, cls_name)(), getattr(keras.optimizers, cls_name)()
    # Keras appends _1, _2, ... to a name already used in the process; pynn does not
    assert ours.name == re.sub(r"_\d+$", "", theirs.name)
    cfg, keras_cfg = ours.get_config(), theirs.get_config()
    # the keys pynn does not have are the Keras options it does not implement
    assert set(keras_cfg) - set(cfg) == {"loss_scale_factor", "gradient_accumulation_steps"}
    assert set(cfg) <= set(keras_cfg)
    # a config Keras wrote (its serialize() output) loads
    back = O.get(keras.optimizers.serialize(theirs))
    assert type(back) is type(ours)
    assert back.get_config() == dict(cfg, name=theirs.name, learning_rate=back.learning_rate)
    for key in cfg:
        if key == "name":
            continue
        want = keras_cfg[key]
        if isinstance(want, float):  # Keras reads learning_rate back from a float32 variable
            assert cfg[key] == pytest.approx(want, rel=1e-7), key
        else:
            assert cfg[key] == want, key
