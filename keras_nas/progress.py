"""Progress of a long search: one aligned table row per finished trial.

`ProgressPrinter` knows nothing of Keras or KerasTuner: it is given the search budget and
then, for each finished trial, the trial's record (one element of `summary["trials"]`).

```
 trial  status     architecture                          val_accuracy      best   elapsed  remaining
  1/10  COMPLETED  |nor_conv_3x3~0|+|none~0…|skip_conne~2|       0.8125    0.8125      4.1s     ~37.2s
  2/10  FAILED     |none~0|+|none~0|none~1…none~1|none~2|             -    0.8125      5.0s     ~20.0s
```
"""

import math
import sys
import time


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

    Each row shows the number of trials done of `max_trials`, the trial's status, its
    architecture (shortened in the middle), its objective, the best objective so far, the
    time elapsed since `start()` (or construction), and the estimated time remaining:
    the mean time per trial times the trials left, capped by what is left of `max_time`.

    Args:
        max_trials: the trial budget (or `None`).
        max_time: the time budget in seconds (or `None`).
        objective: name of the metric shown (read from the trial's `metrics`, then `score`).
        direction: `"max"` or `"min"`, to keep the best so far.
        stream: a text stream to write to; default `sys.stdout` (looked up at each write).
        arch_width: width of the architecture column (>= 8).
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

    def __init__(
        self,
        max_trials=None,
        max_time=None,
        objective="val_accuracy",
        direction="max",
        stream=None,
        arch_width=38,
        clock=time.time,
    ):
        if max_trials is not None and (int(max_trials) != max_trials or max_trials < 1):
            raise ValueError(f"`max_trials` must be a positive integer or None, got {max_trials!r}.")
        if max_time is not None and not float(max_time) > 0:
            raise ValueError(f"`max_time` must be a positive number of seconds or None, got {max_time!r}.")
        if direction not in ("max", "min"):
            raise ValueError(f"`direction` must be 'max' or 'min', got {direction!r}.")
        if not isinstance(objective, str) or not objective:
            raise ValueError(f"`objective` must be a metric name, got {objective!r}.")
        if int(arch_width) < 8:
            raise ValueError(f"`arch_width` must be >= 8, got {arch_width!r}.")
        if not callable(clock):
            raise TypeError("`clock` must be a function returning seconds.")
        self.max_trials = None if max_trials is None else int(max_trials)
        self.max_time = None if max_time is None else float(max_time)
        self.objective = objective
        self.direction = direction
        self._stream = stream
        self.arch_width = int(arch_width)
        self.clock = clock
        self.start_time = clock()
        self.done = 0
        self.best = None
        self.best_trial_id = None
        self._header_written = False
        budget = len(str(self.max_trials)) if self.max_trials else 3
        self._trial_w = max(5, 2 * budget + 1)
        self._obj_w = max(10, len(objective))
        self._columns = [
            ("trial", self._trial_w, ">"),
            ("status", 9, "<"),
            ("architecture", self.arch_width, "<"),
            (objective, self._obj_w, ">"),
            ("best", 10, ">"),
            ("elapsed", 8, ">"),
            ("remaining", 9, ">"),
        ]

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

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

    def start(self):
        """Restarts the clock and prints the header. Returns `self`."""
        self.start_time = self.clock()
        self._write_header()
        return self

    def _write_header(self):
        if not self._header_written:
            self._write(self.header())
            self._header_written = True

    def _value(self, trial):
        metrics = trial.get("metrics") or {}
        value = metrics.get(self.objective)
        if value is None:
            value = trial.get("score")
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def remaining(self, elapsed):
        """Estimated seconds left, from the pace so far and the budgets (None if unknown)."""
        estimates = []
        if self.max_trials is not None and self.done > 0:
            left = max(0, self.max_trials - self.done)
            estimates.append(elapsed / self.done * left)
        if self.max_time is not None:
            estimates.append(max(0.0, self.max_time - elapsed))
        return min(estimates) if estimates else None

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
        self.done += 1
        status = str(trial.get("status") or "COMPLETED")
        value = self._value(trial) if status == "COMPLETED" else None
        if value is not None and (
            self.best is None or (value > self.best if self.direction == "max" else value < self.best)
        ):
            self.best = value
            self.best_trial_id = trial.get("trial_id")
        elapsed = self.clock() - self.start_time
        remaining = self.remaining(elapsed)
        budget = f"/{self.max_trials}" if self.max_trials else ""
        arch = trial.get("architecture")
        if arch is None:
            hps = trial.get("hyperparameters") or {}
            arch = ",".join(f"{k}={v}" for k, v in hps.items()) if hps else trial.get("trial_id")
        cells = [
            f"{self.done}{budget}",
            status[:9],
            shorten(arch, self.arch_width),
            "-" if value is None else f"{value:.4f}",
            "-" if self.best is None else f"{self.best:.4f}",
            format_duration(elapsed),
            "~" + format_duration(remaining) if remaining is not None else "?",
        ]
        line = self._row(cells)
        self._write(line)
        return line

    __call__ = on_trial_end

    def finish(self):
        """Prints (and returns) a closing line: trials done, best, total time."""
        elapsed = self.clock() - self.start_time
        best = "none" if self.best is None else f"{self.best:.4f} (trial {self.best_trial_id})"
        budget = f" of {self.max_trials}" if self.max_trials else ""
        line = f"done: {self.done}{budget} trials in {format_duration(elapsed)}; best {self.objective} {best}"
        self._write(line)
        return line
