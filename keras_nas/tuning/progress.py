"""Progress of a long search: one aligned table row per finished trial.

`ProgressPrinter` knows nothing of Keras or KerasTuner: it is given the search budget and
then, for each finished trial, the trial's record (one element of `summary["trials"]`).

```
 trial  status     val_accuracy      best   elapsed  remaining  architecture
  1/10  COMPLETED        0.8125    0.8125      4.1s     ~37.2s  |c3~0|+|-~0|c3~1|+|sk~0|c3~1|ap~2|
  2/10  FAILED                -    0.8125      5.0s     ~20.0s  |-~0|+|-~0|-~1|+|-~0|-~1|-~2|
```
"""

import math
import shutil
import sys
import time

from keras_nas.results.summary import trial_value

def format_duration(seconds):
    """`4.2` -> `"4.2s"`, `125` -> `"2m05s"`, `7380` -> `"2h03m"`; `None` -> `"?"`."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m}m{s:02d}s"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h{rem // 60:02d}m"


def shorten(text, width):
    """Shortens `text` to `width` characters by cutting its middle (marked with "…")."""
    text = "-" if text is None else str(text)
    if width < 3:
        raise ValueError(f"`width` must be >= 3, got {width!r}.")
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


class ProgressPrinter:
    """Prints one aligned row per finished trial: budget used, status, best so far, time.

    Each row shows the number of trials done of `max_trials` (`-` for a candidate skipped
    untrained as infeasible, which does not use up the budget), the trial's status, its
    objective (and any `metrics` asked for, e.g. latency), the best objective so far, the
    time elapsed since `start()`, the estimated time remaining (the mean time per trial
    times the trials left, capped by what is left of `max_time`) and, last, its
    architecture: whole when the terminal is wide enough, else cut in the middle.

    Args:
        max_trials: the trial budget (or `None`).
        max_time: the time budget in seconds (or `None`).
        objective: name of the metric shown (read from the trial's `metrics`, then `score`).
        direction: `"max"` or `"min"`, to keep the best so far.
        metrics: names of more metrics to show, each in its own column (e.g. `latency_ms`).
        rank: optional `fn(record) -> number or None`, larger is better, that picks the best
            trial when the search ranks trials by something else than the objective (a
            latency reward); the best column still shows that trial's objective.
        describe: optional `fn(architecture) -> str` (a space's short form).
        legend: optional line printed under the header (what the short forms mean).
        stream: a text stream to write to; default `sys.stdout` (looked up at each write).
        width: the line width; default the terminal's (at least 100).
        clock: a function returning the time in seconds (for tests).

    Example:

    ```python
    progress = ProgressPrinter(max_trials=10, max_time=600)
    progress.start()
    for record in records:          # one element of summary["trials"] each
        progress.on_trial_end(record)
    progress.finish()
    ```
    """

    def __init__(self, max_trials=None, max_time=None, objective="val_accuracy",
                 direction="max", metrics=(), rank=None, describe=None, legend=None,
                 stream=None, width=None, clock=time.time):
        if max_trials is not None and (int(max_trials) != max_trials or max_trials < 1):
            raise ValueError(f"`max_trials` must be a positive integer or None, got {max_trials!r}.")
        if max_time is not None and not float(max_time) > 0:
            raise ValueError(f"`max_time` must be a positive number of seconds or None, got {max_time!r}.")
        if direction not in ("max", "min"):
            raise ValueError(f"`direction` must be 'max' or 'min', got {direction!r}.")
        if not isinstance(objective, str) or not objective:
            raise ValueError(f"`objective` must be a metric name, got {objective!r}.")
        for name, fn in (("rank", rank), ("describe", describe), ("clock", clock)):
            if fn is not None and not callable(fn):
                raise TypeError(f"`{name}` must be a function, got {fn!r}.")
        if width is not None and int(width) < 40:
            raise ValueError(f"`width` must be >= 40, got {width!r}.")
        self.max_trials = None if max_trials is None else int(max_trials)
        self.max_time = None if max_time is None else float(max_time)
        self.objective = objective
        self.direction = direction
        self.metrics = tuple(metrics)
        self.rank = rank
        self.describe = describe
        self.legend = legend
        self._stream = stream
        self.width = None if width is None else int(width)
        self.clock = clock
        self.start_time = clock()
        self.done = 0  # trials that use up the budget: all but the skipped ones
        self.skipped = 0
        self._done_before = 0
        self._before_trials = 0.0
        self.best = None
        self._best_rank = None
        self.best_trial_id = None
        self._header_written = False
        budget = len(str(self.max_trials)) if self.max_trials else 3
        self._columns = [("trial", max(5, 2 * budget + 1), ">"), ("status", 9, "<")]
        self._columns += [(name, max(10, len(name)), ">") for name in (objective, *self.metrics)]
        self._columns += [("best", 10, ">"), ("elapsed", 8, ">"), ("remaining", 9, ">"),
                          ("architecture", 0, "<")]

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _line_width(self):
        if self.width is not None:
            return self.width
        return max(100, shutil.get_terminal_size((120, 24)).columns)

    def _write(self, line):
        self.stream.write(line + "\n")
        if hasattr(self.stream, "flush"):
            self.stream.flush()

    def _row(self, cells):
        return "  ".join(
            f"{str(c):{align}{w}}" for c, (_, w, align) in zip(cells, self._columns)
        ).rstrip()

    def header(self):
        """The header line (column names)."""
        return self._row([name for name, _, _ in self._columns])

    def start(self, elapsed=0.0):
        """Restarts the clock and prints the header. Returns `self`.

        `elapsed`: seconds the search already spent before its trials (a one-shot search's
        supernet); they count in the elapsed time but not in the pace of trials.
        """
        self.start_time = self.clock() - float(elapsed)
        self._before_trials = float(elapsed)
        self._write_header()
        return self

    def resume(self, done, skipped=0):
        """Continues the count after `done` trials (and `skipped` candidates skipped
        untrained) of an earlier run of the search."""
        self.done = self._done_before = int(done)
        self.skipped = int(skipped)
        return self

    def _write_header(self):
        if not self._header_written:
            self._write(self.header())
            if self.legend:
                self._write(f"  ({self.legend})")
            self._header_written = True

    def _value(self, trial, name):
        # The trial's score stands in for a missing value of the objective only.
        return trial_value(trial, name, use_score=name == self.objective)

    def remaining(self, elapsed):
        """Estimated seconds left, from the pace so far and the budgets (None if unknown)."""
        estimates = []
        if self.max_trials is not None and self.done > self._done_before:
            left = max(0, self.max_trials - self.done)
            pace = (elapsed - self._before_trials) / (self.done - self._done_before)
            estimates.append(pace * left)
        if self.max_time is not None:
            estimates.append(max(0.0, self.max_time - elapsed))
        return min(estimates) if estimates else None

    def _update_best(self, trial, value):
        if self.rank is not None:
            rank = self.rank(trial)
        else:
            rank = None if value is None else (value if self.direction == "max" else -value)
        if rank is None or not math.isfinite(rank):
            return
        if self._best_rank is None or rank > self._best_rank:
            self._best_rank, self.best = rank, value
            self.best_trial_id = trial.get("trial_id")

    def on_trial_end(self, trial):
        """Prints (and returns) the row of a finished trial.

        Args:
            trial: the trial's record: a dict as one element of `summary["trials"]`
                (`trial_id`, `status`, `architecture`, `metrics`, `score`, ...).

        Returns:
            The row printed, without the newline.
        """
        if not isinstance(trial, dict):
            raise TypeError(f"`trial` must be a trial record dict, got {type(trial).__name__}.")
        self._write_header()
        status = str(trial.get("status") or "COMPLETED")
        completed = status == "COMPLETED"
        trained = completed and not trial.get("skipped")  # a skipped one has no accuracy
        if completed and not trained:
            status = "SKIPPED"
            self.skipped += 1
        else:
            self.done += 1
        value = self._value(trial, self.objective) if trained else None
        if trained:
            self._update_best(trial, value)
        elapsed = self.clock() - self.start_time
        remaining = self.remaining(elapsed)
        budget = f"/{self.max_trials}" if self.max_trials else ""
        number = "-" if status == "SKIPPED" else f"{self.done}{budget}"
        cells = [number, status[:9], _number(value)]
        cells += [_number(self._value(trial, m) if completed else None) for m in self.metrics]
        cells += [_number(self.best), format_duration(elapsed),
                  "~" + format_duration(remaining) if remaining is not None else "?"]
        line = self._row(cells + [""])
        room = max(8, self._line_width() - len(line) - 2)
        line = f"{line}  {shorten(self._architecture(trial), room)}"
        self._write(line)
        return line

    __call__ = on_trial_end

    def _architecture(self, trial):
        arch = trial.get("architecture")
        if arch is None:
            hps = trial.get("hyperparameters") or {}
            return ",".join(f"{k}={v}" for k, v in hps.items()) if hps else trial.get("trial_id")
        if self.describe is not None:
            try:
                return self.describe(arch)
            except Exception:  # a string the space cannot shorten is shown as it is
                return arch
        return arch

    def finish(self):
        """Prints (and returns) a closing line: trials done, best, total time."""
        elapsed = self.clock() - self.start_time
        best = "none" if self.best is None else f"{self.best:.4f} (trial {self.best_trial_id})"
        budget = f" of {self.max_trials}" if self.max_trials else ""
        skipped = f" (and {self.skipped} skipped untrained)" if self.skipped else ""
        line = (f"done: {self.done}{budget} trials{skipped} in {format_duration(elapsed)}; "
                f"best {self.objective} {best}")
        self._write(line)
        return line


def _number(value):
    return "-" if value is None else f"{value:.4f}"
