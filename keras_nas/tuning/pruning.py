"""Multi-fidelity for every strategy: trials stop early at rungs unless they are among the best.

Successive halving in its asynchronous, stopping form (ASHA; Optuna's
`SuccessiveHalvingPruner`): a trial trains toward the full `epochs`, and at each rung (an epoch
count, `eta` times fewer than the next) it goes on only if its objective is in the top `1/eta`
of every value seen at that rung so far. So many candidates are trained briefly and the
promising ones longer, with any oracle: a stopped trial is an ordinary completed trial whose
metrics are those of the epochs it trained (recorded with it), and the oracle learns from them.

```python
halving = SuccessiveHalving(max_epochs=10, eta=3)  # rungs at 1, 3 and 9 epochs
halving.rungs                                       # [1, 3, 9]
model.fit(..., epochs=9, callbacks=[halving.callback(objective)])
```
"""

import math

import keras


class SuccessiveHalving:
    """Decides at rung epochs whether a trial goes on (top `1/eta` at the rung) or stops.

    Args:
        max_epochs: the full training of a trial.
        eta: the reduction factor: `eta` times fewer epochs per rung below, and the top
            `1/eta` go on.
        min_epochs: the first rung (at least 1 epoch).
        grace: no trial stops at a rung until `grace` values have reached it (the first trials
            train in full, so the oracle sees full-fidelity results first).
        direction: `"max"` or `"min"` for the objective.

    Attributes:
        rungs: the epoch counts at which trials are judged, ascending (below `max_epochs`).
        values: `{rung: [objective values seen there]}`; plain data (`get_state`).

    Example: `SuccessiveHalving(max_epochs=5, eta=3).rungs == [1, 3]`.
    """

    def __init__(self, max_epochs, eta=3, min_epochs=1, grace=None, direction="max"):
        for name, value, low in (("max_epochs", max_epochs, 1), ("eta", eta, 2),
                                 ("min_epochs", min_epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
        if direction not in ("max", "min"):
            raise ValueError(f"`direction` must be 'max' or 'min', got {direction!r}.")
        self.max_epochs = max_epochs
        self.eta = eta
        self.min_epochs = min_epochs
        self.grace = eta if grace is None else int(grace)
        self.direction = direction
        # From the bottom, as ASHA: min_epochs, min_epochs * eta, ... below max_epochs.
        self.rungs = []
        rung = min_epochs
        while rung < max_epochs:
            self.rungs.append(rung)
            rung *= eta
        self.values = {rung: [] for rung in self.rungs}

    def judge(self, epochs_done, value):
        """Records `value` at rung `epochs_done` and returns True if the trial should stop.

        Epoch counts that are not rungs, and values that are not finite numbers, never stop
        a trial (a non-finite value is not recorded).
        """
        if epochs_done not in self.values or value is None or not math.isfinite(value):
            return False
        seen = self.values[epochs_done]
        seen.append(float(value))
        if len(seen) < self.grace:
            return False
        ranked = sorted(seen, reverse=self.direction == "max")
        keep = max(1, len(ranked) // self.eta)
        cutoff = ranked[keep - 1]
        return value < cutoff if self.direction == "max" else value > cutoff

    def callback(self, objective, judge=None):
        """A Keras callback that judges the trial at each rung and stops its `fit`.

        `judge`: what decides, anything with this object's `judge(epochs_done, value)`
        (default: this object; a worker process passes one that asks the chief's)."""
        return _RungStop(self if judge is None else judge, objective)

    def get_state(self):
        return {"values": {str(k): list(v) for k, v in self.values.items()}}

    def set_state(self, state):
        saved = {int(k): [float(x) for x in v] for k, v in state.get("values", {}).items()}
        self.values = {rung: saved.get(rung, []) for rung in self.rungs}


class _RungStop(keras.callbacks.Callback):
    """Stops `fit` when `SuccessiveHalving` judges the trial at a rung; `stopped_at` says when."""

    def __init__(self, judge, objective):
        super().__init__()
        self.judge = judge
        self.objective = objective
        self.stopped_at = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.objective.has_value(logs):
            return
        if self.judge.judge(epoch + 1, float(self.objective.get_value(logs))):
            self.stopped_at = epoch + 1
            self.model.stop_training = True
