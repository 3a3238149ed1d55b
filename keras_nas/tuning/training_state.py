"""Creating a compiled model's training state before its training step is traced.

On TensorFlow, unless a distribution strategy is set, Keras creates the optimizer's slot
variables and the compiled metrics' and loss's variables the first time `fit` traces the
training step. Variables created inside a `tf.function` cost twice: each gets an initializer
guarded by a `tf.cond` (two small branch graphs per variable), and TensorFlow then traces the
whole step a second time, now without creating variables. For the NAS-Bench-201 network of
`tools/bench_overhead.py` (123 weights, so Adam adds 150 variables) that is 300 branch graphs
and two 5,600-operation traces of the step where one would do: 1-epoch training on digits took
7.2 s instead of 4.3 s, and the traced graphs left 141,000 objects for the garbage collector
instead of 60,000 (docs/BENCHMARKS.md §1).

`build_training_state` creates that state eagerly, as Keras' own `fit` does when a
distribution strategy is set; `BuildTrainingState` does it as the first thing in `fit`:

    model.fit(x, y, callbacks=[BuildTrainingState(x, y)])

It changes no number: the variables are the same, created earlier (tested).
"""

import keras

from keras_nas import compat
from keras_nas.data import is_tf_dataset


def build_training_state(model, x, y=None):
    """Creates the optimizer's, compiled metrics' and compiled loss's variables of `model`.

    Args:
        model: a compiled `keras.Model` whose layers are built.
        x: the training inputs (array, dict of arrays, or a `tf.data.Dataset` of batches),
            only their shapes and dtypes are read.
        y: the targets (None for a dataset).

    Returns:
        True when the state was created; False when it was left to Keras (the model is not
        compiled or not built, or the data's structure is not one this function reads).

    Example:
        >>> model.compile(optimizer="adam", loss="mse")        # doctest: +SKIP
        >>> build_training_state(model, x_train, y_train)      # doctest: +SKIP
        True
    """
    return _build_from_batch(model, _symbolic_batch(x, y))


def _build_from_batch(model, batch):
    if batch is None or not getattr(model, "compiled", False) or not model.built:
        return False
    if not all(layer.built for layer in compat.all_layers(model, include_self=True)):
        return False
    x_spec, y_spec, weight_spec = batch
    try:
        with model.distribute_strategy.scope():
            y_pred = model.compute_output_spec(x_spec)
            loss, metrics = compat.compiled_loss_and_metrics(model)
            if metrics is not None and not metrics.built:
                compat.compute_output_spec(
                    model.compute_metrics, x_spec, y_spec, y_pred, sample_weight=weight_spec)
            if loss is not None and not loss.built:
                compat.compute_output_spec(
                    compat.compute_loss(model), x_spec, y_spec, y_pred,
                    sample_weight=weight_spec, training=False)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
    except Exception:  # noqa: BLE001 - `fit` builds the state itself and reports any error
        return False
    return True


class BuildTrainingState(keras.callbacks.Callback):
    """Calls `build_training_state` at the start of `fit`, before the step is traced.

    Args:
        x, y: the data `fit` is given (only shapes and dtypes are read).

    Example:
        >>> model.fit(x, y, callbacks=[BuildTrainingState(x, y)])   # doctest: +SKIP
    """

    def __init__(self, x, y=None):
        super().__init__()
        self._batch = _symbolic_batch(x, y)
        self.built = None  # whether the last `fit` started with its state built

    def on_train_begin(self, logs=None):
        self.built = _build_from_batch(self.model, self._batch)


def _symbolic_batch(x, y=None):
    """`(x, y, sample_weight)` as `keras.KerasTensor`s with an unknown batch size, or None
    when the data is not arrays, a structure of arrays, or a dataset of such batches."""
    if y is None and is_tf_dataset(x):
        parts = x.element_spec  # shapes and dtypes of a batch
        if not isinstance(parts, tuple):
            parts = (parts,)
        if not 1 <= len(parts) <= 3:
            return None
    else:
        parts = (x, y)
    parts = tuple(parts) + (None,) * (3 - len(parts))
    try:
        return tuple(None if part is None else keras.tree.map_structure(_spec_of_batch, part)
                     for part in parts)
    except (AttributeError, TypeError, ValueError):
        return None


def _spec_of_batch(value):
    """A batch's array (or `tf.TensorSpec`) as a `keras.KerasTensor` of any batch size."""
    if isinstance(value, keras.KerasTensor):
        return value
    shape = tuple(value.shape)
    if not shape:
        raise ValueError("a scalar is not a batch")
    return keras.KerasTensor((None,) + shape[1:], keras.backend.standardize_dtype(value.dtype))
