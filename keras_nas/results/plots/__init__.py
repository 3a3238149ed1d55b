"""Figures of a search's results, drawn with matplotlib (Agg backend, no display needed).

Every plotting function takes `results` (a summary dict as written to `summary.json` by a
search, or the path of that file or of the directory holding it) or the object it draws,
and returns a `matplotlib.figure.Figure`; `save_figures` writes all that apply as PNGs.

One module per figure (`history`, `pareto`, `controller`, `cell`, `cell_shapes`, `macro`),
each with a data function that returns what the figure shows as plain values, without
matplotlib (`history_data`, `pareto_data`, `controller_data`, `cell_data`,
`cell_shapes_data`, `macro_data`), and the `plot_*` function that draws it; `save` writes
them all. matplotlib is imported only when a figure is drawn.

```python
from keras_nas.results import plots
fig = plots.plot_history("results/my_search")        # objective per trial, best so far
fig.savefig("history.png")
plots.history_data("results/my_search")["best_so_far"]  # the same values, no figure
paths = plots.save_figures("results/my_search", "results/my_search/figures")
```
"""

from keras_nas.results.plots._data import (
    COST_LABELS,
    _ordered_trials,
    latency_target,
    over_target,
    quality_metric,
)
from keras_nas.results.plots.cell import cell_data, cell_layout, plot_cell
from keras_nas.results.plots.cell_shapes import cell_shapes_data, plot_cell_shapes
from keras_nas.results.plots.controller import (
    controller_data,
    controller_history_of,
    plot_controller,
)
from keras_nas.results.plots.history import history_data, plot_history
from keras_nas.results.plots.macro import macro_blocks, macro_data, plot_macro
from keras_nas.results.plots.pareto import pareto_data, pareto_front, plot_pareto
from keras_nas.results.plots.save import figures_data, save_figures
from keras_nas.results.summary import COST_METRICS, load_summary, objective_of, trial_value

__all__ = [
    "COST_LABELS",
    "COST_METRICS",
    "cell_data",
    "cell_layout",
    "cell_shapes_data",
    "controller_data",
    "controller_history_of",
    "figures_data",
    "history_data",
    "latency_target",
    "load_summary",
    "macro_blocks",
    "macro_data",
    "objective_of",
    "over_target",
    "pareto_data",
    "pareto_front",
    "plot_cell",
    "plot_cell_shapes",
    "plot_controller",
    "plot_history",
    "plot_macro",
    "plot_pareto",
    "quality_metric",
    "save_figures",
    "trial_value",
]
