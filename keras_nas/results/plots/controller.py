"""Learning curves of a REINFORCE controller: reward, baseline, entropy, decision probabilities."""

import json
import math
import os
from pathlib import Path

from keras_nas.results.plots._style import (
    _COLORS,
    _EXTRA_COLORS,
    _OP_COLORS,
    _legend_beside,
    _new_figure,
    _styled,
)


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


def controller_data(history, max_decisions=12):
    """What `plot_controller` draws, as plain values (no matplotlib).

    Args:
        history: as for `plot_controller`.
        max_decisions: at most this many decisions (the first ones in order of appearance).

    Returns:
        A dict: `steps` (the update numbers), `rewards` (parallel to `steps`), `baseline`
        and `entropy` (lists of `(step, value)` for the updates that record one), and
        `decisions`: `{decision: {value: [(step, probability), ...]}}` in order of appearance.

    Example:

    ```python
    data = controller_data(oracle.get_state()["history"])
    data["decisions"]["edge_0_1"]["nor_conv_3x3"][-1]  # (last step, its probability)
    ```
    """
    steps = controller_history_of(history)
    if not steps:
        raise ValueError("`history` is empty: no controller updates to plot.")
    xs = [s.get("step", i) for i, s in enumerate(steps)]
    names = []
    for s in steps:
        for k in (s.get("probabilities") or {}):
            if k not in names:
                names.append(k)
    decisions = {}
    for decision in names[:max_decisions]:
        values = []
        for s in steps:
            for v in ((s.get("probabilities") or {}).get(decision) or {}):
                if v not in values:
                    values.append(v)
        curves = {}
        for v in values:
            ys = [((s.get("probabilities") or {}).get(decision) or {}).get(v) for s in steps]
            curves[v] = [(x, y) for x, y in zip(xs, ys) if y is not None]
        decisions[decision] = curves
    return {
        "steps": xs,
        "rewards": [s.get("reward") for s in steps],
        "baseline": [(x, s["baseline"]) for x, s in zip(xs, steps) if s.get("baseline") is not None],
        "entropy": [(x, s["entropy"]) for x, s in zip(xs, steps) if s.get("entropy") is not None],
        "decisions": decisions,
    }


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
    data = controller_data(history, max_decisions)
    xs, decisions = data["steps"], data["decisions"]
    ncols = 3
    nrows = math.ceil(len(decisions) / ncols)
    fig = _new_figure((13, 4.0 + 2.9 * nrows))
    grid = fig.add_gridspec(1 + nrows, ncols * 2, height_ratios=[1.3] + [1.0] * nrows)
    ax_r = fig.add_subplot(grid[0, :3])
    ax_e = fig.add_subplot(grid[0, 3:])

    ax_r.plot(xs, data["rewards"], "o-", ms=3, color=_COLORS["trial"], lw=1.2, label="reward")
    pts = data["baseline"]
    if pts:
        ax_r.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=_COLORS["best"], lw=2.2, label="baseline")
    ax_r.set_xlabel("update")
    ax_r.set_ylabel("reward")
    ax_r.set_title("Reward and baseline")
    _legend_beside(ax_r)
    ent = data["entropy"]
    if ent:
        ax_e.plot([p[0] for p in ent], [p[1] for p in ent], "-", color=_COLORS["chosen"], lw=2)
    else:
        ax_e.text(0.5, 0.5, "no entropy recorded", ha="center", va="center", transform=ax_e.transAxes)
    ax_e.set_xlabel("update")
    ax_r.xaxis.get_major_locator().set_params(integer=True)
    ax_e.xaxis.get_major_locator().set_params(integer=True)
    ax_e.set_ylabel("entropy (nats)")
    ax_e.set_title("Policy entropy")

    for k, (decision, curves) in enumerate(decisions.items()):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(grid[1 + r, 2 * c : 2 * c + 2])
        for j, (v, pts) in enumerate(curves.items()):
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
