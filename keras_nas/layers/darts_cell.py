"""The DARTS cell: two inputs, k intermediate nodes of two ops each, concatenated output."""

import numbers

import keras
from keras import ops

from keras_nas.layers._utils import check_4d, out_shape, strided
from keras_nas.validation import check_positive_int
from keras_nas.layers.ops import FactorizedReduce, ReLUConvBN, canonical_op_name, get_op

register = keras.saving.register_keras_serializable(package="keras_nas")


def parse_cell_genotype(text):
    """Parses one DARTS cell written as `op~i,op~i|op~i,op~i|...` into `[(op, i), ...]`.

    Nodes are separated by `|`; each holds two `op~input` entries separated by `,`. Inputs
    0 and 1 are the cell's inputs (c_{k-2}, c_{k-1}), input `m >= 2` is intermediate node `m-2`.

    Example: `parse_cell_genotype("sep_conv_3x3~0,skip_connect~1|dil_conv_3x3~2,max_pool_3x3~0")`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`genotype` must be a non-empty string, got {text!r}.")
    pairs = []
    for node in text.strip().strip("|").split("|"):
        entries = node.split(",")
        if len(entries) != 2:
            raise ValueError(
                f"`genotype` node {node!r} must hold two `op~input` entries separated by ','."
            )
        for entry in entries:
            op, sep, idx = entry.strip().partition("~")
            if not sep or not idx.strip().isdigit():
                raise ValueError(f"`genotype` entry {entry!r} must look like `op~input`.")
            pairs.append((op.strip(), int(idx)))
    return pairs


def format_cell_genotype(pairs):
    """The inverse of `parse_cell_genotype`."""
    pairs = [tuple(p) for p in pairs]
    return "|".join(
        ",".join(f"{op}~{i}" for op, i in pairs[k : k + 2]) for k in range(0, len(pairs), 2)
    )


def check_cell_genotype(genotype):
    """Validates a cell genotype (string or `[(op, input), ...]`) and returns it as a list.

    Node `k` (0-based) may read inputs `0 .. k+1`.
    """
    if isinstance(genotype, str):
        genotype = parse_cell_genotype(genotype)
    if not isinstance(genotype, (list, tuple)) or not genotype or len(genotype) % 2:
        raise ValueError(
            "`genotype` must be a non-empty, even-length list of (op, input) pairs, "
            f"got {genotype!r}."
        )
    pairs = []
    for n, pair in enumerate(genotype):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"`genotype` entries must be (op, input) pairs, got {pair!r}.")
        op, idx = pair
        node = n // 2
        integral = isinstance(idx, numbers.Integral) and not isinstance(idx, bool)
        if not integral or not 0 <= idx <= node + 1:
            raise ValueError(
                f"`genotype` node {node} may read inputs 0..{node + 1}, got input {idx!r}."
            )
        pairs.append((canonical_op_name(op), int(idx)))
    return pairs


@register
class DartsCell(keras.layers.Layer):
    """A DARTS cell (Liu et al., 2019): normal or reduction.

    Inputs are the outputs of the two previous cells, `[c_{k-2}, c_{k-1}]`. Each is
    preprocessed to `channels` (`c_{k-2}` by a `FactorizedReduce` when the previous cell was a
    reduction, else ReLU-Conv1x1-BN; an input that no op reads is left out). Each
    intermediate node sums two ops applied to two earlier states; a reduction cell runs the
    ops that read the cell inputs at stride 2. The output concatenates all intermediate
    nodes: `num_nodes * channels` channels.

    Args:
        genotype: list of `(op, input)` pairs, two per node (or the string form
            `op~i,op~i|op~i,op~i|...`, see `parse_cell_genotype`).
        channels: channels of each node.
        reduction: whether this cell halves the spatial size.
        reduction_prev: whether the previous cell did (so `c_{k-2}` is twice as large).

    Example:

    ```python
    cell = DartsCell("sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,dil_conv_3x3~2",
                     channels=8, reduction=True)
    y = cell([x, x])      # x: (2, 8, 8, 16) -> y: (2, 4, 4, 16)
    ```
    """

    def __init__(self, genotype, channels, reduction=False, reduction_prev=False, **kwargs):
        super().__init__(**kwargs)
        self.genotype = check_cell_genotype(genotype)
        self.num_nodes = len(self.genotype) // 2
        self.channels = check_positive_int(channels, "channels")
        if not isinstance(reduction, bool):
            raise TypeError(f"`reduction` must be a bool, got {reduction!r}.")
        if not isinstance(reduction_prev, bool):
            raise TypeError(f"`reduction_prev` must be a bool, got {reduction_prev!r}.")
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        # An input that no op reads gets no preprocessing (its weights would get no gradient).
        read = {idx for _, idx in self.genotype}
        self.preprocess0 = None
        self.preprocess1 = None
        if 0 in read:
            if reduction_prev:
                self.preprocess0 = FactorizedReduce(self.channels)
            else:
                self.preprocess0 = ReLUConvBN(self.channels, 1, 1)
        if 1 in read:
            self.preprocess1 = ReLUConvBN(self.channels, 1, 1)
        self.edge_layers = [
            get_op(op, self.channels, 2 if reduction and idx < 2 else 1)
            for op, idx in self.genotype
        ]

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not all(
            isinstance(s, (list, tuple)) for s in input_shape
        ):
            raise ValueError(
                "DartsCell takes two inputs [c_{k-2}, c_{k-1}]; got input shape "
                f"{input_shape!r}."
            )
        s0, s1 = (check_4d(s, self) for s in input_shape)
        h0 = strided(s0[1], 2) if self.reduction_prev else s0[1]
        if h0 is not None and s1[1] is not None and h0 != s1[1]:
            raise ValueError(
                f"DartsCell inputs do not line up: c_{{k-2}} {s0} and c_{{k-1}} {s1} with "
                f"`reduction_prev`={self.reduction_prev}."
            )
        return s0, s1

    def build(self, input_shape):
        s0, s1 = self._split_shapes(input_shape)
        if self.preprocess0 is not None:
            self.preprocess0.build(s0)
        if self.preprocess1 is not None:
            self.preprocess1.build(s1)
        inputs_shape = out_shape(s1, self.channels, 1)
        nodes_shape = out_shape(s1, self.channels, 2 if self.reduction else 1)
        for (_, idx), layer in zip(self.genotype, self.edge_layers):
            layer.build(inputs_shape if idx < 2 else nodes_shape)

    def call(self, inputs):
        s0, s1 = inputs
        states = [
            None if self.preprocess0 is None else self.preprocess0(s0),
            None if self.preprocess1 is None else self.preprocess1(s1),
        ]
        for node in range(self.num_nodes):
            (_, i), (_, j) = self.genotype[2 * node : 2 * node + 2]
            a = self.edge_layers[2 * node](states[i])
            b = self.edge_layers[2 * node + 1](states[j])
            states.append(ops.add(a, b))
        return ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, input_shape):
        _, s1 = (tuple(s) for s in input_shape)
        return out_shape(s1, self.num_nodes * self.channels, 2 if self.reduction else 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "genotype": [[op, idx] for op, idx in self.genotype],
                "channels": self.channels,
                "reduction": self.reduction,
                "reduction_prev": self.reduction_prev,
            }
        )
        return config
