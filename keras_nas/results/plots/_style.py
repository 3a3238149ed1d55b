"""The figures' look: rc style, colors, new figures and legends.

matplotlib is imported only when a figure is drawn (`_new_figure`, `_styled`), so the
data functions of the figure modules run without it.
"""

import functools

# rc settings every figure is drawn under (see `_styled`).
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


@functools.cache
def _matplotlib():
    """matplotlib, on the Agg backend (no display needed); imported on the first figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    return matplotlib


def _new_figure(figsize):
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)  # an Agg canvas, so text extents can be measured before saving
    return fig


def _styled(func):
    """Runs a figure builder inside the package's rc style (without touching global state)."""

    def wrapper(*args, **kwargs):
        _matplotlib()
        import matplotlib.pyplot as plt

        with plt.rc_context(_STYLE):
            return func(*args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    wrapper.__wrapped__ = func
    return wrapper


def _op_color(op, seen):
    """The color of cell op `op`: its own, or the next extra color (remembered in `seen`)."""
    if op in _OP_COLORS:
        return _OP_COLORS[op]
    if op not in seen:
        seen[op] = _EXTRA_COLORS[len(seen) % len(_EXTRA_COLORS)]
    return seen[op]


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
