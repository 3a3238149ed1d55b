"""What a search trial leaves in memory, and what it costs to clean it up.

Two things, both measured in `tools/bench_memory.py` and `tools/bench_overhead.py`:

1. Releasing what TensorFlow keeps from a trained model after the model is gone.

Every time Keras traces a training step on TensorFlow, its optimizer sums the gradients
through `tf.distribute`'s default replica context, which wraps them in `tf.custom_gradient`.
In a graph (any `tf.function`) that registers a gradient function under a fresh name
(`"CustomGradient-<n>"`) in TensorFlow's process-wide gradient registry, and nothing ever
removes it. The registered function closes over tensors of the traced graph, so the whole
`FuncGraph` (its operations and everything they hold) stays alive after
`keras.backend.clear_session()`. Measured on TensorFlow 2.21 / Keras 3.15: 22 MB per trained
model in a plain Keras loop, 38.7 MB per trial in a search, for good (`tools/bench_memory.py`,
docs/BENCHMARKS.md §2).

The registered function is only looked up while a graph containing the op is being
differentiated, which happens while the training step is traced, so once a trial's model is
trained its entries can go. `forget_new_custom_gradients()` does that around a block:

    with forget_new_custom_gradients():
        model.fit(x, y)         # entries registered in here are removed on exit

2. Collecting garbage between trials cheaply. A full `gc.collect()` walks every object Python
   tracks: after importing TensorFlow about 400,000, which takes 0.2-0.25 s each time on this
   project's 2-core machine (KerasTuner's own tuner collects twice before every build;
   keras-nas' `NASTuner` once, in `release_previous_trial()`).
   `collect_only_new_objects()` moves the objects that exist when the search starts into
   Python's permanent generation (`gc.freeze()`) for the search's duration, and
   `release_previous_trial()`, the one collection a keras-nas trial makes, moves what
   survives it there too, so each collection walks only the objects of the trial before.
"""

import contextlib
import gc

from keras_nas import compat

_PREFIX = "CustomGradient-"


def _registry():
    """TensorFlow's gradient registry as a dict, or None (then there is nothing to release)."""
    return compat.gradient_registry()


def custom_gradient_count():
    """How many `tf.custom_gradient` functions TensorFlow holds right now."""
    registry = _registry()
    return 0 if registry is None else sum(1 for k in registry if k.startswith(_PREFIX))


@contextlib.contextmanager
def forget_new_custom_gradients():
    """Removes, on exit, the custom-gradient functions registered inside the block.

    Use it around work whose traced graphs are thrown away afterwards (a search trial);
    graphs traced inside the block must not be differentiated again after it.

    Example:
        >>> with forget_new_custom_gradients():
        ...     model.fit(x, y, epochs=1)        # doctest: +SKIP
    """
    registry = _registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            for name in [k for k in registry if k.startswith(_PREFIX) and k not in before]:
                registry.pop(name, None)


_frozen_here = False  # whether `collect_only_new_objects` froze the objects now frozen


@contextlib.contextmanager
def collect_only_new_objects():
    """Inside the block, garbage collection skips the objects that existed before it.

    Garbage is collected first; objects created before the block are then left out of
    collections until it ends (they are still freed by reference counting), which makes
    each `gc.collect()` in the block proportional to what the block created.

    Example:
        >>> with collect_only_new_objects():
        ...     tuner.search(x, y)              # doctest: +SKIP
    """
    global _frozen_here
    if gc.get_freeze_count():  # someone froze objects already: leave their choice alone
        yield
        return
    gc.collect()
    gc.freeze()
    _frozen_here = True
    try:
        yield
    finally:
        _frozen_here = False
        gc.unfreeze()


def release_previous_trial():
    """Frees what the previous trial left (its model and traced graphs): clears Keras'
    session and collects garbage. Inside `collect_only_new_objects`, what survives (the
    search's own state, modules imported during the first trial) is then moved out of later
    collections too, so the next trial's collections walk only that trial's objects.

    Example:
        >>> with collect_only_new_objects():
        ...     for architecture in candidates:        # doctest: +SKIP
        ...         release_previous_trial()
        ...         train(architecture)
    """
    import keras

    keras.backend.clear_session()  # collects garbage
    if _frozen_here:
        gc.freeze()
