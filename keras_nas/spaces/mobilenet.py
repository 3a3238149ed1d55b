"""A macro search space over MobileNetV2-style networks of `MBConv` blocks."""

import math
import numbers

import keras

from keras_nas.layers import MBConv
from keras_nas.layers._utils import batch_norm
from keras_nas.validation import check_positive_int
from keras_nas.spaces.base import Space

MOBILENETV2_STAGES = (
    (16, 1, 1),
    (24, 2, 2),
    (32, 3, 2),
    (64, 4, 2),
    (96, 3, 1),
    (160, 3, 2),
    (320, 1, 1),
)
"""MobileNetV2's stages as `(filters, max_depth, stride)`: depth searched in 1..max_depth."""


def make_divisible(value, divisor=8):
    """Rounds channels to a multiple of `divisor`, never below 90% of `value` (MobileNetV2)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _width_str(width):
    return repr(float(width))


class MobileNetSpace(Space):
    """Macro search over MobileNetV2-style stages of inverted-residual blocks (`MBConv`).

    Network: stem 3x3 conv (`stem_channels`) + BN + ReLU6; per stage `s`, `depth_s` MBConv
    blocks at `filters_s` (the first carries the stage's stride); 1x1 conv to
    `head_channels` + BN + ReLU6; global average pooling; dropout; dense softmax. All
    channel counts are scaled by the width multiplier and rounded to multiples of 8
    (`head_channels` only scales up, as in MobileNetV2).

    Decisions (KerasTuner hyperparameters):
    - `width_multiplier`: `Choice` over `width_multipliers`;
    - `stage_{s}_depth`: `Choice` over `1 .. max_depth` of stage `s`;
    - `stage_{s}_block_{b}_kernel` (`kernel_sizes`) and `stage_{s}_block_{b}_expansion`
      (`expansions`), conditional on `stage_{s}_depth > b` (KerasTuner conditional scopes;
      `values_of` keeps only active ones).

    Strides from the input size: the stride-2 positions are the stem and the stages of
    stride 2 (five for MobileNetV2). With `n = floor(log2(min(H, W) / 4))` clipped to
    `0 .. positions`, only the last `n` positions keep stride 2, so the final feature map
    stays >= 4 pixels when it can: 224x224 uses all five (7x7 at the end, as MobileNetV2),
    32x32 three (stem and the first stride-2 stage run at stride 1), 8x8 one.

    Architecture strings: `w<width>` then one field per stage, separated by `|`; a stage
    lists its blocks as `k<kernel>e<expansion>` separated by `-` (the depth is their count),
    e.g. `w0.75|k3e6|k5e3-k3e6|k7e6-k3e3-k3e3`.

    Args:
        input_shape: `(height, width, channels)` of one example (or set later by `configure`).
        num_classes: number of classes (or set later).
        stages: sequence of `(filters, max_depth, stride)` (default MobileNetV2's).
        width_multipliers: candidate width multipliers.
        kernel_sizes: candidate depthwise kernel sizes.
        expansions: candidate expansion ratios.
        stem_channels: channels of the stem convolution (before the width multiplier).
        head_channels: channels of the last 1x1 convolution (0 to leave it out).
        se_ratio: squeeze-excitation ratio of every block (0: none, as MobileNetV2).
        dropout: dropout rate before the classifier.
        learning_rate: Adam learning rate of `compile_model`.
        name: optional name.

    Example:

    ```python
    space = MobileNetSpace(input_shape=(8, 8, 1), num_classes=10,
                           stages=((16, 1, 1), (24, 2, 2)), head_channels=64)
    model = space.build_architecture("w0.5|k3e3|k5e6-k7e3")
    ```
    """

    def __init__(
        self,
        input_shape=None,
        num_classes=None,
        stages=MOBILENETV2_STAGES,
        width_multipliers=(0.5, 0.75, 1.0),
        kernel_sizes=(3, 5, 7),
        expansions=(3, 6),
        stem_channels=32,
        head_channels=1280,
        se_ratio=0.0,
        dropout=0.2,
        learning_rate=1e-3,
        name=None,
    ):
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            learning_rate=learning_rate,
            name=name,
        )
        if isinstance(stages, str) or not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(
                "`stages` must be a non-empty list of (filters, max_depth, stride), "
                f"got {stages!r}."
            )
        checked = []
        for stage in stages:
            if not isinstance(stage, (list, tuple)) or len(stage) != 3:
                raise ValueError(
                    f"`stages` entries must be (filters, max_depth, stride), got {stage!r}."
                )
            filters, depth, stride = stage
            if stride not in (1, 2) or isinstance(stride, bool):
                raise ValueError(f"`stages` strides must be 1 or 2, got {stage!r}.")
            checked.append(
                (
                    check_positive_int(filters, "stages filters"),
                    check_positive_int(depth, "stages max_depth"),
                    int(stride),
                )
            )
        self.stages = tuple(checked)
        self.width_multipliers = self._check_choices(
            width_multipliers, "width_multipliers", numbers.Real, float
        )
        if min(self.width_multipliers) <= 0:
            raise ValueError(
                f"`width_multipliers` must be positive, got {width_multipliers!r}."
            )
        self.kernel_sizes = self._check_choices(kernel_sizes, "kernel_sizes", numbers.Integral, int)
        if any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"`kernel_sizes` must be odd and positive, got {kernel_sizes!r}.")
        self.expansions = self._check_choices(expansions, "expansions", numbers.Integral, int)
        if min(self.expansions) < 1:
            raise ValueError(f"`expansions` must be integers >= 1, got {expansions!r}.")
        self.stem_channels = check_positive_int(stem_channels, "stem_channels")
        self.head_channels = check_positive_int(head_channels, "head_channels", minimum=0)
        if not isinstance(se_ratio, numbers.Real) or not 0 <= se_ratio <= 1:
            raise ValueError(f"`se_ratio` must be a number in [0, 1], got {se_ratio!r}.")
        self.se_ratio = float(se_ratio)
        if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be a number in [0, 1), got {dropout!r}.")
        self.dropout = float(dropout)

    @staticmethod
    def _check_choices(values, name, kind, cast):
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"`{name}` must be a non-empty list, got {values!r}.")
        if any(isinstance(v, bool) or not isinstance(v, kind) for v in values):
            raise ValueError(f"`{name}` must hold numbers of type {kind.__name__}, got {values!r}.")
        values = [cast(v) for v in values]
        if len(set(values)) != len(values):
            raise ValueError(f"`{name}` has duplicates: {values!r}.")
        return values

    # -- decisions ----------------------------------------------------------------------
    def declare(self, hp):
        """Registers width, per-stage depth and (conditional) per-block kernel and expansion."""
        hp.Choice("width_multiplier", self.width_multipliers, default=max(self.width_multipliers))
        for s, (_, max_depth, _) in enumerate(self.stages):
            depths = list(range(1, max_depth + 1))
            depth_name = f"stage_{s}_depth"
            hp.Choice(depth_name, depths, default=max_depth)
            for b in range(max_depth):
                active = [d for d in depths if d > b]
                with hp.conditional_scope(depth_name, active):
                    hp.Choice(
                        f"stage_{s}_block_{b}_kernel",
                        self.kernel_sizes,
                        default=self.kernel_sizes[0],
                    )
                    hp.Choice(
                        f"stage_{s}_block_{b}_expansion",
                        self.expansions,
                        default=max(self.expansions),
                    )

    def blocks(self, values):
        """`(width, [[(kernel, expansion), ...] per stage])` of the decisions `values`."""
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of decisions, got {values!r}.")

        def get(key):
            if key not in values:
                raise ValueError(f"`values` lacks the decision {key!r}.")
            return values[key]

        width = get("width_multiplier")
        widths = self.width_multipliers
        if not isinstance(width, numbers.Real) or not any(math.isclose(width, w) for w in widths):
            raise ValueError(
                f"`values`['width_multiplier']={width!r} is not one of {self.width_multipliers}."
            )
        width = next(w for w in self.width_multipliers if math.isclose(width, w))
        stages = []
        for s, (_, max_depth, _) in enumerate(self.stages):
            depth = get(f"stage_{s}_depth")
            if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or not (
                1 <= depth <= max_depth
            ):
                raise ValueError(
                    f"`values`['stage_{s}_depth']={depth!r} must be an integer in 1..{max_depth}."
                )
            blocks = []
            for b in range(int(depth)):
                kernel = get(f"stage_{s}_block_{b}_kernel")
                expansion = get(f"stage_{s}_block_{b}_expansion")
                if kernel not in self.kernel_sizes:
                    raise ValueError(
                        f"`values`['stage_{s}_block_{b}_kernel']={kernel!r} is not one of "
                        f"{self.kernel_sizes}."
                    )
                if expansion not in self.expansions:
                    raise ValueError(
                        f"`values`['stage_{s}_block_{b}_expansion']={expansion!r} is not one of "
                        f"{self.expansions}."
                    )
                blocks.append((int(kernel), int(expansion)))
            stages.append(blocks)
        return width, stages

    def encode(self, values):
        """Decisions -> `w<width>|k<k>e<e>-...|...` (inactive decisions are ignored)."""
        width, stages = self.blocks(values)
        fields = ["w" + _width_str(width)]
        fields += ["-".join(f"k{k}e{e}" for k, e in blocks) for blocks in stages]
        return "|".join(fields)

    def decode(self, arch_str):
        """Architecture string -> the active decisions; ValueError naming `arch_str` if bad."""
        if not isinstance(arch_str, str):
            raise ValueError(f"`arch_str` must be a string, got {arch_str!r}.")
        fields = arch_str.strip().split("|")
        if len(fields) != len(self.stages) + 1:
            raise ValueError(
                f"`arch_str` must have a width field and {len(self.stages)} stage fields "
                f"separated by '|', got {len(fields)} fields in {arch_str!r}."
            )
        head = fields[0]
        try:
            width = float(head[1:]) if head.startswith("w") else None
        except ValueError:
            width = None
        if width is None:
            raise ValueError(
                f"`arch_str` must start with 'w<width>', got {head!r} in {arch_str!r}."
            )
        values = {"width_multiplier": width}
        for s, field in enumerate(fields[1:]):
            blocks = field.split("-") if field else []
            values[f"stage_{s}_depth"] = len(blocks)
            for b, block in enumerate(blocks):
                kernel, sep, expansion = block.partition("e")
                well_formed = kernel.startswith("k") and kernel[1:].isdigit()
                if not (well_formed and sep and expansion.isdigit()):
                    raise ValueError(
                        f"`arch_str` block {block!r} of stage {s} must look like 'k3e6' "
                        f"(in {arch_str!r})."
                    )
                values[f"stage_{s}_block_{b}_kernel"] = int(kernel[1:])
                values[f"stage_{s}_block_{b}_expansion"] = int(expansion)
        try:
            width, _ = self.blocks(values)
        except ValueError as error:
            raise ValueError(f"`arch_str` {arch_str!r}: {error}") from None
        values["width_multiplier"] = width
        return values

    # -- network --------------------------------------------------------------------------
    def strides_for(self, size):
        """`(stem_stride, [stride per stage])` for inputs whose shorter side is `size`."""
        positions = ["stem"] + [s for s, (_, _, stride) in enumerate(self.stages) if stride == 2]
        n = int(math.floor(math.log2(size / 4))) if size >= 8 else 0
        n = max(0, min(len(positions), n))
        keep = set(positions[len(positions) - n :])
        stem = 2 if "stem" in keep else 1
        return stem, [2 if s in keep else 1 for s in range(len(self.stages))]

    def build_network(self, choose):
        """The uncompiled network, each decision made by `choose(name, options)`.

        The width multiplier chooses between whole networks (it changes every channel
        count, so each width has its own weights); in a stage, each block past the first is
        a `stage_{s}_depth` choice between the block (every depth that reaches it runs the
        same block, `keras_nas.spaces.choices.shared`) and an identity; a block's kernel
        option holds its expansion choice. `build_values` passes `FixedChoices` (one
        architecture; skipped blocks are `Identity` layers named `stage_{s}_block_{b}_skipped`),
        `keras_nas.oneshot.build_supernet` its weight-sharing chooser.
        """
        self._check_configured()
        return choose("width_multiplier", {
            width: (lambda width=width: self._network(width, choose))
            for width in self.width_multipliers
        })

    def _network(self, width, choose):
        from keras_nas.spaces.choices import shared

        h, w, _ = self.input_shape
        stem_stride, stage_strides = self.strides_for(min(h, w))
        inputs = keras.Input(self.input_shape)
        x = keras.layers.Conv2D(
            make_divisible(self.stem_channels * width),
            3,
            strides=stem_stride,
            padding="same",
            use_bias=False,
            name="stem_conv",
        )(inputs)
        x = batch_norm(name="stem_bn")(x)
        x = keras.layers.ReLU(6.0, name="stem_relu")(x)
        for s, (filters, max_depth, _) in enumerate(self.stages):
            for b in range(max_depth):
                name = f"stage_{s}_block_{b}"
                block = shared(lambda name=name, b=b, s=s, filters=filters: self._block(
                    choose, name, make_divisible(filters * width),
                    stage_strides[s] if b == 0 else 1))
                if b == 0:
                    x = block()(x)
                    continue
                skip = shared(lambda name=name: keras.layers.Identity(name=f"{name}_skipped"))
                x = choose(f"stage_{s}_depth", {
                    depth: block if depth > b else skip for depth in range(1, max_depth + 1)
                })(x)
        if self.head_channels:
            x = keras.layers.Conv2D(
                make_divisible(self.head_channels * max(1.0, width)),
                1,
                use_bias=False,
                name="head_conv",
            )(x)
            x = batch_norm(name="head_bn")(x)
            x = keras.layers.ReLU(6.0, name="head_relu")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="dropout")(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")(x)
        return keras.Model(inputs, outputs, name="mobilenet")

    def _block(self, choose, name, filters, strides):
        """Block `name`: its kernel option holds the choice of its expansion."""
        return choose(f"{name}_kernel", {
            kernel: (lambda kernel=kernel: choose(f"{name}_expansion", {
                expansion: (lambda expansion=expansion: MBConv(
                    filters, kernel_size=kernel, expansion=expansion, strides=strides,
                    se_ratio=self.se_ratio, name=name))
                for expansion in self.expansions
            }))
            for kernel in self.kernel_sizes
        })

    def latency_blocks(self, values):
        """The `BlockSpec`s of the network of `values`, in order: stem, each MBConv, head.

        Follows `build_network` above (strides from the input size, widths rounded with
        `make_divisible`); the head is the 1x1 conv, pooling and classifier. For
        `keras_nas.hardware.LatencyPredictor`.
        """
        from keras_nas.hardware.predictor import BlockSpec

        self._check_configured()
        width, stages = self.blocks(values)
        h, w, c = self.input_shape
        stem_stride, stage_strides = self.strides_for(min(h, w))
        specs = [BlockSpec("stem", (h, w, c), make_divisible(self.stem_channels * width),
                           kernel=3, stride=stem_stride)]
        shape = specs[-1].output_shape
        for s, ((filters, _, _), blocks) in enumerate(zip(self.stages, stages)):
            for b, (kernel, expansion) in enumerate(blocks):
                spec = BlockSpec("mbconv", shape, make_divisible(filters * width), kernel=kernel,
                                 expansion=expansion, stride=stage_strides[s] if b == 0 else 1,
                                 se_ratio=self.se_ratio)
                specs.append(spec)
                shape = spec.output_shape
        head = make_divisible(self.head_channels * max(1.0, width)) if self.head_channels else 0
        specs.append(BlockSpec("head", shape, head, num_classes=self.num_classes))
        return specs
