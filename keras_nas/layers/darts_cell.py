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


@register
class NodeInput(keras.layers.Layer):
    """One op of a DARTS node on one earlier state: `NodeInput(i, op)(states) = op(states[i])`.

    What a DARTS space's `choose` of a node's input returns: the chosen input, holding the
    op chosen for it. A `DartsCell` given one as a genotype entry reads it as `(op name, i)`
    when `op` was made by `get_op`; given any other layer, the cell passes it its inputs
    unprocessed, so an input of the cell is preprocessed by the options that read it
    (`preprocess`, the cell's own layer, shared by them).

    Args:
        index: the state it reads (0 and 1: the cell's inputs, `m >= 2`: node `m - 2`).
        op: the Keras layer applied to that state.
        preprocess: optional layer applied to the state before `op`.

    Example: `NodeInput(1, get_op("sep_conv_3x3", 8))([s0, s1])` is the op on `s1`.
    """

    def __init__(self, index, op, preprocess=None, **kwargs):
        super().__init__(**kwargs)
        integral = isinstance(index, numbers.Integral) and not isinstance(index, bool)
        if not integral or index < 0:
            raise ValueError(f"`index` must be a non-negative integer, got {index!r}.")
        if not isinstance(op, keras.layers.Layer):
            raise TypeError(f"`op` must be a Keras layer, got {op!r}.")
        if preprocess is not None and not isinstance(preprocess, keras.layers.Layer):
            raise TypeError(f"`preprocess` must be a Keras layer or None, got {preprocess!r}.")
        self.index = int(index)
        self.preprocess = preprocess
        self.op = op

    def _state(self, states):
        if not isinstance(states, (list, tuple)) or len(states) <= self.index:
            got = f"{len(states)} states" if isinstance(states, (list, tuple)) else "one input"
            raise ValueError(
                f"NodeInput({self.index}) takes the list of states a node may read, with at "
                f"least {self.index + 1}; got {got}."
            )
        return states[self.index]

    def _op_input_shape(self, input_shape):
        shape = tuple(self._state(input_shape))
        return shape if self.preprocess is None else self.preprocess.compute_output_shape(shape)

    def build(self, input_shape):
        if self.preprocess is not None and not self.preprocess.built:
            self.preprocess.build(tuple(self._state(input_shape)))
        if not self.op.built:
            self.op.build(self._op_input_shape(input_shape))

    def call(self, states, training=None):
        x = self._state(states)
        if self.preprocess is not None:
            x = self.preprocess(x, training=training)
        return self.op(x, training=training)

    def compute_output_shape(self, input_shape):
        return self.op.compute_output_shape(self._op_input_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update({
            "index": self.index,
            "op": keras.saving.serialize_keras_object(self.op),
            "preprocess": None if self.preprocess is None
            else keras.saving.serialize_keras_object(self.preprocess),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["op"] = keras.saving.deserialize_keras_object(config["op"])
        if config.get("preprocess") is not None:
            config["preprocess"] = keras.saving.deserialize_keras_object(config["preprocess"])
        return cls(**config)


def darts_preprocess(channels, reduction_prev=False):
    """The layers a `DartsCell` preprocesses its inputs `c_{k-2}` and `c_{k-1}` with.

    `FactorizedReduce` of `c_{k-2}` after a reduction cell, else ReLU-Conv1x1-BN; ReLU-Conv1x1-BN
    of `c_{k-1}`. Example: `pre0, pre1 = darts_preprocess(8, reduction_prev=True)`.
    """
    first = FactorizedReduce(channels) if reduction_prev else ReLUConvBN(channels, 1, 1)
    return [first, ReLUConvBN(channels, 1, 1)]


def _genotype_entry(entry):
    """A `NodeInput` of a `get_op` layer becomes its `(op name, index)` pair; other layers
    (e.g. a supernet's choice of input) stay layers."""
    if isinstance(entry, NodeInput) and getattr(entry.op, "op_name", None):
        return (entry.op.op_name, entry.index)
    return entry


def check_cell_genotype(genotype):
    """Validates a cell genotype (string or `[(op, input), ...]`) and returns it as a list.

    Node `k` (0-based) may read inputs `0 .. k+1`. An entry may also be a Keras layer taking
    the list of states the node may read (see `DartsCell`).
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
        pair = _genotype_entry(pair)
        if isinstance(pair, keras.layers.Layer):
            pairs.append(pair)
            continue
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

    An entry of the genotype may also be a Keras layer that maps the list of states node
    `k` may read to the node's term: a `NodeInput` of a `get_op` layer counts as its `(op,
    input)` pair (so a space's `choose` may return either); any other layer (e.g. a
    supernet's choice of input) is given `[c_{k-2}, c_{k-1}, node_0, ..., node_{k-1}]` with
    the cell's inputs unprocessed, and preprocesses what it reads itself (`NodeInput(i, op,
    preprocess)`), so that only the inputs its chosen options read count as used; the cell
    then needs `preprocess`, the two layers those options share, which it holds.

    Args:
        genotype: list of `(op, input)` pairs (or layers), two per node (or the string form
            `op~i,op~i|op~i,op~i|...`, see `parse_cell_genotype`).
        channels: channels of each node.
        reduction: whether this cell halves the spatial size.
        reduction_prev: whether the previous cell did (so `c_{k-2}` is twice as large).
        preprocess: optional pair of layers for `c_{k-2}` and `c_{k-1}` (default: made by
            `darts_preprocess`); an input no op reads gets none.

    Example:

    ```python
    cell = DartsCell("sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,dil_conv_3x3~2",
                     channels=8, reduction=True)
    y = cell([x, x])      # x: (2, 8, 8, 16) -> y: (2, 4, 4, 16)
    ```
    """

    def __init__(self, genotype, channels, reduction=False, reduction_prev=False,
                 preprocess=None, **kwargs):
        super().__init__(**kwargs)
        genotype = check_cell_genotype(genotype)
        slot_layers = [isinstance(entry, keras.layers.Layer) for entry in genotype]
        if any(slot_layers) and not all(slot_layers):
            raise ValueError(
                "`genotype` must hold (op, input) pairs or layers, not both: a layer slot "
                "reads the cell's inputs unprocessed, a pair reads them preprocessed."
            )
        self.num_nodes = len(genotype) // 2
        self.channels = check_positive_int(channels, "channels")
        if not isinstance(reduction, bool):
            raise TypeError(f"`reduction` must be a bool, got {reduction!r}.")
        if not isinstance(reduction_prev, bool):
            raise TypeError(f"`reduction_prev` must be a bool, got {reduction_prev!r}.")
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        if preprocess is not None and (
            not isinstance(preprocess, (list, tuple)) or len(preprocess) != 2
            or not all(isinstance(p, keras.layers.Layer) for p in preprocess)
        ):
            raise TypeError(
                f"`preprocess` must be a pair of Keras layers or None, got {preprocess!r}."
            )
        if all(slot_layers) and preprocess is None:
            raise ValueError(
                "A DartsCell whose genotype holds layers needs `preprocess`: the two layers "
                "those layers preprocess the cell's inputs with (see `NodeInput`)."
            )
        if preprocess is None:
            preprocess = darts_preprocess(self.channels, reduction_prev)
        # An input that no op reads gets no preprocessing (its weights would get no gradient).
        # With layer slots the cell holds both (first, so its weights come in the order of
        # the pair cells' weights) and the slots run them.
        read = {0, 1} if all(slot_layers) else {idx for _, idx in genotype}
        self.preprocess0 = preprocess[0] if 0 in read else None
        self.preprocess1 = preprocess[1] if 1 in read else None
        self.genotype = genotype  # after the preprocessing: Keras orders weights by tracking
        self.edge_layers = [
            entry if isinstance(entry, keras.layers.Layer)
            else get_op(entry[0], self.channels, 2 if reduction and entry[1] < 2 else 1)
            for entry in self.genotype
        ]

    def _slot_layers(self):
        return isinstance(self.genotype[0], keras.layers.Layer)

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
        if self.preprocess0 is not None and not self.preprocess0.built:
            self.preprocess0.build(s0)
        if self.preprocess1 is not None and not self.preprocess1.built:
            self.preprocess1.build(s1)
        inputs_shape = out_shape(s1, self.channels, 1)
        nodes_shape = out_shape(s1, self.channels, 2 if self.reduction else 1)
        for n, (entry, layer) in enumerate(zip(self.genotype, self.edge_layers)):
            if isinstance(entry, keras.layers.Layer):
                states = [s0, s1] + [nodes_shape] * (n // 2)
                if not layer.built:
                    layer(_symbolic(states))  # builds composite layers and their sublayers
            else:
                layer.build(inputs_shape if entry[1] < 2 else nodes_shape)

    def call(self, inputs):
        s0, s1 = inputs
        if self._slot_layers():
            states = [s0, s1]  # the slots preprocess what they read
        else:
            states = [
                None if self.preprocess0 is None else self.preprocess0(s0),
                None if self.preprocess1 is None else self.preprocess1(s1),
            ]
        for node in range(self.num_nodes):
            terms = []
            for n in (2 * node, 2 * node + 1):
                entry, layer = self.genotype[n], self.edge_layers[n]
                if isinstance(entry, keras.layers.Layer):
                    terms.append(layer(states[: node + 2]))
                else:
                    terms.append(layer(states[entry[1]]))
            states.append(ops.add(*terms))
        return ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, input_shape):
        _, s1 = (tuple(s) for s in input_shape)
        return out_shape(s1, self.num_nodes * self.channels, 2 if self.reduction else 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "genotype": [
                    keras.saving.serialize_keras_object(entry)
                    if isinstance(entry, keras.layers.Layer) else [entry[0], entry[1]]
                    for entry in self.genotype
                ],
                "channels": self.channels,
                "reduction": self.reduction,
                "reduction_prev": self.reduction_prev,
            }
        )
        if self._slot_layers():
            config["preprocess"] = [keras.saving.serialize_keras_object(p)
                                    for p in (self.preprocess0, self.preprocess1)]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["genotype"] = [
            keras.saving.deserialize_keras_object(entry) if isinstance(entry, dict) else entry
            for entry in config["genotype"]
        ]
        if config.get("preprocess") is not None:
            config["preprocess"] = [keras.saving.deserialize_keras_object(p)
                                    for p in config["preprocess"]]
        return cls(**config)


def _symbolic(shapes):
    return [keras.KerasTensor(tuple(shape)) for shape in shapes]
