"""Figures of a search's results, drawn with matplotlib (Agg backend, no display needed).

Every plotting function takes `results` (a summary dict as written to `summary.json` by a
search, or the path of that file or of the directory holding it) or the object it draws,
and returns a `matplotlib.figure.Figure`; `save_figures` writes all that apply as PNGs.

```python
from keras_nas.results import plots
fig = plots.plot_history("results/my_search")        # objective per trial, best so far
fig.savefig("history.png")
paths = plots.save_figures("results/my_search", "results/my_search/figures")
```
"""

import json
import math
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from keras_nas.results import analysis
from keras_nas.results.summary import COST_METRICS, load_summary, objective_of, trial_value

# Latency and size metrics a trial (or summary["best"]) may carry; all minimised.
COST_LABELS = {"latency_ms": "latency [ms]", "params": "parameters"}

_STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_COLORS = {
    "trial": "#4C72B0",
    "best": "#DD8452",
    "failed": "#C44E52",
    "front": "#55A868",
    "chosen": "#8172B3",
    "dominated": "#A0A0A0",
}
# One color per op name seen in cells (stable across figures).
_OP_COLORS = {
    "none": "#9A9A9A",
    "skip_connect": "#4C72B0",
    "nor_conv_1x1": "#DD8452",
    "nor_conv_3x3": "#C44E52",
    "avg_pool_3x3": "#55A868",
    "max_pool_3x3": "#8C8C8C",
    "sep_conv_3x3": "#C44E52",
    "sep_conv_5x5": "#8172B3",
    "sep_conv_7x7": "#64B5CD",
    "dil_conv_3x3": "#DA8BC3",
    "dil_conv_5x5": "#937860",
    "conv_7x1_1x7": "#CCB974",
}
_EXTRA_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]


def _new_figure(figsize):
    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)  # an Agg canvas, so text extents can be measured before saving
    return fig


def _styled(func):
    """Runs a figure builder inside the package's rc style (without touching global state)."""

    def wrapper(*args, **kwargs):
        with plt.rc_context(_STYLE):
            return func(*args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    wrapper.__wrapped__ = func
    return wrapper


# ---------------------------------------------------------------------------------------
# Reading results
# ---------------------------------------------------------------------------------------
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


def _legend_below(fig, axes):
    """Lays out `fig` with one legend for all `axes` under them, where it covers no data.

    Entries are merged by label, so panels showing the same series share one entry.
    """
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.tight_layout()
    if not labels:
        return None
    legend = fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5),
                        frameon=False)
    height = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
    fig.tight_layout(rect=(0, height + 0.02, 1, 1))
    return legend


def _legend_beside(ax, **kwargs):
    """A legend right of `ax`, outside its data area."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     frameon=False, **kwargs)


# ---------------------------------------------------------------------------------------
# 1. Search history
# ---------------------------------------------------------------------------------------
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
    ok_values = [v for v in values if v is not None]
    lo, hi = (min(ok_values), max(ok_values)) if ok_values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    fail_y = lo - pad
    within = " within target" if target is not None else ""

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
            best_idx = next(i for i, v in enumerate(values) if v == best[-1] and not over[i])
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
    title = "Search history"
    if summary.get("space") or summary.get("strategy"):
        title += f" — space {summary.get('space', '?')}, strategy {summary.get('strategy', '?')}"
    if target is not None:
        title += f", latency target {target:g} ms"
    fig.suptitle(title, fontsize=14, fontweight="bold")
    _legend_below(fig, axes)
    return fig


# ---------------------------------------------------------------------------------------
# 2. Pareto front
# ---------------------------------------------------------------------------------------
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
    from keras_nas.results.objectives import non_dominated_ranks

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


def _cost_metrics(summary):
    present = []
    for m in COST_METRICS:
        if any(_completed(t) and trial_value(t, m) is not None for t in summary["trials"]):
            present.append(m)
    return present


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
    summary = load_summary(results)
    name, direction = quality_metric(summary)
    target = latency_target(summary)
    metrics = list(metrics) if metrics is not None else _cost_metrics(summary)
    if not metrics:
        raise ValueError(
            "`results` has no cost metric to plot against: trials need 'latency_ms' or 'params'."
        )
    chosen_id = summary.get("best_trial_id")
    fig = _new_figure((6.2 * len(metrics), 4.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        rows = []
        for t in summary["trials"]:
            if not _completed(t):
                continue
            y, x = trial_value(t, name, use_score=target is None), trial_value(t, metric)
            if x is not None and y is not None:
                rows.append((x, y, str(t.get("trial_id")), over_target(t, target)))
        if not rows:
            raise ValueError(f"no completed trial has both {name!r} and {metric!r}.")
        front = set(pareto_front([(r[1], r[0]) for r in rows], [direction, "min"]))
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


# ---------------------------------------------------------------------------------------
# 3. Controller (REINFORCE) learning curves
# ---------------------------------------------------------------------------------------
def controller_history_of(history):
    """The controller history list from a list, an oracle state, or a summary.

    Accepted: the list itself; a dict with key `"controller_history"` (a summary) or
    `"history"` (an oracle state, also under its `"reinforce"` key); or a path to a JSON
    file holding either.
    """
    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        if path.is_dir():
            path = path / "summary.json"
        with open(path, encoding="utf-8") as f:
            history = json.load(f)
    if isinstance(history, dict):
        if isinstance(history.get("reinforce"), dict):  # a ReinforceOracle state
            history = history["reinforce"]
        for key in ("controller_history", "history"):
            if isinstance(history.get(key), list):
                return history[key]
        raise ValueError(
            "`history` dict must hold a 'controller_history' or 'history' list of controller steps."
        )
    if not isinstance(history, (list, tuple)):
        raise TypeError(
            f"`history` must be a list of controller steps, got {type(history).__name__}."
        )
    for i, step in enumerate(history):
        if not isinstance(step, dict) or "reward" not in step:
            raise ValueError(
                f"`history[{i}]` must be a dict with at least 'step' and 'reward', got {step!r}."
            )
    return list(history)


@_styled
def plot_controller(history, max_decisions=12):
    """Learning curves of a REINFORCE controller.

    Input format (one dict per policy update, as a REINFORCE oracle records them)::

        [{"step": 0, "reward": 0.61, "baseline": 0.55, "entropy": 8.04,
          "probabilities": {"edge_0_1": {"none": 0.2, "skip_connect": 0.2, ...}, ...}},
         ...]

    `baseline`, `entropy` and `probabilities` are optional per step. Top row: reward and
    baseline per update, and the policy entropy; below, one panel per decision with the
    probability of each value over the updates.

    Args:
        history: the list above, or a dict holding it under `"controller_history"` or
            `"history"`, or a path to such a JSON file.
        max_decisions: at most this many decision panels (the first ones by name order
            of appearance).

    Returns:
        A `Figure`.

    Example:

    ```python
    fig = plot_controller(oracle.get_state()["history"])
    ```
    """
    steps = controller_history_of(history)
    if not steps:
        raise ValueError("`history` is empty: no controller updates to plot.")
    xs = [s.get("step", i) for i, s in enumerate(steps)]
    decisions = []
    for s in steps:
        for k in (s.get("probabilities") or {}):
            if k not in decisions:
                decisions.append(k)
    decisions = decisions[:max_decisions]
    ncols = 3
    nrows = math.ceil(len(decisions) / ncols)
    fig = _new_figure((13, 4.0 + 2.9 * nrows))
    grid = fig.add_gridspec(1 + nrows, ncols * 2, height_ratios=[1.3] + [1.0] * nrows)
    ax_r = fig.add_subplot(grid[0, :3])
    ax_e = fig.add_subplot(grid[0, 3:])

    rewards = [s.get("reward") for s in steps]
    ax_r.plot(xs, rewards, "o-", ms=3, color=_COLORS["trial"], lw=1.2, label="reward")
    if any(s.get("baseline") is not None for s in steps):
        pts = [(x, s["baseline"]) for x, s in zip(xs, steps) if s.get("baseline") is not None]
        ax_r.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=_COLORS["best"], lw=2.2, label="baseline")
    ax_r.set_xlabel("update")
    ax_r.set_ylabel("reward")
    ax_r.set_title("Reward and baseline")
    _legend_beside(ax_r)
    ent = [(x, s["entropy"]) for x, s in zip(xs, steps) if s.get("entropy") is not None]
    if ent:
        ax_e.plot([p[0] for p in ent], [p[1] for p in ent], "-", color=_COLORS["chosen"], lw=2)
    else:
        ax_e.text(0.5, 0.5, "no entropy recorded", ha="center", va="center", transform=ax_e.transAxes)
    ax_e.set_xlabel("update")
    ax_r.xaxis.get_major_locator().set_params(integer=True)
    ax_e.xaxis.get_major_locator().set_params(integer=True)
    ax_e.set_ylabel("entropy (nats)")
    ax_e.set_title("Policy entropy")

    for k, decision in enumerate(decisions):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(grid[1 + r, 2 * c : 2 * c + 2])
        values = []
        for s in steps:
            for v in ((s.get("probabilities") or {}).get(decision) or {}):
                if v not in values:
                    values.append(v)
        for j, v in enumerate(values):
            ys = [((s.get("probabilities") or {}).get(decision) or {}).get(v) for s in steps]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            color = _OP_COLORS.get(str(v), _EXTRA_COLORS[j % len(_EXTRA_COLORS)])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.8, color=color, label=str(v))
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(decision, fontsize=11)
        ax.set_xlabel("update", fontsize=9)
        ax.set_ylabel("probability", fontsize=9)
        ax.tick_params(labelsize=8)
        _legend_beside(ax, fontsize=7)
    fig.suptitle("REINFORCE controller", fontsize=14, fontweight="bold")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# 4a. Cell DAG
# ---------------------------------------------------------------------------------------
_H_GAP = 2.6  # data units between node columns
_V_GAP = 1.35  # data units between nodes of a column
_NODE_W, _NODE_H = 1.0, 0.62


def cell_layout(graph):
    """Node positions `{id: (x, y)}` of a `CellGraph`.

    Columns by longest distance from the inputs; within a column, nodes are ordered by
    the mean height of their predecessors (fewer crossings); the output is centred.
    """
    levels = graph.levels()
    out_level = max(levels.values()) if levels else 1
    if graph.kind == "darts":
        levels[graph.output] = out_level if graph.output in levels else out_level + 1
    columns = {}
    for n in graph.nodes:
        columns.setdefault(levels.get(n, 0), []).append(n)
    preds = {}
    for src, dst, _ in graph.edges:
        preds.setdefault(dst, []).append(src)
    pos = {}
    for lvl in sorted(columns):
        nodes = columns[lvl]
        if lvl > 0:
            def key(n):
                ys = [pos[p][1] for p in preds.get(n, []) if p in pos]
                return -(sum(ys) / len(ys)) if ys else 0.0

            nodes = sorted(nodes, key=lambda n: (key(n), n))
        m = len(nodes)
        for i, n in enumerate(nodes):
            pos[n] = (_H_GAP * lvl, _V_GAP * ((m - 1) / 2.0 - i))
    return pos


def _box_exit(p, q, rad):
    """Point where the edge p -> q (an arc3 curve of bend `rad`) leaves p's node box."""
    (x1, y1), (x2, y2) = p, q
    dx, dy = x2 - x1, y2 - y1
    # Tangent at p of the quadratic Bezier through control point mid + rad * (dy, -dx).
    cx, cy = (x1 + x2) / 2 + rad * dy, (y1 + y2) / 2 - rad * dx
    tx, ty = cx - x1, cy - y1
    norm = math.hypot(tx, ty) or 1.0
    ux, uy = tx / norm, ty / norm
    a, b = _NODE_W / 2 + 0.05, _NODE_H / 2 + 0.05
    dist = min(a / abs(ux) if ux else float("inf"), b / abs(uy) if uy else float("inf"))
    return (x1 + ux * dist, y1 + uy * dist)


def _bezier(p, q, rad, t):
    (x1, y1), (x2, y2) = p, q
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t**2
    return (a * x1 + b * cx + c * x2, a * y1 + b * cy + c * y2)


def _op_color(op, seen):
    if op in _OP_COLORS:
        return _OP_COLORS[op]
    if op not in seen:
        seen[op] = _EXTRA_COLORS[len(seen) % len(_EXTRA_COLORS)]
    return seen[op]


def _hits(p, q, rad, boxes):
    """How many sample points of the curve p -> q fall inside the given node centres' boxes."""
    count = 0
    for k in range(1, 20):
        x, y = _bezier(p, q, rad, k / 20)
        for bx, by in boxes:
            if abs(x - bx) < _NODE_W / 2 + 0.12 and abs(y - by) < _NODE_H / 2 + 0.12:
                count += 1
    return count


def _edge_bends(graph, pos):
    """A bend (arc3 `rad`) per edge: around the nodes in its way, apart when parallel."""
    bends = []
    multiplicity = {}
    for src, dst, _ in graph.edges:
        multiplicity[(src, dst)] = multiplicity.get((src, dst), 0) + 1
    seen = {}
    sides = {True: 0, False: 0}
    for src, dst, _ in graph.edges:
        p, q = pos[src], pos[dst]
        others = [xy for n, xy in pos.items() if n not in (src, dst)]
        k = seen.get((src, dst), 0)
        seen[(src, dst)] = k + 1
        offset = 0.0
        if multiplicity[(src, dst)] > 1:
            offset = (-0.16 if k % 2 == 0 else 0.16) * (1 + k // 2)
        candidates = [0.0, -0.2, 0.2, -0.3, 0.3, -0.42, 0.42, -0.55, 0.55]
        # Fewest nodes crossed, then least bent, then the side with fewer curves so far.
        best = min(
            candidates,
            key=lambda r: (_hits(p, q, r + offset, others), abs(r), sides[r < 0] if r else 0),
        )
        if best:
            sides[best < 0] += 1
        bends.append(best + offset)
    return bends


def _overlap(a, b):
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


@_styled
def plot_cell(cell, title=None, ax=None):
    """Draws a cell as a DAG: nodes, and edges labelled (and colored) with their ops.

    Args:
        cell: a NAS-Bench-201 `arch_str`, a DARTS genotype (list of `(op, input)` pairs,
            dict with `"normal"`, DARTS' `Genotype`, its repr, or keras_nas' string form
            `"op~i,op~j|..."`), or a summary / path whose `best_architecture` is one of those.
        title: figure title; default names the cell kind with its width and depth
            (`keras_nas.results.analysis.cell_width_depth`).
        ax: draw into this axes instead of a new figure.

    `none` edges are omitted; DARTS intermediate nodes join the output `c_{k}` by dashed
    concatenation edges. Nodes and edges on no input-to-output path are drawn faded. The
    legend names the ops and says what dashed and faded edges mean. Edge labels are placed
    along their edges where they overlap no other label or node.

    Returns:
        The `Figure`.

    Example:

    ```python
    fig = plot_cell("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    ```
    """
    if isinstance(cell, dict) and "trials" in cell or isinstance(cell, os.PathLike) or (
        isinstance(cell, str) and (cell.endswith(".json") or os.path.isdir(cell))
    ):
        summary = load_summary(cell)
        cell = summary.get("best_architecture")
        if not cell:
            raise ValueError("`cell` summary has no 'best_architecture' to draw.")
    graph = analysis.to_cell_graph(cell)
    width, depth = analysis.cell_width_depth(graph)
    pos = cell_layout(graph)
    bends = _edge_bends(graph, pos)
    live = set(graph.live_edges())
    live_nodes = {e[0] for e in live} | {e[1] for e in live} | set(graph.inputs) | {graph.output}
    faded_nodes = [n for n in pos if n not in live_nodes]

    # The view holds every node and every curved edge (a bent edge can swing past the nodes).
    curve = [_bezier(pos[src], pos[dst], rad, k / 16)
             for (src, dst, _), rad in zip(graph.edges, bends) for k in range(17)]
    xs = [p[0] for p in pos.values()] + [p[0] for p in curve]
    ys = [p[1] for p in pos.values()] + [p[1] for p in curve]
    x_lo, x_hi = min(xs) - 0.75, max(xs) + 0.75
    y_lo, y_hi = min(ys) - 0.95, max(ys) + 0.95
    if ax is None:
        scale = min(1.45, 12.0 / (x_hi - x_lo), 9.0 / (y_hi - y_lo))
        fig = _new_figure(((x_hi - x_lo) * scale + 0.4, (y_hi - y_lo) * scale + 1.3))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal")
    ax.axis("off")

    seen_colors = {}
    used_ops = []
    labels = []  # (text artist, src, dst, rad)
    for (src, dst, op), rad in zip(graph.edges, bends):
        p, q = pos[src], pos[dst]
        is_live = (src, dst, op) in live
        color = "#777777" if op is None else _op_color(op, seen_colors)
        alpha = 1.0 if is_live else 0.3
        ax.add_patch(FancyArrowPatch(
            _box_exit(p, q, rad), _box_exit(q, p, -rad),
            connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=15,
            lw=2.0 if op else 1.2, color=color, alpha=alpha,
            linestyle="--" if op is None else "-", shrinkA=0, shrinkB=0, zorder=1,
        ))
        if op is not None:
            if op not in used_ops:
                used_ops.append(op)
            x, y = _bezier(p, q, rad, 0.5)
            text = ax.text(
                x, y, op, fontsize=8.5, ha="center", va="center", alpha=alpha, zorder=3,
                bbox=dict(boxstyle="round,pad=0.18", fc="white", ec=color, lw=1.0, alpha=0.95),
            )
            labels.append((text, p, q, rad))
    node_boxes = []
    for n, (x, y) in pos.items():
        if n in graph.inputs:
            fc = "#9ecae1"
        elif n == graph.output:
            fc = "#fdd0a2"
        else:
            fc = "#e5e5e5"
        faded = n in faded_nodes
        box = FancyBboxPatch(
            (x - _NODE_W / 2, y - _NODE_H / 2), _NODE_W, _NODE_H,
            boxstyle="round,pad=0.0,rounding_size=0.15", fc=fc, ec="black",
            lw=1.4, alpha=0.35 if faded else 1.0, zorder=4,
        )
        ax.add_patch(box)
        node_boxes.append(box)
        ax.text(x, y, graph.labels.get(n, str(n)), ha="center", va="center", fontsize=11,
                fontweight="bold", zorder=5, alpha=0.4 if faded else 1.0)

    # Place each edge label at the point along its edge that overlaps the least.
    if labels:
        renderer = (fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer")
                    else fig._get_renderer())
        fixed = [b.get_window_extent(renderer) for b in node_boxes]
        placed = []
        for text, p, q, rad in labels:
            best = None
            for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.45, 0.55, 0.35, 0.65, 0.25, 0.75):
                text.set_position(_bezier(p, q, rad, t))
                bb = text.get_window_extent(renderer).expanded(1.08, 1.15)
                cost = sum(_overlap(bb, o) for o in placed) + 2 * sum(_overlap(bb, o) for o in fixed)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, t, bb)
                if cost == 0:
                    break
            text.set_position(_bezier(p, q, rad, best[1]))
            placed.append(best[2])

    kind = "NAS-Bench-201 cell" if graph.kind == "nasbench201" else "DARTS normal cell"
    if title is None:
        title = f"{kind}: width {analysis.format_width(width)}, depth {depth}"
    ax.set_title(title, fontsize=13, fontweight="bold")
    handles = [Line2D([0], [0], color=_op_color(op, seen_colors), lw=3) for op in used_ops]
    labels = list(used_ops)
    if any(op is None for _, _, op in graph.edges):
        handles.append(Line2D([0], [0], color="#777777", lw=1.2, ls="--"))
        labels.append("concatenated into the output")
    if faded_nodes or any(e not in live for e in graph.edges):
        handles.append(Line2D([0], [0], color="#777777", lw=3, alpha=0.3))
        labels.append("faded: on no input-to-output path")
    if handles:
        rows = math.ceil(len(handles) / 5)
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02),
                  ncol=math.ceil(len(handles) / rows), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


@_styled
def plot_cell_shapes(results):
    """Where the found cells sit in width and depth (Shu, Wang and Cai, ICLR 2020).

    Each completed trial whose architecture is a cell is a dot at (depth, width), colored
    by its quality (`quality_metric`; jittered slightly where several share a spot); the
    chosen cell is a star. For DARTS-space cells the published NASNet, AmoebaNet, ENAS,
    DARTS and SNAS normal cells are drawn too, as reference.

    Args:
        results: summary dict, or path of `summary.json` / its directory.

    Returns:
        A `Figure`.

    Example:

    ```python
    fig = plot_cell_shapes("results/my_search")
    ```
    """
    summary = load_summary(results)
    name, direction = quality_metric(summary)
    use_score = latency_target(summary) is None
    rows, kinds = [], set()
    for t in summary["trials"]:
        if not _completed(t) or not t.get("architecture"):
            continue
        try:
            graph = analysis.to_cell_graph(t["architecture"])
        except (ValueError, TypeError, SyntaxError):
            continue
        kinds.add(graph.kind)
        w, d = analysis.cell_width_depth(graph)
        rows.append((d, w, trial_value(t, name, use_score=use_score), str(t.get("trial_id"))))
    if not rows:
        raise ValueError("`results` has no completed trial whose architecture is a cell.")
    fig = _new_figure((7.5, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    counts = {}
    xs, ys, cs = [], [], []
    for d, w, v, _ in rows:
        k = counts.get((d, w), 0)
        counts[(d, w)] = k + 1
        # Cells sharing a (depth, width) spot fan out sideways; depth is an integer.
        xs.append(d + 0.06 * ((k + 1) // 2) * (-1) ** k)
        ys.append(w)
        cs.append(v)
    valid = [c for c in cs if c is not None]
    sc = ax.scatter(
        xs, ys, c=[c if c is not None else (min(valid) if valid else 0) for c in cs],
        cmap="viridis" if direction == "max" else "viridis_r", s=60, edgecolor="black",
        linewidth=0.5, label="trials", zorder=3,
    )
    fig.colorbar(sc, ax=ax, label=name.replace("_", " "))
    chosen = [r for r, x, y in zip(rows, xs, ys) if r[3] == str(summary.get("best_trial_id"))]
    if chosen:
        i = rows.index(chosen[0])
        ax.scatter([xs[i]], [ys[i]], marker="*", s=380, facecolor="none", edgecolor=_COLORS["failed"],
                   linewidth=2, label=f"chosen (trial {chosen[0][3]})", zorder=4)
    if kinds == {"darts"}:
        spots = {}  # cells sharing a (depth, width) spot get one marker and one label
        for pname, (w, d) in analysis.published_width_depth().items():
            spots.setdefault((d, w), []).append(pname)
        for (d, w), names in spots.items():
            ax.scatter([d], [w], marker="D", s=70, color=_COLORS["best"], edgecolor="black", zorder=2)
            ax.annotate(", ".join(names), (d, w), xytext=(7, 5), textcoords="offset points", fontsize=9)
        ax.scatter([], [], marker="D", color=_COLORS["best"], edgecolor="black", label="published cells")
    ax.set_xlabel("depth (connections on the longest path)")
    ax.set_ylabel("width (units of c)")
    ax.set_title("Cell width and depth (Shu et al., ICLR 2020)")
    ax.margins(0.15)
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend_below(fig, [ax])
    return fig


# ---------------------------------------------------------------------------------------
# 4b. Macro (MobileNet-style) layout
# ---------------------------------------------------------------------------------------
_BLOCK_KEYS = ("stage", "kernel", "expansion", "filters", "stride")


def _validate_blocks(blocks):
    if isinstance(blocks, dict) and "blocks" in blocks:
        blocks = blocks["blocks"]
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError("`blocks` must be a non-empty list of block dicts.")
    out = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict):
            raise TypeError(f"`blocks[{i}]` must be a dict, got {type(b).__name__}.")
        missing = [k for k in _BLOCK_KEYS if k not in b]
        if missing:
            raise ValueError(f"`blocks[{i}]` lacks keys {missing}; each block needs {list(_BLOCK_KEYS)}.")
        out.append({k: int(b[k]) if k != "expansion" else float(b[k]) for k in _BLOCK_KEYS})
    return out


@_styled
def plot_macro(blocks, title="Network layout"):
    """Draws a MobileNet-style network as stages of inverted-residual (MBConv) blocks.

    Each block is a box whose height grows with its output filters, labelled with its
    expansion ratio, kernel size and filters; stride-2 blocks are hatched and marked
    "↓2". Stages are colored and bracketed below.

    Args:
        blocks: a list of dicts `{"stage": i, "kernel": k, "expansion": e, "filters": f,
            "stride": s}` in network order (or a dict with key `"blocks"`).
        title: figure title.

    Returns:
        The `Figure`.

    Example:

    ```python
    fig = plot_macro([
        {"stage": 0, "kernel": 3, "expansion": 1, "filters": 16, "stride": 1},
        {"stage": 1, "kernel": 5, "expansion": 6, "filters": 24, "stride": 2},
    ])
    ```
    """
    blocks = _validate_blocks(blocks)
    n = len(blocks)
    max_f = max(b["filters"] for b in blocks)
    fig = _new_figure((max(7.0, 1.15 * n + 2.0), 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    stages = []
    for b in blocks:
        if b["stage"] not in stages:
            stages.append(b["stage"])
    cmap = matplotlib.colormaps["Set2"]
    stage_color = {s: cmap(i % 8) for i, s in enumerate(stages)}
    box_w, gap = 0.9, 0.25
    x = 0.0
    stage_span = {}
    for i, b in enumerate(blocks):
        h = 0.8 + 2.2 * math.sqrt(b["filters"] / max_f)
        rect = FancyBboxPatch(
            (x, -h / 2), box_w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=stage_color[b["stage"]], ec="black", lw=1.2,
            hatch="//" if b["stride"] > 1 else None, zorder=2,
        )
        ax.add_patch(rect)
        e = b["expansion"]
        e_txt = f"{e:g}"
        ax.text(
            x + box_w / 2, 0, f"MB{e_txt}\n{b['kernel']}x{b['kernel']}\n{b['filters']}",
            ha="center", va="center", fontsize=9, zorder=3,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8),
        )
        if b["stride"] > 1:
            ax.text(x + box_w / 2, h / 2 + 0.15, f"↓{b['stride']}", ha="center", va="bottom",
                    fontsize=10, fontweight="bold", color="#C44E52")
        lo, hi = stage_span.get(b["stage"], (x, x + box_w))
        stage_span[b["stage"]] = (min(lo, x), max(hi, x + box_w))
        if i < n - 1:
            ax.annotate("", xy=(x + box_w + gap, 0), xytext=(x + box_w, 0),
                        arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0), zorder=1)
        x += box_w + gap
    for s, (lo, hi) in stage_span.items():
        ax.plot([lo, lo, hi, hi], [-1.85, -1.95, -1.95, -1.85], color="black", lw=1)
        ax.text((lo + hi) / 2, -2.05, f"stage {s}", ha="center", va="top", fontsize=10)
    ax.set_xlim(-0.3, x + 0.1)
    ax.set_ylim(-2.6, 2.0)
    ax.set_title(title + f"  ({n} blocks, {len(stages)} stages)", fontsize=13, fontweight="bold")
    ax.text(0.0, 1.75, "MB<e> = inverted residual with expansion e; k x k depthwise kernel; "
            "output filters; hatched = stride 2", fontsize=8.5, color="#444444")
    fig.tight_layout()
    return fig


def macro_blocks(arch_str, stages=None):
    """Block list for `plot_macro` from a `MobileNetSpace` architecture string.

    Args:
        arch_str: e.g. `"w0.75|k3e6|k5e3-k3e6|k7e6-k3e3-k3e3"`: the width multiplier, then
            per stage its blocks as `k<kernel>e<expansion>` joined by `-`.
        stages: the space's `(filters, max_depth, stride)` per stage; default MobileNetV2's
            (`keras_nas.spaces.mobilenet.MOBILENETV2_STAGES`). Filters are scaled by the
            width multiplier and rounded as the space does; the stride shown is the stage's
            nominal one (the space may run early stages at stride 1 on small inputs).

    Returns:
        A list of `{"stage", "kernel", "expansion", "filters", "stride"}` dicts.

    Example:

    ```python
    plot_macro(macro_blocks("w1.0|k3e1|k5e6-k3e6", stages=[(16, 1, 1), (24, 2, 2)]))
    ```
    """
    from keras_nas.spaces.mobilenet import MOBILENETV2_STAGES, make_divisible

    stages = MOBILENETV2_STAGES if stages is None else stages
    if not isinstance(arch_str, str) or not re.fullmatch(
        r"w[0-9.]+(\|(k\d+e\d+(-k\d+e\d+)*)?)+", arch_str.strip()
    ):
        raise ValueError(
            f"`arch_str` must look like 'w1.0|k3e6|k5e3-k3e6', got {arch_str!r}."
        )
    fields = arch_str.strip().split("|")
    if len(fields) - 1 != len(stages):
        raise ValueError(
            f"`arch_str` has {len(fields) - 1} stages but `stages` describes {len(stages)}."
        )
    width = float(fields[0][1:])
    blocks = []
    for s, (field, (filters, _, stride)) in enumerate(zip(fields[1:], stages)):
        for b, block in enumerate(field.split("-") if field else []):
            kernel, expansion = (int(v) for v in re.findall(r"\d+", block))
            blocks.append({
                "stage": s, "kernel": kernel, "expansion": expansion,
                "filters": int(make_divisible(filters * width)),
                "stride": int(stride) if b == 0 else 1,
            })
    return blocks


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------
def _blocks_in(summary):
    for key in ("best_blocks", "blocks"):
        if isinstance(summary.get(key), list) and summary[key]:
            return summary[key]
    best = summary.get("best")
    if isinstance(best, dict) and isinstance(best.get("blocks"), list) and best["blocks"]:
        return best["blocks"]
    arch = summary.get("best_architecture")
    if isinstance(arch, str) and arch.startswith("w"):
        try:
            return macro_blocks(arch, summary.get("stages"))
        except (ValueError, TypeError, ImportError):
            return None
    return None


def _cell_in(summary):
    arch = summary.get("best_architecture")
    if not arch:
        return None
    try:
        analysis.to_cell_graph(arch)
    except (ValueError, TypeError, SyntaxError):
        return None
    return arch


def save_figures(summary, out_dir, dpi=110, keep_newer_than=None):
    """Writes every figure that applies to a search's results as PNG files.

    - `history.png` always (when there is a finished trial);
    - `pareto.png` when trials carry `latency_ms` or `params`;
    - `controller.png` when the summary has a `"controller_history"` list;
    - `cell.png` and `cell_shapes.png` when `best_architecture` is a cell (NAS-Bench-201
      arch_str or DARTS genotype);
    - `macro.png` when `best_architecture` is a `MobileNetSpace` string (stages from
      `summary["stages"]` if given, else MobileNetV2's), or the summary has a
      `"best_blocks"` list (or `summary["best"]["blocks"]`).

    Args:
        summary: summary dict, or path of `summary.json` / its directory.
        out_dir: directory to write into (created if needed).
        dpi: resolution of the PNGs.
        keep_newer_than: a time (seconds since the epoch, e.g. the summary file's mtime):
            a PNG already in `out_dir` and modified after it is kept as it is, not redrawn.

    Returns:
        `{name: path}` of the files written, e.g. `{"history": ".../history.png", ...}`.

    Example:

    ```python
    paths = save_figures("results/my_search", "results/my_search/figures")
    ```
    """
    summary = load_summary(summary)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = []
    if any(t.get("status") != "RUNNING" for t in summary["trials"]):
        builders.append(("history", lambda: plot_history(summary)))
    if _cost_metrics(summary):
        builders.append(("pareto", lambda: plot_pareto(summary)))
    if isinstance(summary.get("controller_history"), list) and summary["controller_history"]:
        builders.append(("controller", lambda: plot_controller(summary["controller_history"])))
    cell = _cell_in(summary)
    if cell is not None:
        builders.append(("cell", lambda: plot_cell(cell)))
        builders.append(("cell_shapes", lambda: plot_cell_shapes(summary)))
    blocks = _blocks_in(summary)
    if blocks is not None:
        builders.append(("macro", lambda: plot_macro(blocks)))
    paths = {}
    for name, build in builders:
        path = out_dir / f"{name}.png"
        if not (keep_newer_than is not None and path.is_file()
                and path.stat().st_mtime > keep_newer_than):
            build().savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
        paths[name] = str(path)
    return paths
