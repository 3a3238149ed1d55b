"""The model a search returns: the final-model policies, their cost, and what is known of it.

- `"checkpoint"`: the best trial's own weights, at its best epoch. Trained on the training
  data only; its validation accuracy is the one the search measured, and is checked again.
- `"retrain"`: the best trial's architecture (and training settings) trained anew on the
  training and validation data together, for `epochs` (`keras_nas.Search`: 4 x a trial's; by
  default here, the epochs the best trial needed to reach its best epoch). It sees more
  examples and trains longer than any trial, but nothing is left to check it on. With
  `augmentation="shift"` (the default of `keras_nas.Search`) each epoch shows the images
  randomly shifted by up to 10% of their side (`keras_nas.tuning.augmentation`).

Either is fitted into what is left of the time budget: `estimate_seconds` says what a policy
will take from the trials' own measurements (seconds per epoch, tracing), so the search can
keep that time back; a retraining trains the epochs that fit, and falls back to the
checkpoint when fewer fit than the best trial needed.

```python
seconds = estimate_seconds("retrain", best_record, n_train=1750, n_validation=250)
model, record = make_final_model("retrain", tuner, best_trial, data, batch_size=32,
                                 time_left=60.0, seed=0)
record["policy"], record["trained_on"], record["validation_accuracy"]
```
"""

import math
import time

import keras

from keras_nas import validation
from keras_nas.tuning.augmentation import ShiftedImages, default_shift
from keras_nas.tuning.budget import StopAtDeadline
from keras_nas.tuning.training_state import BuildTrainingState

POLICIES = ("checkpoint", "retrain")
"""The final-model policies `keras_nas.Search(final_model=...)` accepts."""

AUGMENTATIONS = ("shift", None)
"""What a retraining may show instead of the images as they are (`final_augmentation`)."""

#: Seconds to build, restore and save a model, beyond its training (measured: 0.5-2 s).
_FIXED_S = 3.0


def check_policy(policy):
    """`policy` if it is one of `POLICIES`; a ValueError naming `final_model` otherwise."""
    return validation.check_choice(policy, "final_model", POLICIES)


def check_augmentation(augmentation):
    """`augmentation` if it is one of `AUGMENTATIONS`; a ValueError naming
    `final_augmentation` otherwise."""
    return validation.check_choice(augmentation, "final_augmentation", AUGMENTATIONS)


def final_epochs(record, epochs=None):
    """Epochs of a retraining: `epochs`, or those the trial trained up to its best epoch."""
    if epochs is not None:
        return int(epochs)
    best = record.get("best_epoch")
    return int(best) + 1 if best is not None else int(record.get("epochs") or 1)


def estimate_seconds(policy, record, n_train, n_validation, epochs=None):
    """Seconds `policy` will take for the trial `record` (a `summary["trials"]` entry).

    The retraining's estimate is the trial's own build and tracing time plus its steady
    seconds per epoch, scaled to the training + validation examples, times the epochs.

    Example: `estimate_seconds("checkpoint", record, 1750, 250)` is a few seconds.
    """
    check_policy(policy)
    if policy == "checkpoint":
        return _FIXED_S + float(record.get("build_s") or 0.0)
    return _setup_seconds(record) + final_epochs(record, epochs) * _epoch_seconds(
        record, n_train, n_validation)


def _setup_seconds(record):
    """Building, tracing and saving: what a retraining costs beyond its epochs."""
    return (_FIXED_S + float(record.get("build_s") or 0.0)
            + float(record.get("first_epoch_extra_s") or 0.0))


def _epoch_seconds(record, n_train, n_validation):
    """One epoch over training + validation data, from the trial's steady epochs."""
    epoch_s = record.get("epoch_s")
    if epoch_s is None:  # a trial recorded before per-epoch times were
        epoch_s = float(record.get("fit_s") or 0.0) / max(1, int(record.get("epochs") or 1))
    return float(epoch_s) * (n_train + n_validation) / max(1, n_train)


def affordable_epochs(record, n_train, n_validation, seconds):
    """The most retraining epochs that fit in `seconds` (0 if not even one).

    Example: `affordable_epochs(record, 1750, 250, seconds=60.0)`.
    """
    per_epoch = _epoch_seconds(record, n_train, n_validation)
    left = seconds - _setup_seconds(record)
    if per_epoch <= 0:
        return 10**6 if left >= 0 else 0
    return max(0, int(left // per_epoch))



def make_final_model(policy, tuner, trial, record, data, batch_size, time_left=math.inf,
                     seed=None, epochs=None, augmentation=None, verbose=0):
    """The model `policy` returns for `trial`, and the record of how it was made.

    Args:
        policy: one of `POLICIES`.
        tuner: the search's `NASTuner` (it builds models and reads trial checkpoints).
        trial: the best `keras_tuner` trial; record: its `summary["trials"]` entry.
        data: the search's `keras_nas.data.SearchData`.
        batch_size: batch size for numpy data.
        time_left: seconds the policy may take. A retraining trains as many of its epochs
            as fit (its cosine schedule fitted to them); if fewer fit than the best trial
            needed to reach its best epoch, the checkpoint is returned instead. One that runs
            late is stopped at the end of this time.
        seed: seeds the retraining's initial weights.
        epochs: epochs of a retraining (default: the best trial's, see `final_epochs`).
        augmentation: `"shift"`: a retraining on images (arrays, not a `tf.data.Dataset`)
            sees them randomly shifted each epoch (`ShiftedImages`); None: as they are.
        verbose: Keras' `fit` verbosity.

    Returns:
        `(model, info)`: a compiled `keras.Model` and a dict with `policy`, `trial_id`,
        `trained_on`, `epochs`, `seconds`, `validation_accuracy` (None when the model has
        seen the validation data), `checked_on`, `augmentation` (what a retraining showed,
        e.g. `{"kind": "shift", "max_shift": 3}`, or None) and, if it fell back, `fallback`.
    """
    check_policy(policy)
    check_augmentation(augmentation)
    started = time.time()
    info = {"policy": policy, "trial_id": trial.trial_id, "augmentation": None}
    n_train, n_val = data.sizes()
    count = final_epochs(record, epochs)
    if policy == "retrain" and math.isfinite(time_left):
        fits = affordable_epochs(record, n_train, n_val, time_left)
        needed = final_epochs(record, None)  # what the best trial needed
        if fits < min(count, needed):
            info["fallback"] = (f"{fits} retraining epoch(s) fit in the {max(0, time_left):.0f} s "
                                f"left, fewer than the best trial's {needed}: its checkpoint "
                                "is returned")
            policy = "checkpoint"
        elif fits < count:
            info["shortened"] = f"{fits} of {count} epochs fit in the {time_left:.0f} s left"
            count = fits
    if policy == "checkpoint":
        model = tuner.load_model(trial)
        info.update(trained_on="train", epochs=(record.get("best_epoch") or 0) + 1,
                    checked_on="validation",
                    validation_accuracy=_accuracy(model, data.validation, batch_size))
    else:
        keras.backend.clear_session()
        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = tuner.hypermodel.build(trial.hyperparameters)
        joined = data.train_and_validation()
        fit_data = state_data = (joined,) if data.is_dataset else tuple(joined)
        shift = 0 if data.is_dataset or augmentation != "shift" else default_shift(
            joined[0].shape)
        fit_kwargs = dict(shuffle=not data.is_dataset,
                          batch_size=None if data.is_dataset else batch_size)
        if shift:
            fit_data = (ShiftedImages(*joined, batch_size=batch_size, max_shift=shift,
                                      seed=seed),)
            fit_kwargs = {}
            info["augmentation"] = {"kind": "shift", "max_shift": shift}
        stop = StopAtDeadline(lambda: started + time_left)
        model.fit(*fit_data, epochs=count, verbose=verbose, **fit_kwargs,
                  callbacks=[BuildTrainingState(*state_data), *tuner.training_callbacks(count),
                             stop])
        info.update(trained_on="train+validation", epochs=count, checked_on=None,
                    validation_accuracy=None, stopped_by_time=stop.stopped_early)
    info["seconds"] = time.time() - started
    return model, info


def _accuracy(model, split, batch_size):
    """The model's accuracy on `(x, y)` or a dataset (None if it reports no accuracy)."""
    if split is None:
        return None
    args = (split,) if not isinstance(split, tuple) else split
    results = model.evaluate(*args, batch_size=None if not isinstance(split, tuple) else batch_size,
                             verbose=0, return_dict=True)
    value = results.get("accuracy", results.get("compile_metrics"))
    return float(value) if isinstance(value, (int, float)) else None
