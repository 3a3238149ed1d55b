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

import math
import numbers
import weakref

import keras
import keras_tuner
import numpy as np
from keras import ops

from keras_nas import compat
from keras_nas.layers.mixed_op import MixedOp
from keras_nas.oracles.controller import softmax
from keras_nas.spaces.choices import check_options, decision_options, make_layer


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
    def num_candidate_layers(self):
        """How many candidate layers the decisions' `MixedOp`s hold in all: the branches a
        function traced for every path holds (NAS-Bench-201 with one cell per stage: 90; the
        default DARTS space: 1,260)."""
        return sum(op.num_candidates for group in self._mixed_ops for op in group)

    @property
    def arch_variables(self):
        """The architecture weights (one `alpha` per decision); never in `trainable_weights`."""
        return list(self.alphas)

    @property
    def weight_variables(self):
        """The network weights a training step updates (`trainable_weights`; no `alpha`)."""
        return list(self.trainable_weights)

    def _check_path(self, path):
        """`path` as a list of ints, or a `ValueError` naming what is wrong with it."""
        if isinstance(path, (str, bytes)) or not hasattr(path, "__len__"):
            raise ValueError(f"`path` must be a list of option indices, got {path!r}.")
        if len(path) != len(self.decisions):
            raise ValueError(f"`path` must have {len(self.decisions)} entries, got {len(path)}.")
        path = [int(i) for i in path]
        for (name, options), i in zip(self.decisions, path):
            if not 0 <= i < len(options):
                raise ValueError(
                    f"`path` index {i} for {name!r} is out of range [0, {len(options)})."
                )
        return path

    def values_of(self, path):
        """The hyperparameter values `{name: option}` of a path (list of option indices)."""
        path = self._check_path(path)
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
            path = self._check_path(path)
        self._set_path(path)
        try:
            return self.forward(inputs, training=training)
        finally:
            self._set_path(None)

    def forward(self, inputs, training=None):
        raise NotImplementedError


# -- the supernet of any space with `build_network(choose)` ----------------------------------

class ChoiceSite(MixedOp):
    """One `choose(name, options)` call of a space's network inside a `ChoiceSupernet`.

    A `MixedOp` over the options' layers that runs what its supernet's current call asks
    for: the path's option (`net(x, path=...)`) or the relaxation with the decision's shared
    `alpha`. Where its output has its input's shape it adds `aux_skip_beta * input` (the
    auxiliary skip connection of DARTS-, 0 unless a search sets it).
    """

    def attach(self, supernet, index):
        # Plain attributes, not tracked: the supernet owns this layer, not the other way round.
        object.__setattr__(self, "_supernet", weakref.ref(supernet))
        object.__setattr__(self, "decision_index", int(index))
        return self

    def call(self, inputs, training=None):
        net = self._supernet()
        path = net._path
        if path is not None:
            y = self._single(inputs, path[self.decision_index], training)
        else:
            y = super().call(inputs, training=training, alpha=net.alphas[self.decision_index])
        if not isinstance(inputs, (list, tuple)) and tuple(y.shape) == tuple(inputs.shape):
            y = y + ops.multiply(ops.cast(net.aux_skip_beta, y.dtype), inputs)
        return y

class ChoiceSupernet(Supernet):
    """The supernet of a space that implements `build_network(choose)`.

    The space's own network code builds it: each `choose(name, options)` becomes a
    `ChoiceSite` over all of the options' layers, and the sites of one decision share its
    `alpha` (the same edge of every cell is one decision). `to_standalone(path)` builds the
    space's network of that path and gives it this supernet's weights, which is how
    `keras_nas.testing.check_supernet` shows that a path computes what the architecture does.

    Args:
        space: a configured `Space` with `build_network`.
        mode, temperature, seed: see `Supernet`.

    Example:

    ```python
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=8, cells_per_stage=1)
    net = ChoiceSupernet(space, seed=0)
    probs = net(x, path=[3] * 6)
    ```
    """

    def __init__(self, space, mode="softmax", temperature=1.0, seed=None, **kwargs):
        if not space.has_network_builder():
            raise TypeError(
                f"{type(space).__name__} has no `build_network(choose)`, so no supernet can be "
                "derived from it: write its network once with `choose` (see docs/spaces.md)."
            )
        space._check_configured()
        every = decision_options(space)
        decisions = [(n, o) for n, o in every if len(o) > 1]
        if not decisions:
            raise ValueError(
                f"{type(space).__name__} declares no decision with two or more options."
            )
        super().__init__(decisions, mode=mode, temperature=temperature, seed=seed, **kwargs)
        self.space = space
        self._fixed = {n: o[0] for n, o in every if len(o) == 1}
        self._index = {n: k for k, (n, _) in enumerate(self.decisions)}
        self._sites = []
        self.network = space.build_network(self._choose)
        unused = [n for n, group in zip(self.decision_names, self._mixed_ops) if not group]
        if unused:
            raise ValueError(
                f"{type(space).__name__} declares {unused} but its `build_network` never "
                "calls `choose` for them, so a supernet cannot run their options."
            )
        if not self.network.built:  # a network that is one choice (e.g. of widths)
            self.network.build((None,) + tuple(space.input_shape))
        self._position = {id(s): n for n, s in enumerate(self._sites)}
        within = {  # every site inside each site's options, at any depth
            id(site): {id(s) for c in site.candidates for s in compat.all_layers(c, include_self=True)
                       if isinstance(s, ChoiceSite)}
            for site in self._sites
        }
        self._inner_sites = [  # per option, the sites directly inside it (not in a deeper one)
            [[i for i in ids if not any(i in within[j] for j in ids)]
             for ids in ([id(s) for s in compat.all_layers(c, include_self=True) if isinstance(s, ChoiceSite)]
                         for c in site.candidates)]
            for site in self._sites
        ]
        self._nested = {self._position[i] for inner in self._inner_sites
                        for ids in inner for i in ids}
        self.built = True

    def _choose(self, name, options):
        options = check_options(name, options)
        if name in self._fixed:
            return make_layer(name, self._fixed[name], options[self._fixed[name]])
        if name not in self._index:
            raise ValueError(
                f"{type(self.space).__name__}.build_network calls choose({name!r}, ...), but "
                f"the space declares no such decision (it declares {self.decision_names})."
            )
        k = self._index[name]
        declared = self.decisions[k][1]
        if len(options) != len(declared) or any(v not in options for v in declared):
            raise ValueError(
                f"choose({name!r}, ...) gives the options {list(options)}, but the space "
                f"declares {declared} for it."
            )
        layers, option_candidates = [], []
        for v in declared:  # options whose factories give one layer (`shared`) run it once
            layer = make_layer(name, v, options[v])
            if not any(layer is seen for seen in layers):
                layers.append(layer)
            option_candidates.append(next(i for i, seen in enumerate(layers) if seen is layer))
        site = ChoiceSite(
            layers,
            mode=self.mode,
            temperature=self.temperature,
            names=[str(v) for v in declared],
            shared_alpha=True,
            seed=self.seed,
            option_candidates=option_candidates,
            name=f"{name}_{len(self._mixed_ops[k])}",
        ).attach(self, k)
        self._mixed_ops[k].append(site)
        self._sites.append(site)
        return site

    def forward(self, inputs, training=None):
        return self.network(inputs, training=training)

    def _live_sites(self, path):
        """Positions in `_sites` of the sites path `path` runs: the top-level ones, then those
        inside the options it chooses."""
        live, todo = [], [n for n in range(len(self._sites)) if n not in self._nested]
        while todo:
            n = todo.pop()
            live.append(n)
            chosen = self._sites[n].option_candidates[path[self._sites[n].decision_index]]
            todo.extend(self._position[j] for j in self._inner_sites[n][chosen])
        return live

    def reached(self, path):
        """The indices of the decisions that path `path` makes (a decision inside an option
        it does not choose, e.g. a block past a stage's depth, is not made)."""
        path = self._check_path(path)
        return {self._sites[n].decision_index for n in self._live_sites(path)}

    def canonical_path(self, path):
        """`path` with every decision it does not make set to option 0, so the paths of one
        architecture have one canonical path and a search scores the architecture once."""
        path = self._check_path(path)
        made = self.reached(path)
        return [i if d in made else 0 for d, i in enumerate(path)]

    def values_of(self, path):
        """The values `{name: option}` of the decisions `path` makes, with the space's
        one-option decisions: what `space.decode` gives for the architecture, which
        `space.encode` and `space.build_values` accept."""
        path = self._check_path(path)
        made = self.reached(path)
        values = {
            name: options[i]
            for d, ((name, options), i) in enumerate(zip(self.decisions, path)) if d in made
        }
        if self._fixed:  # the one-option decisions that are active with these values
            hp = keras_tuner.HyperParameters()
            hp.values.update(values)
            hp.values.update((n, v) for n, v in self._fixed.items() if n not in values)
            self.space.declare(hp)
            active = self.space.values_of(hp)
            values.update((n, v) for n, v in self._fixed.items() if n in active)
        return values

    def path_of(self, values):
        """The canonical path of the values `{name: option}` (e.g. from `space.decode`); the
        decisions the architecture does not make may be missing."""
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of decisions, got {values!r}.")
        path = [
            _option_index(name, options, values[name]) if name in values else 0
            for name, options in self.decisions
        ]
        missing = [self.decisions[d][0] for d in sorted(self.reached(path))
                   if self.decisions[d][0] not in values]
        if missing:
            raise ValueError(f"`values` lacks the decision {missing[0]!r}.")
        return self.canonical_path(path)

    def path_weights(self, path):
        """This supernet's weights that path `path` uses, in the order of the stand-alone
        network's `weights` (what every option not chosen holds is left out)."""
        path = self.canonical_path(path)
        site_weights, candidate_weights, weights = self._weight_index()
        kept, dropped = set(), set()
        for n in self._live_sites(path):
            site = self._sites[n]
            chosen = site.option_candidates[path[site.decision_index]]
            for i, ids in enumerate(candidate_weights[n]):
                dropped |= ids
                if i == chosen:  # what the option holds outside its own choices is used
                    inner = (site_weights[self._position[j]] for j in self._inner_sites[n][i])
                    kept |= ids.difference(*inner)
        dropped -= kept  # a layer that options share (e.g. a cell's preprocessing) stays
        dropped |= {id(v) for v in self.arch_variables} | {id(self.aux_skip_beta)}
        return [w for w in weights if id(w) not in dropped]

    def _weight_index(self):
        """`(ids of each site's weights, ids of each candidate's weights per site, the
        network's weights)`, gathered once: Keras walks every sublayer for `.weights`, which
        an eagerly run supernet would pay on every step (`path_weights`)."""
        index = getattr(self, "_weight_index_cache", None)
        if index is None:
            index = (
                [frozenset(id(w) for w in site.weights) for site in self._sites],
                [[frozenset(id(w) for w in c.weights) for c in site.candidates]
                 for site in self._sites],
                tuple(self.network.weights),
            )
            object.__setattr__(self, "_weight_index_cache", index)  # not a tracked attribute
        return index

    def to_standalone(self, path):
        """The space's stand-alone network of `path` (uncompiled) with this supernet's weights."""
        model = self.space.build_values(self.values_of(path))
        _copy(self.path_weights(path), model.weights, f"{type(self.space).__name__} path {path}")
        return model


def _option_index(name, options, value):
    """The index of `value` among decision `name`'s `options` (floats compared with isclose)."""
    for i, option in enumerate(options):
        if isinstance(option, float) and isinstance(value, numbers.Real) and not isinstance(
                value, bool):
            if math.isclose(value, option):
                return i
        elif value == option and isinstance(value, bool) == isinstance(option, bool):
            return i
    raise ValueError(f"{value!r} is not an option of {name!r}: {options}.")


def _copy(source, target, where):
    if len(source) != len(target):
        raise ValueError(
            f"Supernet and stand-alone network differ at {where}: "
            f"{len(source)} weights against {len(target)}."
        )
    for s, t in zip(source, target):
        if tuple(s.shape) != tuple(t.shape):
            raise ValueError(f"Weight shapes differ at {where}: {s.shape} against {t.shape}.")
        # A copy: on JAX an assigned array is shared, and a Keras `fit`/`predict` of the
        # stand-alone model donates (deletes) its variables' arrays.
        t.assign(ops.copy(s.value))


# -- building and utilities ------------------------------------------------------------------

def build_supernet(space, mode="softmax", temperature=1.0, seed=None):
    """The weight-sharing supernet of a search space.

    The `ChoiceSupernet` derived from the space's `build_network(choose)`, or what the
    space's own `build_supernet(mode=, temperature=, seed=)` method returns if it has one.

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
    if hasattr(space, "has_network_builder") and space.has_network_builder():
        return ChoiceSupernet(space, mode=mode, temperature=temperature, seed=seed)
    raise TypeError(
        f"No supernet is known for `space` of type {type(space).__name__}: write its network "
        "once as `build_network(choose)` (docs/spaces.md) or give it a `build_supernet()` "
        "method."
    )


def arch_variables(model):
    """All architecture weights of a model: its supernet `alpha`s and MixedOps' own `alpha`."""
    found = []
    seen = set()
    if isinstance(model, Supernet):
        for v in model.arch_variables:
            found.append(v)
            seen.add(id(v))
    for layer in compat.all_layers(model):
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
        for layer in compat.all_layers(model, include_self=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.moving_mean.assign(ops.zeros(bn.moving_mean.shape))
        bn.moving_variance.assign(ops.ones(bn.moving_variance.shape))
    try:
        for k, x in enumerate(batches, start=1):
            for bn in bns:
                bn.momentum = (k - 1) / k
            model(x, training=True, **call_kwargs)
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
