"""Learning-rate schedules a search trains every candidate with, as Keras callbacks.

A callback, not an optimizer schedule, so it applies to any compiled model without knowing
its steps at compile time, and it also suits a trial that is stopped early (successive
halving) or continued (Hyperband): the schedule follows the epochs `fit` was asked for.

```python
model.fit(x, y, epochs=10, callbacks=[CosineLearningRate()])
```
"""

import math

import keras


class CosineLearningRate(keras.callbacks.Callback):
    """Cosine decay of the optimizer's learning rate from its compiled value to 0 over `fit`.

    At step `t` of `T` (all batches of the epochs `fit` runs, counted from epoch 0, so a
    continued `fit` with `initial_epoch` picks up where the curve was), the learning rate is
    `peak * (1 + cos(pi * t / T)) / 2`, after `warmup_epochs` of linear warm-up from 0. The
    peak is the learning rate the model was compiled with; it is put back when `fit` ends,
    so a saved model's optimizer holds it.

    Args:
        warmup_epochs: epochs of linear warm-up (0: none).

    Example: `model.fit(x, y, epochs=5, callbacks=[CosineLearningRate()])`.
    """

    def __init__(self, warmup_epochs=0.0):
        super().__init__()
        if not warmup_epochs >= 0:
            raise ValueError(f"`warmup_epochs` must be >= 0, got {warmup_epochs!r}.")
        self.warmup_epochs = float(warmup_epochs)
        self.peak = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.peak = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # A dataset of unknown length has no `steps`: then the rate changes once per epoch.
        steps = self.params.get("steps")
        if not steps:
            steps, batch = 1, 0
        total = max(1, (self.params.get("epochs") or 1) * steps)
        t = self._epoch * steps + batch
        warmup = self.warmup_epochs * steps
        if t < warmup:
            rate = self.peak * (t + 1) / warmup
        else:
            rate = self.peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t / total)))
        self.model.optimizer.learning_rate.assign(rate)

    def on_train_end(self, logs=None):
        if self.peak is not None:
            self.model.optimizer.learning_rate.assign(self.peak)
