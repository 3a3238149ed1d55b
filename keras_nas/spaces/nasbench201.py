"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020)."""

import functools
import itertools
import json

import keras

from keras_nas.layers import Cell, ResNetBasicBlock, cell_edges, get_op
from keras_nas.layers._utils import batch_norm
from keras_nas.validation import check_positive_int
from keras_nas.spaces.base import Space, stem_downsampling

NASBENCH201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
"""The five candidate ops of NAS-Bench-201, in the benchmark's order."""

EDGES = cell_edges(4)
"""The six edges `(i, j)` of the cell, in hyperparameter order."""

EDGE_NAMES = [f"edge_{i}_{j}" for i, j in EDGES]
"""Hyperparameter names: `edge_0_1, edge_0_2, edge_1_2, edge_0_3, edge_1_3, edge_2_3`."""


def _arch_str(ops_by_edge):
    nodes = []
    for j in range(1, 4):
        entries = [f"{ops_by_edge[(i, j)]}~{i}" for i in range(j)]
        nodes.append("|" + "|".join(entries) + "|")
    return "+".join(nodes)


def all_architectures():
    """Yields the arch_str of all 15,625 NAS-Bench-201 cells (5 ops on 6 edges).

    Example: `len(list(all_architectures())) == 15625`.
    """
    for choice in itertools.product(NASBENCH201_OPS, repeat=len(EDGES)):
        yield _arch_str(dict(zip(EDGES, choice)))


class NASBench201Space(Space):
    """The NAS-Bench-201 network, with the cell searched on its six edges.

    Network (as in the benchmark, with `channels=16, cells_per_stage=5` on 32x32 inputs):
    stem 3x3 conv to `C` + BN; stage 1: N cells at `C`; residual reduction block
    (`ResNetBasicBlock`, stride 2) to `2C`; stage 2: N cells; reduction to `4C`; stage 3: N
    cells; BN, ReLU, global average pooling, dense softmax. All cells share the searched
    cell. Each edge `edge_i_j` is a `Choice` over `NASBENCH201_OPS`: 5**6 = 15,625 cells.

    Adapting to the input size (documented, deterministic):
    - inputs whose shorter side is above `max_resolution` (32) pixels are first halved by
      stride-2 3x3 conv-BN-ReLU layers until it is at most that (224 -> 28), so cells run at
      CIFAR resolution; inputs up to 32 pixels get exactly the NAS-Bench-201 network
      (`keras_nas.search` sizes a space given by name smaller: see `keras_nas.spaces.sizing`);
    - a reduction block whose input is already 1 pixel on its shorter side keeps stride 1
      (it still doubles the channels), so tiny inputs work; 8x8 digits run at 8, 4 and 2.

    Architectures are NAS-Bench-201 `arch_str`s: node j's inputs written `op~i` between bars,
    nodes joined by `+`, e.g.
    `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`.

    Args:
        input_shape: `(height, width, channels)` of one example (or set later by `configure`).
        num_classes: number of classes (or set later).
        channels: `C`, channels of the first stage (16 in the benchmark).
        cells_per_stage: `N`, cells per stage (5 in the benchmark).
        learning_rate: Adam learning rate of `compile_model`.
        max_resolution: the largest size at which the cells run (the stem halves larger
            inputs; 32 in the benchmark).
        name: optional name.

    Example:

    ```python
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8, cells_per_stage=1)
    model = space.build_architecture(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    ```
    """

    ops = NASBENCH201_OPS
    edge_names = EDGE_NAMES

    def __init__(
        self,
        input_shape=None,
        num_classes=None,
        channels=16,
        cells_per_stage=5,
        learning_rate=1e-3,
        max_resolution=32,
        name=None,
    ):
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            learning_rate=learning_rate,
            name=name,
        )
        self.channels = check_positive_int(channels, "channels", minimum=2)
        self.cells_per_stage = check_positive_int(cells_per_stage, "cells_per_stage", minimum=0)
        self.max_resolution = check_positive_int(max_resolution, "max_resolution")

    def declare(self, hp):
        """Registers the six `edge_i_j` choices (default `nor_conv_3x3`) on `hp`."""
        for edge in EDGE_NAMES:
            hp.Choice(edge, NASBENCH201_OPS, default="nor_conv_3x3")

    def encode(self, values):
        """`{"edge_0_1": op, ...}` -> NAS-Bench-201 arch_str."""
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of edge names to ops, got {values!r}.")
        missing = [e for e in EDGE_NAMES if e not in values]
        if missing:
            raise ValueError(f"`values` lacks the decisions {missing}.")
        ops_by_edge = {}
        for (i, j), edge in zip(EDGES, EDGE_NAMES):
            op = values[edge]
            if op not in NASBENCH201_OPS:
                raise ValueError(
                    f"`values`[{edge!r}]={op!r} is not a NAS-Bench-201 op; choose from "
                    f"{NASBENCH201_OPS}."
                )
            ops_by_edge[(i, j)] = op
        return _arch_str(ops_by_edge)

    def decode(self, arch_str):
        """NAS-Bench-201 arch_str -> `{"edge_0_1": op, ...}`; ValueError if malformed."""
        if not isinstance(arch_str, str):
            raise ValueError(f"`arch_str` must be a string, got {arch_str!r}.")
        nodes = arch_str.strip().split("+")
        if len(nodes) != 3:
            raise ValueError(
                f"`arch_str` must have 3 nodes joined by '+', got {len(nodes)} in {arch_str!r}."
            )
        values = {}
        for j, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise ValueError(
                    f"`arch_str` node {j} must be written between bars, like '|op~0|', "
                    f"got {node!r} in {arch_str!r}."
                )
            entries = node[1:-1].split("|")
            seen = set()
            for entry in entries:
                op, sep, src = entry.partition("~")
                if not sep or not src.isdigit() or int(src) >= j:
                    raise ValueError(
                        f"`arch_str` node {j} entry {entry!r} must be 'op~i' with i < {j} "
                        f"(in {arch_str!r})."
                    )
                if op not in NASBENCH201_OPS:
                    raise ValueError(
                        f"`arch_str` has unknown op {op!r}; choose from {NASBENCH201_OPS} "
                        f"(in {arch_str!r})."
                    )
                if int(src) in seen:
                    raise ValueError(
                        f"`arch_str` node {j} reads node {src} twice (in {arch_str!r})."
                    )
                seen.add(int(src))
                values[f"edge_{int(src)}_{j}"] = op
            if len(seen) != j:
                raise ValueError(
                    f"`arch_str` node {j} must read each of nodes 0..{j - 1} once, got "
                    f"{node!r} (in {arch_str!r})."
                )
        return {edge: values[edge] for edge in EDGE_NAMES}

    def cell_ops(self, values):
        """The six ops of `values`, in edge order (the `ops` of a `keras_nas.layers.Cell`)."""
        values = self.decode(self.encode(values))
        return [values[e] for e in EDGE_NAMES]

    def architecture_key(self, values):
        """What the cell computes, written out: equal for cells that build the same network.

        Node 0 is the input `x`; a node is the sum of its incoming edges, kept as a sorted
        list of terms: `none` adds nothing, `skip_connect` adds its source node's terms, any
        other op adds one term `op(source)` (`op(0)` on a node with no terms: the op is still
        computed). The key is the output node's terms. So edges that reach no output (the
        converter and the latency predictor drop them too), the order of a sum and skips
        that only rename a node do not make a new network: the 15,625 cells are 6,100 keys
        (the NAS-Bench-201 paper, counting isomorphic graphs, gets 6,466). Decisions other
        than the six edges are part of the key as they are.

        Example:

        ```python
        space = NASBench201Space()
        a = space.decode("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
        b = space.decode("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
        space.architecture_key(a) == space.architecture_key(b)  # True: both are `x`
        ```
        """
        ops = dict(zip(EDGES, self.cell_ops(values)))
        terms = {0: ("x",)}
        for j in range(1, 4):
            node = []
            for i in range(j):
                op, source = ops[(i, j)], terms[i]
                if op == "skip_connect":
                    node.extend(source)
                elif op != "none":
                    node.append(f"{op}({'+'.join(source) or 0})")
            terms[j] = tuple(sorted(node))
        rest = {k: v for k, v in values.items() if k not in EDGE_NAMES}
        return json.dumps(["+".join(terms[3]), rest], sort_keys=True, default=str)

    def build_network(self, choose):
        """The NAS-Bench-201 network, each cell edge an op made by `choose(edge, options)`."""
        self._check_configured()
        h, w, _ = self.input_shape
        inputs = keras.Input(self.input_shape)
        x, size = stem_downsampling(inputs, min(h, w), self.channels, self.max_resolution)
        x = keras.layers.Conv2D(
            self.channels, 3, padding="same", use_bias=False, name="stem_conv"
        )(x)
        x = batch_norm(name="stem_bn")(x)
        for stage in range(3):
            channels = self.channels * 2**stage
            if stage > 0:
                stride = 2 if size >= 2 else 1
                x = ResNetBasicBlock(channels, stride, name=f"reduction_{stage}")(x)
                size = -(-size // stride)
            for n in range(self.cells_per_stage):
                edges = [choose(edge, _edge_options(channels)) for edge in EDGE_NAMES]
                x = Cell(edges, channels, name=f"stage_{stage}_cell_{n}")(x)
        x = batch_norm(name="head_bn")(x)
        x = keras.layers.ReLU(name="head_relu")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")(x)
        return keras.Model(inputs, outputs, name="nasbench201")

    def build_values(self, values):
        """The uncompiled NAS-Bench-201 network of the cell `values`."""
        return super().build_values(self.decode(self.encode(values)))

    def latency_blocks(self, values):
        """The `BlockSpec`s of the network of the cell `values`, in order.

        Follows `build_network` above: the stem, the residual reduction blocks, the head, and
        inside every cell the edges that are computed (`keras_nas.layers.Cell` skips `none`
        edges unless a node has nothing else) and reach the output node (the TFLite converter
        removes the others too), plus one `add` block per node with more than one input. For
        `keras_nas.hardware.LatencyPredictor`.
        """
        from keras_nas.hardware.predictor import BlockSpec
        from keras_nas.spaces.base import downsampling_steps

        self._check_configured()
        ops = self.cell_ops(values)
        h, w, c = self.input_shape
        size = min(h, w)
        specs = [BlockSpec("cell_stem", (h, w, c), self.channels,
                           max_resolution=self.max_resolution)]
        for _ in range(downsampling_steps(size, self.max_resolution)):
            h, w, size = -(-h // 2), -(-w // 2), -(-size // 2)
        edges = EDGES
        active = []
        for j in range(1, 4):
            into = [k for k, (_, jj) in enumerate(edges) if jj == j]
            live = [k for k in into if ops[k] != "none"]
            active.extend(live if live else into[:1])
        reaches = {3}
        for j in (3, 2, 1):  # from the output node backwards
            if j in reaches:
                reaches.update(edges[k][0] for k in active if edges[k][1] == j)
        for stage in range(3):
            channels = self.channels * 2**stage
            if stage > 0:
                stride = 2 if size >= 2 else 1
                specs.append(BlockSpec("resblock", (h, w, channels // 2), channels, stride=stride))
                h, w, size = -(-h // stride), -(-w // stride), -(-size // stride)
            for _ in range(self.cells_per_stage):
                for j in range(1, 4):
                    if j not in reaches:
                        continue
                    terms = [k for k in active if edges[k][1] == j]
                    for k in terms:
                        specs.append(BlockSpec("op", (h, w, channels), channels, op=ops[k]))
                    if len(terms) > 1:
                        specs.append(
                            BlockSpec("add", (h, w, channels), channels, inputs=len(terms))
                        )
        specs.append(BlockSpec("cell_head", (h, w, self.channels * 4), 0,
                               num_classes=self.num_classes))
        return specs


def _edge_options(channels):
    return {op: functools.partial(get_op, op, channels, 1) for op in NASBENCH201_OPS}
