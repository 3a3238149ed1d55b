"""`MixedOp`: one architecture decision between candidate ops, relaxed or sampled."""

import keras
from keras import ops

from keras_nas import compat
from keras_nas.validation import check_int

MODES = ("softmax", "gumbel", "single")


@keras.saving.register_keras_serializable(package="keras_nas")
class MixedOp(keras.layers.Layer):
    """A choice between candidate layers that a one-shot search can train through.

    Three forms, chosen by `mode` (and per call by `active`):

    - `"softmax"` (DARTS, Liu et al. 2019): `sum_i softmax(alpha)_i * op_i(x)`, the
      continuous relaxation; `alpha` gets gradients.
    - `"gumbel"` (GDAS, Dong & Yang 2019): while training, one op `k` is drawn by the
      Gumbel-max trick from `softmax((alpha + g) / temperature)`, only `op_k` runs, and its
      output is scaled by the straight-through weight `h_k = 1 - stop_gradient(y_k) + y_k`
      (equal to 1 forward) so `alpha` still gets gradients. At inference the argmax op runs.
    - `"single"` (ENAS, SPOS): only the active op runs (`active` given to `call`, or the
      `active` attribute); `alpha` is not used.

    `call(inputs, training=None, active=None, alpha=None)`: `alpha` overrides the layer's own
    architecture weights (e.g. one variable shared by the same edge of every cell).

    Passing `active=` to `call` always selects the single-path form; it may be a Python int or an
    integer scalar tensor (then `keras.ops.switch` runs only the chosen branch, so one traced
    function serves every path).

    The architecture weights `alpha` are a variable of this layer created with
    `trainable=False`: they are never in `model.trainable_weights`, so the network's optimizer
    never touches them. A search reads them from `arch_variables` (or
    `keras_nas.oneshot.arch_variables(model)`) and updates them with its own optimizer.

    All candidates must map the same input to outputs of one shape. Several options may run one
    layer (`option_candidates`): e.g. every depth past a block runs that block, so the block's
    weights are shared by those options and computed once in the relaxed forms.

    Args:
        candidates: list of Keras layers (at least one), e.g. from
            `keras_nas.layers.get_op(name, channels, stride)`.
        mode: `"softmax"`, `"gumbel"` or `"single"`.
        temperature: Gumbel-softmax temperature (> 0), used by `"gumbel"`.
        active: index of the op the `"single"` form runs when `call` is given none.
        alpha_initializer: initializer of `alpha` (DARTS uses N(0, 1e-3)).
        seed: seed of the Gumbel noise.
        names: optional names of the candidates (e.g. op names), kept in the config.
        shared_alpha: if True the layer owns no `alpha`; `call` must then be given
            `alpha=` (a supernet that shares one `alpha` per decision across cells does
            this) unless it runs a single path.

    Example:

    ```python
    ops_ = [keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Conv2D(4, 1)]
    mixed = MixedOp(ops_, names=["conv3x3", "conv1x1"])
    y = mixed(keras.ops.ones((2, 8, 8, 4)))           # softmax-weighted sum
    y1 = mixed(keras.ops.ones((2, 8, 8, 4)), active=1)  # only conv1x1
    ```
    """

    def __init__(
        self,
        candidates,
        mode="softmax",
        temperature=1.0,
        active=0,
        alpha_initializer=None,
        seed=None,
        names=None,
        shared_alpha=False,
        option_candidates=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(candidates, keras.layers.Layer) or not isinstance(candidates, (list, tuple)):
            raise TypeError(
                "`candidates` must be a list of Keras layers, got "
                f"{type(candidates).__name__}."
            )
        candidates = list(candidates)
        if not candidates:
            raise ValueError("`candidates` must hold at least one layer, got an empty list.")
        for i, c in enumerate(candidates):
            if not isinstance(c, keras.layers.Layer):
                raise TypeError(
                    f"`candidates[{i}]` must be a Keras layer, got {type(c).__name__}."
                )
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise TypeError(f"`temperature` must be a number, got {temperature!r}.") from None
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
        option_candidates = _check_option_candidates(option_candidates, len(candidates))
        options = len(option_candidates)
        active = check_int(active, "active", minimum=0, maximum=options - 1)
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != options:
                raise ValueError(
                    f"`names` must name each of the {options} options, got {len(names)} names."
                )
        self.candidates = candidates
        self.option_candidates = option_candidates
        self.mode = mode
        self.temperature = temperature
        self.active = int(active)
        self.names = names
        self.seed = seed
        self.shared_alpha = bool(shared_alpha)
        self.alpha_initializer = keras.initializers.get(
            alpha_initializer
            if alpha_initializer is not None
            else keras.initializers.RandomNormal(stddev=1e-3, seed=seed)
        )
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def num_candidates(self):
        return len(self.candidates)

    @property
    def num_options(self):
        """How many options the layer chooses between (`alpha` has one weight each)."""
        return len(self.option_candidates)

    def _one_to_one(self):
        return self.option_candidates == list(range(len(self.candidates)))

    def build(self, input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):  # a list of inputs
            spec = [keras.KerasTensor(tuple(s), dtype=self.compute_dtype) for s in input_shape]
        else:
            spec = keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype)
        for c in self.candidates:
            if not c.built:
                # A symbolic call builds composite candidates (and their sublayers) here,
                # before any traced function or `switch` branch would create variables.
                c(spec)
        self.alpha = None
        if not self.shared_alpha:
            self.alpha = self.add_weight(
                name="alpha",
                shape=(self.num_options,),
                initializer=self.alpha_initializer,
                trainable=False,
            )
        self.built = True

    @property
    def arch_variables(self):
        """The architecture weights this layer owns (`[alpha]`, or `[]` when shared)."""
        return [] if self.alpha is None else [self.alpha]

    def probabilities(self, alpha=None):
        """`softmax(alpha)` as a tensor (of the given or the layer's own `alpha`)."""
        return ops.softmax(ops.convert_to_tensor(self._alpha(alpha)))

    def _alpha(self, alpha):
        if alpha is not None:
            return alpha
        if self.alpha is None:
            raise ValueError(
                f"MixedOp {self.name!r} was made with `shared_alpha=True`: pass `alpha=` "
                "(or `active=`) to call it."
            )
        return self.alpha

    def _run(self, i, inputs, training):
        return self.candidates[i](inputs, training=training)

    def _single(self, inputs, index, training):
        """Runs option `index` (an int, or an integer scalar tensor through `switch`)."""
        if isinstance(index, int):
            if not 0 <= index < self.num_options:
                raise ValueError(
                    f"`active` must be an index in [0, {self.num_options}), got {index}."
                )
            return self._run(self.option_candidates[index], inputs, training)
        index = ops.cast(index, "int32")
        if not self._one_to_one():
            index = ops.take(ops.convert_to_tensor(self.option_candidates, "int32"), index)
        if keras.backend.backend() == "jax":
            return self._switch_with_state(index, inputs, training)
        branches = [
            (lambda x, i=i: self._run(i, x, training)) for i in range(len(self.candidates))
        ]
        return ops.switch(index, branches, inputs)

    def _switch_with_state(self, index, inputs, training):
        """`switch` on JAX, where a branch may not assign variables (its values are traced
        inside the branch): each branch runs in its own stateless scope and returns the
        candidates' non-trainable variables (batch-norm statistics, seed states) with its
        output, and they are assigned after the switch."""
        written = [v for c in self.candidates for v in c.non_trainable_variables]

        def branch(i):
            def run(x):
                with compat.nested_stateless_scope():
                    return self._run(i, x, training), [v.value for v in written]
            return run

        y, values = ops.switch(index, [branch(i) for i in range(len(self.candidates))], inputs)
        for variable, value in zip(written, values):
            variable.assign(value)
        return y

    def _candidate_weights(self, weights):
        """Per candidate layer, the summed weight of the options that run it."""
        if self._one_to_one():
            return [weights[i] for i in range(len(self.candidates))]
        summed = [None] * len(self.candidates)
        for option, c in enumerate(self.option_candidates):
            summed[c] = weights[option] if summed[c] is None else summed[c] + weights[option]
        return summed

    def call(self, inputs, training=None, active=None, alpha=None):
        if active is not None:
            return self._single(inputs, active, training)
        if self.mode == "single":
            return self._single(inputs, self.active, training)
        alpha = ops.convert_to_tensor(self._alpha(alpha))
        if self.mode == "softmax":
            weights = self._candidate_weights(ops.softmax(alpha))
            out = None
            for i in range(len(self.candidates)):
                term = weights[i] * self._run(i, inputs, training)
                out = term if out is None else out + term
            return out
        # Gumbel-softmax (GDAS): hard sample forward, soft gradient backward.
        if not training:
            return self._single(inputs, ops.argmax(alpha), training)
        u = keras.random.uniform(
            ops.shape(alpha), minval=1e-6, maxval=1.0 - 1e-6, seed=self.seed_generator
        )
        gumbel = -ops.log(-ops.log(u))
        y = ops.softmax((alpha + gumbel) / self.temperature)
        index = ops.argmax(y)
        y_k = ops.take(y, index)
        h_k = 1.0 - ops.stop_gradient(y_k) + y_k
        return self._single(inputs, index, training) * ops.cast(h_k, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return self.candidates[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "candidates": [keras.saving.serialize_keras_object(c) for c in self.candidates],
                "mode": self.mode,
                "temperature": self.temperature,
                "active": self.active,
                "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
                "seed": self.seed,
                "names": self.names,
                "shared_alpha": self.shared_alpha,
                "option_candidates": self.option_candidates,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["candidates"] = [
            keras.saving.deserialize_keras_object(c) for c in config["candidates"]
        ]
        config["alpha_initializer"] = keras.initializers.deserialize(
            config["alpha_initializer"]
        )
        return cls(**config)


def _check_option_candidates(option_candidates, count):
    """`option_candidates` as a list of candidate indices, every candidate used."""
    if option_candidates is None:
        return list(range(count))
    if isinstance(option_candidates, (str, bytes)) or not isinstance(
        option_candidates, (list, tuple)
    ):
        raise TypeError(
            "`option_candidates` must be a list of candidate indices, one per option, "
            f"got {option_candidates!r}."
        )
    checked = [check_int(c, f"option_candidates[{i}]", minimum=0, maximum=count - 1)
               for i, c in enumerate(option_candidates)]
    if set(checked) != set(range(count)):
        raise ValueError(
            f"`option_candidates` {checked} leaves candidates "
            f"{sorted(set(range(count)) - set(checked))} unused."
        )
    return checked
