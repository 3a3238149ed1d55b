"""Weight-sharing supernets: every architecture of a space is a path through one network.

A `Supernet` is a `keras.Model` with one decision per categorical hyperparameter of its space
(e.g. the six edges of a NAS-Bench-201 cell). Each decision is made by `MixedOp` layers and has
one architecture-weight vector `alpha` shared by all cells (as DARTS on NAS-Bench-201 does).
`alpha` is created with `trainable=False`, so it is never in `trainable_weights`: the network's
optimizer only sees network weights, and one-shot searches update `arch_variables` with their own.

`net(x, path=None)` runs the relaxed network (`softmax(alpha)`-weighted sums, or Gumbel samples
in `"gumbel"` mode); `net(x, path=p)` runs only the ops of path `p` (a list of option indices, one
per decision, or an int tensor of that shape, which one traced function accepts for every path).
"""

import keras
import keras_tuner
import numpy as np
from keras import ops

from keras_nas.layers.mixed_op import MixedOp
from keras_nas.oracles.controller import softmax


def _categorical_decisions(space):
    """`[(name, options)]` of the space's categorical decisions, in declaration order."""
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    decisions = []
    for p in hp.space:
        values = getattr(p, "values", None)
        if values is None:
            raise ValueError(
                f"{type(space).__name__} has the non-categorical hyperparameter {p.name!r}: "
                "one-shot searches need every decision to be a `Choice`."
            )
        if len(values) > 1:
            decisions.append((p.name, list(values)))
    if not decisions:
        raise ValueError(f"{type(space).__name__} declares no decision with two or more options.")
    return decisions


class Supernet(keras.Model):
    """Base class of supernets. Subclasses build layers and implement `forward`.

    Args:
        decisions: list of `(name, options)`, one per architecture decision.
        mode: `"softmax"` (DARTS) or `"gumbel"` (GDAS) for the relaxed forward pass.
        temperature: Gumbel-softmax temperature.
        seed: seed of the `alpha` initializer and the Gumbel noise.

    Subclasses call `self.mixed(index, x)` for the `MixedOp`s of decision `index` (made with
    `self.make_mixed(index, candidates)`), and may add `self.aux_skip_beta * x` where an
    auxiliary skip connection belongs (DARTS-); `beta` is 0 unless a search sets it.
    """

    def __init__(self, decisions, mode="softmax", temperature=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("softmax", "gumbel"):
            raise ValueError(f"`mode` must be 'softmax' or 'gumbel', got {mode!r}.")
        self.decisions = [(str(n), list(o)) for n, o in decisions]
        self.mode = mode
        self.temperature = float(temperature)
        self.seed = seed
        self._mixed_ops = [[] for _ in self.decisions]
        self.alphas = [
            self.add_weight(
                shape=(len(options),),
                initializer=keras.initializers.RandomNormal(
                    stddev=1e-3, seed=None if seed is None else int(seed) + i
                ),
                trainable=False,
                name=f"alpha_{name}",
            )
            for i, (name, options) in enumerate(self.decisions)
        ]
        self.aux_skip_beta = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="aux_skip_beta"
        )
        self._set_path(None)

    def _set_path(self, path):
        # Bypasses Keras attribute tracking: the path is transient call state.
        object.__setattr__(self, "_path", path)

    # -- decisions ----------------------------------------------------------------------
    @property
    def decision_names(self):
        return [n for n, _ in self.decisions]

    @property
    def num_options(self):
        return [len(o) for _, o in self.decisions]

    @property
    def arch_variables(self):
        """The architecture weights (one `alpha` per decision); never in `trainable_weights`."""
        return list(self.alphas)

    @property
    def weight_variables(self):
        """The network weights a training step updates (`trainable_weights`; no `alpha`)."""
        return list(self.trainable_weights)

    def values_of(self, path):
        """The hyperparameter values `{name: option}` of a path (list of option indices)."""
        path = [int(i) for i in path]
        if len(path) != len(self.decisions):
            raise ValueError(f"`path` must have {len(self.decisions)} entries, got {len(path)}.")
        return {name: options[i] for (name, options), i in zip(self.decisions, path)}

    def path_of(self, values):
        """The path (list of option indices) of hyperparameter values `{name: option}`."""
        path = []
        for name, options in self.decisions:
            if name not in values:
                raise ValueError(f"`values` lacks the decision {name!r}.")
            if values[name] not in options:
                raise ValueError(f"{values[name]!r} is not an option of {name!r}: {options}.")
            path.append(options.index(values[name]))
        return path

    def canonical_path(self, path):
        """The same architecture's path with decisions that do not change it set to option 0.

        Two paths of one architecture (e.g. differing only in the kernel of a block past the
        stage's depth) have one canonical path, so a search scores the architecture once.
        """
        return self.path_of(self.values_of(path))

    def probabilities(self):
        """`softmax(alpha)` of each decision, as numpy arrays."""
        return [
            softmax(keras.ops.convert_to_numpy(a).astype(np.float64)) for a in self.alphas
        ]

    def derive(self, exclude=("none",)):
        """The discrete path of the strongest option of each decision, ignoring `exclude`."""
        path = []
        for (name, options), p in zip(self.decisions, self.probabilities()):
            order = np.argsort(-p, kind="stable")
            choice = next((int(i) for i in order if options[int(i)] not in exclude), int(order[0]))
            path.append(choice)
        return path

    def random_path(self, rng):
        """A path drawn uniformly per decision with the numpy `Generator` `rng`."""
        return [int(rng.integers(n)) for n in self.num_options]

    # -- forward ------------------------------------------------------------------------
    def make_mixed(self, index, candidates, name=None):
        """A `MixedOp` over `candidates` for decision `index` (sharing its `alpha`)."""
        op = MixedOp(
            candidates,
            mode=self.mode,
            temperature=self.temperature,
            names=[str(o) for o in self.decisions[index][1]],
            shared_alpha=True,
            seed=self.seed,
            name=name,
        )
        self._mixed_ops[index].append(op)
        return op

    def mixed(self, index, op, x, training=None):
        """Runs MixedOp `op` of decision `index` on the current path or relaxation."""
        if self._path is not None:
            return op(x, training=training, active=self._path[index])
        return op(x, training=training, alpha=self.alphas[index])

    def set_temperature(self, temperature):
        """Sets the Gumbel temperature of every MixedOp (used by `"gumbel"` mode)."""
        self.temperature = float(temperature)
        for group in self._mixed_ops:
            for op in group:
                op.temperature = self.temperature

    def call(self, inputs, training=None, path=None):
        if path is not None and not isinstance(path, (list, tuple)):
            path = [path[i] for i in range(len(self.decisions))]
        elif path is not None:
            if len(path) != len(self.decisions):
                raise ValueError(
                    f"`path` must have {len(self.decisions)} entries, got {len(path)}."
                )
            path = [int(i) for i in path]
        self._set_path(path)
        try:
            return self.forward(inputs, training=training)
        finally:
            self._set_path(None)

    def forward(self, inputs, training=None):
        raise NotImplementedError


# -- NAS-Bench-201 ---------------------------------------------------------------------------

EDGES_201 = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


class NASBench201Supernet(Supernet):
    """The NAS-Bench-201 macro network with a `MixedOp` on each of the 6 cell edges.

    Stem (3x3 conv, BN), three stages of `cells_per_stage` cells at `channels`, 2x and 4x
    channels, separated by residual reduction blocks, then BN-ReLU, global pooling and a
    softmax classifier (Dong & Yang, ICLR 2020). Every cell shares one `alpha` per edge.

    Args:
        space: a `NASBench201Space` (its `channels`, `cells_per_stage`, `input_shape`,
            `num_classes` and edge options are used).
        mode, temperature, seed: see `Supernet`.
    """

    def __init__(self, space, mode="softmax", temperature=1.0, seed=None, **kwargs):
        decisions = _categorical_decisions(space)
        super().__init__(decisions, mode=mode, temperature=temperature, seed=seed, **kwargs)
        from keras_nas.layers.ops import get_op

        space._check_configured()
        self.space_input_shape = tuple(space.input_shape)
        self.edge_index = {}
        for k, name in enumerate(self.decision_names):
            i, j = (int(t) for t in name.split("_")[1:3])
            self.edge_index[(i, j)] = k
        if sorted(self.edge_index) != sorted(EDGES_201):
            raise ValueError(f"{type(space).__name__} does not declare the 6 NAS-Bench-201 edges.")
        c = int(space.channels)
        n = int(space.cells_per_stage)
        self.space = space
        self.order = [self.edge_index[e] for e in EDGES_201]
        self.stem, size = build_201_stem(space)
        self.stages = []
        self.reductions = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                # As NASBench201Space: a 1-pixel map is not reduced further.
                stride = 2 if size >= 2 else 1
                self.reductions.append(build_201_reduction(space, width, stride))
                size = -(-size // stride)
            cells = []
            for _ in range(n):
                # One MixedOp per edge, in EDGES_201 order.
                cells.append(
                    [
                        self.make_mixed(k, [get_op(op, width, 1) for op in decisions[k][1]])
                        for k in self.order
                    ]
                )
            self.stages.append(cells)
        self.head = build_201_head(space)
        self.build((None,) + self.space_input_shape)

    def to_standalone(self, path):
        """The stand-alone network of `path` (built by the space) with this supernet's weights.

        Every weight of the returned model (uncompiled, as `space.build_values`) is copied
        from the supernet: stem, reduction blocks, head, and on each edge the weights of the
        op the path chose.
        """
        path = [int(i) for i in path]
        values = self.values_of(path)
        model = self.space.build_values(values)
        by_name = {layer.name: layer for layer in model.layers}
        _copy(self.stem.weights, stem_weights(model, ("reduction_", "stage_")), "stem")
        for r, block in enumerate(self.reductions, start=1):
            _copy(block.weights, by_name[f"reduction_{r}"].weights, f"reduction_{r}")
        for stage, cells in enumerate(self.stages):
            for n, cell in enumerate(cells):
                target = by_name[f"stage_{stage}_cell_{n}"]
                for k, layer in zip(target._active, target.edge_layers):
                    chosen = cell[k].candidates[path[self.order[k]]]
                    _copy(chosen.weights, layer.weights, f"stage_{stage}_cell_{n} edge {k}")
        head = [w for name in ("head_bn", "classifier") for w in by_name[name].weights]
        _copy(self.head.weights, head, "head")
        return model

    def build(self, input_shape):
        x = keras.KerasTensor(tuple(input_shape))
        self._set_path([0] * len(self.decisions))
        try:
            self.forward(x)
        finally:
            self._set_path(None)
        self.built = True

    def forward(self, inputs, training=None):
        x = self.stem(inputs, training=training)
        for stage, cells in enumerate(self.stages):
            if stage > 0:
                x = self.reductions[stage - 1](x, training=training)
            for cell in cells:
                nodes = [x]
                for j in range(1, 4):
                    total = None
                    for e, (i, jj) in enumerate(EDGES_201):
                        if jj != j:
                            continue
                        y = self.mixed(self.order[e], cell[e], nodes[i], training=training)
                        total = y if total is None else total + y
                    nodes.append(total)
                x = nodes[3] + ops.multiply(self.aux_skip_beta, nodes[0])
        return self.head(x, training=training)


def build_201_stem(space):
    """The space's stem as a functional sub-model, and the spatial size after it."""
    from keras_nas.layers._utils import batch_norm
    from keras_nas.spaces.base import stem_downsampling

    h, w, _ = space.input_shape
    inputs = keras.Input(space.input_shape)
    x, size = stem_downsampling(inputs, min(h, w), space.channels, space.max_resolution)
    x = keras.layers.Conv2D(space.channels, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return keras.Model(inputs, x, name="stem"), size


def stem_weights(model, body_prefixes):
    """The weights of a stand-alone model's layers after its input and before the first layer
    whose name starts with one of `body_prefixes` (its stem), in order."""
    weights = []
    for layer in model.layers[1:]:
        if layer.name.startswith(tuple(body_prefixes)):
            break
        weights.extend(layer.weights)
    return weights


def _copy(source, target, where):
    if len(source) != len(target):
        raise ValueError(
            f"Supernet and stand-alone network differ at {where}: "
            f"{len(source)} weights against {len(target)}."
        )
    for s, t in zip(source, target):
        if tuple(s.shape) != tuple(t.shape):
            raise ValueError(f"Weight shapes differ at {where}: {s.shape} against {t.shape}.")
        t.assign(s)


def build_201_head(space):
    from keras_nas.layers._utils import batch_norm

    return keras.Sequential(
        [
            batch_norm(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(space.num_classes, activation="softmax"),
        ]
    )


def build_201_reduction(space, width, stride=2):
    from keras_nas.layers.cell import ResNetBasicBlock

    return ResNetBasicBlock(width, stride=stride)


# -- building and utilities ------------------------------------------------------------------

SUPERNETS = {"NASBench201Space": NASBench201Supernet}
"""Space class name -> supernet class, for spaces that do not define `build_supernet`
(`DartsSupernet` and `MobileNetSupernet` add themselves when their modules are imported,
which `import keras_nas.oneshot` does)."""


def build_supernet(space, mode="softmax", temperature=1.0, seed=None):
    """The weight-sharing supernet of a search space.

    A space may provide its own with a `build_supernet(mode=, temperature=, seed=)` method;
    otherwise the class registered in `SUPERNETS` under the space's class name is used.

    Args:
        space: a configured `keras_nas.spaces.Space` (input shape and classes set).
        mode: `"softmax"` (DARTS) or `"gumbel"` (GDAS).
        temperature: initial Gumbel temperature.
        seed: seed of the architecture-weight initializer and Gumbel noise.

    Example:

    ```python
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8, cells_per_stage=1)
    net = build_supernet(space)
    probs = net(x)                 # relaxed
    probs = net(x, path=[3] * 6)   # one architecture
    ```
    """
    if hasattr(space, "build_supernet"):
        return space.build_supernet(mode=mode, temperature=temperature, seed=seed)
    for cls in type(space).__mro__:
        if cls.__name__ in SUPERNETS:
            return SUPERNETS[cls.__name__](space, mode=mode, temperature=temperature, seed=seed)
    raise TypeError(
        f"No supernet is known for `space` of type {type(space).__name__}: give the space a "
        f"`build_supernet()` method or register a Supernet class in SUPERNETS "
        f"(known: {sorted(SUPERNETS)})."
    )


def arch_variables(model):
    """All architecture weights of a model: its supernet `alpha`s and MixedOps' own `alpha`."""
    found = []
    seen = set()
    if isinstance(model, Supernet):
        for v in model.arch_variables:
            found.append(v)
            seen.add(id(v))
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, MixedOp):
            for v in layer.arch_variables:
                if id(v) not in seen:
                    found.append(v)
                    seen.add(id(v))
    return found


def recalibrate_batch_norm(model, batches, **call_kwargs):
    """Re-estimates every BatchNormalization layer's moving statistics from `batches`.

    The moving mean and variance are reset and set to the average of the per-batch
    statistics of the given batches (momentum `(k-1)/k` at batch `k`), as SPOS does before
    evaluating a subnet whose BN statistics were shared with other paths (Guo et al. 2020).

    Args:
        model: a Keras model.
        batches: iterable of input batches (arrays).
        **call_kwargs: passed to `model(x, training=True, **call_kwargs)` (e.g. `path=`).
    """
    bns = [
        layer
        for layer in model._flatten_layers(include_self=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.moving_mean.assign(ops.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(ops.ones_like(bn.moving_variance))
    try:
        for k, x in enumerate(batches, start=1):
            for bn in bns:
                bn.momentum = (k - 1) / k
            model(x, training=True, **call_kwargs)
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
