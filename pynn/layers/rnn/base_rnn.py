"""The shared part of ``SimpleRNN``, ``LSTM`` and ``GRU``: one recurrent layer over a
whole sequence, run by the backend's ``<cell>_forward`` / ``<cell>_backward`` ops."""
from __future__ import annotations

import numpy as np

from ... import activations, initializers, regularizers
from ...backends.recurrent import gate_widths
from ..layer import Layer
from ..regularization.dropout import Dropout
from .gate_dropout import GateInputDropout

__all__ = ["BaseRNN"]


def _rate(layer, what, value):
    """A dropout rate, clamped to [0, 1] as Keras clamps it."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r}: `{what}` must be a "
                         f"float in [0, 1], got {value!r}") from None
    if value != value:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r}: `{what}` is NaN")
    return min(1.0, max(0.0, value))


def _units(layer, units):
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ValueError(f"Received an invalid value for argument `units`, expected a "
                         f"positive integer, got {units!r} (layer {layer.name!r})")
    return int(units)


def eager_rnn_call(layer, inputs, training, mask, initial_state, plain_call):
    """``layer(inputs, mask=, initial_state=)`` on arrays: build, run forward once,
    return NumPy output(s); without ``mask``/``initial_state``, ``plain_call()``."""
    if mask is None and initial_state is None:
        return plain_call()
    from ..node import KerasTensor
    if isinstance(inputs, KerasTensor):
        raise NotImplementedError(f"{type(layer).__name__} layer {layer.name!r}: mask and "
                                  f"initial_state on symbolic tensors are not supported yet")
    be = layer.backend
    x = be.asarray(np.asarray(inputs), dtype=np.dtype(layer.dtype))
    layer._build_for(tuple(x.shape))
    m = None if mask is None else np.ascontiguousarray(mask, dtype=bool)
    out = layer.forward(layer.context(), x, training=training, mask=m,
                        initial_state=initial_state)
    if isinstance(out, list):
        return [np.array(be.to_numpy(o), copy=True) for o in out]
    return np.array(be.to_numpy(out), copy=True)


class BaseRNN(Layer):
    """A recurrent layer over inputs ``(batch, timesteps, features)``.

    Subclasses set :attr:`cell` (the backend op family) and the gate widths; this class
    owns the weights ``kernel (d, k*u)``, ``recurrent_kernel (u, k*u)`` and ``bias``, the
    output rules (``return_sequences``, ``return_state``, ``go_backwards``) and the
    workspaces, kept per batch shape in the call's context so a warm step allocates
    nothing. ``forward`` also takes ``mask (batch, timesteps)`` and ``initial_state``
    (a list of ``(batch, units)`` arrays); called on arrays, the layer takes them as
    keywords, as Keras's does. Called on symbolic tensors with a symbolic
    ``initial_state`` (an encoder's states starting a decoder), the states become inputs
    of the graph node and receive gradients.

    In a model, a mask from ``Embedding(mask_zero=True)`` or ``Masking`` reaches
    ``forward`` (see :mod:`pynn.layers.masking_rules`); a sequence output keeps it.

    ``dropout`` drops input features in training with one mask per sequence, shared by
    every step and gate (Keras's default implementation). ``recurrent_dropout`` drops
    units of the previous state where it enters the recurrent product, in training, with
    one mask per sequence and gate block (Keras 3's cells switch to ``implementation=1``
    for it: LSTM 4 masks, GRU 3, SimpleRNN 1, each ``(batch, units)``); the LSTM's cell
    state and the GRU's update ``z * h_prev`` read the undropped state, as Keras's do.
    With ``recurrent_dropout`` set, LSTM's and GRU's ``dropout`` draws one input mask per
    gate, as Keras's ``implementation=1`` does (:mod:`.gate_dropout`). ``stateful=True`` carries the final
    states of one batch into the next (no gradient flows across batches); the batch size
    is fixed by the first batch, and :meth:`reset_states` zeroes them.
    """

    cell = None
    _free_axes = (1,)  # any sequence length
    #: names of the state tensors (``['h']``, LSTM ``['h', 'c']``)
    state_names = ("h",)

    def __init__(self, units, activation="tanh", recurrent_activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        #: Keras's ``zero_output_for_mask``: a sequence output is 0 at masked steps instead
        #: of repeating the previous output (``Bidirectional`` sets it)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.units = _units(self, units)
        self._act = activations.canonical_name(activation)
        self._ract = (None if recurrent_activation is None
                      else activations.canonical_name(recurrent_activation))
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate(self, "dropout", dropout)
        self.recurrent_dropout = _rate(self, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int,
                                                                                np.integer))):
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: seed must be an int "
                             f"or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        # Keras applies dropout only for 0 < rate < 1 (a rate of 1 is clamped and ignored)
        self._input_dropout = self._recurrent_dropout = None
        if 0.0 < self.dropout < 1.0:
            self._input_dropout = Dropout(self.dropout, noise_shape=(None, 1, None),
                                          seed=self.seed, name=self.name + "_input_dropout")
        if 0.0 < self.recurrent_dropout < 1.0:
            # its own seed stream under a layer seed (one derived from it), so the two
            # masks are not drawn from the same numbers
            rseed = (None if self.seed is None else
                     int(np.random.SeedSequence([self.seed, 1]).generate_state(1)[0]))
            self._recurrent_dropout = Dropout(self.recurrent_dropout, seed=rseed,
                                              name=self.name + "_recurrent_dropout")
        self._sublayers = tuple(d for d in (self._input_dropout, self._recurrent_dropout)
                                if d is not None)
        self.stateful = bool(stateful)
        #: the carried states of a stateful layer (backend arrays), else None
        self.states = None
        self.unroll = bool(unroll)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.kernel = self.recurrent_kernel = self.bias = None

    def compute_mask(self, inputs, previous_mask):
        """Keras's rule: the sequence output keeps the input's time mask, a last output
        and the states have none."""
        mask = previous_mask[0] if isinstance(previous_mask, list) else previous_mask
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self.state_names)
        return out

    # -- weights -------------------------------------------------------------------------
    def _bias_shape(self):
        return (gate_widths(self.cell, self.units)[0],)

    def _bias_initializer(self):
        return self.bias_initializer

    def _sequence_shape(self, input_shape):
        """The sequence's shape from ``input_shape`` (a list: sequence, then states)."""
        if not isinstance(input_shape, list):
            return input_shape
        seq, states = input_shape[0], input_shape[1:]
        want = (None, self.units)
        if len(states) != len(self.state_names) or any(
                len(s) != 2 or s[1] not in (None, self.units) for s in states):
            raise ValueError(f"{type(self).__name__} layer {self.name!r} takes "
                             f"{len(self.state_names)} initial state(s) of shape {want}, "
                             f"got {states}")
        return seq

    def build(self, input_shape):
        input_shape = self._sequence_shape(input_shape)
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} layer {self.name!r} needs inputs of shape "
                             f"(batch, timesteps, features) with known features, got "
                             f"{input_shape}")
        cols = gate_widths(self.cell, self.units)[0]
        self.kernel = self.add_weight("kernel", (input_shape[-1], cols),
                                      self.kernel_initializer, self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, cols),
                                                self.recurrent_initializer,
                                                self.recurrent_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                                        self.bias_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        input_shape = self._sequence_shape(input_shape)
        n, t = input_shape[0], input_shape[1]
        out = (n, t, self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units) for _ in self.state_names]
        return out

    # -- states --------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Zero a stateful layer's carried states (or set them to ``states``)."""
        if not self.stateful:
            raise AttributeError(f"Layer {self.name!r} must be stateful.")
        if states is None:
            if self.states is not None:
                for s in self.states:
                    s.fill(0)
            return
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        arrays = self._check_states(states, np.shape(states[0])[0] if states else 0)
        self.states = [self.backend.asarray(np.array(a, copy=True)) for a in arrays]

    reset_state = reset_states

    def _carried_states(self, n):
        if self.states is None:
            dt = np.dtype(self.dtype)
            self.states = [self.backend.zeros((n, self.units), dt) for _ in self.state_names]
        elif self.states[0].shape[0] != n:
            raise ValueError(f"{type(self).__name__} layer {self.name!r} is stateful with "
                             f"batch size {self.states[0].shape[0]} (states of shape "
                             f"{tuple(self.states[0].shape)}), but got a batch of {n}: a "
                             f"stateful layer needs the same batch size for every batch (to "
                             f"change it, call reset_states(states) with states of the new "
                             f"batch size)")
        return self.states

    # -- computation ---------------------------------------------------------------------
    def _op_kwargs(self):
        """Keyword arguments the cell's ops take besides the arrays."""
        return dict(activation=self._act, go_backwards=self.go_backwards)

    def _steps_mask(self, mask):
        """``mask`` as ``(batch, steps, 1)`` in the order of the sequence output
        (reversed with ``go_backwards``, as Keras returns it)."""
        return mask[:, ::-1, None] if self.go_backwards else mask[:, :, None]

    def _gate_input_masks(self):
        """Whether ``dropout`` draws one input mask per gate: Keras's LSTM and GRU cells
        switch to ``implementation=1`` whenever ``recurrent_dropout`` is not 0, and that
        implementation multiplies each gate's inputs by its own mask."""
        return self.cell in ("lstm", "gru") and self.recurrent_dropout != 0.0

    def _recurrent_dropout_mask(self, ctx, n):
        """This call's recurrent dropout multipliers ``(n, k*u)``: 0 or ``1 / (1 - rate)``
        per sample, gate block and unit (the backend op's ``recurrent_dropout_mask``)."""
        drop = self._recurrent_dropout
        shape = (n, gate_widths(self.cell, self.units)[0])
        src, mask = ctx.buffer("rdrop_src", shape), ctx.buffer("rdrop_mask", shape)
        src[...] = 0
        self.backend.dropout_forward(src, drop.rate, drop._next_seed(), out=src, mask=mask)
        return mask

    def _check_states(self, states, n):
        name = f"{type(self).__name__} layer {self.name!r}"
        if len(states) != len(self.state_names):
            raise ValueError(f"{name} takes {len(self.state_names)} initial state(s) "
                             f"({', '.join(self.state_names)}), got {len(states)}")
        be = self.backend
        out = []
        for k, s in zip(self.state_names, states):
            if tuple(np.shape(s)) != (n, self.units):
                raise ValueError(f"{name}: initial state {k!r} must have shape (batch, units) "
                                 f"= {(n, self.units)}, got {tuple(np.shape(s))}")
            out.append(s if isinstance(s, np.ndarray) and s.dtype == np.dtype(self.dtype)
                       else be.asarray(np.asarray(s), dtype=np.dtype(self.dtype)))
        return out

    def _check_call(self, x, mask, initial_state):
        shape = tuple(x.shape)
        name = f"{type(self).__name__} layer {self.name!r}"
        if len(shape) != 3:
            raise ValueError(f"{name} expects inputs of shape (batch, timesteps, features), "
                             f"got shape {shape}")
        n, t = shape[0], shape[1]
        if mask is not None and tuple(np.shape(mask)) != (n, t):
            raise ValueError(f"{name}: the mask must have shape (batch, timesteps) = "
                             f"{(n, t)} for inputs of shape {shape}, got {np.shape(mask)}")
        if initial_state is None:
            return self._carried_states(n) if self.stateful else None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else \
            [initial_state]
        return self._check_states(states, n)

    def forward(self, ctx, x, training=False, mask=None, initial_state=None):
        states_in = isinstance(x, list)  # symbolic initial states: [sequences, *states]
        if states_in:
            x, initial_state = x[0], x[1:]
        if isinstance(mask, list):
            mask = mask[0]
        states = self._check_call(x, mask, initial_state)
        gate_drop = None
        if training and self._input_dropout is not None:
            if self._gate_input_masks():
                gate_drop = GateInputDropout(
                    ctx, self.backend, self._input_dropout.rate,
                    self._input_dropout._next_seed(), x, self.kernel.value,
                    gate_widths(self.cell, self.units)[0] // self.units)
            else:
                x = self._input_dropout.forward(ctx.child_for(self._input_dropout, 0), x,
                                                training=True)
        n, t, _ = x.shape
        u = self.units
        g = gate_widths(self.cell, u)[1]
        lstm = self.cell == "lstm"
        bufs = dict(out=ctx.buffer("out", (n, t, u)), h_out=ctx.buffer("h_out", (n, u)),
                    hprev=ctx.buffer("hprev", (n, t, u)), gates=ctx.buffer("gates", (n, t, g)))
        if lstm:
            bufs.update(c_out=ctx.buffer("c_out", (n, u)), cprev=ctx.buffer("cprev", (n, t, u)))
        init = states or [None] * len(self.state_names)
        op = getattr(self.backend, f"{self.cell}_forward")
        bias = self.bias.value if self.bias is not None else None
        rmask = None
        if training and self._recurrent_dropout is not None:
            rmask = self._recurrent_dropout_mask(ctx, n)
        if gate_drop is not None:  # the ops see the per-gate problem (gate_dropout.py)
            x, kernel = gate_drop.x, gate_drop.kernel
        else:
            kernel = self.kernel.value
        op(x, kernel, self.recurrent_kernel.value, bias, *init, mask=mask,
           **bufs, **self._op_kwargs(), recurrent_dropout_mask=rmask)
        if self.stateful:
            for carried, key in zip(self.states, ("h_out", "c_out")):
                self.backend.copy_(bufs[key], carried)
        ctx.saved = (x, mask, bufs, states_in, training and self._input_dropout is not None
                     and gate_drop is None, gate_drop, rmask)
        if self.return_sequences:
            y = bufs["out"]
            if mask is not None and self.zero_output_for_mask:
                y *= self._steps_mask(mask)  # the op does not read its output back
        else:
            y = ctx.buffer("last", (n, u))
            self.backend.copy_(bufs["out"][:, -1], y)
        if not self.return_state:
            return y
        return [y, bufs["h_out"]] + ([bufs["c_out"]] if lstm else [])

    def backward(self, ctx, dy, input_grad=True):
        x, mask, bufs, states_in, dropped, gate_drop, rmask = ctx.saved
        n, t, d = x.shape
        u = self.units
        lstm = self.cell == "lstm"
        dh_out = dc_out = None
        if self.return_state:
            dy, dh_out, dc_out = dy[0], dy[1], (dy[2] if lstm else None)
        if self.return_sequences:
            dseq = dy
            if mask is not None and self.zero_output_for_mask:
                dseq = ctx.buffer("dseq", (n, t, u))
                np.multiply(dy, self._steps_mask(mask), out=dseq)
        else:
            dseq = ctx.buffer("dseq", (n, t, u))
            dseq.fill(0)
            dseq[:, -1] = dy
        g = gate_widths(self.cell, u)[1]
        # a frozen kernel's gradient still comes out of the op: into a workspace
        dk = ctx.grad_out(self.kernel)
        drk = ctx.grad_out(self.recurrent_kernel)
        kernel = self.kernel.value if gate_drop is None else gate_drop.kernel
        if gate_drop is not None:
            dkernel = gate_drop.kernel_grad_buffer()
        else:
            dkernel = dk if dk is not None else ctx.buffer("dk_frozen", self.kernel.shape)
        grads = dict(dkernel=dkernel,
                     drecurrent_kernel=drk if drk is not None else
                     ctx.buffer("drk_frozen", self.recurrent_kernel.shape),
                     dgates=ctx.buffer("dgates", (n, t, g)))
        dbias = None if self.bias is None else ctx.grad_out(self.bias)
        input_grad = bool(input_grad)
        if input_grad:
            grads["dx"] = ctx.buffer("dx", (n, t, d))
        state_grad = input_grad and states_in
        if state_grad:
            grads["dh0"] = ctx.buffer("dh0", (n, u))
            if lstm:
                grads["dc0"] = ctx.buffer("dc0", (n, u))
        op = getattr(self.backend, f"{self.cell}_backward")
        work = [bufs["hprev"]] + ([bufs["cprev"]] if lstm else []) + [bufs["gates"]]
        extra = dict(dc_out=dc_out) if lstm else {}
        op(dseq, x, kernel, self.recurrent_kernel.value, *work, mask=mask,
           dh_out=dh_out, input_grad=input_grad, bias_grad=dbias is not None,
           state_grad=state_grad, dbias=dbias, **grads, **extra, **self._op_kwargs(),
           recurrent_dropout_mask=rmask)
        if gate_drop is not None and dk is not None:
            gate_drop.kernel_grad(dkernel, dk)
        if not input_grad:
            return None
        dx = grads["dx"]
        if gate_drop is not None:
            dx = gate_drop.input_grad(dx, ctx.buffer("dx_inputs", (n, t, gate_drop.d)))
        if dropped:
            dx = self._input_dropout.backward(ctx.child_for(self._input_dropout, 0), dx)
        if states_in:
            return [dx, grads["dh0"]] + ([grads["dc0"]] if lstm else [])
        return dx

    def __call__(self, inputs, training=False, mask=None, initial_state=None):
        """As :meth:`Layer.__call__`; on arrays, also ``mask`` and ``initial_state``; on
        symbolic tensors, ``initial_state`` may be symbolic tensors too."""
        from ..node import KerasTensor
        if isinstance(inputs, KerasTensor) and initial_state is not None and mask is None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else \
                [initial_state]
            if all(isinstance(s, KerasTensor) for s in states):
                return super().__call__([inputs] + states, training=training)
        return eager_rnn_call(self, inputs, training, mask, initial_state,
                              lambda: super(BaseRNN, self).__call__(inputs, training))

    # -- config --------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self._act, use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   recurrent_initializer=initializers.serialize(self.recurrent_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer),
                   dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
                   seed=self.seed,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
                   zero_output_for_mask=self.zero_output_for_mask)
        if self._ract is not None:
            cfg["recurrent_activation"] = self._ract
        return cfg
