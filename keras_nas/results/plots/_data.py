"""What the figures read from a summary: quality metric, latency target, trials in order.

Plain Python (no matplotlib); `keras_nas.results.report` reads the summary through these too.
"""

import math
import re

from keras_nas.results.summary import COST_METRICS, objective_of, trial_value

# Latency and size metrics a trial (or summary["best"]) may carry; all minimised.
COST_LABELS = {"latency_ms": "latency [ms]", "params": "parameters"}


def latency_target(summary):
    """The search's latency target in ms (`summary["latency_target_ms"]`), or `None`."""
    target = summary.get("latency_target_ms")
    try:
        target = float(target)
    except (TypeError, ValueError):
        return None
    return target if math.isfinite(target) and target > 0 else None


def quality_metric(summary):
    """`(name, direction)` of the quality the figures and the report show for each trial.

    Without a latency target this is the search objective. With one, the objective is a
    reward mixing accuracy and latency (e.g. `constrained_accuracy`, -1.3 for a trial over
    the target), so the quality is the accuracy metric the reward was built from (the
    `metric` of `summary["latency_objective"]`, default `val_accuracy`), maximised.
    """
    if latency_target(summary) is None:
        return objective_of(summary)
    reward = summary.get("latency_objective")
    if isinstance(reward, dict):  # a reward's get_config()
        return reward.get("metric") or "val_accuracy", "max"
    match = re.search(r"\bmetric=['\"]([^'\"]+)['\"]", str(reward or ""))
    return (match.group(1) if match else "val_accuracy"), "max"


def over_target(trial, target):
    """Whether a trial's measured `latency_ms` exceeds `target` (False when either is missing)."""
    latency = trial_value(trial, "latency_ms")
    return target is not None and latency is not None and latency > target


def _completed(trial):
    return trial.get("status", "COMPLETED") == "COMPLETED"


def _ordered_trials(summary):
    trials = list(summary["trials"])
    return sorted(
        trials,
        key=lambda t: (
            t.get("number") if t.get("number") is not None else 1e12,
            t.get("ended") or t.get("started") or 0,
        ),
    )


def _best_so_far(values, direction):
    best, out = None, []
    for v in values:
        if v is not None and (best is None or (v > best if direction == "max" else v < best)):
            best = v
        out.append(best)
    return out


def _cost_metrics(summary):
    present = []
    for m in COST_METRICS:
        if any(_completed(t) and trial_value(t, m) is not None for t in summary["trials"]):
            present.append(m)
    return present
