"""The weight-sharing supernet of `MobileNetSpace`: width, depth, kernel and expansion as paths.

Weight sharing. Each width multiplier has its own network (stem, blocks, head): a width
changes every channel count, and separate weights make a subnet's weights exactly those of
its stand-alone network (no channel slicing, no batch-norm statistics shared between
widths). Within one width, block `b` of stage `s` holds one `MBConv` per (kernel, expansion)
pair; every depth shares those blocks (a stage of depth `d` runs its first `d` blocks), as in
single-path supernets (Guo et al. 2020; Cai et al. 2019).

Forward passes:

- path (`net(x, path=p)`, SPOS/ENAS): only the chosen width's network and each block's chosen
  `MBConv` run; blocks past the chosen depth are skipped. `p` may be an int tensor: then
  `keras.ops.switch` picks width, candidate and "run block or skip", so one traced function
  serves every path.
- `"softmax"` (DARTS): block output `sum_{k,e} p_k p_e MBConv_{k,e}(x)`; stage output
  `sum_d p_d * (output after d blocks)`; network output `sum_w p_w * net_w(x)` (a mixture of
  the widths' class probabilities). Every candidate runs, so this costs the sum over widths.
- `"gumbel"` (GDAS): while training each decision draws one option by the Gumbel-max trick,
  that path runs, and each chosen part is scaled by its straight-through weight
  `1 - stop_gradient(y_k) + y_k` (1 forward) so `alpha` gets gradients; at inference the
  argmax path runs.

The DARTS- auxiliary skip (`aux_skip_beta`) has no effect here: the space has no skip option
that could collapse.
"""

import math
import numbers

import keras
import keras_tuner
from keras import ops

from keras_nas.layers import MBConv
from keras_nas.layers._utils import batch_norm
from keras_nas.oneshot.supernet import SUPERNETS, Supernet, _categorical_decisions, _copy


class _WidthNetwork(keras.layers.Layer):
    """The layers of one width: stem, `blocks[s][b][candidate]`, head (built by the supernet)."""

    def __init__(self, space, width, pairs, stem_stride, stage_strides, **kwargs):
        super().__init__(**kwargs)
        from keras_nas.spaces.mobilenet import make_divisible

        self.width = float(width)
        self.stem_conv = keras.layers.Conv2D(
            make_divisible(space.stem_channels * width),
            3,
            strides=stem_stride,
            padding="same",
            use_bias=False,
        )
        self.stem_bn = batch_norm()
        self.stem_relu = keras.layers.ReLU(6.0)
        self.blocks = []
        for s, (filters, max_depth, _) in enumerate(space.stages):
            self.blocks.append(
                [
                    [
                        MBConv(
                            make_divisible(filters * width),
                            kernel_size=k,
                            expansion=e,
                            strides=stage_strides[s] if b == 0 else 1,
                            se_ratio=space.se_ratio,
                        )
                        for k, e in pairs
                    ]
                    for b in range(max_depth)
                ]
            )
        self.head = []
        if space.head_channels:
            self.head = [
                keras.layers.Conv2D(
                    make_divisible(space.head_channels * max(1.0, width)), 1, use_bias=False
                ),
                batch_norm(),
                keras.layers.ReLU(6.0),
            ]
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dropout = keras.layers.Dropout(space.dropout) if space.dropout else None
        self.classifier = keras.layers.Dense(space.num_classes, activation="softmax")


class MobileNetSupernet(Supernet):
    """Weight-sharing supernet of a `MobileNetSpace` (width, depths, kernels, expansions).

    Decisions are the space's categorical hyperparameters with two or more options, in
    declaration order: `width_multiplier`, then per stage `stage_{s}_depth` and per block
    `stage_{s}_block_{b}_kernel`, `stage_{s}_block_{b}_expansion`. Block decisions beyond a
    path's depth are inactive: any option gives the same network, `values_of` leaves them
    out (as `space.decode` does) and `path_of` sets them to option 0 when they are missing.
    See the module docstring for how weights are shared and how each decision is relaxed.

    Args:
        space: a configured `keras_nas.spaces.MobileNetSpace`.
        mode: `"softmax"` (DARTS) or `"gumbel"` (GDAS) for the relaxed forward pass.
        temperature: Gumbel-softmax temperature.
        seed: seed of the `alpha` initializer and the Gumbel noise.

    Example:

    ```python
    space = MobileNetSpace(input_shape=(8, 8, 1), num_classes=3, stages=((8, 1, 1), (16, 2, 2)),
                           width_multipliers=(0.5, 1.0), kernel_sizes=(3, 5),
                           expansions=(1, 3), head_channels=16)
    net = MobileNetSupernet(space)
    probs = net(x)                         # relaxed (DARTS)
    path = net.random_path(np.random.default_rng(0))
    probs = net(x, path=path)              # one architecture
    model = net.to_standalone(path)        # the same network, built by the space
    ```
    """

    def __init__(self, space, mode="softmax", temperature=1.0, seed=None, **kwargs):
        from keras_nas.spaces.mobilenet import MobileNetSpace

        if not isinstance(space, MobileNetSpace):
            raise TypeError(
                f"`space` must be a keras_nas.spaces.MobileNetSpace, got {type(space).__name__}."
            )
        space._check_configured()
        decisions = _categorical_decisions(space)
        super().__init__(decisions, mode=mode, temperature=temperature, seed=seed, **kwargs)
        self.space = space
        self.space_input_shape = tuple(space.input_shape)
        hp = keras_tuner.HyperParameters()
        space.declare(hp)
        # Every hyperparameter's options, single-option ones (not decisions) included.
        self.all_options = {p.name: list(p.values) for p in hp.space}
        self.widths = self.all_options["width_multiplier"]
        self.kernels = [int(k) for k in space.kernel_sizes]
        self.expansions = [int(e) for e in space.expansions]
        # Candidate c of a block is (kernels[c // n_e], expansions[c % n_e]).
        pairs = [(k, e) for k in self.kernels for e in self.expansions]
        h, w, _ = self.space_input_shape
        stem_stride, stage_strides = space.strides_for(min(h, w))
        self.networks = [
            _WidthNetwork(space, width, pairs, stem_stride, stage_strides, name=f"width_{i}")
            for i, width in enumerate(self.widths)
        ]
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.build((None,) + self.space_input_shape)

    # -- decisions --------------------------------------------------------------------------
    def _active_names(self, depths):
        """Names of the hyperparameters that matter for per-stage `depths`."""
        names = ["width_multiplier"]
        for s, depth in enumerate(depths):
            names.append(f"stage_{s}_depth")
            for b in range(depth):
                names += [f"stage_{s}_block_{b}_kernel", f"stage_{s}_block_{b}_expansion"]
        return names

    def values_of(self, path):
        """The active hyperparameter values `{name: option}` of a path (option indices).

        Single-option hyperparameters of the space are included, block decisions beyond
        a stage's depth are not, so the result is what `space.decode` gives for the same
        architecture and `space.encode` / `space.build_values` accept it.
        """
        if isinstance(path, (str, bytes)) or not hasattr(path, "__len__"):
            raise ValueError(f"`path` must be a list of option indices, got {path!r}.")
        if len(path) != len(self.decisions):
            raise ValueError(f"`path` must have {len(self.decisions)} entries, got {len(path)}.")
        chosen = {}
        for (name, options), i in zip(self.decisions, path):
            i = int(i)
            if not 0 <= i < len(options):
                raise ValueError(
                    f"`path` index {i} for {name!r} is out of range [0, {len(options)})."
                )
            chosen[name] = options[i]

        def value(name):
            return chosen[name] if name in chosen else self.all_options[name][0]

        depths = [int(value(f"stage_{s}_depth")) for s in range(len(self.space.stages))]
        return {name: value(name) for name in self._active_names(depths)}

    def path_of(self, values):
        """The path of hyperparameter values `{name: option}` (e.g. from `space.decode`).

        Inactive block decisions may be missing; they get option 0.
        """
        if not isinstance(values, dict):
            raise TypeError(f"`values` must be a dict of decisions, got {values!r}.")

        def index(name, options):
            value = values[name]
            for i, option in enumerate(options):
                if isinstance(option, float) and isinstance(value, numbers.Real):
                    if not isinstance(value, bool) and math.isclose(value, option):
                        return i
                elif value == option:
                    return i
            raise ValueError(f"{value!r} is not an option of {name!r}: {options}.")

        depths = []
        for s in range(len(self.space.stages)):
            name = f"stage_{s}_depth"
            options = self.all_options[name]
            if name not in values and len(options) > 1:
                raise ValueError(f"`values` lacks the decision {name!r}.")
            depths.append(options[index(name, options)] if name in values else options[0])
        active = set(self._active_names(depths))
        path = []
        for name, options in self.decisions:
            if name in values:
                path.append(index(name, options))
            elif name in active:
                raise ValueError(f"`values` lacks the decision {name!r}.")
            else:
                path.append(0)
        return path

    # -- forward ------------------------------------------------------------------------------
    def _choices(self, training):
        """`(soft, {name: choice})`: soft choices are weight vectors, hard ones
        `(index, scale)` with a Python int or int tensor index and an optional scale."""
        names = self.decision_names
        if self._path is not None:
            for (name, options), i in zip(self.decisions, self._path):
                if isinstance(i, int) and not 0 <= i < len(options):
                    raise ValueError(
                        f"`path` index {i} for {name!r} is out of range [0, {len(options)})."
                    )
            return False, {n: (i, None) for n, i in zip(names, self._path)}
        alphas = [ops.convert_to_tensor(a) for a in self.alphas]
        if self.mode == "softmax":
            return True, {n: ops.softmax(a) for n, a in zip(names, alphas)}
        choices = {}
        for n, a in zip(names, alphas):
            if not training:
                choices[n] = (ops.cast(ops.argmax(a), "int32"), None)
                continue
            u = keras.random.uniform(
                ops.shape(a), minval=1e-6, maxval=1.0 - 1e-6, seed=self.seed_generator
            )
            y = ops.softmax((a - ops.log(-ops.log(u))) / self.temperature)
            k = ops.cast(ops.argmax(y), "int32")
            y_k = ops.take(y, k)
            choices[n] = (k, 1.0 - ops.stop_gradient(y_k) + y_k)
        return False, choices

    @staticmethod
    def _hard(choices, name):
        return choices.get(name, (0, None))

    @staticmethod
    def _select(layers, index, x):
        """`layers[index](x)`; an int tensor `index` picks inside the graph (`switch`)."""
        if isinstance(index, int):
            return layers[index](x)
        if len(layers) == 1:
            return layers[0](x)
        branches = [(lambda t, layer=layer: layer(t)) for layer in layers]
        return ops.switch(ops.cast(index, "int32"), branches, x)

    @staticmethod
    def _scaled(x, *scales):
        for scale in scales:
            if scale is not None:
                x = ops.multiply(x, ops.cast(scale, x.dtype))
        return x

    def _block(self, candidates, prefix, x, soft, choices):
        kname, ename = f"{prefix}_kernel", f"{prefix}_expansion"
        n_e = len(self.expansions)
        if soft:
            p_k = choices.get(kname)
            p_e = choices.get(ename)
            out = None
            for c, layer in enumerate(candidates):
                term = layer(x)
                weights = [p[i] for p, i in ((p_k, c // n_e), (p_e, c % n_e)) if p is not None]
                for w in weights:
                    term = ops.multiply(w, term)
                out = term if out is None else ops.add(out, term)
            return out
        (i_k, s_k), (i_e, s_e) = self._hard(choices, kname), self._hard(choices, ename)
        if isinstance(i_k, int) and isinstance(i_e, int):
            index = i_k * n_e + i_e
        else:
            index = ops.add(ops.multiply(ops.cast(i_k, "int32"), n_e), ops.cast(i_e, "int32"))
        return self._scaled(self._select(candidates, index, x), s_k, s_e)

    def _stage(self, s, blocks, x, soft, choices):
        dname = f"stage_{s}_depth"
        x = self._block(blocks[0], f"stage_{s}_block_0", x, soft, choices)
        if soft:
            outs = [x]
            for b in range(1, len(blocks)):
                x = self._block(blocks[b], f"stage_{s}_block_{b}", x, soft, choices)
                outs.append(x)
            p_d = choices.get(dname)
            if p_d is None:
                return x
            out = None
            for d, y in enumerate(outs):
                term = ops.multiply(p_d[d], y)
                out = term if out is None else ops.add(out, term)
            return out
        i_d, s_d = self._hard(choices, dname)
        for b in range(1, len(blocks)):
            prefix = f"stage_{s}_block_{b}"
            if isinstance(i_d, int):
                # Depth option `i_d` is depth `i_d + 1`: block b runs when i_d >= b.
                if i_d >= b:
                    x = self._block(blocks[b], prefix, x, soft, choices)
                continue

            def run(t, candidates=blocks[b], prefix=prefix):
                return self._block(candidates, prefix, t, soft, choices)

            active = ops.cast(ops.greater_equal(ops.cast(i_d, "int32"), b), "int32")
            x = ops.switch(active, [lambda t: t, run], x)
        return self._scaled(x, s_d) if len(blocks) > 1 else x

    def _network(self, net, x, soft, choices):
        x = net.stem_relu(net.stem_bn(net.stem_conv(x)))
        for s, blocks in enumerate(net.blocks):
            x = self._stage(s, blocks, x, soft, choices)
        for layer in net.head:
            x = layer(x)
        x = net.pool(x)
        if net.dropout is not None:
            x = net.dropout(x)
        return net.classifier(x)

    def _run(self, inputs, soft, choices):
        if soft:
            p_w = choices.get("width_multiplier")
            if p_w is None:
                return self._network(self.networks[0], inputs, soft, choices)
            out = None
            for i, net in enumerate(self.networks):
                term = ops.multiply(p_w[i], self._network(net, inputs, soft, choices))
                out = term if out is None else ops.add(out, term)
            return out
        i_w, s_w = self._hard(choices, "width_multiplier")
        branches = [
            (lambda t, net=net: self._network(net, t, soft, choices)) for net in self.networks
        ]
        return self._scaled(self._select(branches, i_w, inputs), s_w)

    def forward(self, inputs, training=None):
        soft, choices = self._choices(training)
        return self._run(inputs, soft, choices)

    def build(self, input_shape):
        # A symbolic relaxed pass calls (and so builds) every layer of every width, before
        # any traced function or `switch` branch would create variables.
        spec = keras.KerasTensor(tuple(input_shape))
        uniform = {
            name: ops.ones((len(options),)) / len(options) for name, options in self.decisions
        }
        for net in self.networks:
            net.built = True
        self._run(spec, True, uniform)
        self.built = True

    # -- stand-alone ----------------------------------------------------------------------------
    def to_standalone(self, path):
        """The stand-alone network of `path` (built by the space) with this supernet's weights.

        Every weight of the returned model (uncompiled, as `space.build_values`) is copied
        from the chosen width's network: stem, each block's chosen `MBConv`, head and
        classifier, so both give the same outputs.
        """
        values = self.values_of(path)
        model = self.space.build_values(values)
        width, stages = self.space.blocks(values)
        net = self.networks[[math.isclose(width, w) for w in self.widths].index(True)]
        by_name = {layer.name: layer for layer in model.layers}

        def weights(*names):
            return [w for n in names for w in by_name[n].weights]

        _copy(net.stem_conv.weights + net.stem_bn.weights, weights("stem_conv", "stem_bn"), "stem")
        n_e = len(self.expansions)
        for s, blocks in enumerate(stages):
            for b, (k, e) in enumerate(blocks):
                chosen = net.blocks[s][b][self.kernels.index(k) * n_e + self.expansions.index(e)]
                name = f"stage_{s}_block_{b}"
                _copy(chosen.weights, by_name[name].weights, name)
        if net.head:
            head = [w for layer in net.head for w in layer.weights]
            _copy(head, weights("head_conv", "head_bn"), "head")
        _copy(net.classifier.weights, weights("classifier"), "classifier")
        return model


SUPERNETS["MobileNetSpace"] = MobileNetSupernet
