"""Reading a search's `summary.json`: the summary, its objective, a trial's values.

The figures (`plots`), the report (`report`) and the command read results through these,
so every reader agrees on where a value lives.

```python
from keras_nas.results.summary import load_summary, objective_of, trial_value

summary = load_summary("results/")                 # the folder or summary.json itself
name, direction = objective_of(summary)             # ("val_accuracy", "max")
accuracies = [trial_value(t, name) for t in summary["trials"]]
```
"""

import json
import math
import os
from pathlib import Path

#: Metrics that measure a cost (lower is better); a trial's score never stands in for them.
COST_METRICS = ("latency_ms", "params")


def load_summary(results):
    """Returns the summary dict of a search.

    Args:
        results: a summary dict, or the path of `summary.json`, or of a directory holding it.

    Returns:
        The summary dict (with at least a `"trials"` list).

    Example:

    ```python
    summary = load_summary("results/my_search")
    ```
    """
    if isinstance(results, dict):
        summary = results
    elif isinstance(results, (str, os.PathLike)):
        path = Path(results)
        if path.is_dir():
            path = path / "summary.json"
        if not path.is_file():
            raise ValueError(f"`results` must name summary.json or its directory; {path} does not exist.")
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    else:
        raise TypeError(
            "`results` must be a summary dict or a path to summary.json, got "
            f"{type(results).__name__}."
        )
    if not isinstance(summary.get("trials"), list):
        raise ValueError("`results` must have a 'trials' list (the format of summary.json).")
    return summary


def space_kinds_of(summary):
    """The class names of the space a summary's search ran on: its class, then the keras-nas
    space classes it derives from (`settings.space_config`), e.g. `["MySpace",
    "NASBench201Space"]`; None for summaries that do not record them."""
    config = (summary.get("settings") or {}).get("space_config") or {}
    kinds = config.get("kinds") or ([config["class"]] if config.get("class") else None)
    return [str(k) for k in kinds] if kinds else None


def objective_of(summary):
    """`(name, direction)` of the search objective, default `("val_accuracy", "max")`."""
    obj = summary.get("objective") or {}
    if isinstance(obj, str):
        return obj, "min" if "loss" in obj else "max"
    name = obj.get("name") or "val_accuracy"
    direction = obj.get("direction") or ("min" if "loss" in name else "max")
    if direction not in ("min", "max"):
        raise ValueError(f"objective direction must be 'min' or 'max', got {direction!r}.")
    return name, direction


def trial_value(trial, name, use_score=True):
    """The value of metric `name` for a trial record (metrics, then top-level, then score).

    `params` is read from the trial's `params` field when the metrics lack it; the trial's
    `score` stands in for a missing non-cost metric unless `use_score=False`. Returns
    `None` when the trial has no finite value.
    """
    metrics = trial.get("metrics") or {}
    value = metrics.get(name)
    if value is None and name in trial and name not in ("metrics",):
        value = trial.get(name)
    if value is None and use_score and name not in COST_METRICS:
        value = trial.get("score")
    if isinstance(value, dict):  # KerasTuner-style {"value": ...}
        value = value.get("value")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
