"""Writing every figure that applies to a search's results as PNG files."""

from pathlib import Path

from keras_nas.results import analysis
from keras_nas.results.plots._data import _cost_metrics
from keras_nas.results.plots.cell import plot_cell
from keras_nas.results.plots.cell_shapes import plot_cell_shapes
from keras_nas.results.plots.controller import plot_controller
from keras_nas.results.plots.history import plot_history
from keras_nas.results.plots.macro import macro_blocks, plot_macro
from keras_nas.results.plots.pareto import plot_pareto
from keras_nas.results.summary import load_summary, space_kinds_of


def _blocks_in(summary):
    for key in ("best_blocks", "blocks"):
        if isinstance(summary.get(key), list) and summary[key]:
            return summary[key]
    best = summary.get("best")
    if isinstance(best, dict) and isinstance(best.get("blocks"), list) and best["blocks"]:
        return best["blocks"]
    arch = summary.get("best_architecture")
    kinds = space_kinds_of(summary)
    # The recorded space decides; only summaries that do not record it are read by the form.
    macro = "MobileNetSpace" in kinds if kinds else str(arch).startswith("w")
    if isinstance(arch, str) and macro:
        try:
            config = (summary.get("settings") or {}).get("space_config") or {}
            return macro_blocks(arch, summary.get("stages") or config.get("stages"))
        except (ValueError, TypeError, ImportError):
            return None
    return None


#: The spaces whose architectures are cells `analysis.to_cell_graph` draws.
CELL_SPACES = ("NASBench201Space", "DartsSpace")


def _cell_in(summary):
    arch = summary.get("best_architecture")
    kinds = space_kinds_of(summary)
    if not arch or (kinds and not set(kinds) & set(CELL_SPACES)):
        return None
    try:
        analysis.to_cell_graph(arch)
    except (ValueError, TypeError, SyntaxError):
        return None
    return arch


def figures_data(summary):
    """The figures that apply to a search's results and what each draws (no matplotlib).

    Args:
        summary: summary dict, or path of `summary.json` / its directory.

    Returns:
        `{name: input}` in drawing order, `name` among `history`, `pareto`, `controller`,
        `cell`, `cell_shapes` and `macro` (see `save_figures`); `input` is what the figure's
        `plot_*` function is given: the summary dict, the controller history, the cell or
        the block list.

    Example:

    ```python
    list(figures_data("results/my_search"))  # e.g. ["history", "pareto", "cell", "cell_shapes"]
    ```
    """
    summary = load_summary(summary)
    figures = {}
    if any(t.get("status") != "RUNNING" for t in summary["trials"]):
        figures["history"] = summary
    if _cost_metrics(summary):
        figures["pareto"] = summary
    if isinstance(summary.get("controller_history"), list) and summary["controller_history"]:
        figures["controller"] = summary["controller_history"]
    cell = _cell_in(summary)
    if cell is not None:
        figures["cell"] = cell
        figures["cell_shapes"] = summary
    blocks = _blocks_in(summary)
    if blocks is not None:
        figures["macro"] = blocks
    return figures


_PLOTS = {
    "history": plot_history,
    "pareto": plot_pareto,
    "controller": plot_controller,
    "cell": plot_cell,
    "cell_shapes": plot_cell_shapes,
    "macro": plot_macro,
}


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
    paths = {}
    for name, source in figures_data(summary).items():
        path = out_dir / f"{name}.png"
        if not (keep_newer_than is not None and path.is_file()
                and path.stat().st_mtime > keep_newer_than):
            _PLOTS[name](source).savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
        paths[name] = str(path)
    return paths
