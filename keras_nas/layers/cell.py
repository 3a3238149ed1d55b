"""The NAS-Bench-201 cell (a DAG of candidate ops) and the residual block between its stages."""

import functools

import keras
from keras import ops

from keras_nas.layers._utils import (
    build_sequence,
    check_4d,
    check_stride,
    out_shape,
)
from keras_nas.validation import check_positive_int
from keras_nas.layers.ops import ReLUConvBN, canonical_op_name, get_op

register = keras.saving.register_keras_serializable(package="keras_nas")


def cell_edges(num_nodes):
    """The edges `(i, j)`, `i < j`, of a `num_nodes` cell in NAS-Bench-201 order.

    Node by node: `(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3), ...`.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes", minimum=2)
    return [(i, j) for j in range(1, num_nodes) for i in range(j)]


def num_nodes_of(num_edges):
    """The node count `n` with `n * (n - 1) / 2 == num_edges`, or ValueError."""
    n = 2
    while n * (n - 1) // 2 < num_edges:
        n += 1
    if n * (n - 1) // 2 != num_edges:
        raise ValueError(
            "`ops` must hold one op per edge of a complete DAG, i.e. n*(n-1)/2 names "
            f"(1, 3, 6, 10, ...), got {num_edges}."
        )
    return n


@register
class Cell(keras.layers.Layer):
    """A NAS-Bench-201 cell: a DAG whose node `j` sums `op_ij(node_i)` over `i < j`.

    Node 0 is the input and the last node is the output. `ops` lists one candidate op per
    edge in the order of `cell_edges()`: `(0,1), (0,2), (1,2), (0,3), (1,3), (2,3)` for the
    4-node cells of NAS-Bench-201. `"none"` edges are skipped (they add zeros); a node whose
    edges are all `"none"` is zero, and so is the output of a cell with no path from input to
    output, exactly as in NAS-Bench-201.

    An entry of `ops` may also be a Keras layer: a layer made by `get_op` counts as its op's
    name (so a space's `choose` may return either), any other layer (e.g. the `MixedOp` of a
    supernet) is used on its edge as it is.

    Args:
        ops: list of op names (keys of `keras_nas.layers.OPS`) or layers, `n*(n-1)/2` of them.
        channels: channels of every node after the input.
        stride: stride of the edges leaving the input node (1 in NAS-Bench-201).

    Example:

    ```python
    cell = Cell(["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                 "skip_connect", "nor_conv_3x3", "skip_connect"], channels=16)
    y = cell(keras.random.normal((2, 8, 8, 16)))   # (2, 8, 8, 16)
    ```
    """

    def __init__(self, ops, channels, stride=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(ops, str) or not isinstance(ops, (list, tuple)):
            raise TypeError(f"`ops` must be a list of op names, got {ops!r}.")
        self.num_nodes = num_nodes_of(len(ops))
        ops = [_edge_entry(op) for op in ops]
        self.ops = [op if isinstance(op, keras.layers.Layer) else canonical_op_name(op)
                    for op in ops]
        self.channels = check_positive_int(channels, "channels")
        self.stride = check_stride(stride)
        self.edges = cell_edges(self.num_nodes)
        # Edges that compute something: every non-"none" edge, plus one "none" edge for a
        # node whose inputs are all "none" (so that node is zeros of the right shape).
        active = []
        for j in range(1, self.num_nodes):
            into = [k for k, (_, jj) in enumerate(self.edges) if jj == j]
            live = [k for k in into if self.ops[k] != "none"]
            active.extend(live if live else into[:1])
        self._active = active
        self.edge_layers = []

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        node_shapes = [input_shape] + [out_shape(input_shape, self.channels, self.stride)] * (
            self.num_nodes - 1
        )
        self.edge_layers = []
        for k in self._active:
            i, _ = self.edges[k]
            layer = self.ops[k]
            if not isinstance(layer, keras.layers.Layer):
                layer = get_op(layer, self.channels, self.stride if i == 0 else 1)
            if not layer.built:
                layer.build(node_shapes[i])
            self.edge_layers.append(layer)

    def call(self, inputs):
        nodes = [inputs]
        terms = {j: [] for j in range(1, self.num_nodes)}
        pending = list(zip(self._active, self.edge_layers))
        for j in range(1, self.num_nodes):
            for k, layer in pending:
                i, jj = self.edges[k]
                if jj == j:
                    terms[j].append(layer(nodes[i]))
            nodes.append(functools.reduce(ops.add, terms[j]))
        return nodes[-1]

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, self.stride)

    def get_config(self):
        config = super().get_config()
        ops_ = [keras.saving.serialize_keras_object(op) if isinstance(op, keras.layers.Layer)
                else op for op in self.ops]
        config.update({"ops": ops_, "channels": self.channels, "stride": self.stride})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["ops"] = [op if isinstance(op, str) else keras.saving.deserialize_keras_object(op)
                         for op in config["ops"]]
        return cls(**config)


def _edge_entry(op):
    """An entry of `Cell(ops=...)`: a layer made by `get_op` becomes its op name."""
    if isinstance(op, keras.layers.Layer):
        return getattr(op, "op_name", None) or op
    return op


@register
class ResNetBasicBlock(keras.layers.Layer):
    """The residual block NAS-Bench-201 puts between stages (a ResNet basic block).

    Main path: ReLU-Conv3x3-BN (with the stride), ReLU-Conv3x3-BN. Shortcut at stride 2:
    2x2 average pooling (`same` padding) then a 1x1 convolution; at stride 1 with a channel
    change, ReLU-Conv1x1-BN; otherwise the identity. The two are added.

    Args:
        channels: output channels.
        stride: 1 or 2.

    Example: `ResNetBasicBlock(32, stride=2)(x)` maps `x` of shape `(2, 8, 8, 16)` to
    `(2, 4, 4, 32)`.
    """

    def __init__(self, channels, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_positive_int(channels, "channels")
        self.stride = check_stride(stride)
        self.conv_a = ReLUConvBN(self.channels, 3, self.stride)
        self.conv_b = ReLUConvBN(self.channels, 3, 1)
        self.shortcut = []

    def build(self, input_shape):
        input_shape = check_4d(input_shape, self)
        build_sequence([self.conv_a, self.conv_b], input_shape)
        if self.stride == 2:
            self.shortcut = [
                keras.layers.AveragePooling2D(2, strides=2, padding="same"),
                keras.layers.Conv2D(self.channels, 1, use_bias=False),
            ]
        elif input_shape[-1] != self.channels:
            self.shortcut = [ReLUConvBN(self.channels, 1, 1)]
        else:
            self.shortcut = []
        build_sequence(self.shortcut, input_shape)

    def call(self, inputs):
        residual = inputs
        for layer in self.shortcut:
            residual = layer(residual)
        return ops.add(self.conv_b(self.conv_a(inputs)), residual)

    def compute_output_shape(self, input_shape):
        return out_shape(input_shape, self.channels, self.stride)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "stride": self.stride})
        return config
