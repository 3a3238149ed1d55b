"""A cell as a DAG: nodes in columns, edges labelled and colored with their ops."""

import math
import os

from keras_nas.results import analysis
from keras_nas.results.plots._style import _new_figure, _op_color, _styled
from keras_nas.results.summary import load_summary

_H_GAP = 2.6  # data units between node columns
_V_GAP = 1.35  # data units between nodes of a column
_NODE_W, _NODE_H = 1.0, 0.62
# Fill of a node box by its role.
_NODE_FILL = {"input": "#9ecae1", "output": "#fdd0a2", "node": "#e5e5e5"}


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


def _is_summary(cell):
    return isinstance(cell, dict) and "trials" in cell or isinstance(cell, os.PathLike) or (
        isinstance(cell, str) and (cell.endswith(".json") or os.path.isdir(cell))
    )


def cell_data(cell):
    """What `plot_cell` draws, as plain values (no matplotlib).

    Args:
        cell: as for `plot_cell`.

    Returns:
        A dict: `kind` (`"nasbench201"` or `"darts"`), `width` and `depth`
        (`keras_nas.results.analysis.cell_width_depth`), `title` (the default one),
        `nodes`, a list of `{"id", "label", "x", "y", "role", "live"}` (`role`: `"input"`,
        `"output"` or `"node"`; `live`: on an input-to-output path), `edges`, a list of
        `{"src", "dst", "op", "bend", "live"}` (`op` is `None` for a DARTS concatenation
        edge, `bend` the arc's `rad`; `none` edges are left out), and `xlim`, `ylim`:
        the view that holds every node and curved edge.

    Example:

    ```python
    data = cell_data("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|")
    [(e["src"], e["dst"], e["op"]) for e in data["edges"]]
    ```
    """
    if _is_summary(cell):
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

    # The view holds every node and every curved edge (a bent edge can swing past the nodes).
    curve = [_bezier(pos[src], pos[dst], rad, k / 16)
             for (src, dst, _), rad in zip(graph.edges, bends) for k in range(17)]
    xs = [p[0] for p in pos.values()] + [p[0] for p in curve]
    ys = [p[1] for p in pos.values()] + [p[1] for p in curve]

    def role(n):
        if n in graph.inputs:
            return "input"
        return "output" if n == graph.output else "node"

    kind = "NAS-Bench-201 cell" if graph.kind == "nasbench201" else "DARTS normal cell"
    return {
        "kind": graph.kind,
        "width": width,
        "depth": depth,
        "title": f"{kind}: width {analysis.format_width(width)}, depth {depth}",
        "nodes": [{"id": n, "label": graph.labels.get(n, str(n)), "x": x, "y": y, "role": role(n),
                   "live": n in live_nodes} for n, (x, y) in pos.items()],
        "edges": [{"src": src, "dst": dst, "op": op, "bend": rad, "live": (src, dst, op) in live}
                  for (src, dst, op), rad in zip(graph.edges, bends)],
        "xlim": (min(xs) - 0.75, max(xs) + 0.75),
        "ylim": (min(ys) - 0.95, max(ys) + 0.95),
    }


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
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    data = cell_data(cell)
    pos = {node["id"]: (node["x"], node["y"]) for node in data["nodes"]}
    (x_lo, x_hi), (y_lo, y_hi) = data["xlim"], data["ylim"]
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
    for edge in data["edges"]:
        op, rad = edge["op"], edge["bend"]
        p, q = pos[edge["src"]], pos[edge["dst"]]
        color = "#777777" if op is None else _op_color(op, seen_colors)
        alpha = 1.0 if edge["live"] else 0.3
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
    for node in data["nodes"]:
        x, y = node["x"], node["y"]
        faded = not node["live"]
        box = FancyBboxPatch(
            (x - _NODE_W / 2, y - _NODE_H / 2), _NODE_W, _NODE_H,
            boxstyle="round,pad=0.0,rounding_size=0.15", fc=_NODE_FILL[node["role"]], ec="black",
            lw=1.4, alpha=0.35 if faded else 1.0, zorder=4,
        )
        ax.add_patch(box)
        node_boxes.append(box)
        ax.text(x, y, node["label"], ha="center", va="center", fontsize=11,
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

    if title is None:
        title = data["title"]
    ax.set_title(title, fontsize=13, fontweight="bold")
    handles = [Line2D([0], [0], color=_op_color(op, seen_colors), lw=3) for op in used_ops]
    legend_labels = list(used_ops)
    if any(edge["op"] is None for edge in data["edges"]):
        handles.append(Line2D([0], [0], color="#777777", lw=1.2, ls="--"))
        legend_labels.append("concatenated into the output")
    if any(not node["live"] for node in data["nodes"]) or any(not edge["live"] for edge in data["edges"]):
        handles.append(Line2D([0], [0], color="#777777", lw=3, alpha=0.3))
        legend_labels.append("faded: on no input-to-output path")
    if handles:
        rows = math.ceil(len(handles) / 5)
        ax.legend(handles, legend_labels, loc="upper center", bbox_to_anchor=(0.5, 0.02),
                  ncol=math.ceil(len(handles) / rows), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
