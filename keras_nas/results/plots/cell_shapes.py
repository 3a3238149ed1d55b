"""Where the found cells sit in width and depth, beside the published cells."""

from keras_nas.results import analysis
from keras_nas.results.plots._data import _completed, latency_target, quality_metric
from keras_nas.results.plots._style import _COLORS, _legend_below, _new_figure, _styled
from keras_nas.results.summary import load_summary, trial_value


def cell_shapes_data(results):
    """What `plot_cell_shapes` draws, as plain values (no matplotlib).

    Args:
        results: summary dict, or path of `summary.json` / its directory.

    Returns:
        A dict: `metric` and `direction` of the quality (see `quality_metric`), `cells`, a
        list of `{"depth", "width", "value", "trial_id"}` for each completed trial whose
        architecture is a cell (in summary order), `chosen_index` (the position of
        `best_trial_id` in `cells`, or `None`), and `published`, a list of
        `{"depth", "width", "names"}` (the published DARTS-space normal cells sharing each
        spot), or `None` unless every cell is a DARTS cell.

    Example:

    ```python
    data = cell_shapes_data("results/my_search")
    [(c["depth"], c["width"]) for c in data["cells"]]
    ```
    """
    summary = load_summary(results)
    name, direction = quality_metric(summary)
    use_score = latency_target(summary) is None
    cells, kinds = [], set()
    for t in summary["trials"]:
        if not _completed(t) or not t.get("architecture"):
            continue
        try:
            graph = analysis.to_cell_graph(t["architecture"])
        except (ValueError, TypeError, SyntaxError):
            continue
        kinds.add(graph.kind)
        w, d = analysis.cell_width_depth(graph)
        cells.append({"depth": d, "width": w, "value": trial_value(t, name, use_score=use_score),
                      "trial_id": str(t.get("trial_id"))})
    if not cells:
        raise ValueError("`results` has no completed trial whose architecture is a cell.")
    chosen_id = str(summary.get("best_trial_id"))
    chosen_index = next((i for i, c in enumerate(cells) if c["trial_id"] == chosen_id), None)
    published = None
    if kinds == {"darts"}:
        spots = {}  # cells sharing a (depth, width) spot get one marker and one label
        for pname, (w, d) in analysis.published_width_depth().items():
            spots.setdefault((d, w), []).append(pname)
        published = [{"depth": d, "width": w, "names": names} for (d, w), names in spots.items()]
    return {"metric": name, "direction": direction, "cells": cells,
            "chosen_index": chosen_index, "published": published}


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
    data = cell_shapes_data(results)
    fig = _new_figure((7.5, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    counts = {}
    xs, ys, cs = [], [], []
    for cell in data["cells"]:
        d, w = cell["depth"], cell["width"]
        k = counts.get((d, w), 0)
        counts[(d, w)] = k + 1
        # Cells sharing a (depth, width) spot fan out sideways; depth is an integer.
        xs.append(d + 0.06 * ((k + 1) // 2) * (-1) ** k)
        ys.append(w)
        cs.append(cell["value"])
    valid = [c for c in cs if c is not None]
    sc = ax.scatter(
        xs, ys, c=[c if c is not None else (min(valid) if valid else 0) for c in cs],
        cmap="viridis" if data["direction"] == "max" else "viridis_r", s=60, edgecolor="black",
        linewidth=0.5, label="trials", zorder=3,
    )
    fig.colorbar(sc, ax=ax, label=data["metric"].replace("_", " "))
    i = data["chosen_index"]
    if i is not None:
        ax.scatter([xs[i]], [ys[i]], marker="*", s=380, facecolor="none", edgecolor=_COLORS["failed"],
                   linewidth=2, label=f"chosen (trial {data['cells'][i]['trial_id']})", zorder=4)
    if data["published"] is not None:
        for spot in data["published"]:
            d, w = spot["depth"], spot["width"]
            ax.scatter([d], [w], marker="D", s=70, color=_COLORS["best"], edgecolor="black", zorder=2)
            ax.annotate(", ".join(spot["names"]), (d, w), xytext=(7, 5), textcoords="offset points", fontsize=9)
        ax.scatter([], [], marker="D", color=_COLORS["best"], edgecolor="black", label="published cells")
    ax.set_xlabel("depth (connections on the longest path)")
    ax.set_ylabel("width (units of c)")
    ax.set_title("Cell width and depth (Shu et al., ICLR 2020)")
    ax.margins(0.15)
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend_below(fig, [ax])
    return fig
