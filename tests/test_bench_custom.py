"""The ``--custom`` benchmark table (issue 21): the tutorial MLP written three ways runs
on every compiled backend, the three ways compute the same network, the ratios are the
quotients of the medians, and the op path's overhead is measured. No timing is
asserted."""
import json

import numpy as np

import pynn.backends as B
from pynn import bench
from pynn.bench.custom import WAYS, custom_model, op_overhead


def test_the_three_ways_are_one_network():
    x = np.random.default_rng(0).random((16, 784), dtype=np.float32)
    models = [custom_model(way, "adam") for way in WAYS]
    preds = [m.predict(x, verbose=0) for m in models]
    for p in preds[1:]:
        np.testing.assert_allclose(p, preds[0], rtol=1e-5, atol=1e-6)
    assert [w.shape for w in models[2].weights] == [w.shape for w in models[0].weights]
    assert type(models[1]).__name__ == "TutorialMLP"
    assert not any(type(layer).__name__ == "Dense" for layer in models[2].layers)


def test_quick_custom_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--custom", "--quick", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    printed = capsys.readouterr().out
    assert set(report) == {"meta", "custom"}
    rows = report["custom"]["epochs"]
    compiled = [n for n in B.available() if n != "numpy"]
    assert {(r["backend"], r["way"]) for r in rows} == {(b, w) for b in compiled
                                                       for w in WAYS}
    for r in rows:
        assert r["status"] == "ok", r
        base = next(q for q in rows if q["backend"] == r["backend"] and q["way"] == WAYS[0])
        assert r["vs_builtin"] == r["median_s"] / base["median_s"]
    assert "## (g) Custom code" in printed and "Op path overhead" in printed


def test_op_overhead_is_measured():
    o = op_overhead(n=50)
    assert o["forward_s"] > 0 and o["backward_s"] > 0 and o["numpy_s"] > 0
    assert o["overhead_s"] == o["forward_s"] + o["backward_s"] - 2 * o["numpy_s"]
