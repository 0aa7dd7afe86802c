"""Recurrent ops (SimpleRNN, LSTM, GRU over whole sequences): every backend equals the
reference on a grid of odd cases; the reference's gradients equal float64 central finite
differences; outputs and gradients equal PyTorch's nn.RNN/nn.LSTM/nn.GRU with weights
mapped, and the masking / go_backwards / reset_after rules equal Keras's own layers."""
import numpy as np
import pytest

import pynn.backends as B

from helpers import CPU_BACKENDS, REFERENCE, assert_close, import_keras, transient_bytes

CELLS = [("simple_rnn", True), ("lstm", True), ("gru", True), ("gru", False)]
CELL_IDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]
WIDTH = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def make_params(rng, cell, d, u, reset_after, dt, use_bias=True, scale=0.6):
    k = WIDTH[cell]
    kernel = (scale * rng.standard_normal((d, k * u))).astype(dt)
    rk = (scale * rng.standard_normal((u, k * u))).astype(dt)
    bias = None
    if use_bias:
        shape = (2, 3 * u) if (cell == "gru" and reset_after) else (k * u,)
        bias = (scale * rng.standard_normal(shape)).astype(dt)
    return kernel, rk, bias


def make_mask(rng, n, t, kind):
    if kind is None:
        return None
    m = rng.random((n, t)) < 0.6
    if kind == "fully_masked_row":
        m[0] = False
    if kind == "right_padded":
        lengths = rng.integers(0, t + 1, n)
        m = np.arange(t)[None, :] < lengths[:, None]
    return m


def forward(be, cell, x, kernel, rk, bias, h0=None, c0=None, mask=None, go_backwards=False,
            reset_after=True, activation="tanh", recurrent_activation="sigmoid", rmask=None):
    """``dict`` of every output of ``<cell>_forward`` (``rmask``: the recurrent dropout
    multipliers, passed only when given)."""
    kw = dict(mask=mask, activation=activation, go_backwards=go_backwards)
    if rmask is not None:
        kw["recurrent_dropout_mask"] = rmask
    if cell == "simple_rnn":
        names = ("out", "h_out", "hprev", "gates")
        res = be.simple_rnn_forward(x, kernel, rk, bias, h0, **kw)
    elif cell == "lstm":
        names = ("out", "h_out", "c_out", "hprev", "cprev", "gates")
        res = be.lstm_forward(x, kernel, rk, bias, h0, c0,
                              recurrent_activation=recurrent_activation, **kw)
    else:
        names = ("out", "h_out", "hprev", "gates")
        res = be.gru_forward(x, kernel, rk, bias, h0, recurrent_activation=recurrent_activation,
                             reset_after=reset_after, **kw)
    return dict(zip(names, res))


def backward(be, cell, fw, dy, dh_out, dc_out, x, kernel, rk, mask=None, go_backwards=False,
             reset_after=True, use_bias=True, activation="tanh",
             recurrent_activation="sigmoid", rmask=None):
    kw = dict(mask=mask, dh_out=dh_out, bias_grad=use_bias, activation=activation,
              go_backwards=go_backwards)
    if rmask is not None:
        kw["recurrent_dropout_mask"] = rmask
    if cell == "simple_rnn":
        names = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")
        res = be.simple_rnn_backward(dy, x, kernel, rk, fw["hprev"], fw["gates"], **kw)
    elif cell == "lstm":
        names = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0", "dc0")
        res = be.lstm_backward(dy, x, kernel, rk, fw["hprev"], fw["cprev"], fw["gates"],
                               dc_out=dc_out, recurrent_activation=recurrent_activation, **kw)
    else:
        names = ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")
        res = be.gru_backward(dy, x, kernel, rk, fw["hprev"], fw["gates"],
                              recurrent_activation=recurrent_activation,
                              reset_after=reset_after, **kw)
    return dict(zip(names, res))


def make_rmask(rng, n, cell, u, dt, rate=0.4):
    """Recurrent dropout multipliers ``(n, k*u)``: 0 or ``1 / (1 - rate)``, as Keras's."""
    keep = rng.random((n, WIDTH[cell] * u)) >= rate
    return (keep / (1 - rate)).astype(dt)


def problem(cell, reset_after, n=3, t=4, d=3, u=2, dt=np.float64, seed=0, mask=None,
            use_bias=True, initial=True, rdrop=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d)).astype(dt)
    kernel, rk, bias = make_params(rng, cell, d, u, reset_after, dt, use_bias)
    h0 = c0 = None
    if initial:
        h0 = (0.5 * rng.standard_normal((n, u))).astype(dt)
        c0 = (0.5 * rng.standard_normal((n, u))).astype(dt) if cell == "lstm" else None
    m = make_mask(rng, n, t, mask)
    wy = rng.standard_normal((n, t, u)).astype(dt)
    wh = rng.standard_normal((n, u)).astype(dt)
    wc = rng.standard_normal((n, u)).astype(dt) if cell == "lstm" else None
    rmask = make_rmask(rng, n, cell, u, dt) if rdrop else None
    return dict(x=x, kernel=kernel, rk=rk, bias=bias, h0=h0, c0=c0, mask=m, wy=wy, wh=wh,
                wc=wc, rmask=rmask)


# --------------------------------------------------------------------------------------
# gradients: float64 central finite differences of a weighted sum of every output
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("mask", [None, "random", "fully_masked_row"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("rdrop", [False, True], ids=["", "recurrent_dropout"])
def test_gradients_equal_finite_differences(cell, reset_after, mask, go_backwards, rdrop):
    p = problem(cell, reset_after, mask=mask, rdrop=rdrop)
    kw = dict(mask=p["mask"], go_backwards=go_backwards, reset_after=reset_after,
              rmask=p["rmask"])

    def loss(x, kernel, rk, bias, h0, c0):
        fw = forward(REFERENCE, cell, x, kernel, rk, bias, h0, c0, **kw)
        s = np.sum(fw["out"] * p["wy"]) + np.sum(fw["h_out"] * p["wh"])
        if cell == "lstm":
            s += np.sum(fw["c_out"] * p["wc"])
        return s

    args = dict(x=p["x"], kernel=p["kernel"], rk=p["rk"], bias=p["bias"], h0=p["h0"],
                c0=p["c0"])
    fw = forward(REFERENCE, cell, p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"],
                 **kw)
    grads = backward(REFERENCE, cell, fw, p["wy"], p["wh"], p["wc"], p["x"], p["kernel"],
                     p["rk"], **kw)
    names = {"x": "dx", "kernel": "dkernel", "rk": "drecurrent_kernel", "bias": "dbias",
             "h0": "dh0", "c0": "dc0"}
    eps = 1e-6
    for arg, gname in names.items():
        if args[arg] is None:
            continue
        base = args[arg]
        fd = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[i] += eps
            minus[i] -= eps
            fd[i] = (loss(**{**args, arg: plus}) - loss(**{**args, arg: minus})) / (2 * eps)
        np.testing.assert_allclose(grads[gname], fd, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{cell} d{arg}")


# --------------------------------------------------------------------------------------
# every backend equals the reference on the grid
# --------------------------------------------------------------------------------------
GRID = [
    dict(n=1, t=1, d=1, u=1),
    dict(n=1, t=5, d=3, u=2),
    dict(n=4, t=1, d=2, u=3),
    dict(n=3, t=6, d=5, u=1),
    dict(n=5, t=7, d=4, u=6),
    # more units than one vector register holds (16 float32), with a remainder: the
    # compiled epilogues' vectorised loops and their scalar tails
    dict(n=2, t=3, d=5, u=17),
]


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mask", [None, "fully_masked_row", "right_padded"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("rdrop", [False, True], ids=["", "recurrent_dropout"])
def test_backend_equals_reference(name, cell, reset_after, dt, mask, go_backwards, rdrop):
    be = B.get(name)
    for gi, g in enumerate(GRID):
        for use_bias, initial in ((True, True), (False, False)):
            p = problem(cell, reset_after, dt=dt, seed=gi, mask=mask, use_bias=use_bias,
                        initial=initial, rdrop=rdrop, **g)
            kw = dict(mask=p["mask"], go_backwards=go_backwards, reset_after=reset_after,
                      rmask=p["rmask"])
            args = (p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"])
            want = forward(REFERENCE, cell, *args, **kw)
            got = forward(be, cell, *args, **kw)
            what = f"{name}.{cell} {g} bias={use_bias}"
            for k in want:
                assert_close(got[k], want[k], dt, loose=10, what=f"{what} {k}")
            bargs = (p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"])
            gw = backward(REFERENCE, cell, want, *bargs, use_bias=use_bias, **kw)
            gg = backward(be, cell, want, *bargs, use_bias=use_bias, **kw)
            for k in gw:
                assert_close(gg[k], gw[k], dt, loose=10, what=f"{what} {k}")


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("n, t", [(0, 3), (2, 0)], ids=["empty_batch", "empty_sequences"])
def test_empty_batch_or_sequences(name, cell, reset_after, n, t):
    """No samples or no steps: the states pass through, the weight gradients are 0."""
    be = B.get(name)
    p = problem(cell, reset_after, n=n, t=t, mask="random")
    kw = dict(mask=p["mask"], reset_after=reset_after)
    args = (p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"])
    want = forward(REFERENCE, cell, *args, **kw)
    if t == 0:
        np.testing.assert_array_equal(want["h_out"], p["h0"])
    got = forward(be, cell, *args, **kw)
    bargs = (p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"])
    gw = backward(REFERENCE, cell, want, *bargs, **kw)
    gg = backward(be, cell, want, *bargs, **kw)
    assert not np.any(gw["dkernel"]) and not np.any(gw["drecurrent_kernel"])
    for k in want:
        assert_close(got[k], want[k], np.float64, what=k)
    for k in gw:
        assert_close(gg[k], gw[k], np.float64, what=k)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_other_activations_and_layouts(name, cell, reset_after):
    """relu/sigmoid/linear activations, non-contiguous inputs, dy=None."""
    be = B.get(name)
    p = problem(cell, reset_after, n=3, t=5, d=4, u=3, seed=5)
    x = np.asfortranarray(p["x"])
    kernel = p["kernel"][::-1].copy()[::-1]  # negative strides
    for act, ract in (("relu", "sigmoid"), ("linear", "tanh"), ("sigmoid", "linear")):
        kw = dict(reset_after=reset_after, activation=act, recurrent_activation=ract)
        want = forward(REFERENCE, cell, p["x"], p["kernel"], p["rk"], p["bias"], **kw)
        got = forward(be, cell, x, kernel, p["rk"], p["bias"], **kw)
        for k in want:
            assert_close(got[k], want[k], np.float64, what=f"{name} {cell} {act} {k}")
        gw = backward(REFERENCE, cell, want, None, p["wh"], p["wc"], p["x"], p["kernel"],
                      p["rk"], **kw)
        gg = backward(be, cell, want, None, p["wh"], p["wc"], x, kernel, p["rk"], **kw)
        for k in gw:
            assert_close(gg[k], gw[k], np.float64, what=f"{name} {cell} {act} {k}")


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_warm_calls_allocate_nothing(name, cell, reset_after):
    """With every output and workspace supplied, the ops return exactly those arrays."""
    be = B.get(name)
    p = problem(cell, reset_after, n=4, t=6, d=3, u=2, dt=np.float32, mask="random")
    kw = dict(mask=p["mask"], reset_after=reset_after)
    fw = forward(be, cell, p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"], **kw)
    bufs = {k: np.empty_like(v) for k, v in fw.items()}
    extra = dict(reset_after=reset_after) if cell == "gru" else {}
    res = getattr(be, f"{cell}_forward")(p["x"], p["kernel"], p["rk"], p["bias"], p["h0"],
                                         *(() if cell != "lstm" else (p["c0"],)),
                                         mask=p["mask"], **bufs, **extra)
    assert all(r is bufs[k] for r, k in zip(res, fw))
    grads = backward(be, cell, fw, p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"],
                     **kw)
    gbufs = {k: np.empty_like(v) for k, v in grads.items()}
    dgates = np.empty(fw["gates"].shape, np.float32)
    op = getattr(be, f"{cell}_backward")
    if cell == "lstm":
        res = op(p["wy"], p["x"], p["kernel"], p["rk"], fw["hprev"], fw["cprev"], fw["gates"],
                 mask=p["mask"], dh_out=p["wh"], dc_out=p["wc"], dgates=dgates, **gbufs)
    else:
        res = op(p["wy"], p["x"], p["kernel"], p["rk"], fw["hprev"], fw["gates"],
                 mask=p["mask"], dh_out=p["wh"], dgates=dgates, **gbufs, **extra)
    assert all(r is gbufs[k] for r, k in zip(res, grads))
    for k in grads:
        assert_close(gbufs[k], grads[k], np.float32, what=k)


# --------------------------------------------------------------------------------------
# PyTorch: outputs and gradients with weights mapped
# --------------------------------------------------------------------------------------
def _torch_module(torch, cell, d, u, kernel, rk, bias):
    if cell == "simple_rnn":
        m, perm = torch.nn.RNN(d, u, batch_first=True), np.arange(u)
    elif cell == "lstm":
        m, perm = torch.nn.LSTM(d, u, batch_first=True), np.arange(4 * u)
    else:  # torch's r, z, n from Keras's z, r, h
        m, perm = torch.nn.GRU(d, u, batch_first=True), np.r_[u:2 * u, 0:u, 2 * u:3 * u]
    m = m.double()
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(kernel.T[perm]))
        m.weight_hh_l0.copy_(torch.tensor(rk.T[perm]))
        if cell == "gru":
            m.bias_ih_l0.copy_(torch.tensor(bias[0][perm]))
            m.bias_hh_l0.copy_(torch.tensor(bias[1][perm]))
        else:  # Keras's one bias is the sum of torch's two
            m.bias_ih_l0.copy_(torch.tensor(bias))
            m.bias_hh_l0.zero_()
    return m, perm


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_equals_torch(cell):
    torch = pytest.importorskip("torch")
    p = problem(cell, True, n=4, t=7, d=5, u=3, seed=3)
    n, t, d = p["x"].shape
    u = p["rk"].shape[0]
    m, perm = _torch_module(torch, cell, d, u, p["kernel"], p["rk"], p["bias"])
    x = torch.tensor(p["x"], requires_grad=True)
    h0 = torch.tensor(p["h0"][None], requires_grad=True)
    if cell == "lstm":
        c0 = torch.tensor(p["c0"][None], requires_grad=True)
        y, (hn, cn) = m(x, (h0, c0))
    else:
        y, hn = m(x, h0)
    loss = (y * torch.tensor(p["wy"])).sum() + (hn[0] * torch.tensor(p["wh"])).sum()
    if cell == "lstm":
        loss = loss + (cn[0] * torch.tensor(p["wc"])).sum()
    loss.backward()
    fw = forward(REFERENCE, cell, p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"])
    np.testing.assert_allclose(fw["out"], y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fw["h_out"], hn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    gr = backward(REFERENCE, cell, fw, p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"])
    close = dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(gr["dx"], x.grad.numpy(), **close)
    np.testing.assert_allclose(gr["dh0"], h0.grad.numpy()[0], **close)
    np.testing.assert_allclose(gr["dkernel"][:, perm].T, m.weight_ih_l0.grad.numpy(), **close)
    np.testing.assert_allclose(gr["drecurrent_kernel"][:, perm].T, m.weight_hh_l0.grad.numpy(),
                               **close)
    if cell == "gru":
        np.testing.assert_allclose(gr["dbias"][0][perm], m.bias_ih_l0.grad.numpy(), **close)
        np.testing.assert_allclose(gr["dbias"][1][perm], m.bias_hh_l0.grad.numpy(), **close)
    else:
        np.testing.assert_allclose(gr["dbias"], m.bias_ih_l0.grad.numpy(), **close)
    if cell == "lstm":
        np.testing.assert_allclose(gr["dc0"], c0.grad.numpy()[0], **close)


# --------------------------------------------------------------------------------------
# Keras: masks, go_backwards, reset_after=False, initial states
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_equals_keras_masked(cell, reset_after, go_backwards):
    keras = import_keras()
    p = problem(cell, reset_after, n=4, t=6, d=3, u=2, seed=11, mask="fully_masked_row",
                dt=np.float32)
    cls = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[cell]
    kw = dict(reset_after=reset_after) if cell == "gru" else {}
    layer = cls(2, return_sequences=True, return_state=True, go_backwards=go_backwards, **kw)
    states = [p["h0"]] + ([p["c0"]] if cell == "lstm" else [])
    res = layer(p["x"], initial_state=states, mask=p["mask"])
    layer.set_weights([p["kernel"], p["rk"], p["bias"]])
    res = [keras.ops.convert_to_numpy(r) for r in
           layer(p["x"], initial_state=states, mask=p["mask"])]
    fw = forward(REFERENCE, cell, p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"],
                 mask=p["mask"], go_backwards=go_backwards, reset_after=reset_after)
    assert_close(fw["out"], res[0], np.float32, loose=10, what="out")
    assert_close(fw["h_out"], res[1], np.float32, loose=10, what="h")
    if cell == "lstm":
        assert_close(fw["c_out"], res[2], np.float32, loose=10, what="c")


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_bad_input(name):
    be = B.get(name)
    p = problem("lstm", True)
    x, k, rk, b = p["x"], p["kernel"], p["rk"], p["bias"]
    with pytest.raises(ValueError, match=r"x: expected a 3-D array"):
        be.lstm_forward(x[0], k, rk, b)
    with pytest.raises(ValueError, match=r"kernel must be \(input_dim, 4 \* units\)"):
        be.lstm_forward(x, k[:2], rk, b)
    with pytest.raises(ValueError, match=r"recurrent_kernel must be"):
        be.lstm_forward(x, k, rk[:, :5], b)
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\)"):
        be.lstm_forward(x, k, rk, b[:4])
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 6\)"):
        be.gru_forward(x, k[:, :6], rk[:, :6], b[:6])
    with pytest.raises(ValueError, match=r"h0 must have shape \(n, units\) = \(3, 2\)"):
        be.lstm_forward(x, k, rk, b, h0=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"mask must have shape \(n, T\) = \(3, 4\)"):
        be.lstm_forward(x, k, rk, b, mask=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match=r"'gelu' is not supported"):
        be.lstm_forward(x, k, rk, b, activation="gelu")
    with pytest.raises(ValueError, match=r"Unknown activation"):
        be.simple_rnn_forward(x, k[:, :2], rk[:, :2], None, activation="nope")
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4, 2\)"):
        be.lstm_forward(x, k, rk, b, out=np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match=r"dbias was given but its gradient was not asked"):
        fw = forward(be, "lstm", x, k, rk, b)
        be.lstm_backward(None, x, k, rk, fw["hprev"], fw["cprev"], fw["gates"],
                         bias_grad=False, dbias=np.zeros(8))
    with pytest.raises(ValueError, match=r"gates must have shape \(3, 4, 8\)"):
        be.lstm_backward(None, x, k, rk, fw["hprev"], fw["cprev"], fw["gates"][:, :, :4])


# --------------------------------------------------------------------------------------
# compiled ops allocate nothing when warm
# --------------------------------------------------------------------------------------
COMPILED = [n for n in CPU_BACKENDS
            if getattr(type(B.get(n)), "lstm_forward") is not getattr(B.Backend, "lstm_forward")]
#: transient bytes a warm call may use: Python objects of the argument checks (a few KB),
#: below the smallest array the ops could allocate in the test (a (64, 64) float32 state)
WARM_LIMIT = 12 * 1024


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rdrop", [False, True], ids=["", "recurrent_dropout"])
def test_compiled_ops_allocate_nothing_when_warm(name, cell, reset_after, dt, rdrop):
    be = B.get(name)
    p = problem(cell, reset_after, n=64, t=4, d=8, u=64, dt=dt, mask="random", rdrop=rdrop)
    kw = dict(mask=p["mask"], reset_after=reset_after, rmask=p["rmask"])
    fw = forward(be, cell, p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"], **kw)
    grads = backward(be, cell, fw, p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"],
                     **kw)
    extra = dict(reset_after=reset_after) if cell == "gru" else {}
    extra["recurrent_dropout_mask"] = p["rmask"]
    states = (p["h0"],) + ((p["c0"],) if cell == "lstm" else ())
    fwd = getattr(be, f"{cell}_forward")
    bwd = getattr(be, f"{cell}_backward")
    dgates = np.empty(fw["gates"].shape, dt)
    work = (fw["hprev"],) + ((fw["cprev"],) if cell == "lstm" else ()) + (fw["gates"],)
    dstate = dict(dh_out=p["wh"]) | (dict(dc_out=p["wc"]) if cell == "lstm" else {})

    def run():
        fwd(p["x"], p["kernel"], p["rk"], p["bias"], *states, mask=p["mask"], **fw, **extra)
        bwd(p["wy"], p["x"], p["kernel"], p["rk"], *work, mask=p["mask"], dgates=dgates,
            **dstate, **grads, **extra)

    assert transient_bytes(run) < WARM_LIMIT


def test_allocation_check_sees_the_reference_allocate():
    p = problem("lstm", True, n=64, t=4, d=8, u=64, dt=np.float32)
    fw = forward(REFERENCE, "lstm", p["x"], p["kernel"], p["rk"], p["bias"])
    assert transient_bytes(lambda: REFERENCE.lstm_forward(
        p["x"], p["kernel"], p["rk"], p["bias"], **fw)) > WARM_LIMIT
