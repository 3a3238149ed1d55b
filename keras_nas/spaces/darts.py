"""The DARTS search space (Liu et al., ICLR 2019): normal and reduction cells, stacked."""

import json
import math
import numbers

import keras

from keras_nas.layers import DartsCell, NodeInput, format_cell_genotype, parse_cell_genotype
from keras_nas.layers.darts_cell import darts_preprocess
from keras_nas.layers._utils import batch_norm
from keras_nas.validation import check_positive_int
from keras_nas.layers.ops import canonical_op_name, get_op
from keras_nas.spaces.base import Space, stem_downsampling

DARTS_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]
"""The eight DARTS primitives."""

CELL_TYPES = ("normal", "reduce")


class DartsSpace(Space):
    """DARTS network of `layers` cells; the searched normal and reduction cells.

    Network: stem 3x3 conv to `stem_multiplier * C` + BN; `layers` cells, those at depth
    `layers // 3` and `2 * layers // 3` being reduction cells (stride 2, channels doubled);
    global average pooling; dense softmax. Each cell has `nodes` intermediate nodes; node
    `k` sums two ops, each on one of the states `0 .. k+1` (0 and 1 are the two previous
    cells' outputs); the cell outputs all intermediate nodes concatenated.

    Hyperparameters, for `cell` in `normal`, `reduce`, node `k`, slot `a` in 0, 1:
    `{cell}_node_{k}_input_{a}` (`Choice` over `0 .. k+1`) and `{cell}_node_{k}_op_{a}`
    (`Choice` over `ops`).

    Adapting to the input size: shorter sides above 32 pixels are first halved by stride-2
    conv-BN-ReLU layers to at most 32 (224 -> 28); and only as many reduction cells are
    kept as halvings the remaining size allows (`floor(log2(size))`, the earliest ones
    first); the others become normal cells without channel doubling. 8x8 inputs keep both
    reductions (8 -> 4 -> 2).

    Genotype strings: `normal=<cell>;reduce=<cell>`, where a cell lists its nodes separated
    by `|`, each node two `op~input` entries separated by `,`, e.g.
    `normal=sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~0,skip_connect~2;reduce=max_pool_3x3~0,max_pool_3x3~1|skip_connect~2,max_pool_3x3~0`
    (inputs 0 and 1 are the cell inputs c_{k-2} and c_{k-1}, input m >= 2 is node m-2).

    Args:
        input_shape: `(height, width, channels)` of one example (or set later by `configure`).
        num_classes: number of classes (or set later).
        channels: `C`, node channels of the first cells (doubled at each reduction).
        layers: number of cells.
        nodes: intermediate nodes per cell.
        ops: candidate op names (default: the eight DARTS primitives, `DARTS_OPS`).
        stem_multiplier: stem channels are `stem_multiplier * channels`.
        learning_rate: Adam learning rate of `compile_model`.
        max_resolution: the largest size at which the cells run (the stem halves larger
            inputs).
        name: optional name.

    Example:

    ```python
    space = DartsSpace(input_shape=(8, 8, 1), num_classes=10, channels=8, layers=3)
    model = space.build_architecture(space.random_architecture(seed=0))
    ```
    """

    def __init__(
        self,
        input_shape=None,
        num_classes=None,
        channels=8,
        layers=5,
        nodes=4,
        ops=None,
        stem_multiplier=3,
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
        self.layers = check_positive_int(layers, "layers")
        self.nodes = check_positive_int(nodes, "nodes")
        self.stem_multiplier = check_positive_int(stem_multiplier, "stem_multiplier")
        self.max_resolution = check_positive_int(max_resolution, "max_resolution")
        if ops is None:
            ops = DARTS_OPS
        if isinstance(ops, str) or not isinstance(ops, (list, tuple)) or not ops:
            raise ValueError(f"`ops` must be a non-empty list of op names, got {ops!r}.")
        ops = [canonical_op_name(op) for op in ops]
        if len(set(ops)) != len(ops):
            raise ValueError(f"`ops` has duplicates: {ops!r}.")
        self.ops = ops

    # -- decisions ----------------------------------------------------------------------
    def hp_names(self):
        """All hyperparameter names, in declaration order."""
        names = []
        for cell in CELL_TYPES:
            for k in range(self.nodes):
                for a in range(2):
                    names += [f"{cell}_node_{k}_input_{a}", f"{cell}_node_{k}_op_{a}"]
        return names

    def declare(self, hp):
        """Registers, per cell type, node and slot, the input and op choices on `hp`."""
        default_op = "sep_conv_3x3" if "sep_conv_3x3" in self.ops else self.ops[0]
        for cell in CELL_TYPES:
            for k in range(self.nodes):
                for a in range(2):
                    hp.Choice(f"{cell}_node_{k}_input_{a}", list(range(k + 2)), default=a)
                    hp.Choice(f"{cell}_node_{k}_op_{a}", self.ops, default=default_op)

    def genotype(self, values):
        """`{"normal": [(op, input), ...], "reduce": [...]}` of the decisions `values`."""
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of decisions, got {values!r}.")
        missing = [n for n in self.hp_names() if n not in values]
        if missing:
            raise ValueError(f"`values` lacks the decisions {missing}.")
        result = {}
        for cell in CELL_TYPES:
            pairs = []
            for k in range(self.nodes):
                for a in range(2):
                    op = values[f"{cell}_node_{k}_op_{a}"]
                    src = values[f"{cell}_node_{k}_input_{a}"]
                    if op not in self.ops:
                        raise ValueError(
                            f"`values`[{cell}_node_{k}_op_{a}]={op!r} is not one of {self.ops}."
                        )
                    integral = isinstance(src, numbers.Integral) and not isinstance(src, bool)
                    if not integral or not 0 <= src <= k + 1:
                        raise ValueError(
                            f"`values`[{cell}_node_{k}_input_{a}]={src!r} must be an integer "
                            f"in 0..{k + 1}."
                        )
                    pairs.append((op, int(src)))
            result[cell] = pairs
        return result

    def architecture_key(self, values):
        """The genotype with each node's two `(op, input)` pairs sorted, as a string.

        A node sums its two inputs, so swapping a node's slots builds the same network.

        Example: `space.architecture_key(values) == space.architecture_key(swapped)`.
        """
        genotype = self.genotype(values)
        cells = {cell: [sorted(pairs[k:k + 2]) for k in range(0, len(pairs), 2)]
                 for cell, pairs in genotype.items()}
        names = set(self.hp_names())
        rest = {k: v for k, v in values.items() if k not in names}
        return json.dumps([cells, rest], sort_keys=True, default=str)

    def encode(self, values):
        """Decisions -> genotype string `normal=...;reduce=...`."""
        genotype = self.genotype(values)
        return ";".join(f"{cell}={format_cell_genotype(genotype[cell])}" for cell in CELL_TYPES)

    def decode(self, arch_str):
        """Genotype string -> decisions; ValueError naming `arch_str` when malformed."""
        if not isinstance(arch_str, str):
            raise ValueError(f"`arch_str` must be a genotype string, got {arch_str!r}.")
        parts = {}
        for part in arch_str.strip().split(";"):
            key, sep, body = part.partition("=")
            key = key.strip()
            if not sep or key not in CELL_TYPES or key in parts:
                raise ValueError(
                    "`arch_str` must be 'normal=<cell>;reduce=<cell>', got part "
                    f"{part!r} in {arch_str!r}."
                )
            try:
                parts[key] = parse_cell_genotype(body)
            except ValueError as error:
                raise ValueError(f"`arch_str` {arch_str!r}: {error}") from None
        if set(parts) != set(CELL_TYPES):
            raise ValueError(f"`arch_str` needs both 'normal=' and 'reduce=' cells: {arch_str!r}.")
        values = {}
        for cell in CELL_TYPES:
            pairs = parts[cell]
            if len(pairs) != 2 * self.nodes:
                raise ValueError(
                    f"`arch_str` {cell} cell has {len(pairs) // 2} nodes; this space has "
                    f"{self.nodes} (in {arch_str!r})."
                )
            for n, (op, src) in enumerate(pairs):
                k, a = divmod(n, 2)
                values[f"{cell}_node_{k}_op_{a}"] = op
                values[f"{cell}_node_{k}_input_{a}"] = src
        try:
            self.genotype(values)
        except ValueError as error:
            raise ValueError(f"`arch_str` {arch_str!r}: {error}") from None
        return {n: values[n] for n in self.hp_names()}

    # -- network --------------------------------------------------------------------------
    def reduction_layers(self, size):
        """Indices of the reduction cells when the stem outputs `size` pixels (shorter side)."""
        positions = sorted({self.layers // 3, 2 * self.layers // 3})
        if self.layers < 3:
            positions = [p for p in positions if p < self.layers]
        allowed = int(math.floor(math.log2(size))) if size >= 1 else 0
        return positions[:allowed]

    def build_values(self, values):
        """The uncompiled DARTS network of the decisions `values` (checked first)."""
        self.genotype(values)
        return super().build_values(values)

    def build_network(self, choose):
        """The DARTS network, each node's two inputs and ops made by `choose`.

        Slot `a` of node `k` is `choose("{cell}_node_{k}_input_{a}", ...)` between the states it
        may read; each input's option holds `choose("{cell}_node_{k}_op_{a}", ...)` of the op on
        that state (a `NodeInput`), so in a supernet every slot has one op per (input, op) and
        every cell of a type shares the type's decisions.
        """
        self._check_configured()
        h, w, _ = self.input_shape
        inputs = keras.Input(self.input_shape)
        stem_channels = self.stem_multiplier * self.channels
        x, size = stem_downsampling(inputs, min(h, w), stem_channels, self.max_resolution)
        x = keras.layers.Conv2D(
            stem_channels, 3, padding="same", use_bias=False, name="stem_conv"
        )(x)
        x = batch_norm(name="stem_bn")(x)
        reductions = self.reduction_layers(size)
        s0 = s1 = x
        channels = self.channels
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                channels *= 2
            kind = "reduce" if reduction else "normal"
            preprocess = darts_preprocess(channels, reduction_prev)
            cell = DartsCell(
                self._cell_slots(choose, kind, channels, reduction, preprocess),
                channels,
                reduction=reduction,
                reduction_prev=reduction_prev,
                preprocess=preprocess,
                name=f"cell_{i}_{kind}",
            )
            s0, s1 = s1, cell([s0, s1])
            reduction_prev = reduction
        x = keras.layers.GlobalAveragePooling2D(name="pool")(s1)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")(x)
        return keras.Model(inputs, outputs, name="darts")

    def _cell_slots(self, choose, kind, channels, reduction, preprocess):
        """The two slots of every node of one cell: each the chosen input holding its op
        (and, for the cell's inputs, the cell's preprocessing of that input)."""
        def op_on(k, a, i):
            stride = 2 if reduction and i < 2 else 1
            return NodeInput(i, choose(f"{kind}_node_{k}_op_{a}", {
                op: (lambda op=op: get_op(op, channels, stride)) for op in self.ops
            }), preprocess=preprocess[i] if i < 2 else None)

        return [
            choose(f"{kind}_node_{k}_input_{a}", {
                i: (lambda i=i, k=k, a=a: op_on(k, a, i)) for i in range(k + 2)
            })
            for k in range(self.nodes)
            for a in range(2)
        ]
