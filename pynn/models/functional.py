"""``Functional``: a model defined by a graph of layer calls (Keras's functional API).

The graph is the set of :class:`~pynn.layers.node.Node` objects between the
model's outputs and its inputs, found by walking back from the outputs. Nodes run
in an order where every node comes after the nodes it reads from (Keras's
decreasing depth); each node has its own :class:`~pynn.layers.context.CallContext`
under the context of the call running the model, so a layer used at two places,
or a model used twice, keeps one state per use. Backward runs the nodes in reverse,
summing the gradients of a tensor that feeds several nodes, and skips every node
that leads to no trainable weight.
"""
from __future__ import annotations

import numpy as np

from ..layers import added_losses, serialization
from ..layers.custom_call import NoGradientPath
from ..layers.input_layer import InputLayer
from ..layers.layer import Layer, weights_generation
from ..layers.masking_rules import UNSET, makes_masks, output_masks, previous_mask, takes_mask
from ..layers.node import KerasTensor, flatten_structure, pack_structure
from .model import Model

__all__ = ["Functional"]


def _graph_error(msg):
    return ValueError(msg)


def map_graph(inputs, outputs):
    """``(nodes, layers)`` between ``inputs`` and ``outputs``: every node (Input nodes
    excluded) in execution order and every layer (InputLayers included) in Keras's
    order. Raises on tensors that do not come from the inputs."""
    input_nodes = {id(t.node): t for t in inputs}
    order, finished, active = [], set(), set()

    def visit(node, consumer):
        if id(node) in finished:
            return
        if id(node) in active:
            raise _graph_error(f"The graph has a cycle through layer {node.layer.name!r}")
        if node.is_input and id(node) not in input_nodes:
            t = node.outputs[0]
            raise _graph_error(
                f"Graph disconnected: cannot obtain value for tensor {t} (input "
                f"{node.layer.name!r}) needed by layer "
                f"{consumer.layer.name if consumer is not None else 'the outputs'!r}: it is "
                f"not one of the model's inputs {[i.name for i in inputs]}")
        active.add(id(node))
        if id(node) not in input_nodes:
            for t in node.inputs:
                visit(t.node, node)
        active.discard(id(node))
        finished.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t.node, None)
    # Keras's depth: outputs at 0, each producer one deeper than its deepest consumer
    depth = {}
    for node in reversed(order):
        d = depth.setdefault(id(node), 0)
        if id(node) in input_nodes:
            continue
        for parent in node.parents:
            depth[id(parent)] = max(depth.get(id(parent), 0), d + 1)
    for t in inputs:  # unused inputs still belong to the model
        if id(t.node) not in depth:
            depth[id(t.node)] = max(depth.values(), default=0) + 1
            order.insert(0, t.node)
    pos = {id(n): i for i, n in enumerate(order)}
    ranked = sorted(order, key=lambda n: (-depth[id(n)], pos[id(n)]))
    layers, seen = [], set()
    for node in ranked:
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            layers.append(node.layer)
    nodes = [n for n in ranked if id(n) not in input_nodes]
    return nodes, layers


class Functional(Model):
    """A model built from ``inputs`` and ``outputs`` symbolic tensors."""

    #: summaries show the graph ("Connected to"); a Sequential shows a plain list
    _summary_as_graph = True

    def __init__(self, inputs, outputs, name=None, trainable=True, *, seed=None):
        self._init_model(name, trainable, seed)
        self._set_graph(inputs, outputs)
        if not trainable:
            self.trainable = False

    # ------------------------------------------------------------------------------------
    # graph
    # ------------------------------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        flat_in, self._in_structure = flatten_structure(inputs)
        flat_out, self._out_structure = flatten_structure(outputs)
        if not flat_in:
            raise ValueError(f"Model {self.name!r}: `inputs` is empty")
        if not flat_out:
            raise ValueError(f"Model {self.name!r}: `outputs` is empty")
        for t in flat_in:
            if not isinstance(t, KerasTensor) or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"Model {self.name!r}: every input must be a tensor returned "
                                 f"by pynn.Input(...); got {t!r}")
        for t in flat_out:
            if not isinstance(t, KerasTensor):
                raise ValueError(f"Model {self.name!r}: every output must be a symbolic tensor "
                                 f"(the result of calling layers on pynn.Input tensors); got "
                                 f"{type(t).__name__}")
        if len({id(t) for t in flat_in}) != len(flat_in):
            raise ValueError(f"Model {self.name!r}: the same input tensor is listed twice")
        try:
            nodes, layers = map_graph(flat_in, flat_out)
        except ValueError as exc:
            raise ValueError(f"Model {self.name!r}: {exc}") from None
        names = {}
        for layer in layers:
            if layer.name in names:
                raise ValueError(f"Model {self.name!r}: two different layers are named "
                                 f"{layer.name!r}; every layer of a model needs a unique name")
            names[layer.name] = layer
        self._inputs, self._outputs = flat_in, flat_out
        self._nodes = nodes
        self._layers = layers
        self._grad_plan = {}
        dts = {t.dtype for t in flat_in if np.dtype(t.dtype).kind == "f"}
        self._dtype = self._model_dtype(layers) or (dts.pop() if len(dts) == 1 else None)
        self._finish_build()

    @property
    def layers(self):
        """Every layer of the graph, InputLayers included (Keras's ``Functional.layers``)."""
        return list(self._layers)

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input(self):
        return pack_structure(self._inputs, self._in_structure)

    @property
    def output(self):
        return pack_structure(self._outputs, self._out_structure)

    @property
    def input_names(self):
        """The keys of a dict of inputs, else the input layers' names."""
        if isinstance(self._in_structure, tuple):
            return list(self._in_structure)
        return [t.node.layer.name for t in self._inputs]

    @property
    def output_names(self):
        """The keys of a dict of outputs, else the names of the layers making them."""
        if isinstance(self._out_structure, tuple):
            return list(self._out_structure)
        return [t.node.layer.name if len(t.node.outputs) == 1 else t.name
                for t in self._outputs]

    def _pack_outputs(self, arrays):
        if self._out_structure is None:
            return arrays[0]
        return pack_structure(list(arrays), self._out_structure)

    @property
    def input_shape(self):
        shapes = [tuple(t.shape) for t in self._inputs]
        return shapes[0] if self._in_structure is None else shapes

    @input_shape.setter
    def input_shape(self, value):
        pass  # fixed by the graph (Layer.__init__ assigns None)

    @property
    def output_shape(self):
        shapes = self._output_shapes()
        return shapes[0] if self._out_structure is None else shapes

    @output_shape.setter
    def output_shape(self, value):
        pass

    def _output_shapes(self):
        return [tuple(t.shape) for t in self._outputs]

    def _input_specs(self):
        return [_InputSpec(t, self._dtype, self._nodes) for t in self._inputs]

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        if index is not None and name is not None:
            raise ValueError("get_layer: give `name` or `index`, not both")
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"get_layer: index {index} is out of range; the model has "
                                 f"{len(self._layers)} layers")
            return self._layers[index]
        if name is not None:
            for layer in self._layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: "
                             f"{[l.name for l in self._layers]}.")
        raise ValueError("get_layer: provide either a layer name or a layer index")

    def _linear_chain(self):
        """The layers of a chain input -> node -> ... -> output (each node one tensor in,
        one out, each layer once, no nested model), or None."""
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            return None
        prev = self._inputs[0]
        chain = []
        for node in self._nodes:
            if (node.structure is not None or node.multi_output or node.inputs[0] is not prev
                    or isinstance(node.layer, Model)):
                return None
            chain.append(node.layer)
            prev = node.outputs[0]
        if prev is not self._outputs[0] or len({id(l) for l in chain}) != len(chain):
            return None
        return chain

    # ------------------------------------------------------------------------------------
    # the layer contract
    # ------------------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        shapes = self._output_shapes()
        return shapes[0] if self._out_structure is None else shapes

    def _build_for(self, input_shape):
        want = self.input_shape
        got = input_shape
        flat_want = [want] if self._in_structure is None else list(want)
        flat_got = [got] if not isinstance(got, list) else list(got)
        if len(flat_want) != len(flat_got):
            raise ValueError(f"Model {self.name!r} takes {len(flat_want)} input(s) "
                             f"{self.input_names}, but was called on {len(flat_got)}")
        for i, (w, g) in enumerate(zip(flat_want, flat_got)):
            g = tuple(g)
            if len(w) != len(g) or any(a is not None and b is not None and a != b
                                       for a, b in zip(w[1:], g[1:])):
                raise ValueError(f"Model {self.name!r}: input {i} "
                                 f"({self.input_names[i]!r}) expects shape {w}, got {g}")
        return self.compute_output_shape(input_shape)

    def _symbolic_call(self, flat, structure):
        if isinstance(structure, tuple):  # a dict keyed by input name
            missing = [n for n in self.input_names if n not in structure]
            unknown = [k for k in structure if k not in self.input_names]
            if missing or unknown:
                raise ValueError(f"Model {self.name!r} takes inputs {self.input_names}; got "
                                 f"keys {list(structure)}")
            by = dict(zip(structure, flat))
            flat = [by[n] for n in self.input_names]
            structure = None if len(flat) == 1 else "list"
        return Layer._symbolic_call(self, flat, structure)

    @property
    def output_activation(self):
        """The activation of the single output's layer, when it can return logits."""
        if len(self._outputs) != 1 or self._logits_node(0) is None:
            return None
        return self._outputs[0].node.layer.output_activation

    def _logits_node(self, i):
        """The index in ``_nodes`` of the node that can return output ``i`` as logits, or
        None (an Input, a multi-output node, a tensor also read elsewhere)."""
        t = self._outputs[i]
        node = t.node
        if node.is_input or node.multi_output:
            return None
        if sum(1 for o in self._outputs if o is t) > 1:
            return None
        if any(t is u for n in self._nodes for u in n.inputs):
            return None
        layer = node.layer
        if isinstance(layer, Model):
            if layer.output_activation is None:
                return None
        elif not getattr(layer, "supports_logits", False):
            return None
        return next(j for j, n in enumerate(self._nodes) if n is node)

    def _output_activations(self):
        out = []
        for i, t in enumerate(self._outputs):
            out.append(t.node.layer.output_activation if self._logits_node(i) is not None
                       else None)
        return out

    def forward(self, ctx, inputs, training=False, logits=False, mask=None):
        flat, _ = flatten_structure(inputs)
        in_masks = None
        if mask is not None:
            in_masks = [mask] if self._in_structure is None else list(mask)
        outs = self._run_forward(ctx, flat, training, (bool(logits),) if logits else None,
                                 in_masks)
        if self._out_structure is None:
            ctx.output_mask = ctx.output_mask[0]
            return outs[0]
        return outs

    def backward(self, ctx, dy, input_grad=True):
        dys = [dy] if self._out_structure is None else list(dy)
        grads = self._run_backward(ctx, dys, input_grad)
        if not input_grad:
            return None
        return grads[0] if self._in_structure is None else grads

    def _run_forward(self, ctx, xs, training, logits, in_masks=None):
        """The outputs (a list) for the input arrays ``xs`` (a list in input order);
        their masks go to ``ctx.output_mask`` (a list). One forward pass is one scope of
        the losses layers add (:mod:`~pynn.layers.added_losses`).

        ``logits``: per output, whether its node returns pre-activation logits.
        ``in_masks``: per input, its mask or None (masks: :mod:`~pynn.layers.masking_rules`)."""
        with added_losses.collecting():
            return self._forward_nodes(ctx, xs, training, logits, in_masks)

    def _forward_nodes(self, ctx, xs, training, logits, in_masks):
        vals = {id(t): a for t, a in zip(self._inputs, xs)}
        masks = {}
        if in_masks is not None:
            masks = {id(t): m for t, m in zip(self._inputs, in_masks) if m is not None}
        want = None
        if logits:
            want = {self._logits_node(i) for i, f in enumerate(logits) if f}
        fused = self._fast_path.conv_pools()
        skip = {k for k, _ in fused.values()}
        for j, node in enumerate(self._nodes):
            if j in skip:
                continue  # a pooling run with its convolution
            args = [vals[id(t)] for t in node.inputs]
            arg = args[0] if node.structure is None else args
            nctx = ctx.child_for(node.layer, j)
            pair = fused.get(j)
            if pair is not None:
                vals[id(self._nodes[pair[0]].outputs[0])] = pair[1].forward(
                    nctx, arg, training=training)
                continue
            layer = node.layer
            kwargs = {"training": training}
            if want is not None and j in want:
                kwargs["logits"] = True
            prev = previous_mask(masks, node.inputs, node.structure)
            if prev is not None and takes_mask(layer):
                kwargs["mask"] = prev
            nctx.output_mask = UNSET
            out = layer.forward(nctx, arg, **kwargs)
            outs = out if node.multi_output else [out]
            for t, o in zip(node.outputs, outs):
                vals[id(t)] = o
            if prev is not None or nctx.output_mask is not UNSET or makes_masks(layer):
                for t, m in zip(node.outputs,
                                output_masks(layer, nctx, arg, prev, len(node.outputs))):
                    if m is not None:
                        masks[id(t)] = m
        ctx.output_mask = [masks.get(id(t)) for t in self._outputs]
        ctx.saved = vals  # the shapes of this call's tensors, for zero gradients
        return [vals[id(t)] for t in self._outputs]

    def _needs(self, input_grad):
        """Per node: ``(run backward at all, compute its input gradients)``; cached."""
        key = (weights_generation(), input_grad)
        plan = self._grad_plan.get(input_grad)
        if plan is not None and plan[0] == key:
            return plan[1]
        wants = {id(t): input_grad for t in self._inputs}  # tensor -> leads to a gradient
        out = []
        for node in self._nodes:
            need_in = any(wants.get(id(t), False) for t in node.inputs)
            trains = any(w.trainable for w in node.layer.weights)
            out.append((need_in or trains, need_in))
            for t in node.outputs:
                wants[id(t)] = need_in or trains
        self._grad_plan[input_grad] = (key, out)
        return out

    def _run_backward(self, ctx, dys, input_grad):
        """Backpropagate the output gradients ``dys`` (None: no gradient); returns the
        input gradients (a list) when ``input_grad``."""
        be = self.backend
        acc = {}

        def add(t, g):
            cur = acc.get(id(t))
            if cur is None:
                acc[id(t)] = (g, False)
                return
            arr, owned = cur
            if not owned:
                buf = ctx.buffer(("dsum", id(t)), arr.shape)
                be.copy_(arr, buf)
                arr = buf
            be.axpy_(1.0, g.reshape(arr.shape), arr)
            acc[id(t)] = (arr, True)

        for t, g in zip(self._outputs, dys):
            if g is not None:
                add(t, g)
        needs = self._needs(input_grad)
        pass_id = ctx.pass_id
        fused = self._fast_path.conv_pools()
        skip = {k for k, _ in fused.values()}
        for j in range(len(self._nodes) - 1, -1, -1):
            run, need_in = needs[j]
            if not run or j in skip:
                continue
            node = self._nodes[j]
            pair = fused.get(j)
            step = node.layer if pair is None else pair[1]
            gs = [acc.get(id(t)) for t in (node if pair is None else
                                           self._nodes[pair[0]]).outputs]
            if all(g is None for g in gs):
                continue
            if node.multi_output:
                dy = []
                for k, (t, g) in enumerate(zip(node.outputs, gs)):
                    if g is None:
                        z = ctx.buffer(("zeros", j, k), ctx.saved[id(t)].shape)
                        z.fill(0)
                        dy.append(z)
                    else:
                        dy.append(g[0])
            else:
                dy = gs[0][0]
            nctx = ctx.child_for(node.layer, j)
            nctx.pass_id = pass_id
            try:
                dx = step.backward(nctx, dy, input_grad=need_in)
            except NoGradientPath as exc:
                if exc.layer is not node.layer:
                    raise
                raise ValueError(f"{exc}: {self._weights_before(node)}") from None
            nctx.end_backward()
            if need_in:
                for t, d in zip(node.inputs, [dx] if node.structure is None else dx):
                    if d is not None:
                        add(t, d)
        if not input_grad:
            return None
        out = []
        for i, t in enumerate(self._inputs):
            g = acc.get(id(t))
            if g is None:
                z = ctx.buffer(("zeros_in", i), ctx.saved[id(t)].shape)
                z.fill(0)
                out.append(z)
            else:
                out.append(g[0])
        return out

    def _weights_before(self, node):
        """The paths of the trainable weights of the layers that feed ``node``."""
        seen, paths, todo = set(), [], [t.node for t in node.inputs]
        while todo:
            n = todo.pop()
            if n is None or id(n) in seen:
                continue
            seen.add(id(n))
            paths.extend(w.path for w in n.layer.trainable_weights if w.path not in paths)
            todo.extend(t.node for t in n.inputs)
        return sorted(paths)

    # ------------------------------------------------------------------------------------
    # config
    # ------------------------------------------------------------------------------------
    def get_config(self):
        """Keras's functional config: layers with their inbound nodes, inputs, outputs."""
        node_index = {}
        for layer in self._layers:
            for k, node in enumerate(layer._inbound_nodes):
                node_index[id(node)] = k
        ours = {id(n) for n in self._nodes} | {id(t.node) for t in self._inputs}
        layer_cfgs = []
        for layer in self._layers:
            inbound = []
            for node in layer._inbound_nodes:
                if id(node) not in ours or node.is_input:
                    continue
                args = [[t.node.layer.name, node_index[id(t.node)], t.index]
                        for t in node.inputs]
                inbound.append({"args": args, "list": node.structure == "list"})
            cfg = serialization.serialize(layer)
            cfg["name"] = layer.name
            cfg["inbound_nodes"] = inbound
            layer_cfgs.append(cfg)

        def ref(t):
            return [t.node.layer.name, node_index[id(t.node)], t.index]

        def pack(ts, structure):
            refs = [ref(t) for t in ts]
            if structure is None:
                return refs[0]
            if structure == "list":
                return refs
            return dict(zip(structure, refs))

        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype,
                "layers": layer_cfgs, "input_layers": pack(self._inputs, self._in_structure),
                "output_layers": pack(self._outputs, self._out_structure)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild the graph: create each layer, then replay its calls in an order where
        every call's inputs exist (a config whose calls can never all run is an error)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"{cls.__name__}.from_config: expected a dict with a 'layers' list")
        layers, pending = {}, []
        for lc in config["layers"]:
            if not isinstance(lc, dict):
                raise ValueError(f"{cls.__name__}.from_config: a layer entry is not a dict")
            layer = serialization.deserialize(lc, custom_objects)
            name = lc.get("name", layer.name)
            if name in layers:
                raise ValueError(f"{cls.__name__}.from_config: two layers named {name!r}")
            layers[name] = layer
            for node_cfg in lc.get("inbound_nodes") or []:
                pending.append((layer, node_cfg))
        made = {name: [n.outputs for n in layer._inbound_nodes]
                for name, layer in layers.items() if isinstance(layer, InputLayer)}

        def tensor(r):
            lname, k, ti = r
            outs = made.get(lname)
            if outs is None or int(k) >= len(outs):
                return None
            return outs[int(k)][int(ti)]

        progress = True
        while pending and progress:
            progress = False
            rest = []
            for layer, node_cfg in pending:
                args = [tensor(r) for r in node_cfg["args"]]
                if any(a is None for a in args):
                    rest.append((layer, node_cfg))
                    continue
                out = layer(args if node_cfg.get("list") else args[0])
                made.setdefault(layer.name, []).append(out if isinstance(out, list) else [out])
                progress = True
            pending = rest
        if pending:
            names = sorted({layer.name for layer, _ in pending})
            raise ValueError(f"{cls.__name__}.from_config: the calls of layers {names} need "
                             f"tensors no call produces (a cycle or a missing layer)")

        def unpack(spec):
            if isinstance(spec, dict):
                return {k: unpack(v) for k, v in spec.items()}
            if spec and isinstance(spec[0], (list, tuple)):
                return [unpack(s) for s in spec]
            t = tensor(spec)
            if t is None:
                raise ValueError(f"{cls.__name__}.from_config: unknown tensor {spec!r}")
            return t

        model = cls(unpack(config["input_layers"]), unpack(config["output_layers"]),
                    name=config.get("name"))
        if not config.get("trainable", True):
            model.trainable = False
        return model


Model._graph_class = Functional


class _InputSpec:
    """What one model input takes: its layer, shape and dtype."""

    __slots__ = ("layer", "shape", "dtype")

    def __init__(self, tensor, float_dtype, nodes):
        # errors name the layer the input feeds when there is one (Keras's message for
        # a Sequential), else the input layer
        readers = [n.layer for n in nodes if any(t is tensor for t in n.inputs)]
        self.layer = readers[0] if len(readers) == 1 else tensor.node.layer
        self.shape = tuple(tensor.shape)
        self.dtype = tensor.dtype if np.dtype(tensor.dtype).kind in "iu" else float_dtype
