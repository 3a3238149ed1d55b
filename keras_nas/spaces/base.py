"""The contract every keras-nas search space follows."""

import json

import keras
import keras_tuner


class Space(keras_tuner.HyperModel):
    """A search space: a `keras_tuner.HyperModel` whose decisions are hyperparameters.

    Subclasses implement three things:

    - `declare(hp)`: register every architecture decision on `hp` (and return nothing).
      It must not build any model, so strategies and tabular benchmarks can enumerate a
      space cheaply.
    - `encode(values) -> str` and `decode(arch_str) -> dict`: an architecture as a string
      and back; `values` maps hyperparameter names to values.
    - the network, one of two ways:
      `build_network(choose) -> keras.Model`, the uncompiled network with each decision made
      by `choose(name, {value: layer factory})` (`keras_nas.spaces.choices`): the same code
      then builds one architecture (`build_values`) and the weight-sharing supernet of all
      of them, so DARTS, SPOS and ENAS run on the space; or
      `build_values(values) -> keras.Model`, the network of one architecture only (the
      tuner-driven strategies need no more).

    The base class then gives `build(hp)` (what KerasTuner calls: declares, builds, compiles)
    and `build_architecture(arch_str)` (a compiled model from a string).

    Args:
        input_shape: shape of one example, e.g. `(32, 32, 3)`. May be left `None` and filled
            in by `configure()`; `keras_nas.search()` does that from the data.
        num_classes: number of classes of the integer labels. May be left `None` likewise.
        learning_rate: Adam learning rate used by `compile_model()`.
        name: optional name of the space.

    Example:

    ```python
    space = keras_nas.spaces.NASBench201Space(input_shape=(8, 8, 1), num_classes=10)
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    arch = space.encode(hp.values)
    model = space.build_architecture(arch)
    ```
    """

    def __init__(self, input_shape=None, num_classes=None, learning_rate=1e-3, name=None):
        super().__init__(name=name, tunable=True)
        self.input_shape = None
        self.num_classes = None
        if learning_rate is None or not float(learning_rate) > 0:
            raise ValueError(
                f"`learning_rate` must be a positive number, got {learning_rate!r}."
            )
        self.learning_rate = float(learning_rate)
        self.configure(input_shape=input_shape, num_classes=num_classes)

    def configure(self, input_shape=None, num_classes=None):
        """Sets the input shape and class count where they are not set yet.

        A value that is already set and differs raises `ValueError`.
        Returns `self`.
        """
        if input_shape is not None:
            input_shape = tuple(int(d) for d in input_shape)
            if len(input_shape) != 3 or min(input_shape) < 1:
                raise ValueError(
                    "`input_shape` must be (height, width, channels) of positive sizes, "
                    f"got {input_shape!r}."
                )
            if self.input_shape is not None and self.input_shape != input_shape:
                raise ValueError(
                    f"This space was made for `input_shape`={self.input_shape}, "
                    f"but the data has examples of shape {input_shape}."
                )
            self.input_shape = input_shape
        if num_classes is not None:
            if int(num_classes) != num_classes or num_classes < 2:
                raise ValueError(
                    f"`num_classes` must be an integer >= 2, got {num_classes!r}."
                )
            if self.num_classes is not None and self.num_classes != int(num_classes):
                raise ValueError(
                    f"This space was made for `num_classes`={self.num_classes}, "
                    f"but the data has {int(num_classes)} classes."
                )
            self.num_classes = int(num_classes)
        return self

    def _check_configured(self):
        if self.input_shape is None or self.num_classes is None:
            raise ValueError(
                f"{type(self).__name__} needs `input_shape` and `num_classes` before it can "
                "build a model: pass them to the constructor or call `configure()`."
            )

    # -- to implement -----------------------------------------------------------------
    def declare(self, hp):
        raise NotImplementedError

    def encode(self, values):
        raise NotImplementedError

    def decode(self, arch_str):
        raise NotImplementedError

    def build_network(self, choose):
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `build_network(choose)`: it builds "
            "single architectures with `build_values` only, so it has no weight-sharing supernet."
        )

    def build_values(self, values):
        """The uncompiled network of the decisions `values` (`{name: value}`).

        The base class builds it with `build_network(FixedChoices(values))`; a space that
        implements only `build_values` overrides this.
        """
        from keras_nas.spaces.choices import FixedChoices

        if not self.has_network_builder():
            raise NotImplementedError(
                f"{type(self).__name__} must implement `build_network(choose)` or "
                "`build_values(values)`."
            )
        self._check_configured()
        return self.build_network(FixedChoices(values))

    def has_network_builder(self):
        """Whether the space implements `build_network(choose)` (and so has a supernet)."""
        return type(self).build_network is not Space.build_network

    def latency_blocks(self, values):
        """The network of the decisions `values` as a list of blocks, for the latency predictor.

        A block list is the network cut, in order, into `keras_nas.hardware.BlockSpec`s whose
        latency depends only on their configuration and input shape;
        `keras_nas.hardware.LatencyPredictor` measures each distinct block once and predicts a
        network as the sum of its blocks' latencies. Optional: only the predictor needs it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `latency_blocks(values)`, which the "
            "latency predictor (`keras_nas.hardware.LatencyPredictor`) needs to cut its "
            "networks into measured blocks."
        )

    # -- given --------------------------------------------------------------------------
    def values_of(self, hp):
        """The architecture decisions `hp` holds, as a dict: only the active ones.

        KerasTuner keeps the values of conditional hyperparameters whose condition does not
        hold in `hp.values`; they are left out here, as are KerasTuner's own `tuner/...`
        entries.
        """
        if not hp.space:
            return {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
        return {
            p.name: hp.values[p.name]
            for p in hp.space
            if p.name in hp.values and not p.name.startswith("tuner/") and hp.is_active(p)
        }

    def architecture_of(self, hp):
        """The architecture string of the decisions held by `hp`."""
        return self.encode(self.values_of(hp))

    def architecture_key(self, values):
        """A key that is equal for decisions that build the same network, as a string.

        Search strategies never propose two sets of values with the same key (the oracle
        hashes it; `keras_nas.oracles.base.NASOracle`), so a space whose encoding has
        several spellings of one network (a cell whose dead edges or summation order do not
        matter) spends no trial on a spelling already tried. The base class's key is the
        values themselves; a space overrides it to merge what it knows to be the same.

        Example: `space.architecture_key(values_a) == space.architecture_key(values_b)`.
        """
        return json.dumps(values, sort_keys=True, default=str)

    #: Whether `compile_model` compiles the training step with XLA: None (the default) picks
    #: by backend (`jit_compile_for`); True or False forces it, on a class or an instance.
    jit_compile = None

    def compile_model(self, model):
        """Compiles `model` for integer-label classification (Adam, cross-entropy, accuracy).

        The step is compiled with XLA on JAX and not on TensorFlow (`jit_compile_for`), unless
        the space's `jit_compile` attribute says otherwise.
        """
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit_compile_for(self.jit_compile),
        )
        return model

    def build(self, hp):
        """Declares the decisions on `hp` and returns the compiled model they describe."""
        self._check_configured()
        self.declare(hp)
        return self.compile_model(self.build_values(self.values_of(hp)))

    def build_architecture(self, arch_str):
        """Returns the compiled model of an architecture string."""
        self._check_configured()
        return self.compile_model(self.build_values(self.decode(arch_str)))

    def short_architecture(self, arch_str):
        """`arch_str` in a short form for tables (op names abbreviated, see
        `architecture_legend`); spaces with their own notation may override it."""
        from keras_nas.layers.ops import abbreviate_ops

        return abbreviate_ops(arch_str)

    def architecture_legend(self):
        """What the short forms of `short_architecture` stand for (None if nothing)."""
        from keras_nas.layers.ops import OP_ABBREVIATIONS

        hp = keras_tuner.HyperParameters()
        self.declare(hp)
        ops = {value for p in hp.space for value in getattr(p, "values", None) or ()
               if isinstance(value, str) and value in OP_ABBREVIATIONS}
        if not ops:
            return None
        return ", ".join(f"{OP_ABBREVIATIONS[op]} = {op}" for op in sorted(ops))

    def random_architecture(self, seed=None):
        """A random architecture string, drawn uniformly per decision."""
        import random

        rng = random.Random(seed)
        hp = keras_tuner.HyperParameters()
        self.declare(hp)
        # Redraw until conditional decisions settle; each pass samples every active one.
        values = {}
        for _ in range(4):
            for p in hp.space:
                if hp.is_active(p):
                    values[p.name] = p.random_sample(rng.randint(0, 2**31 - 1))
            fresh = keras_tuner.HyperParameters()
            fresh.values.update(values)
            self.declare(fresh)
            hp = fresh
        return self.encode(self.values_of(hp))


def jit_compile_for(setting=None, backend=None):
    """The `jit_compile` a space's `compile_model` passes to `model.compile`.

    None (the default) picks by backend: True on JAX, False on TensorFlow (and others).
    On TensorFlow, XLA would cost 10-30 s per candidate on CPU for these small networks with
    no steady-state speed-up, which would dominate a search that builds a new model per trial.
    On JAX, `jit_compile=False` makes Keras run the training step op by op, each operation
    compiled and dispatched on its own: in the default digits search an epoch took 11.1 s
    against 0.51 s compiled, a trial 61.9 s against 17.3 s (`docs/BENCHMARKS.md` §5), so there
    the step is compiled.

    Example: `jit_compile_for(None, "jax")` is True; `jit_compile_for(False, "jax")` is False.
    """
    if setting is not None:
        return bool(setting)
    return (backend or keras.backend.backend()) == "jax"


def downsampling_steps(size, max_size=32):
    """How many stride-2 halvings (rounding up) bring `size` to at most `max_size`.

    Example: `downsampling_steps(224) == 3` (224 -> 112 -> 56 -> 28); `downsampling_steps(32) == 0`.
    """
    steps = 0
    while size > max_size:
        size = -(-size // 2)
        steps += 1
    return steps


def stem_downsampling(x, size, channels, max_size=32):
    """Halves `x` with stride-2 3x3 conv-BN-ReLU layers until its shorter side is <= max_size.

    Used by the cell spaces so large inputs (224x224) run their cells at CIFAR resolution
    while inputs up to 32 pixels go through unchanged. Returns `(x, new_size)`.
    """
    from keras_nas.layers._utils import batch_norm

    for step in range(downsampling_steps(size, max_size)):
        x = keras.layers.Conv2D(
            channels, 3, strides=2, padding="same", use_bias=False, name=f"downsample_{step}_conv"
        )(x)
        x = batch_norm(name=f"downsample_{step}_bn")(x)
        x = keras.layers.ReLU(name=f"downsample_{step}_relu")(x)
        size = -(-size // 2)
    return x, size
