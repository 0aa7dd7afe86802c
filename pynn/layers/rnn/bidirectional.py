"""``Bidirectional``: a recurrent layer run forwards and backwards, outputs merged
(Keras 3's ``layers/rnn/bidirectional.py``)."""
from __future__ import annotations

import numpy as np

from ...backends.concurrent import run_pair
from .. import serialization
from ..layer import Layer

__all__ = ["Bidirectional"]

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _copy_layer(layer, **changes):
    """A fresh layer from ``layer``'s config (Keras re-creates, never shares, them)."""
    cfg = serialization.serialize(layer)
    cfg["config"].update(changes)
    return serialization.deserialize(cfg)


def _owned(ctx, key, a):
    """A contiguous copy of ``a`` in the workspace ``key``."""
    buf = ctx.buffer(key, a.shape)
    np.copyto(buf, a)
    return buf


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over a sequence and merges the
    two outputs (``merge_mode`` ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"``,
    or ``None``: a list of both).

    As in Keras: the forward layer is a fresh copy of ``layer`` named
    ``forward_<name>``; the backward one a copy with ``go_backwards=True`` named
    ``backward_<name>``, unless ``backward_layer`` is given (it must differ in
    ``go_backwards`` and agree in ``return_sequences``, ``return_state`` and
    ``stateful``). The weights list the forward layer's first. With
    ``return_sequences`` the backward output is flipped back into time order before
    merging, and a masked step's output is 0 in both directions. With ``return_state``
    the outputs are ``[output, forward states..., backward states...]``; an
    ``initial_state`` list gives the forward layer its first half, the backward layer
    the second.

    The two directions are independent: on a backend that allows it they run at once,
    one on a worker thread (:func:`~pynn.backends.concurrent.run_pair`), with results
    equal bit for bit to running them in turn.
    """

    _free_axes = (1,)  # any sequence length

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `Bidirectional` layer with a layer "
                             f"instance. Received: {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` needs to be a layer instance. Received: "
                             f"{backward_layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode!r}. Merge mode "
                             f"should be one of {{'sum', 'mul', 'ave', 'concat', None}}")
        for what, lay in (("layer", layer), ("backward_layer", backward_layer)):
            if lay is not None and not all(hasattr(lay, a) for a in (
                    "go_backwards", "return_sequences", "return_state")):
                raise ValueError(f"Bidirectional: `{what}` must be a recurrent layer (with "
                                 f"go_backwards, return_sequences and return_state), got "
                                 f"{type(lay).__name__}")
        super().__init__(**kwargs)
        self.forward_layer = _copy_layer(layer, name="forward_" + _strip(layer.name,
                                                                         "forward_"))
        if backward_layer is None:
            backward_layer = _copy_layer(layer, go_backwards=True,
                                         name="backward_" + _strip(layer.name, "backward_"))
        self.backward_layer = backward_layer
        fl, bl = self.forward_layer, self.backward_layer
        if fl.go_backwards == bl.go_backwards:
            raise ValueError(f"Forward layer and backward layer should have different "
                             f"`go_backwards` value. Received: forward_layer.go_backwards "
                             f"{fl.go_backwards}, backward_layer.go_backwards="
                             f"{bl.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(fl, a) != getattr(bl, a):
                raise ValueError(f'Forward layer and backward layer are expected to have the '
                                 f'same value for attribute "{a}", got "{getattr(fl, a)}" '
                                 f'for forward layer and "{getattr(bl, a)}" for backward '
                                 f'layer')
        for lay in (fl, bl):
            if hasattr(lay, "zero_output_for_mask"):
                lay.zero_output_for_mask = lay.return_sequences
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.stateful = fl.stateful
        self.return_sequences = fl.return_sequences
        self.return_state = fl.return_state
        self._sublayers = (fl, bl)

    # -- shapes ----------------------------------------------------------------------------
    def _halves(self, input_shape):
        """The forward and backward layers' input shapes (a list input: the sequence,
        then the forward layer's initial states, then the backward layer's)."""
        if not isinstance(input_shape, list):
            return input_shape, input_shape
        seq, states = input_shape[0], input_shape[1:]
        n = len(self.forward_layer.state_names)
        if len(states) != 2 * n:
            raise ValueError(f"Bidirectional layer {self.name!r} takes {2 * n} initial "
                             f"states (the forward layer's {n}, then the backward layer's), "
                             f"got {len(states)}")
        return [seq] + states[:n], [seq] + states[n:]

    def build(self, input_shape):
        for lay, shape in zip(self._sublayers, self._halves(input_shape)):
            lay._build_for(shape)
        if self._initial_weights:
            half = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:half])
            self.backward_layer.set_weights(self._initial_weights[half:])
            self._initial_weights = None
        self.built = True

    def _split(self, out):
        if self.return_state:
            return out[0], list(out[1:])
        return out, []

    def compute_output_shape(self, input_shape):
        out, states = self._split(self.forward_layer.compute_output_shape(
            self._halves(input_shape)[0]))
        out = tuple(out)
        if self.merge_mode == "concat":
            out = out[:-1] + (None if out[-1] is None else 2 * out[-1],)
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state or self.merge_mode is None:
            return outs + [tuple(s) for s in states] * 2
        return out

    def compute_mask(self, inputs, previous_mask):
        mask = previous_mask[0] if isinstance(previous_mask, list) else previous_mask
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            n_states = len(self.forward_layer.state_names)
            return outs + [None] * (2 * n_states)
        return outs if self.merge_mode is None else out

    # -- computation -------------------------------------------------------------------------
    def _pair_work(self, shape, training):
        """Multiply-adds of both directions' input and recurrent products on a sequence
        of ``shape``, for :func:`~pynn.backends.concurrent.run_pair`; 0 (run them in
        turn) unless both are built-in recurrent layers, whose calls touch only their
        own weights and workspaces, and, in ``training``, neither draws dropout (the
        draws from the model's generator must keep their order)."""
        from .base_rnn import BaseRNN
        lays = self._sublayers
        if not all(isinstance(lay, BaseRNN) and type(lay).forward is BaseRNN.forward and
                   type(lay).backward is BaseRNN.backward for lay in lays):
            return 0
        if training and any(lay.dropout or lay.recurrent_dropout for lay in lays):
            return 0
        steps = int(shape[0] or 0) * int(shape[1] or 0)
        return sum(steps * (int(np.prod(lay.kernel.shape)) +
                            int(np.prod(lay.recurrent_kernel.shape))) for lay in lays)

    def _initial_states(self, initial_state):
        if initial_state is None:
            return None, None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else \
            [initial_state]
        n = len(self.forward_layer.state_names)
        if len(states) != 2 * n:
            raise ValueError(f"Bidirectional layer {self.name!r} takes {2 * n} initial "
                             f"states (the forward layer's {n}, then the backward layer's), "
                             f"got {len(states)}")
        return states[:n], states[n:]

    def forward(self, ctx, x, training=False, mask=None, initial_state=None):
        fl, bl = self.forward_layer, self.backward_layer
        kw = {} if mask is None else {"mask": mask}
        if isinstance(x, list):  # symbolic initial states: [sequences, *states]
            xf, xb = self._halves(x)
            f_init = b_init = None
        else:
            xf = xb = x
            f_init, b_init = self._initial_states(initial_state)
        fctx, bctx = ctx.child_for(fl, 0), ctx.child_for(bl, 1)
        seq = xf[0] if isinstance(xf, list) else xf
        work = self._pair_work(seq.shape, training)
        out_f, out_b = run_pair(
            self.backend,
            lambda: fl.forward(fctx, xf, training=training, initial_state=f_init, **kw),
            lambda: bl.forward(bctx, xb, training=training, initial_state=b_init, **kw),
            work)
        (yf, sf), (yb, sb) = self._split(out_f), self._split(out_b)
        if self.return_sequences:
            yb = yb[:, ::-1]
        mode = self.merge_mode
        if mode is None:
            outs = [yf, np.ascontiguousarray(yb)]
        else:
            shape = tuple(yf.shape)
            if mode == "concat":
                shape = shape[:-1] + (2 * shape[-1],)
            y = ctx.buffer("merged", shape)
            u = yf.shape[-1]
            if mode == "concat":
                y[..., :u] = yf
                y[..., u:] = yb
            elif mode == "sum":
                np.add(yf, yb, out=y)
            elif mode == "ave":
                np.add(yf, yb, out=y)
                y *= 0.5
            else:
                np.multiply(yf, yb, out=y)
            outs = [y]
        # backward runs the directions at once too, unless they are not ours (dropout's
        # draws are made in forward; its backward reuses them)
        ctx.saved = ((yf, yb) if mode == "mul" else None,
                     self._pair_work(seq.shape, False))
        if self.return_state or mode is None:
            return outs + sf + sb
        return outs[0]

    def backward(self, ctx, dy, input_grad=True):
        fl, bl = self.forward_layer, self.backward_layer
        n_states = len(fl.state_names) if self.return_state else 0
        mode = self.merge_mode
        dys = list(dy) if (self.return_state or mode is None) else [dy]
        n_out = 2 if mode is None else 1
        douts, dstates = dys[:n_out], dys[n_out:]
        if mode is None:
            dyf, dyb = douts
        else:
            d = douts[0]
            u = d.shape[-1] // 2 if mode == "concat" else d.shape[-1]
            if mode == "concat":
                dyf, dyb = d[..., :u], d[..., u:]
            elif mode in ("sum", "ave"):
                dyf = dyb = d if mode == "sum" else d * 0.5
            else:
                yf, yb = ctx.saved[0]
                dyf, dyb = d * yb, d * yf
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        dyf, dyb = _owned(ctx, "dyf", dyf), _owned(ctx, "dyb", dyb)
        if n_states:
            dyf = [dyf] + list(dstates[:n_states])
            dyb = [dyb] + list(dstates[n_states:])
        fctx, bctx = ctx.child_for(fl, 0), ctx.child_for(bl, 1)
        for c in (fctx, bctx):
            c.pass_id = ctx.pass_id

        def run(lay, c, d):
            out = lay.backward(c, d, input_grad=input_grad)
            c.end_backward()
            return out
        dxf, dxb = run_pair(self.backend, lambda: run(fl, fctx, dyf),
                            lambda: run(bl, bctx, dyb), ctx.saved[1])
        if not input_grad:
            return None
        states_f = states_b = []
        if isinstance(dxf, list):  # gradients of the symbolic initial states too
            (dxf, *states_f), (dxb, *states_b) = dxf, dxb
        dx = ctx.buffer("dx", dxf.shape)
        np.add(dxf, dxb, out=dx)
        return [dx] + states_f + states_b if states_f else dx

    def __call__(self, inputs, training=False, mask=None, initial_state=None):
        """As :meth:`Layer.__call__`; on arrays, also ``mask`` and ``initial_state``; on
        symbolic tensors, ``initial_state`` may be symbolic tensors too."""
        from ..node import KerasTensor
        from .base_rnn import eager_rnn_call
        if isinstance(inputs, KerasTensor) and initial_state is not None and mask is None:
            states = list(initial_state)
            if all(isinstance(s, KerasTensor) for s in states):
                return super().__call__([inputs] + states, training=training)
        return eager_rnn_call(self, inputs, training, mask, initial_state,
                              lambda: super(Bidirectional, self).__call__(inputs, training))

    # -- config ------------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg.update(merge_mode=self.merge_mode,
                   layer=serialization.serialize(self.forward_layer),
                   backward_layer=serialization.serialize(self.backward_layer))
        return cfg

    _from_config_takes_custom_objects = True

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = serialization.deserialize(config["layer"], custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = serialization.deserialize(config["backward_layer"],
                                                                 custom_objects)
        return cls(**config)
