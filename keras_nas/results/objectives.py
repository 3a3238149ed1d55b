"""Objectives as data: rewards that fold latency into one score, constraints, Pareto fronts.

A trial reports metrics (`val_accuracy`, `latency_ms`, `params`, `flops`, ...); the
functions here turn such metric dicts into a score (a reward to maximize) or a Pareto rank.

Rewards, with accuracy `ACC`, latency `LAT` and target `T`:

- hard constraint: `ACC` when `LAT <= T`; otherwise `-LAT/T` (below every feasible score,
  and the nearer to feasible the better).
- MnasNet (Tan et al., 2019): `ACC * (LAT/T)^w`, `w = alpha` if `LAT <= T` else `beta`;
  the soft form uses `alpha = beta = -0.07`, the hard form `alpha = 0, beta = -1`.
- TuNAS absolute reward (Bender et al., 2020): `ACC + beta * |LAT/T - 1|`, `beta < 0`
  (`-0.07` by default), which pulls latency *to* the target from both sides.

Example:

```python
from keras_nas.results import objectives
reward = objectives.make_objective("mnasnet", target=5.0)
reward({"val_accuracy": 0.9, "latency_ms": 6.0})   # 0.9 * 1.2 ** -0.07
front = objectives.pareto_front(summary["trials"], {"val_accuracy": "max", "latency_ms": "min"})
```
"""

import math

from keras_nas.validation import check_number

DIRECTIONS = ("min", "max")


def mnasnet_reward(accuracy, latency, target, alpha=-0.07, beta=-0.07):
    """MnasNet's reward `accuracy * (latency / target) ** w`, `w = alpha` if within target else `beta`.

    Args:
        accuracy: the quality metric (e.g. validation accuracy).
        latency: measured or predicted latency (same unit as `target`).
        target: the latency target `T` (> 0).
        alpha: exponent when `latency <= target` (soft: -0.07; hard: 0).
        beta: exponent when `latency > target` (soft: -0.07; hard: -1).

    Example: `mnasnet_reward(0.75, 80.0, 75.0)` is `0.75 * (80/75) ** -0.07`.
    """
    accuracy = check_number(accuracy, "accuracy")
    latency = check_number(latency, "latency", positive=True)
    target = check_number(target, "target", positive=True)
    w = alpha if latency <= target else beta
    return accuracy * (latency / target) ** w


def mnasnet_hard_reward(accuracy, latency, target):
    """MnasNet's hard-constraint form: `alpha = 0`, `beta = -1`.

    Example: `mnasnet_hard_reward(0.8, 10.0, 5.0) == 0.4`.
    """
    return mnasnet_reward(accuracy, latency, target, alpha=0.0, beta=-1.0)


def tunas_reward(accuracy, latency, target, beta=-0.07):
    """TuNAS's absolute reward `accuracy + beta * |latency / target - 1|` (`beta < 0`).

    Example: `tunas_reward(0.8, 6.0, 5.0) == 0.8 - 0.07 * 0.2`.
    """
    accuracy = check_number(accuracy, "accuracy")
    latency = check_number(latency, "latency", positive=True)
    target = check_number(target, "target", positive=True)
    if not beta < 0:
        raise ValueError(f"`beta` must be negative, got {beta!r}.")
    return accuracy + beta * abs(latency / target - 1.0)


def hard_constraint_reward(accuracy, latency, target):
    """`accuracy` when `latency <= target`, else `-latency / target` (below any feasible score).

    Example: `hard_constraint_reward(0.9, 6.0, 5.0) == -1.2`.
    """
    accuracy = check_number(accuracy, "accuracy")
    latency = check_number(latency, "latency", positive=True)
    target = check_number(target, "target", positive=True)
    return accuracy if latency <= target else -latency / target


def metric_value(trial, name):
    """The value of metric `name` in a trial, or `None`.

    `trial` may be a flat metrics dict, a `summary.json` trial dict (looked up in its
    `"metrics"` first, then at the top level, e.g. `"params"`), or a `keras_tuner` Trial.
    """
    if isinstance(trial, dict):
        metrics = trial.get("metrics")
        if isinstance(metrics, dict) and metrics.get(name) is not None:
            value = metrics[name]
        else:
            value = trial.get(name)
    elif hasattr(trial, "metrics") and hasattr(trial.metrics, "exists"):
        if not trial.metrics.exists(name):
            return None
        value = trial.metrics.get_last_value(name)
    else:
        raise TypeError(
            f"A trial must be a dict of metrics or a keras_tuner Trial, got {type(trial).__name__}."
        )
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Objective:
    """A reward over a trial's metrics: `objective(metrics) -> float`, to maximize.

    Args:
        target: the latency target (> 0), in the unit of `latency_metric`.
        metric: the quality metric (default `"val_accuracy"`).
        latency_metric: the cost metric the target applies to (default `"latency_ms"`).

    Attributes:
        name: the name a search records the score under; direction: always `"max"`.

    Example:

    ```python
    objective = MnasNetReward(target=5.0)
    score = objective({"val_accuracy": 0.9, "latency_ms": 4.0})
    ```
    """

    name = "reward"
    direction = "max"

    def __init__(self, target, metric="val_accuracy", latency_metric="latency_ms"):
        self.target = check_number(target, "target", positive=True)
        if not isinstance(metric, str) or not isinstance(latency_metric, str):
            raise TypeError("`metric` and `latency_metric` must be metric names (strings).")
        self.metric = metric
        self.latency_metric = latency_metric

    def _reward(self, accuracy, latency):
        raise NotImplementedError

    def __call__(self, metrics):
        accuracy = metric_value(metrics, self.metric)
        latency = metric_value(metrics, self.latency_metric)
        if accuracy is None or latency is None:
            missing = self.metric if accuracy is None else self.latency_metric
            raise ValueError(f"The trial's metrics have no finite `{missing}` for {self.name}.")
        return float(self._reward(accuracy, latency))

    def feasible(self, metrics):
        """Whether the trial's latency is within the target (False when it is missing)."""
        latency = metric_value(metrics, self.latency_metric)
        return latency is not None and latency <= self.target

    def target_ratio(self, metrics):
        """The trial's latency over the target (<= 1 within it); None when it is missing.

        Example: `HardConstraint(5.0).target_ratio({"latency_ms": 6.0}) == 1.2`.
        """
        latency = metric_value(metrics, self.latency_metric)
        return None if latency is None else latency / self.target

    def infeasible_score(self, metrics):
        """The score of a trial over the target when it does not depend on its accuracy, so
        the search need not train it; None when the score needs the accuracy (soft rewards).

        Example: `HardConstraint(5.0).infeasible_score({"latency_ms": 6.0}) == -1.2`.
        """
        return None

    def keras_tuner_objective(self):
        """The `keras_tuner.Objective` for the score this objective records."""
        import keras_tuner

        return keras_tuner.Objective(self.name, self.direction)

    def get_config(self):
        """The constructor arguments, JSON-ready."""
        return {"target": self.target, "metric": self.metric, "latency_metric": self.latency_metric}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class HardConstraint(Objective):
    """Accuracy within the latency target; infeasible trials score `-LAT/T`. See module doc."""

    name = "constrained_accuracy"

    def _reward(self, accuracy, latency):
        return hard_constraint_reward(accuracy, latency, self.target)

    def infeasible_score(self, metrics):
        latency = metric_value(metrics, self.latency_metric)
        if latency is None or latency <= self.target:
            return None
        return -latency / self.target


class MnasNetReward(Objective):
    """MnasNet's `ACC * (LAT/T)^w`; `hard=False`: alpha = beta = `w` (-0.07), `hard=True`: 0 / -1.

    Args:
        target, metric, latency_metric: see `Objective`.
        w: the soft exponent (negative).
        hard: use the hard-constraint exponents instead.

    Example: `MnasNetReward(5.0, hard=True)({"val_accuracy": 0.8, "latency_ms": 10.0}) == 0.4`.
    """

    name = "mnasnet_reward"

    def __init__(self, target, w=-0.07, hard=False, **kwargs):
        super().__init__(target, **kwargs)
        if not w < 0:
            raise ValueError(f"`w` must be negative, got {w!r}.")
        self.w = float(w)
        self.hard = bool(hard)

    def _reward(self, accuracy, latency):
        if self.hard:
            return mnasnet_hard_reward(accuracy, latency, self.target)
        return mnasnet_reward(accuracy, latency, self.target, alpha=self.w, beta=self.w)

    def get_config(self):
        return {**super().get_config(), "w": self.w, "hard": self.hard}


class TuNASReward(Objective):
    """TuNAS's absolute reward `ACC + beta * |LAT/T - 1|`.

    Example: `TuNASReward(5.0)({"val_accuracy": 0.8, "latency_ms": 5.0}) == 0.8`.
    """

    name = "tunas_reward"

    def __init__(self, target, beta=-0.07, **kwargs):
        super().__init__(target, **kwargs)
        if not beta < 0:
            raise ValueError(f"`beta` must be negative, got {beta!r}.")
        self.beta = float(beta)

    def _reward(self, accuracy, latency):
        return tunas_reward(accuracy, latency, self.target, beta=self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


OBJECTIVES = {
    "hard": HardConstraint,
    "mnasnet": MnasNetReward,
    "mnasnet_hard": lambda target, **kw: MnasNetReward(target, hard=True, **kw),
    "tunas": TuNASReward,
}


def make_objective(name, target, **kwargs):
    """A latency-aware objective by name: `"hard"`, `"mnasnet"`, `"mnasnet_hard"` or `"tunas"`.

    Args:
        name: the objective's name, or an `Objective` instance (returned as is).
        target: the latency target (> 0).
        **kwargs: passed to the objective (`metric`, `latency_metric`, `w`, `beta`).

    Example: `make_objective("tunas", target=5.0, beta=-0.1)`.
    """
    if isinstance(name, Objective):
        return name
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {name!r}: expected one of {sorted(OBJECTIVES)} or an Objective."
        )
    return OBJECTIVES[name](target, **kwargs)


def feasible(metrics, constraints):
    """True when every constrained metric is present and at most its limit.

    Args:
        metrics: a trial (see `metric_value`).
        constraints: `{metric_name: upper_limit}`, e.g. `{"latency_ms": 5.0, "params": 1e6}`.

    Example: `feasible({"latency_ms": 4.2, "params": 9000}, {"latency_ms": 5.0})` is True.
    """
    if not isinstance(constraints, dict):
        raise TypeError("`constraints` must be a dict {metric_name: upper_limit}.")
    for name, limit in constraints.items():
        limit = check_number(limit, f"constraints[{name!r}]")
        value = metric_value(metrics, name)
        if value is None or value > limit:
            return False
    return True


def _check_objectives(objectives):
    if isinstance(objectives, dict):
        items = list(objectives.items())
    else:
        raise TypeError(
            "`objectives` must be a dict {metric_name: 'min' | 'max'}, e.g. "
            "{'val_accuracy': 'max', 'latency_ms': 'min'}."
        )
    if not items:
        raise ValueError("`objectives` must name at least one metric.")
    for name, direction in items:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"`objectives[{name!r}]` must be 'min' or 'max', got {direction!r}."
            )
    return items


def _dominates(a, b):
    """`a` and `b` are tuples to minimize: a is no worse everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_ranks(trials, objectives):
    """Pareto ranks of trials by non-dominated sorting (NSGA-II): 0 is the Pareto front.

    Args:
        trials: list of trials (metric dicts, `summary.json` trial dicts or KerasTuner Trials).
        objectives: `{metric_name: "min" | "max"}`.

    Returns:
        A list parallel to `trials`: the rank of each trial, or `None` for a trial that
        lacks a finite value of some objective (or is not `"COMPLETED"` when it has a status).

    Example:

    ```python
    non_dominated_ranks([{"acc": 0.9, "lat": 5}, {"acc": 0.8, "lat": 6}],
                        {"acc": "max", "lat": "min"})   # [0, 1]
    ```
    """
    items = _check_objectives(objectives)
    if not isinstance(trials, (list, tuple)):
        raise TypeError("`trials` must be a list of trials.")
    points = []
    for trial in trials:
        status = trial.get("status") if isinstance(trial, dict) else None
        values = [metric_value(trial, name) for name, _ in items]
        if (status not in (None, "COMPLETED")) or any(v is None for v in values):
            points.append(None)
        else:
            points.append(tuple(v if d == "min" else -v for v, (_, d) in zip(values, items)))
    valid = [i for i, p in enumerate(points) if p is not None]
    dominated_by_count = {i: 0 for i in valid}
    dominates = {i: [] for i in valid}
    for a in valid:
        for b in valid:
            if a != b and _dominates(points[a], points[b]):
                dominates[a].append(b)
                dominated_by_count[b] += 1
    ranks = [None] * len(trials)
    front = [i for i in valid if dominated_by_count[i] == 0]
    rank = 0
    while front:
        following = []
        for i in front:
            ranks[i] = rank
            for j in dominates[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    following.append(j)
        front = following
        rank += 1
    return ranks


def pareto_front(trials, objectives=None):
    """The trials no other trial beats on every objective, sorted by the first objective.

    Args:
        trials: list of trials (metric dicts, `summary.json` trial dicts or KerasTuner Trials).
        objectives: `{metric_name: "min" | "max"}`; default
            `{"val_accuracy": "max", "latency_ms": "min"}`.

    Returns:
        The list of non-dominated trials (the same objects), best first on the first objective.

    Example:

    ```python
    front = pareto_front(summary["trials"],
                         {"val_accuracy": "max", "latency_ms": "min", "params": "min"})
    ```
    """
    if objectives is None:
        objectives = {"val_accuracy": "max", "latency_ms": "min"}
    ranks = non_dominated_ranks(trials, objectives)
    (first, direction), = _check_objectives(objectives)[:1]
    front = [t for t, r in zip(trials, ranks) if r == 0]
    return sorted(front, key=lambda t: metric_value(t, first), reverse=(direction == "max"))
