"""A trial's best-epoch weights: kept in memory during `fit`, written once after it.

KerasTuner's `SaveBestEpoch` calls `model.save_weights` inside `fit` each time the objective
improves; for the network of `tools/bench_overhead.py` that writes 275 variables (the model's
123 and Adam's 152) to HDF5 in 0.14-0.18 s, 2-3% of a 1-epoch trial on digits.
`BestEpochWeights` copies the values at the best epoch instead (4 ms) and `write_checkpoint`
writes them once after `fit`, as one `.npz` file (5 ms). The file holds the model's weights
and the optimizer's variables, so a trial continued by Hyperband resumes both.

    keeper = BestEpochWeights(keras_tuner.Objective("val_accuracy", "max"))
    model.fit(x, y, validation_data=(xv, yv), epochs=5, callbacks=[keeper])
    write_checkpoint(keeper, "trial/checkpoint.weights.npz")
    restore_checkpoint(fresh_model, "trial/checkpoint.weights.npz")
"""

import os

import keras
import numpy as np

_MODEL = "model_"
_OPTIMIZER = "optimizer_"


class BestEpochWeights(keras.callbacks.Callback):
    """Keeps a copy of the model's and optimizer's variables at the best epoch so far.

    Args:
        objective: a `keras_tuner.Objective`; when its metric is not in an epoch's logs,
            every epoch counts as the best (as in KerasTuner).

    Example:
        >>> keeper = BestEpochWeights(keras_tuner.Objective("val_loss", "min"))
        >>> model.fit(x, y, validation_split=0.2, epochs=3, callbacks=[keeper])  # doctest: +SKIP
    """

    def __init__(self, objective):
        super().__init__()
        self.objective = objective
        self.best_value = float("-inf") if objective.direction == "max" else float("inf")
        self.weights = None  # the model's weights at the best epoch (numpy arrays)
        self.optimizer_variables = None
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if self.objective.has_value(logs):
            value = self.objective.get_value(logs)
            if not self.objective.better_than(value, self.best_value):
                return
            self.best_value = value
        self.best_epoch = epoch
        self.weights = self.model.get_weights()
        optimizer = self.model.optimizer
        self.optimizer_variables = (
            [np.array(v.numpy()) for v in optimizer.variables]
            if optimizer is not None and optimizer.built else [])


def write_checkpoint(keeper, path):
    """Writes what a `BestEpochWeights` kept to `path` (an `.npz` file); returns False
    when it kept nothing (no epoch ended)."""
    if keeper.weights is None:
        return False
    arrays = {f"{_MODEL}{i:05d}": w for i, w in enumerate(keeper.weights)}
    arrays.update({f"{_OPTIMIZER}{i:05d}": v for i, v in enumerate(keeper.optimizer_variables)})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path)  # never a half-written checkpoint
    return True


def restore_checkpoint(model, path, optimizer=False):
    """Loads a checkpoint written by `write_checkpoint` into `model`, a network of the same
    architecture; with `optimizer=True` also the optimizer's variables (built if needed).

    Raises:
        ValueError: when the checkpoint does not fit the model (another architecture).
    """
    with np.load(path) as stored:
        weights = [stored[k] for k in sorted(k for k in stored.files if k.startswith(_MODEL))]
        variables = [stored[k] for k in sorted(k for k in stored.files
                                               if k.startswith(_OPTIMIZER))]
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise ValueError(
            f"The checkpoint {path!r} holds {len(weights)} weights that do not fit the "
            f"model's {len(expected)}: was it written for another architecture?")
    model.set_weights(weights)
    if optimizer and variables and model.optimizer is not None:
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        targets = model.optimizer.variables
        if [tuple(v.shape) for v in targets] == [tuple(v.shape) for v in variables]:
            for target, value in zip(targets, variables):
                target.assign(value)
    return model
