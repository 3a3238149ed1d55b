"""The weight-sharing supernet of the DARTS cell space (Liu, Simonyan & Yang, ICLR 2019).

`DartsSupernet` mirrors `DartsSpace.build_values`: the same stem (with `stem_downsampling`),
`layers` cells with the reduction cells at the same positions, each cell preprocessing its two
inputs as `DartsCell` does, global pooling and a softmax classifier. Inside each cell every
edge `i -> k` (state `i`, intermediate node `k`, `i < k + 2`) holds one `MixedOp` with one
instance of every candidate op, so there is one set of weights per (cell, edge, op).

Two ways to run it:

- Relaxed (DARTS, GDAS): node `k` is the sum over all its incoming edges of
  `MixedOp_{i,k}(state_i)`, weighted by DARTS' architecture weights: one `alpha` vector over
  the ops per edge and cell type (`arch_decisions` names them, in the order of
  `arch_variables` and `probabilities()`). `derive()` turns them into a genotype as DARTS
  does: per node the two incoming edges whose strongest non-`none` op is strongest, and on
  each that op.
- Single path (SPOS, ENAS, and stand-alone evaluation): a path gives one option index per
  decision of the space (`{cell}_node_{k}_input_{a}`, `{cell}_node_{k}_op_{a}`), and node `k`
  is `op_0(state_{input_0}) + op_1(state_{input_1})`, each op taken from the edge it reads.
  A path may be an int tensor: one traced function serves every path (each slot then sums,
  over the node's incoming edges, a switch between that edge's ops and zeros; only the chosen
  op runs).

Weight sharing between the two slots of a node: when both slots pick the same input and the
same op they run the same op instance (its weights are those of that edge and op), so the
node is twice that op's output. `to_standalone` copies those weights into both of the
stand-alone cell's (separate) layers, which gives the same outputs.
"""

import keras
import keras_tuner
import numpy as np
from keras import ops

from keras_nas.layers.mixed_op import MixedOp
from keras_nas.oneshot.supernet import SUPERNETS, Supernet, _copy, stem_weights

CELL_TYPES = ("normal", "reduce")


def _space_decisions(space):
    """`[(name, options)]` of every hyperparameter of the space, in declaration order.

    Unlike the base class, decisions with one option (an op list of one op) are kept, so that
    `values_of` gives every value `space.encode` needs.
    """
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    return [(p.name, list(p.values)) for p in hp.space]


def _edge(i, k):
    """Index of edge `state i -> node k` among a cell's edges (node-major, then input)."""
    return k * (k + 3) // 2 + i


class DartsSupernetCell(keras.layers.Layer):
    """The layers of one supernet cell: input preprocessing and one `MixedOp` per edge.

    A container: `DartsSupernet` runs it (relaxed or along a path).

    Args:
        op_names: the candidate op names of every edge.
        nodes: intermediate nodes.
        channels: channels of each node.
        reduction: whether the cell halves the spatial size (edges from the inputs at stride 2).
        reduction_prev: whether the previous cell did (`c_{k-2}` is then `FactorizedReduce`d).
        mode, temperature, seed: of the `MixedOp`s (see `MixedOp`).
    """

    def __init__(
        self,
        op_names,
        nodes,
        channels,
        reduction=False,
        reduction_prev=False,
        mode="softmax",
        temperature=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from keras_nas.layers.ops import FactorizedReduce, ReLUConvBN, get_op

        self.op_names = list(op_names)
        self.nodes = int(nodes)
        self.channels = int(channels)
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        if self.reduction_prev:
            self.preprocess0 = FactorizedReduce(self.channels)
        else:
            self.preprocess0 = ReLUConvBN(self.channels, 1, 1)
        self.preprocess1 = ReLUConvBN(self.channels, 1, 1)
        self.edges = []
        for k in range(self.nodes):
            for i in range(k + 2):
                stride = 2 if self.reduction and i < 2 else 1
                self.edges.append(
                    MixedOp(
                        [get_op(op, self.channels, stride) for op in self.op_names],
                        mode=mode,
                        temperature=temperature,
                        names=self.op_names,
                        shared_alpha=True,
                        seed=None if seed is None else int(seed) + len(self.edges),
                        name=f"edge_{i}_to_{k}",
                    )
                )

    def edge(self, i, k):
        """The `MixedOp` of edge `state i -> node k`."""
        return self.edges[_edge(i, k)]

    def aux_skip(self, i, x):
        """The parameter-free skip of edge `i`'s input to the node's shape (DARTS- guard)."""
        if self.reduction and i < 2:
            return x[:, ::2, ::2, :]
        return x


class DartsSupernet(Supernet):
    """The DARTS network of a `DartsSpace` with every op of every cell edge in it.

    The decisions (`decisions`, paths, `values_of`, `path_of`, `random_path`) are the space's
    hyperparameters; the architecture weights are DARTS' own, one `alpha` per edge and cell
    type (`arch_decisions`, `arch_variables`, `probabilities()`), shared by all cells of that
    type. `aux_skip_beta` adds `beta * x` to every edge of the relaxed network (DARTS-; on a
    stride-2 edge `x` subsampled by 2).

    Args:
        space: a configured `DartsSpace` (input shape and classes set).
        mode: `"softmax"` (DARTS) or `"gumbel"` (GDAS) relaxation.
        temperature: Gumbel temperature.
        seed: seed of the `alpha` initializer and the Gumbel noise.

    Example:

    ```python
    space = DartsSpace(input_shape=(8, 8, 1), num_classes=3, channels=4, layers=3, nodes=2)
    net = DartsSupernet(space)
    probs = net(x)                                      # relaxed
    path = net.random_path(np.random.default_rng(0))
    probs = net(x, path=path)                           # one architecture
    model = net.to_standalone(path)                     # the same network, stand-alone
    space.encode(net.values_of(net.derive()))           # DARTS' genotype of the alphas
    ```
    """

    def __init__(self, space, mode="softmax", temperature=1.0, seed=None, **kwargs):
        from keras_nas.spaces.darts import DartsSpace

        if not isinstance(space, DartsSpace):
            raise TypeError(f"`space` must be a DartsSpace, got {type(space).__name__}.")
        space._check_configured()
        op_names = list(space.ops)
        nodes = int(space.nodes)
        arch_decisions = [
            (f"{cell}_node_{k}_edge_{i}", list(op_names))
            for cell in CELL_TYPES
            for k in range(nodes)
            for i in range(k + 2)
        ]
        # The base class makes one `alpha` per decision it is given: DARTS' per-edge weights.
        super().__init__(
            arch_decisions, mode=mode, temperature=temperature, seed=seed, **kwargs
        )
        self.arch_decisions = self.decisions
        self.decisions = _space_decisions(space)
        self.space = space
        self.space_input_shape = tuple(space.input_shape)
        self.op_names = op_names
        self.nodes = nodes
        self.edges_per_cell = nodes * (nodes + 3) // 2
        index = {name: d for d, (name, _) in enumerate(self.decisions)}
        expected = set(space.hp_names())
        if set(index) != expected:
            raise ValueError(
                f"`space` declares {sorted(index)}, not the DARTS decisions {sorted(expected)}."
            )
        # slots[cell][k][a] = (decision index of the input, decision index of the op)
        slots = {
            cell: [
                [
                    (index[f"{cell}_node_{k}_input_{a}"], index[f"{cell}_node_{k}_op_{a}"])
                    for a in range(2)
                ]
                for k in range(nodes)
            ]
            for cell in CELL_TYPES
        }
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "_building", False)

        self.stem, size = _build_stem(space)
        reductions = space.reduction_layers(size)
        channels = int(space.channels)
        reduction_prev = False
        self.cells = []
        for n in range(int(space.layers)):
            reduction = n in reductions
            if reduction:
                channels *= 2
            cell = DartsSupernetCell(
                op_names,
                nodes,
                channels,
                reduction=reduction,
                reduction_prev=reduction_prev,
                mode=mode,
                temperature=temperature,
                seed=None if seed is None else int(seed) + 1000 * (n + 1),
                name=f"cell_{n}_{'reduce' if reduction else 'normal'}",
            )
            offset = self.edges_per_cell if reduction else 0
            for e, mixed in enumerate(cell.edges):
                self._mixed_ops[offset + e].append(mixed)
            self.cells.append(cell)
            reduction_prev = reduction
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.classifier = keras.layers.Dense(space.num_classes, activation="softmax")
        self.build((None,) + self.space_input_shape)

    # -- architecture weights -------------------------------------------------------------
    def edge_alpha(self, cell, i, k):
        """The `alpha` variable of edge `state i -> node k` of cell type `cell`."""
        if cell not in CELL_TYPES:
            raise ValueError(f"`cell` must be one of {CELL_TYPES}, got {cell!r}.")
        if not (0 <= int(k) < self.nodes and 0 <= int(i) < int(k) + 2):
            raise ValueError(
                f"No edge from state `i`={i!r} to node `k`={k!r} (nodes: {self.nodes})."
            )
        offset = self.edges_per_cell if cell == "reduce" else 0
        return self.alphas[offset + _edge(int(i), int(k))]

    def derive(self, exclude=("none",), max_skip=None, skip_option="skip_connect"):
        """The path of DARTS' genotype of the current `alpha`s.

        Per cell type and node, the two incoming edges whose strongest op outside `exclude`
        has the largest `softmax(alpha)` weight, strongest first (slot 0, then slot 1), each
        with that op. With `max_skip=M` (P-DARTS) the whole genotype keeps at most `M` ops
        `skip_option`: while there are more, the weakest chosen skip edge loses its skip
        option and its node is derived again.

        Args:
            exclude: op names never chosen (unless an edge has no other op).
            max_skip: None, or the most `skip_option` ops the genotype may hold.
            skip_option: the op name `max_skip` counts.

        Returns:
            A path (list of option indices over `decisions`).
        """
        integral = isinstance(max_skip, (int, np.integer)) and not isinstance(max_skip, bool)
        if max_skip is not None and not (integral and max_skip >= 0):
            raise ValueError(
                f"`max_skip` must be a non-negative integer or None, got {max_skip!r}."
            )
        exclude = tuple(exclude or ())
        probs = self.probabilities()
        banned = set()  # alpha indices whose skip option may not be chosen
        while True:
            values, chosen = self._genotype_values(probs, exclude, banned, skip_option)
            if max_skip is None:
                break
            skips = [
                (probs[e][o], e)
                for e, o in chosen
                if self.op_names[o] == skip_option and e not in banned
            ]
            total = sum(1 for _, o in chosen if self.op_names[o] == skip_option)
            if total <= max_skip or not skips:
                break
            banned.add(min(skips)[1])
        return self.path_of(values)

    def _genotype_values(self, probs, exclude, banned, skip_option):
        values = {}
        chosen = []
        for c, cell in enumerate(CELL_TYPES):
            offset = c * self.edges_per_cell
            for k in range(self.nodes):
                candidates = []
                for i in range(k + 2):
                    e = offset + _edge(i, k)
                    op, strength = self._best_op(probs[e], exclude, e in banned, skip_option)
                    candidates.append((-strength, i, e, op))
                candidates.sort()
                for a, (_, i, e, op) in enumerate(candidates[:2]):
                    values[f"{cell}_node_{k}_input_{a}"] = i
                    values[f"{cell}_node_{k}_op_{a}"] = self.op_names[op]
                    chosen.append((e, op))
        return values, chosen

    def _best_op(self, p, exclude, skip_banned, skip_option):
        """`(op index, strength)` of one edge; an edge left with no allowed op ranks last."""
        for allowed, rank in (
            (lambda o: o not in exclude and not (skip_banned and o == skip_option), 0.0),
            (lambda o: o not in exclude, -1.0),
            (lambda o: True, -2.0),
        ):
            ok = [j for j, o in enumerate(self.op_names) if allowed(o)]
            if ok:
                best = max(ok, key=lambda j: (p[j], -j))
                return best, (float(p[best]) if rank == 0.0 else rank)
        raise AssertionError("unreachable: an edge has at least one op")

    # -- forward ------------------------------------------------------------------------
    def build(self, input_shape):
        x = keras.KerasTensor(tuple(input_shape))
        object.__setattr__(self, "_building", True)
        try:
            self.forward(x)
        finally:
            object.__setattr__(self, "_building", False)
        for cell in self.cells:
            cell.built = True
        self.built = True

    def forward(self, inputs, training=None):
        x = self.stem(inputs, training=training)
        s0 = s1 = x
        for cell in self.cells:
            s0, s1 = s1, self._cell(cell, s0, s1, training)
        return self.classifier(self.pool(s1))

    def _cell(self, cell, s0, s1, training):
        states = [
            cell.preprocess0(s0, training=training),
            cell.preprocess1(s1, training=training),
        ]
        kind = "reduce" if cell.reduction else "normal"
        offset = self.edges_per_cell if cell.reduction else 0
        for k in range(self.nodes):
            if self._building:
                # Calls every MixedOp once, which builds all of its candidates.
                terms = [cell.edge(i, k)(states[i], active=0) for i in range(k + 2)]
            elif self._path is None:
                beta = self.aux_skip_beta
                terms = [
                    cell.edge(i, k)(
                        states[i], training=training, alpha=self.alphas[offset + _edge(i, k)]
                    )
                    + ops.multiply(beta, cell.aux_skip(i, states[i]))
                    for i in range(k + 2)
                ]
            else:
                terms = [
                    self._slot(cell, k, self._path[d_in], self._path[d_op], states, training)
                    for d_in, d_op in self._slots[kind][k]
                ]
            node = terms[0]
            for t in terms[1:]:
                node = node + t
            states.append(node)
        return ops.concatenate(states[2:], axis=-1)

    def _slot(self, cell, k, src, op, states, training):
        """Op `op` on the edge from state `src` to node `k` (ints, or int tensors)."""
        if isinstance(src, int) and isinstance(op, int):
            if not 0 <= src < k + 2:
                raise ValueError(f"Node {k} reads states 0..{k + 1}; the path gives input {src}.")
            return cell.edge(src, k)(states[src], training=training, active=op)
        # Per incoming edge a switch over its ops plus "not this edge" (zeros), summed; no
        # nested switches, whose gradients are much slower to trace and compile.
        src = ops.cast(src, "int32")
        op = ops.cast(op, "int32")
        n = len(self.op_names)
        total = None
        for i in range(k + 2):
            edge = cell.edge(i, k)
            branches = [
                (lambda x, j=j, edge=edge: edge.candidates[j](x, training=training))
                for j in range(n)
            ]
            branches.append(lambda x, i=i: ops.zeros_like(cell.aux_skip(i, x)))
            y = ops.switch(ops.where(ops.equal(src, i), op, n), branches, states[i])
            total = y if total is None else total + y
        return total

    # -- stand-alone --------------------------------------------------------------------
    def to_standalone(self, path):
        """The stand-alone network of `path` (`space.build_values`) with this supernet's weights.

        Stem, input preprocessing of every cell, the op of every slot (from the edge and op
        the path chose; both slots get the same weights when they chose the same edge and op)
        and classifier are copied, so in inference mode both compute the same outputs. A
        preprocessing that the cell does not use is absent from the stand-alone cell.
        """
        path = [int(i) for i in path]
        values = self.values_of(path)
        model = self.space.build_values(values)
        by_name = {layer.name: layer for layer in model.layers}
        _copy(self.stem.weights, stem_weights(model, ("cell_",)), "stem")
        for n, cell in enumerate(self.cells):
            kind = "reduce" if cell.reduction else "normal"
            target = by_name[f"cell_{n}_{kind}"]
            for source, layer, where in (
                (cell.preprocess0, target.preprocess0, "preprocess0"),
                (cell.preprocess1, target.preprocess1, "preprocess1"),
            ):
                if layer is not None:
                    _copy(source.weights, layer.weights, f"{target.name} {where}")
            for k in range(self.nodes):
                for a, (d_in, d_op) in enumerate(self._slots[kind][k]):
                    chosen = cell.edge(path[d_in], k).candidates[path[d_op]]
                    layer = target.edge_layers[2 * k + a]
                    _copy(chosen.weights, layer.weights, f"{target.name} node {k} slot {a}")
        _copy(self.classifier.weights, by_name["classifier"].weights, "classifier")
        return model


def _build_stem(space):
    """The space's stem as a functional sub-model, and the spatial size after it."""
    from keras_nas.layers._utils import batch_norm
    from keras_nas.spaces.base import stem_downsampling

    h, w, _ = space.input_shape
    channels = int(space.stem_multiplier) * int(space.channels)
    inputs = keras.Input(space.input_shape)
    x, size = stem_downsampling(inputs, min(h, w), channels, space.max_resolution)
    x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return keras.Model(inputs, x, name="stem"), size


SUPERNETS["DartsSpace"] = DartsSupernet
