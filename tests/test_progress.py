"""Progress output: verbose 1 / 2 / 0 shapes, captured with capsys."""
import re

import pytest

from pynn.callbacks import CallbackList
from pynn.callbacks import ProgbarLogger
from pynn.progress import Progbar, format_time_per_unit, format_value

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIME = r"\d+(us|ms|s)/step"


def run_epochs(verbose, epochs=2, steps=3, val=True):
    cbl = CallbackList([], add_history=True, add_progbar=True, verbose=verbose, epochs=epochs,
                       steps=steps)
    cbl.on_train_begin()
    for epoch in range(epochs):
        cbl.on_epoch_begin(epoch)
        for b in range(steps):
            cbl.on_train_batch_begin(b)
            cbl.on_train_batch_end(b, {"accuracy": 0.5 + 0.1 * b, "loss": 1.0 / (b + 1)})
        # validation runs silently inside fit
        cbl.on_test_begin()
        cbl.on_test_batch_end(0, {"loss": 9.0})
        cbl.on_test_end({"loss": 9.0})
        logs = {"accuracy": 0.75, "loss": 0.25}
        if val:
            logs.update(val_accuracy=0.5, val_loss=0.000123)
        cbl.on_epoch_end(epoch, logs)
    cbl.on_train_end()


def test_verbose_2_one_line_per_epoch(capsys):
    run_epochs(2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    pat = (r"^3/3 - \d+s - " + TIME + r" - accuracy: 0\.7500 - loss: 0\.2500 - "
           r"val_accuracy: 0\.5000 - val_loss: 1\.2300e-04$")
    assert re.match(pat, lines[1]), lines[1]
    assert re.match(pat, lines[3]), lines[3]
    assert len(lines) == 4


def test_verbose_1_without_a_terminal_prints_whole_lines(capsys):
    run_epochs(1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b[" not in out  # no redraw, no colours in a log
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2"
    # the first batch is printed, then (sparse) nothing until the end of the epoch
    assert re.match(r"^1/3 \u2501{6}\u2500{14} \d+s " + TIME + r" - accuracy: 0\.5000 - "
                    r"loss: 1\.0000$", lines[1]), lines[1]
    final = r"^3/3 \u2501{20} \d+s " + TIME + r" - accuracy: 0\.7500 - loss: 0\.2500 - " \
            r"val_accuracy: 0\.5000 - val_loss: 1\.2300e-04$"
    assert re.match(final, lines[2]), lines[2]
    assert lines[3] == "Epoch 2/2" and re.match(final, lines[5])
    assert len(lines) == 6
    assert "9.0000" not in out  # validation inside fit stays silent


def test_verbose_0_is_silent(capsys):
    run_epochs(0)
    assert capsys.readouterr().out == ""


def test_single_epoch_has_no_epoch_header(capsys):
    run_epochs(2, epochs=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("3/3 - ")


def test_dynamic_display_redraws_in_place(capsys, monkeypatch):
    bar = Progbar(target=4, verbose=1, dynamic=True, interval=0.0)
    for i in range(1, 5):
        bar.update(i, [("loss", 0.5)])
    out = capsys.readouterr().out
    assert out.count("\r") == 4 and out.endswith("\n") and out.count("\n") == 1
    frames = [ANSI.sub("", f) for f in out.split("\r")[1:]]
    # running frames show the ETA, the last the elapsed time; the bar fills up
    assert re.match(r"^2/4 \u2501{20} \d+s " + TIME + r" - loss: 0\.5000", frames[1])
    assert "\x1b[32m" in out  # coloured on a terminal
    assert re.match(r"^4/4 \u2501{20} \d+s " + TIME + r" - loss: 0\.5000\s*\n$", frames[3])


def test_dynamic_display_is_throttled(capsys):
    bar = Progbar(target=1000, verbose=1, dynamic=True, interval=60.0)
    for i in range(1, 1001):
        bar.update(i, [("loss", 1.0)])
    out = capsys.readouterr().out
    assert out.count("\r") == 2  # the first step and the final one


def test_eta_is_shown_while_running(capsys, monkeypatch):
    import pynn.progress as P
    clock = [100.0]
    monkeypatch.setattr(P, "time", type("FakeTime", (), {"time": staticmethod(lambda: clock[0])}))
    bar = Progbar(target=10, verbose=1, dynamic=True, interval=0.0)
    clock[0] = 102.0
    bar.update(1)            # 2 s for the first step
    clock[0] = 103.0
    bar.update(2)            # then 1 s per step: 8 steps left
    clock[0] = 200.0
    bar.update(10)
    frames = [ANSI.sub("", f) for f in capsys.readouterr().out.split("\r")[1:]]
    assert " 18s 2s/step" in frames[0]
    assert " 8s 1s/step" in frames[1]
    assert " 100s 11s/step" in frames[2]  # finished: elapsed time, (200 - 102) / 9 per step


def test_averaging_for_non_stateful_values(capsys):
    bar = Progbar(target=2, verbose=2, stateful_metrics=())
    bar.update(1, [("loss", 1.0)])
    bar.update(2, [("loss", 3.0)], finalize=False)
    assert capsys.readouterr().out == ""  # verbose 2 prints only when finished
    bar.update(2, [("loss", 3.0)], finalize=True)
    assert "loss: 3.0000" in capsys.readouterr().out
    bar = Progbar(target=3, verbose=1, stateful_metrics=(), dynamic=True, interval=0.0)
    bar.update(1, [("loss", 1.0)])
    bar.update(3, [("loss", 4.0)], finalize=False)
    assert "loss: 3.0000" in ANSI.sub("", capsys.readouterr().out)  # (1 + 2*4) / 3


def test_evaluate_and_predict_bars(capsys):
    cbl = CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=2)
    cbl.on_test_begin()
    cbl.on_test_batch_end(0, {"loss": 0.5})
    cbl.on_test_batch_end(1, {"loss": 0.4})
    cbl.on_test_end({"loss": 0.4, "accuracy": 0.9})
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"^2/2 \u2501{20} \d+s " + TIME + r" - loss: 0\.4000 - accuracy: 0\.9000$",
                    out[-1]), out
    cbl = CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=None)
    cbl.on_predict_begin()
    for b in range(3):
        cbl.on_predict_batch_end(b, {"outputs": None})
    cbl.on_predict_end()
    assert re.match(r"^3/3 \u2501{20} \d+s " + TIME + "$", capsys.readouterr().out.splitlines()[-1])


def test_formatting_helpers():
    assert format_time_per_unit(2.4) == " 2s/step"
    assert format_time_per_unit(0.0021) == " 2ms/step"
    assert format_time_per_unit(0.0000213) == " 21us/step"
    assert format_value(0.123456) == " 0.1235"
    assert format_value(0.0001) == " 1.0000e-04"
    assert format_value(-2.5) == " -2.5000"


def test_auto_verbose_means_bar():
    logger = ProgbarLogger()
    logger.set_params({"verbose": "auto", "epochs": 3, "steps": 7})
    assert (logger.verbose, logger.epochs, logger.target) == (1, 3, 7)
