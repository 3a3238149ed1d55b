"""The wall-clock budget of a search call: when to stop starting trials, and what to keep back.

`max_time` bounds the whole call: the trials, the final model's training, saving it and (in
the command) the export and figures. A `TimeBudget` knows when the call started, how long the
work after the search is expected to take (re-estimated from what the trials measured), and
so when the search itself must end. `StopAtDeadline` ends a trial's `fit` at that moment, so
no trial runs past it.

```python
budget = TimeBudget(max_time=600)
budget.reserve("final_model", 40.0)      # seconds kept back for the work after the search
budget.search_left()                     # seconds the trials may still use
```
"""

import math
import time

import keras


class TimeBudget:
    """Seconds left of a search call's `max_time`, with reserves for the work after it.

    Args:
        max_time: the whole call's budget in seconds, or None (no limit: every query
            answers "plenty").
        started: when the call started (`time.time()`); default now.
        clock: a function returning the time in seconds (for tests).

    Example:

    ```python
    budget = TimeBudget(300)
    budget.reserve("export", 5.0)
    if budget.search_left() > expected_trial_seconds:
        ...  # start another trial
    ```
    """

    def __init__(self, max_time=None, started=None, clock=time.time):
        if max_time is not None and not (isinstance(max_time, (int, float))
                                         and not isinstance(max_time, bool)
                                         and math.isfinite(max_time) and max_time > 0):
            raise ValueError(f"`max_time` must be a positive number of seconds, got {max_time!r}.")
        self.max_time = None if max_time is None else float(max_time)
        self.clock = clock
        self.started = clock() if started is None else float(started)
        self.reserves = {}

    @property
    def limited(self):
        return self.max_time is not None

    def elapsed(self):
        return self.clock() - self.started

    def left(self):
        """Seconds left of the whole budget (inf without one)."""
        if self.max_time is None:
            return math.inf
        return self.max_time - self.elapsed()

    def reserve(self, name, seconds):
        """Keeps `seconds` back for the work `name` after the search (replaces its last value)."""
        if not seconds >= 0:
            raise ValueError(f"`seconds` must be >= 0, got {seconds!r}.")
        self.reserves[name] = float(seconds)

    def reserved(self):
        return sum(self.reserves.values())

    def search_deadline(self):
        """The moment (`time.time()`) the trials must end by (inf without a budget)."""
        if self.max_time is None:
            return math.inf
        return self.started + self.max_time - self.reserved()

    def search_left(self):
        """Seconds the trials may still use (inf without a budget)."""
        return self.search_deadline() - self.clock()

    def to_dict(self):
        """The budget as plain data, for `summary.json`."""
        return {"max_time": self.max_time, "elapsed_s": self.elapsed(),
                "reserved_s": dict(self.reserves)}


class StopAtDeadline(keras.callbacks.Callback):
    """Stops `fit` at the end of the first batch past `deadline()` (a `time.time()` value).

    Keras still validates the interrupted epoch and ends `fit` normally, so the trial keeps
    what it learned; `stopped_early` tells whether it was cut.

    Example: `model.fit(x, y, epochs=50, callbacks=[StopAtDeadline(lambda: t0 + 60)])`.
    """

    def __init__(self, deadline, clock=time.time):
        super().__init__()
        if not callable(deadline):
            raise TypeError(f"`deadline` must be a function returning a time, got {deadline!r}.")
        self.deadline = deadline
        self.clock = clock
        self.stopped_early = False

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() >= self.deadline():
            self.stopped_early = True
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch of a `fit` (the first includes tracing the step).

    Example: `timer = EpochTimer(); model.fit(..., callbacks=[timer]); timer.seconds`.
    """

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self.seconds = []
        self._began = None

    def on_epoch_begin(self, epoch, logs=None):
        self._began = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.clock() - self._began)

    def steady_epoch_s(self):
        """Seconds of an epoch after the first (the first when there is only one)."""
        if not self.seconds:
            return None
        later = self.seconds[1:] or self.seconds
        return sorted(later)[len(later) // 2]

    def first_epoch_extra_s(self):
        """What the first epoch took beyond a steady one: tracing and building the step."""
        if len(self.seconds) < 2:
            return 0.0
        return max(0.0, self.seconds[0] - self.steady_epoch_s())
