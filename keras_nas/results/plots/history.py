"""Search history: the quality of each trial and the best so far, by trial and by wall time."""

from keras_nas.results.plots._data import (
    _best_so_far,
    _completed,
    _ordered_trials,
    latency_target,
    over_target,
    quality_metric,
)
from keras_nas.results.plots._style import _COLORS, _legend_below, _new_figure, _styled
from keras_nas.results.summary import load_summary, trial_value


def history_data(results):
    """What `plot_history` draws, as plain values (no matplotlib).

    Args:
        results: summary dict, or path of `summary.json` / its directory.

    Returns:
        A dict: `metric` and `direction` (see `quality_metric`), `latency_target` (ms or
        `None`), `title`, and lists parallel to the finished trials in order: `trial_ids`,
        `numbers` (1-based), `wall_times` (seconds from the first start, `None` when
        unknown), `values` (the quality, `None` for a failed trial), `over_target` and
        `best_so_far` (over the trials within the target); `best_index`, the position of
        the best trial within the target (`None` when there is none).

    Example:

    ```python
    data = history_data("results/my_search")
    data["best_so_far"][-1]  # the best quality found
    ```
    """
    summary = load_summary(results)
    name, direction = quality_metric(summary)
    target = latency_target(summary)
    trials = [t for t in _ordered_trials(summary) if t.get("status") != "RUNNING"]
    if not trials:
        raise ValueError("`results` has no finished trials to plot.")
    starts = [t.get("started") for t in trials if t.get("started") is not None]
    t0 = min(starts) if starts else None

    numbers, walls, values, over = [], [], [], []
    for i, t in enumerate(trials):
        n = t.get("number")
        ended = t.get("ended")
        numbers.append((i if n is None else int(n)) + 1)
        walls.append((ended - t0) if (ended is not None and t0 is not None) else None)
        values.append(trial_value(t, name, use_score=target is None) if _completed(t) else None)
        over.append(over_target(t, target))
    best = _best_so_far([None if o else v for v, o in zip(values, over)], direction)
    best_index = None
    if best[-1] is not None:
        best_index = next(i for i, v in enumerate(values) if v == best[-1] and not over[i])
    title = "Search history"
    if summary.get("space") or summary.get("strategy"):
        title += f" — space {summary.get('space', '?')}, strategy {summary.get('strategy', '?')}"
    if target is not None:
        title += f", latency target {target:g} ms"
    return {
        "metric": name,
        "direction": direction,
        "latency_target": target,
        "title": title,
        "trial_ids": [t.get("trial_id") for t in trials],
        "numbers": numbers,
        "wall_times": walls,
        "values": values,
        "over_target": over,
        "best_so_far": best,
        "best_index": best_index,
    }


@_styled
def plot_history(results):
    """Quality of each trial and the best so far, against trial number and wall time.

    Completed trials are dots, the best-so-far curve a step line, the best trial a star;
    failed or invalid trials are red crosses along the bottom of each panel. With a latency
    target the quality is the trial's accuracy (`quality_metric`), trials over the target are
    hollow, and the best so far counts only the trials within it.

    Args:
        results: summary dict, or path of `summary.json` / its directory.

    Returns:
        A `Figure` with two axes: `[by trial number, by wall time]`.

    Example:

    ```python
    fig = plot_history("results/my_search")
    ```
    """
    data = history_data(results)
    name = data["metric"]
    numbers, walls, values = data["numbers"], data["wall_times"], data["values"]
    over, best, best_idx = data["over_target"], data["best_so_far"], data["best_index"]
    ok_values = [v for v in values if v is not None]
    lo, hi = (min(ok_values), max(ok_values)) if ok_values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    fail_y = lo - pad
    within = " within target" if data["latency_target"] is not None else ""

    fig = _new_figure((12, 4.6))
    axes = fig.subplots(1, 2)
    have_wall = all(w is not None for w in walls)
    for ax, xs, xlabel in (
        (axes[0], numbers, "trial number"),
        (axes[1], walls if have_wall else numbers, "wall time (s)" if have_wall else "trial number"),
    ):
        ok = [(x, v) for x, v, o in zip(xs, values, over) if v is not None and not o]
        if ok:
            ax.scatter(
                [p[0] for p in ok], [p[1] for p in ok], s=36, color=_COLORS["trial"],
                alpha=0.8, label="trial", zorder=3,
            )
        slow = [(x, v) for x, v, o in zip(xs, values, over) if v is not None and o]
        if slow:
            ax.scatter(
                [p[0] for p in slow], [p[1] for p in slow], s=36, facecolor="none",
                edgecolor=_COLORS["failed"], linewidth=1.4,
                label=f"over latency target ({len(slow)})", zorder=3,
            )
        steps = [(x, b) for x, b in zip(xs, best) if b is not None]
        if steps:
            ax.step(
                [p[0] for p in steps], [p[1] for p in steps], where="post",
                color=_COLORS["best"], lw=2, label=f"best{within} so far", zorder=2,
            )
            ax.scatter(
                [xs[best_idx]], [values[best_idx]], marker="*", s=260, color=_COLORS["best"],
                edgecolor="black", linewidth=0.7, label=f"best{within}: {values[best_idx]:.4g}",
                zorder=4,
            )
        bad = [x for x, v in zip(xs, values) if v is None]
        if bad:
            ax.scatter(
                bad, [fail_y] * len(bad), marker="x", s=60, color=_COLORS["failed"],
                linewidth=2, label=f"failed ({len(bad)})", zorder=3,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name.replace("_", " "))
        ax.set_ylim(fail_y - pad, hi + pad)
    if len(numbers) <= 20:
        axes[0].set_xticks(sorted(set(numbers)))
    axes[0].set_title(f"{name} per trial")
    axes[1].set_title(f"{name} over wall time" if have_wall else f"{name} per trial")
    fig.suptitle(data["title"], fontsize=14, fontweight="bold")
    _legend_below(fig, axes)
    return fig
