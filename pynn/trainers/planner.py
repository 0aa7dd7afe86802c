"""The one place that decides when a model runs on the fused Dense-stack kernels.

Two fused paths exist (see :mod:`pynn.backends.base`):

* the training step, :meth:`Backend.dense_stack_forward_backward`: forward, loss
  from logits, backward and (when the optimizer folds) the update, in one call;
* the inference pass, :meth:`Backend.dense_stack_forward`, writing the last output
  straight into the caller's array.

They apply to any linear chain of ``Dense`` layers (``Dropout`` too, at inference,
where it is the identity) from a model's single input to its single output, in a
``Sequential`` or a functional ``Model``, on a host-memory backend, with a loss in
:data:`FUSABLE_LOSSES` and an optimizer whose ``_stack_rule`` folds. Everything
else runs layer by layer on the same backend ops.

Inside any graph, a ``Conv2D`` whose output only a ``MaxPooling2D`` reads (both
channels_last, the pool not overlapping and unpadded, the convolution's activation
elementwise from its output) runs with that pooling as one step
(:class:`~pynn.layers.convolutional.conv_pool.ConvPool`, on the backend's
``conv2d_pool_forward``/``backward``): :meth:`FastPath.conv_pools`.

``compile(jit_compile=False)`` (or ``run_eagerly=True``) turns every fused path off
for a model; :func:`explain` says which apply.
"""
from __future__ import annotations

import numpy as np

from .. import losses as losses_mod
from ..backends.activation_codes import NEEDS_INPUT_FOR_BACKWARD, REFERENCE_ONLY, UNFUSED
from ..backends.fused_stack import StackUpdate
from ..layers import Conv2D, Dense, Dropout, MaxPooling2D
from ..layers.convolutional.conv_pool import ConvPool

__all__ = ["FUSABLE_LOSSES", "FastPath", "explain"]

#: Loss class -> the loss the fused Dense-stack step computes (the only such list)
FUSABLE_LOSSES = {
    losses_mod.SparseCategoricalCrossentropy: "softmax_cross_entropy",
    losses_mod.CategoricalCrossentropy: "softmax_cross_entropy",
    losses_mod.BinaryCrossentropy: "sigmoid_binary_cross_entropy",
    losses_mod.MeanSquaredError: "mean_squared_error",
    losses_mod.MeanAbsoluteError: "mean_absolute_error",
}
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight")


def explain(model):
    """``{'train': bool, 'inference': bool, 'conv_pool': int}``: which fused paths
    ``model`` takes now (the fused Dense-stack step and inference pass; how many
    convolution + pooling pairs run as one step)."""
    fp = model._fast_path
    return {"train": fp.train_spec(2) is not None, "inference": fp.inference_plan() is not None,
            "conv_pool": len(fp.conv_pools())}


def _fusable_pair(conv_node, pool_node):
    """True when the layers of these nodes may run as one :class:`ConvPool` step."""
    conv, pool = conv_node.layer, pool_node.layer
    return (type(conv) is Conv2D and conv.built and conv.data_format == "channels_last"
            and conv._act not in UNFUSED and conv._act != "softmax"
            and type(pool) is MaxPooling2D and pool.data_format == "channels_last"
            and pool.padding == "valid" and tuple(pool.strides) == tuple(pool.pool_size)
            and pool_node.structure is None and len(pool_node.inputs) == 1)


def conv_pool_pairs(nodes, outputs):
    """``{conv node index: (pool node index, ConvPool)}`` of a graph's nodes (in run
    order) and output tensors: each fusable ``Conv2D`` node whose one output only a
    fusable ``MaxPooling2D`` node reads, and that is not a model output."""
    pairs = {}
    for j, node in enumerate(nodes):
        if type(node.layer) is not Conv2D or node.multi_output:
            continue
        t = node.outputs[0]
        if any(o is t for o in outputs):
            continue
        readers = [k for k, n in enumerate(nodes) if any(u is t for u in n.inputs)]
        if len(readers) == 1 and _fusable_pair(node, nodes[readers[0]]):
            k = readers[0]
            pairs[j] = (k, ConvPool(node.layer, nodes[k].layer))
    return pairs


def _stack_arrays(dense):
    """``(kernels, biases, activations)`` of Dense layers, as the fused ops take them."""
    return ([l.kernel.value for l in dense],
            [None if l.bias is None else l.bias.value for l in dense],
            [l.output_activation for l in dense])


class FastPath:
    """The fused-path plans of one model, cached per layout, loss and backend."""

    def __init__(self, model):
        self.model = model
        self.enabled = True
        self._train_key = self._train_spec = None
        self._infer_key = self._infer_plan = None
        self._states = None
        self._train_ws = {}
        self._infer_ws = {}
        self._conv_pools = None

    # -- convolution + pooling -------------------------------------------------------------
    def conv_pools(self):
        """The graph's :func:`conv_pool_pairs` when the fused paths are on and the backend
        holds arrays in host memory, else ``{}`` (found once per graph: a Sequential
        that gains a layer builds a new one)."""
        m = self.model
        nodes = getattr(m, "_nodes", None)
        if not self.enabled or nodes is None or not m.backend.host_memory:
            return {}
        if self._conv_pools is None or self._conv_pools[0] is not nodes:
            self._conv_pools = (nodes, conv_pool_pairs(nodes, m._outputs))
        return self._conv_pools[1]

    # -- which layers ---------------------------------------------------------------------
    def _dense_chain(self, skip_dropout):
        """The model's chain of built Dense layers (Dropout left out when
        ``skip_dropout``), or None when the model is anything else."""
        chain = self.model._linear_chain()
        if not chain:
            return None
        dense = []
        for layer in chain:
            if skip_dropout and type(layer) is Dropout:
                continue
            if type(layer) is not Dense or layer.kernel is None \
                    or layer.output_activation in REFERENCE_ONLY:
                return None  # (the row-wise reference-only activations: no fused kernels)
            dense.append(layer)
        return dense or None

    # -- training -------------------------------------------------------------------------
    def train_spec(self, ndim):
        """The fused-step plan for a batch of rank ``ndim``, or None."""
        m = self.model
        if not self.enabled or ndim != 2 or not m.built:
            return None
        losses = m._compiled_loss.losses if m._compiled_loss is not None else None
        if not losses or len(losses) != 1 or losses[0] is None:
            return None
        key = (m._layout.id, losses[0], m._backend, m._dtype, m._compiled_loss.weights[0])
        if self._train_key != key:
            self._train_key = key
            self._train_spec = self._make_train_spec(losses[0])
            self._train_ws = {}
        return self._train_spec

    def _make_train_spec(self, loss):
        m = self.model
        be = m._backend
        if not be.host_memory or m._dtype not in ("float32", "float64"):
            return None
        name = FUSABLE_LOSSES.get(type(loss))
        if name is None or loss.reduction not in _REDUCTIONS:
            return None
        dense = self._dense_chain(skip_dropout=False)
        if dense is None:
            return None
        if any(l.kernel.grad is None or (l.bias is not None and l.bias.grad is None)
               for l in dense):
            return None  # frozen weights: the layered path skips their gradients
        kernels, biases, acts = _stack_arrays(dense)
        ls = 0.0
        fa = loss.fused_activation
        if fa is not None:
            from_logits = loss.from_logits
            if not from_logits and acts[-1] != fa:
                return None  # cross-entropy from probabilities: not fused
            if from_logits and acts[-1] == fa:
                return None  # the step would fold the activation into the loss
            ls = getattr(loss, "label_smoothing", 0.0)
            if ls and name != "softmax_cross_entropy":
                return None  # smoothed binary targets: layered path
        return dict(loss=name, loss_object=loss, activations=acts, label_smoothing=float(ls),
                    kernels=kernels, biases=biases,
                    dkernels=[l.kernel.grad for l in dense],
                    dbiases=[None if l.bias is None else l.bias.grad for l in dense],
                    units=[k.shape[1] for k in kernels])

    def stack_update(self, spec):
        """The optimizer step as a :class:`StackUpdate` for the fused step, or None when it
        must run on its own (regularized weights add to the gradients first; clipping and
        custom rules: see ``Optimizer._stack_rule``)."""
        m = self.model
        if m._layout.regularized:
            return None
        opt = m.optimizer
        rule = opt._stack_rule()
        if rule is None:
            return None
        cached = self._states
        if cached is None or cached[0] is not spec or cached[1] is not opt \
                or cached[2] is not opt._params:
            cached = self._states = (spec, opt, opt._params, self._make_states(spec, opt))
        states = cached[3]
        if states is None:
            return None
        return StackUpdate(kernel_states=states[0], bias_states=states[1], **rule)

    @staticmethod
    def _make_states(spec, opt):
        """Per-layer optimizer state views, or None when the optimizer was not built on
        exactly these weights."""
        index = {id(p): i for i, p in enumerate(opt._params)}  # ids of live arrays
        ks, bs = [], []
        for kernel, bias in zip(spec["kernels"], spec["biases"]):
            i = index.get(id(kernel))
            j = None if bias is None else index.get(id(bias))
            if i is None or (bias is not None and j is None):
                return None
            ks.append(opt._param_state(i))
            bs.append(() if bias is None else opt._param_state(j))
        return tuple(ks), tuple(bs)

    def train_step(self, spec, xb, yb, swb, update=None):
        """Forward + loss + backward (and with ``update`` the optimizer step) in one
        backend call, into per-batch-size workspaces; returns ``(loss, output)``."""
        m = self.model
        be, dt = m._backend, np.dtype(m._dtype)
        n = xb.shape[0]
        ws = self._train_ws.get(n)
        if ws is None:
            if len(self._train_ws) >= 4:
                self._train_ws.clear()
            units = spec["units"]
            ws = self._train_ws[n] = dict(
                outs=[be.empty((n, u), dt) for u in units],
                deltas=[be.empty((n, u), dt) for u in units],
                preacts=[be.empty((n, u), dt) if a in NEEDS_INPUT_FOR_BACKWARD else None
                         for u, a in zip(units, spec["activations"])],
                target=None)
        if yb.ndim == 2 and yb.dtype != dt:
            tbuf = ws["target"]
            if tbuf is None or tbuf.shape != yb.shape:
                tbuf = ws["target"] = be.empty(yb.shape, dt)
            np.copyto(tbuf, yb, casting="unsafe")
            yb = tbuf
        scale = m._compiled_loss.weights[0]
        red = spec["loss_object"].reduction
        if red == "sum":
            scale *= n
        elif red == "mean_with_sample_weight" and swb is not None:
            s = float(np.sum(swb))
            scale *= n / s if s else 0.0
        loss = be.dense_stack_forward_backward(
            xb, yb, spec["kernels"], spec["biases"], spec["activations"], spec["loss"],
            ws["outs"], ws["deltas"], spec["dkernels"], spec["dbiases"], sample_weight=swb,
            preacts=ws["preacts"], label_smoothing=spec["label_smoothing"], loss_scale=scale,
            update=update)
        return float(loss), ws["outs"][-1]

    # -- inference ------------------------------------------------------------------------
    def inference_plan(self):
        """``(kernels, biases, activations)`` when inference is a chain of Dense layers
        (Dropout is the identity there) on a host backend, else None."""
        m = self.model
        if not self.enabled or not m.built:
            return None
        key = (m._layout.id, m._backend, m._dtype)
        if self._infer_key != key:
            plan = None
            if m._backend.host_memory and m._dtype in ("float32", "float64"):
                dense = self._dense_chain(skip_dropout=True)
                if dense:
                    plan = _stack_arrays(dense)
            self._infer_key, self._infer_plan = key, plan
            self._infer_ws = {}
        return self._infer_plan

    def forward_into(self, plan, xb, dst, logits=False):
        """The fused inference pass of ``xb`` written into ``dst``."""
        kernels, biases, acts = plan
        if logits:
            acts = acts[:-1] + ["linear"]
        n = xb.shape[0]
        ws = self._infer_ws
        outs = ws.get(n)
        if outs is None:
            if len(ws) >= 4:
                ws.clear()
            dt = np.dtype(self.model._dtype)
            outs = ws[n] = [self.model._backend.empty((n, k.shape[1]), dt)
                            for k in kernels[:-1]]
            outs.append(None)
        outs[-1] = dst
        try:
            self.model._backend.dense_stack_forward(xb, kernels, biases, acts, outs)
        finally:
            outs[-1] = None  # the caller owns dst
        return dst
