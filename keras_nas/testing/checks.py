"""Conformance checks a space author runs on their own `keras_nas.spaces.Space` subclass.

`check_space(space)` draws a few random architectures through KerasTuner and checks each
against the rules in `SPACE_RULES`; a broken rule raises an `AssertionError` whose message
names the space, the architecture and the rule.
"""

import contextlib
import gc
import math
import numbers
import os
import random
import tempfile
import warnings

import keras
import keras_tuner
import numpy as np

from keras_nas.spaces.base import Space
from keras_nas.validation import check_int

SPACE_RULES = {
    "declare": "`declare(hp)` registers decisions without building any Keras layer or variable, "
    "and keeps the values already on `hp`",
    "round_trip": "`decode(encode(values))` gives back the same decisions, `encode` of them gives "
    "back the same string, and `short_architecture` returns a string",
    "model": "the model takes a batch of `input_shape` and outputs finite "
    "`(batch, num_classes)` values (probabilities summing to 1 when it is compiled for them)",
    "save_load": "the model saves to a `.keras` file and `keras.saving.load_model` (no "
    "`custom_objects`) gives it back with the same predictions",
    "config": "`type(space).from_config(space.get_config())` gives a space with the same config "
    "and the same decisions",
}
"""Rule name -> what `check_space` checks; the names appear in its failure messages."""

_BATCH = 2
_REDRAWS = 4  # passes that let conditional decisions settle, as `Space.random_architecture`


def _label(space):
    name = type(space).__name__
    own = getattr(space, "name", None)
    return f"{name} {own!r}" if own else name


def _fail(space, rule, arch, detail):
    raise AssertionError(
        f"{_label(space)} breaks the rule '{rule}' ({SPACE_RULES[rule]}) for the architecture "
        f"{arch}: {detail}"
    )


def _describe(error, innermost=False):
    """`Type: message`, cut to 500 characters; `innermost`: of the error that started it
    (Keras wraps a missing class in a long message about the whole model)."""
    while innermost and (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:500] + " ..."


def _keras_objects(objects):
    return [o for o in objects if isinstance(o, (keras.layers.Layer, keras.Variable))]


@contextlib.contextmanager
def _no_collection():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _declare(space, hp, arch):
    """`space.declare(hp)`, failing the 'declare' rule if it created a layer or a variable.

    With the garbage collector paused, every object made during the call stays in its
    youngest generation, so the Keras objects there that were not there before were made by
    `declare` (no patching of Keras needed).
    """
    with _no_collection():
        before = {id(o) for o in _keras_objects(gc.get_objects(generation=0))}
        try:
            space.declare(hp)
        except Exception as error:
            _fail(space, "declare", arch, f"`declare(hp)` raised {_describe(error)}")
        made = [o for o in _keras_objects(gc.get_objects(generation=0)) if id(o) not in before]
    if made:
        names = ", ".join(
            f"{type(o).__name__} {getattr(o, 'name', '')!r}".rstrip() for o in made[:5]
        )
        more = f" and {len(made) - 5} more" if len(made) > 5 else ""
        _fail(space, "declare", arch,
              f"`declare(hp)` created {len(made)} Keras layers or variables ({names}{more}); "
              "build them in `build_values` instead")


def _draw(space, rng, index):
    """Random decisions of `space`, drawn on fresh `HyperParameters` with its own `declare`."""
    arch = f"being drawn (sample {index}, from its default decisions)"
    hp = keras_tuner.HyperParameters()
    _declare(space, hp, arch)
    if not hp.space:
        _fail(space, "declare", arch, "`declare(hp)` registered no decision on `hp`")
    values = {}
    for _ in range(_REDRAWS):
        for p in hp.space:
            if hp.is_active(p):
                values[p.name] = p.random_sample(rng.randint(0, 2**31 - 1))
        arch = f"being drawn (sample {index}, decisions {values!r})"
        fresh = keras_tuner.HyperParameters()
        fresh.values.update(values)
        _declare(space, fresh, arch)
        for name, value in space.values_of(fresh).items():
            if name in values and not _same(value, values[name]):
                _fail(space, "declare", arch,
                      f"`declare(hp)` changed the decision {name!r} already set on `hp` from "
                      f"{values[name]!r} to {value!r} (KerasTuner sets the values before it "
                      "calls `build(hp)`)")
        hp = fresh
    return space.values_of(hp), len(hp.space)


def _same(a, b):
    """Equal decisions: numbers up to rounding, but a bool only equals a bool."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _check_round_trip(space, values):
    try:
        arch = space.encode(dict(values))
    except Exception as error:
        _fail(space, "round_trip", f"of the decisions {values!r}",
              f"`encode` raised {_describe(error)}")
    if not isinstance(arch, str) or not arch:
        _fail(space, "round_trip", f"of the decisions {values!r}",
              f"`encode` returned {arch!r}, not a non-empty string")
    shown = repr(arch)
    try:
        decoded = space.decode(arch)
    except Exception as error:
        _fail(space, "round_trip", shown, f"`decode` raised {_describe(error)}")
    if not isinstance(decoded, dict):
        _fail(space, "round_trip", shown, f"`decode` returned {decoded!r}, not a dict")
    lost = [k for k in values if k not in decoded]
    if lost:
        _fail(space, "round_trip", shown, f"`decode` lost the decisions {lost} (encoded "
              f"from {values!r}, decoded to {decoded!r})")
    extra = [k for k in decoded if k not in values]
    if extra:
        _fail(space, "round_trip", shown, f"`decode` added the decisions {extra}, which are "
              f"not active decisions of `declare` (decoded to {decoded!r})")
    changed = {k: (values[k], decoded[k]) for k in values if not _same(values[k], decoded[k])}
    if changed:
        detail = ", ".join(f"{k!r}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        _fail(space, "round_trip", shown, f"`decode` changed the decisions {detail}")
    try:
        again = space.encode(decoded)
    except Exception as error:
        _fail(space, "round_trip", shown, f"`encode(decode(arch))` raised {_describe(error)}")
    if again != arch:
        _fail(space, "round_trip", shown, f"`encode(decode(arch))` gives {again!r}")
    try:
        short = space.short_architecture(arch)
    except Exception as error:
        _fail(space, "round_trip", shown, f"`short_architecture` raised {_describe(error)}")
    if not isinstance(short, str) or not short:
        _fail(space, "round_trip", shown,
              f"`short_architecture` returned {short!r}, not a non-empty string")
    return arch


def _output_kind(model):
    """'probabilities' if the model is compiled with a cross-entropy on probabilities,
    'logits' if on logits, else 'values' (only finiteness is checked then)."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return "probabilities" if "crossentropy" in loss else "values"
    if loss is not None and "crossentropy" in type(loss).__name__.lower():
        try:
            from_logits = bool(loss.get_config().get("from_logits", False))
        except Exception:
            return "values"
        return "logits" if from_logits else "probabilities"
    return "values"


def _predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def _check_model(space, arch, x, num_classes):
    shown = repr(arch)
    try:
        model = space.build_architecture(arch)
    except Exception as error:
        _fail(space, "model", shown, f"`build_architecture` raised {_describe(error)}")
    if not isinstance(model, keras.Model):
        _fail(space, "model", shown, f"`build_architecture` returned {type(model).__name__}, "
              "not a keras.Model")
    try:
        y = _predict(model, x)
    except Exception as error:
        _fail(space, "model", shown, f"calling the model on a batch of shape {x.shape} raised "
              f"{_describe(error)}")
    if y.shape != (len(x), num_classes):
        _fail(space, "model", shown, f"a batch of shape {x.shape} gives outputs of shape "
              f"{y.shape}, expected {(len(x), num_classes)}")
    if not np.all(np.isfinite(y)):
        _fail(space, "model", shown, "the outputs hold NaN or infinite values")
    kind = _output_kind(model)
    if kind == "probabilities":
        sums = y.sum(axis=1)
        if y.min() < -1e-6 or y.max() > 1 + 1e-6 or not np.allclose(sums, 1.0, atol=1e-4):
            _fail(space, "model", shown,
                  "the model is compiled for probabilities (cross-entropy without "
                  f"`from_logits`), but its outputs are not: row sums {sums.tolist()}, range "
                  f"[{y.min():.4g}, {y.max():.4g}] (end with a softmax or compile with "
                  "`from_logits=True`)")
    return model, y, kind


def _check_save_load(space, arch, model, x, y):
    shown = repr(arch)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        try:
            model.save(path)
        except Exception as error:
            _fail(space, "save_load", shown, f"`model.save` raised {_describe(error)}")
        try:
            with warnings.catch_warnings():
                # The model was compiled but never trained: its optimizer has no state yet.
                warnings.filterwarnings("ignore", message=".*variable loading for optimizer")
                loaded = keras.saving.load_model(path)
        except Exception as error:
            _fail(space, "save_load", shown,
                  f"`keras.saving.load_model` raised {_describe(error, innermost=True)} "
                  "(register custom layers with `keras.saving.register_keras_serializable` "
                  "and give them a complete `get_config`)")
    try:
        y_loaded = _predict(loaded, x)
    except Exception as error:
        _fail(space, "save_load", shown, f"calling the loaded model raised {_describe(error)}")
    if y_loaded.shape != y.shape or not np.allclose(y_loaded, y, rtol=1e-5, atol=1e-6):
        diff = (float(np.max(np.abs(y_loaded - y))) if y_loaded.shape == y.shape
                else f"shape {y_loaded.shape} instead of {y.shape}")
        _fail(space, "save_load", shown,
              f"the loaded model predicts differently (largest difference {diff}); a layer's "
              "`get_config` may leave out an argument")


def _check_config(space, archs):
    """Checks `get_config`/`from_config` if the space has both; returns whether it did."""
    get_config = getattr(space, "get_config", None)
    from_config = getattr(type(space), "from_config", None)
    if not (callable(get_config) and callable(from_config)):
        return False
    shown = repr(archs[0])
    try:
        config = get_config()
        clone = from_config(config)
        clone_config = clone.get_config()
    except Exception as error:
        _fail(space, "config", shown, f"the config round trip raised {_describe(error)}")
    if clone_config != config:
        changed = sorted(k for k in set(config) | set(clone_config)
                         if config.get(k, "<missing>") != clone_config.get(k, "<missing>"))
        _fail(space, "config", shown, f"`from_config(get_config())` has a different config "
              f"(keys {changed}: {config!r} -> {clone_config!r})")
    declared = []
    for which in (space, clone):
        hp = keras_tuner.HyperParameters()
        try:
            which.declare(hp)
        except Exception as error:
            _fail(space, "config", shown, f"`declare` of the space from `from_config` raised "
                  f"{_describe(error)}")
        declared.append({p.name: p.get_config() for p in hp.space})
    if declared[0] != declared[1]:
        changed = sorted(k for k in set(declared[0]) | set(declared[1])
                         if declared[0].get(k) != declared[1].get(k))
        _fail(space, "config", shown, f"the space from `from_config` declares other decisions "
              f"(differing: {changed}); does `get_config` leave out an argument?")
    for arch in archs:
        try:
            same = clone.decode(arch) == space.decode(arch)
        except Exception as error:
            _fail(space, "config", repr(arch),
                  f"the space from `from_config` cannot decode it: {_describe(error)}")
        if not same:
            _fail(space, "config", repr(arch), "the space from `from_config` decodes it to "
                  "other decisions")
    return True


def _check_input_shape(input_shape):
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(
            f"`input_shape` must be a tuple (height, width, channels), got {input_shape!r}."
        )
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, channels), got {tuple(input_shape)!r}."
        )
    return tuple(check_int(d, "input_shape", minimum=1) for d in input_shape)


def _check_arguments(space, samples, seed):
    """`(samples, seed)` checked, with `space` a `Space`, or a clear error."""
    if not isinstance(space, Space):
        raise TypeError(
            f"`space` must be a keras_nas.spaces.Space instance, got {type(space).__name__}."
        )
    return check_int(samples, "samples", minimum=1), check_int(seed, "seed")


@contextlib.contextmanager
def configured_for_check(space, input_shape, num_classes):
    """`space` configured with `input_shape` and `num_classes` inside the block, and given
    back the values it had afterwards (a space configured for others raises `ValueError`)."""
    input_shape = _check_input_shape(input_shape)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    saved = space.input_shape, space.num_classes
    space.configure(input_shape=input_shape, num_classes=num_classes)
    try:
        yield space
    finally:
        space.input_shape, space.num_classes = saved  # as the caller left it


def _check_architectures(space, samples, seed):
    """Rules 1-4 on up to `samples` distinct random architectures of a configured space."""
    rng = random.Random(seed)
    shape = (_BATCH,) + tuple(space.input_shape)
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    archs, params, kinds, decisions = [], [], set(), 0
    for index in range(samples * 10):
        if len(archs) == samples:
            break
        values, declared = _draw(space, rng, index)
        decisions = max(decisions, declared)
        arch = _check_round_trip(space, values)
        if arch in archs:
            continue  # a small space drew an architecture again
        model, y, kind = _check_model(space, arch, x, space.num_classes)
        _check_save_load(space, arch, model, x, y)
        archs.append(arch)
        params.append(int(model.count_params()))
        kinds.add(kind)
    return archs, params, kinds, decisions


def check_space(space, input_shape=(8, 8, 1), num_classes=3, samples=3, seed=0):
    """Checks that a `Space` keeps the contract keras-nas relies on; raises if not.

    Draws `samples` random architectures (fresh `keras_tuner.HyperParameters` and the
    space's own `declare`, as a tuner does) and checks, per architecture, the rules of
    `SPACE_RULES`:

    1. `declare`: declaring creates no Keras layer or variable, registers at least one
       decision and keeps values already set on `hp`;
    2. `round_trip`: `decode(encode(values))` gives back exactly the active decisions,
       `encode` of those gives back the string, and `short_architecture` returns a string;
    3. `model`: the model of `build_architecture` maps a batch of `input_shape` to finite
       `(batch, num_classes)` outputs, which sum to 1 per row when the model is compiled
       with a cross-entropy on probabilities (as `Space.compile_model` does);
    4. `save_load`: `model.save("....keras")` then `keras.saving.load_model` (no
       `custom_objects`) gives the same predictions;
    5. `config`: if the space has `get_config` and `from_config` (the base `Space` has
       neither, so this rule is then skipped), the round trip gives the same config and
       decodes the architectures the same.

    Every model is built, so keep the space tiny (few channels and cells): its size is the
    caller's choice. `space` is configured with `input_shape` and `num_classes` for the
    check and given back its own values afterwards; a space already configured for other
    values raises `ValueError`, as `Space.configure` does.

    Args:
        space: a `keras_nas.spaces.Space` instance.
        input_shape: `(height, width, channels)` of the test batch.
        num_classes: class count of the models.
        samples: how many random architectures to check (fewer if the space has fewer).
        seed: seed of the draws and of the test batch.

    Returns:
        A dict: `space` (its name), `decisions` (hyperparameters declared),
        `architectures` (the strings checked), `params` (each model's parameter count),
        `outputs` (`"probabilities"`, `"logits"` or `"values"`: what rule 3 checked) and
        `config` (whether rule 5 ran).

    Raises:
        AssertionError: a broken rule; the message names the space, the architecture and
            the rule.

    Example:

    ```python
    from keras_nas.spaces import NASBench201Space
    from keras_nas.testing import check_space

    report = check_space(NASBench201Space(channels=4, cells_per_stage=1), samples=2)
    report["architectures"]   # the two architecture strings that passed
    ```
    """
    samples, seed = _check_arguments(space, samples, seed)
    with configured_for_check(space, input_shape, num_classes):
        archs, params, kinds, decisions = _check_architectures(space, samples, seed)
        config = _check_config(space, archs)
    return {
        "space": _label(space),
        "decisions": decisions,
        "architectures": archs,
        "params": params,
        "outputs": "/".join(sorted(kinds)),
        "config": config,
    }
