"""Pareto front: quality against latency and against size, the non-dominated trials marked."""

from keras_nas.results.objectives import non_dominated_ranks
from keras_nas.results.plots._data import (
    COST_LABELS,
    _completed,
    _cost_metrics,
    latency_target,
    over_target,
    quality_metric,
)
from keras_nas.results.plots._style import _COLORS, _legend_below, _new_figure, _styled
from keras_nas.results.summary import load_summary, trial_value


def pareto_front(points, directions):
    """Indices of the non-dominated points.

    A point dominates another if it is at least as good in every coordinate and strictly
    better in one. Equal points do not dominate each other (both stay on the front).
    This is `keras_nas.results.objectives.non_dominated_ranks` (rank 0) on plain coordinates.

    Args:
        points: a sequence of points, each a sequence of numbers (one per objective).
        directions: `"max"` or `"min"` for each coordinate.

    Returns:
        Sorted list of the indices of the points on the front.

    Example:

    ```python
    pareto_front([(0.9, 5.0), (0.8, 2.0), (0.7, 3.0)], ["max", "min"])  # [0, 1]
    ```
    """
    directions = list(directions)
    for d in directions:
        if d not in ("min", "max"):
            raise ValueError(f"`directions` entries must be 'min' or 'max', got {d!r}.")
    rows = []
    for p in points:
        p = [float(v) for v in p]
        if len(p) != len(directions):
            raise ValueError(
                f"each point must have {len(directions)} coordinates (one per direction), got {len(p)}."
            )
        rows.append({f"f{k}": v for k, v in enumerate(p)})
    if not rows:
        return []
    ranks = non_dominated_ranks(rows, {f"f{k}": d for k, d in enumerate(directions)})
    return [i for i, r in enumerate(ranks) if r == 0]


def pareto_data(results, metrics=None):
    """What `plot_pareto` draws, as plain values (no matplotlib).

    Args:
        results: summary dict, or path of `summary.json` / its directory.
        metrics: cost metric names; default those of `COST_METRICS` present.

    Returns:
        A dict: `metric` and `direction` of the quality (see `quality_metric`),
        `latency_target` (ms or `None`), `chosen_trial_id` (`best_trial_id`), and `panels`,
        one per cost metric: `{"cost_metric": name, "points": [...], "front": [...]}`, where
        each point is `{"cost", "quality", "trial_id", "over_target"}` (completed trials with
        both values, in summary order) and `front` the indices of the non-dominated points
        (quality in its direction, cost minimised).

    Example:

    ```python
    panel = pareto_data("results/my_search", metrics=["latency_ms"])["panels"][0]
    front = [panel["points"][i]["trial_id"] for i in panel["front"]]
    ```
    """
    summary = load_summary(results)
    name, direction = quality_metric(summary)
    target = latency_target(summary)
    metrics = list(metrics) if metrics is not None else _cost_metrics(summary)
    if not metrics:
        raise ValueError(
            "`results` has no cost metric to plot against: trials need 'latency_ms' or 'params'."
        )
    panels = []
    for metric in metrics:
        points = []
        for t in summary["trials"]:
            if not _completed(t):
                continue
            y, x = trial_value(t, name, use_score=target is None), trial_value(t, metric)
            if x is not None and y is not None:
                points.append({"cost": x, "quality": y, "trial_id": str(t.get("trial_id")),
                               "over_target": over_target(t, target)})
        if not points:
            raise ValueError(f"no completed trial has both {name!r} and {metric!r}.")
        front = pareto_front([(p["quality"], p["cost"]) for p in points], [direction, "min"])
        panels.append({"cost_metric": metric, "points": points, "front": front})
    return {
        "metric": name,
        "direction": direction,
        "latency_target": target,
        "chosen_trial_id": summary.get("best_trial_id"),
        "panels": panels,
    }


@_styled
def plot_pareto(results, metrics=None):
    """Quality against latency and against size, with the Pareto front highlighted.

    One panel per cost metric present in the trials (`latency_ms` from the trial metrics,
    `params` from the metrics or the trial's `params` field). Dominated trials are grey,
    the non-dominated front (quality in its direction, cost minimised) is green and
    joined by a step line, and the chosen model (`best_trial_id`) is a purple star. With a
    latency target the quality is the trial's accuracy (`quality_metric`), the target is a
    dashed red line on the latency panel, and trials over it are ringed in red on every panel.

    Args:
        results: summary dict, or path of `summary.json` / its directory.
        metrics: cost metric names to plot; default those of `COST_METRICS` present.

    Returns:
        A `Figure` with one axes per cost metric.

    Example:

    ```python
    fig = plot_pareto("results/my_search", metrics=["latency_ms"])
    ```
    """
    data = pareto_data(results, metrics)
    name, direction, target = data["metric"], data["direction"], data["latency_target"]
    chosen_id = data["chosen_trial_id"]
    panels = data["panels"]
    fig = _new_figure((6.2 * len(panels), 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        metric = panel["cost_metric"]
        rows = [(p["cost"], p["quality"], p["trial_id"], p["over_target"]) for p in panel["points"]]
        front = set(panel["front"])
        dom = [r for i, r in enumerate(rows) if i not in front]
        on = sorted((r for i, r in enumerate(rows) if i in front), key=lambda r: r[0])
        if dom:
            ax.scatter(
                [r[0] for r in dom], [r[1] for r in dom], s=34, color=_COLORS["dominated"],
                alpha=0.8, label="dominated", zorder=2,
            )
        ax.scatter(
            [r[0] for r in on], [r[1] for r in on], s=60, color=_COLORS["front"],
            edgecolor="black", linewidth=0.6, label="Pareto front", zorder=3,
        )
        ax.step(
            [r[0] for r in on], [r[1] for r in on], where="post", color=_COLORS["front"],
            lw=1.6, alpha=0.8, zorder=2,
        )
        chosen = [r for r in rows if chosen_id is not None and r[2] == str(chosen_id)]
        if chosen:
            ax.scatter(
                [chosen[0][0]], [chosen[0][1]], marker="*", s=320, color=_COLORS["chosen"],
                edgecolor="black", linewidth=0.7, label=f"chosen (trial {chosen_id})", zorder=4,
            )
        slow = [r for r in rows if r[3]]
        if slow:
            ax.scatter(
                [r[0] for r in slow], [r[1] for r in slow], s=170, facecolor="none",
                edgecolor=_COLORS["failed"], linewidth=1.5, label="over latency target", zorder=5,
            )
        if metric == "latency_ms" and target is not None:
            ax.axvline(target, color=_COLORS["failed"], ls="--", lw=1.5,
                       label=f"latency target ({target:g} ms)", zorder=1)
            ax.set_xlim(min(ax.get_xlim()[0], target), max(ax.get_xlim()[1], target * 1.02))
        xs = [r[0] for r in rows]
        if metric == "params" and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(COST_LABELS.get(metric, metric.replace("_", " ")) + " (lower is better)")
        ax.set_ylabel(name.replace("_", " ") + (" (higher is better)" if direction == "max" else " (lower is better)"))
        ax.set_title(f"{name} vs {COST_LABELS.get(metric, metric)}")
    fig.suptitle("Accuracy / cost trade-off", fontsize=14, fontweight="bold")
    _legend_below(fig, axes)
    return fig
