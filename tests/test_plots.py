"""Figures from search results: content of the axes, and PNGs written by save_figures."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from keras_nas.results import plots
from keras_nas.results.analysis import PUBLISHED_CELLS

DATA = Path(__file__).parent / "data"
NB201 = DATA / "summary_nb201_random.json"  # a real 10-trial KerasTuner search (one FAILED)
DARTS = DATA / "summary_darts_small.json"  # hand-made: INVALID and RUNNING trials, no latency
# A real search: `keras-nas search --max-trials 4 --epochs 1 --channels 4 --latency-ms 0.05
# --latency-objective hard` (one trial over the target, two within, one failed measuring latency).
LATENCY = DATA / "summary_latency_hard.json"
# DARTS cells with a concatenation edge bent above (0 -> c_{k}) or below (1 -> c_{k}) every node.
BENT_CELL = ("normal=max_pool_3x3~1,skip_connect~0|max_pool_3x3~2,max_pool_3x3~0|"
             "sep_conv_3x3~2,max_pool_3x3~1|max_pool_3x3~3,sep_conv_5x5~2")
BENT_DOWN_CELL = ("normal=sep_conv_3x3~0,skip_connect~1|sep_conv_3x3~1,dil_conv_3x3~2|"
                  "sep_conv_3x3~1,sep_conv_5x5~2|dil_conv_3x3~0,skip_connect~3")
DEAD_END_CELL = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


def load(path):
    with open(path) as f:
        return json.load(f)


def collection_with_label(ax, label_prefix):
    found = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label().startswith(label_prefix)]
    assert found, f"no scatter labelled {label_prefix!r} in {[c.get_label() for c in ax.collections]}"
    return found[0].get_offsets()


def points_under_legends(fig):
    """Data points (scatter offsets, line vertices) that a legend of `fig` covers, in pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    boxes = [legend.get_window_extent(renderer) for legend in legends]
    assert boxes, "the figure has no legend"
    points = []
    for ax in fig.axes:
        for c in ax.collections:
            if isinstance(c, PathCollection) and len(c.get_offsets()):
                points.extend(c.get_offset_transform().transform(c.get_offsets()))
        for line in ax.get_lines():
            points.extend(line.get_transform().transform(line.get_xydata()))
    return [tuple(p) for p in points if any(b.contains(*p) for b in boxes)]


# -- pareto_front ------------------------------------------------------------------------
def test_pareto_front_basic_and_directions():
    pts = [(0.9, 5.0), (0.8, 2.0), (0.7, 3.0), (0.9, 6.0), (0.95, 9.0)]
    assert plots.pareto_front(pts, ["max", "min"]) == [0, 1, 4]
    # Flip both directions: the complementary corner.
    assert plots.pareto_front(pts, ["min", "max"]) == [2, 3, 4]
    # Equal points both stay; one dominated duplicate goes.
    assert plots.pareto_front([(1, 1), (1, 1), (0, 2)], ["max", "min"]) == [0, 1]
    assert plots.pareto_front([], ["max"]) == []


def test_pareto_front_bad_input():
    with pytest.raises(ValueError, match="directions"):
        plots.pareto_front([(1, 2)], ["max", "up"])
    with pytest.raises(ValueError, match="coordinates"):
        plots.pareto_front([(1, 2, 3)], ["max", "min"])


# -- history -------------------------------------------------------------------------------
def test_plot_history_points_best_and_failed():
    summary = load(NB201)
    fig = plots.plot_history(NB201)
    assert isinstance(fig, Figure)
    by_number, by_time = fig.axes[:2]
    completed = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    for ax in (by_number, by_time):
        assert len(collection_with_label(ax, "trial")) == len(completed) == 9
        assert len(collection_with_label(ax, "failed")) == 1
        assert ax.get_ylabel() == "val accuracy"
        best_line = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"][0]
        assert best_line.get_ydata()[-1] == pytest.approx(max(t["metrics"]["val_accuracy"] for t in completed))
        assert np.all(np.diff(best_line.get_ydata()) >= 0)  # best so far never drops
    assert by_number.get_xlabel() == "trial number"
    assert by_time.get_xlabel() == "wall time (s)"
    # The failed trial (number 2) is drawn at trial number 3 (1-based).
    assert collection_with_label(by_number, "failed")[0][0] == 3
    star = collection_with_label(by_number, "best:")
    assert star[0][1] == pytest.approx(0.30000001192092896)


def test_plot_history_min_direction_and_statuses():
    summary = load(DARTS)
    summary["objective"] = {"name": "val_loss", "direction": "min"}
    fig = plots.plot_history(summary)
    ax = fig.axes[0]
    assert len(collection_with_label(ax, "trial")) == 3
    assert len(collection_with_label(ax, "failed")) == 1  # INVALID; RUNNING is left out
    best_line = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"][0]
    assert best_line.get_ydata()[-1] == pytest.approx(min(1.2 - a for a in (0.8125, 0.7750, 0.8438)), abs=1e-4)


def test_load_summary_errors(tmp_path):
    with pytest.raises(TypeError, match="results"):
        plots.plot_history(3)
    with pytest.raises(ValueError, match="summary.json"):
        plots.plot_history(tmp_path)
    with pytest.raises(ValueError, match="trials"):
        plots.plot_history({"space": "cell"})
    # A directory holding summary.json works like the file.
    (tmp_path / "summary.json").write_text(NB201.read_text())
    assert isinstance(plots.plot_history(tmp_path), Figure)


# -- pareto --------------------------------------------------------------------------------
def test_plot_pareto_front_and_chosen():
    summary = load(NB201)
    fig = plots.plot_pareto(summary)
    lat_ax, par_ax = fig.axes[:2]
    assert lat_ax.get_xlabel().startswith("latency")
    assert par_ax.get_xlabel().startswith("parameters")
    done = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    for ax, key in ((lat_ax, "latency_ms"), (par_ax, "params")):
        pts = [(t["metrics"]["val_accuracy"], t["metrics"][key]) for t in done]
        expected = sorted((pts[i][1], pts[i][0]) for i in plots.pareto_front(pts, ["max", "min"]))
        front = sorted(map(tuple, collection_with_label(ax, "Pareto front")))
        assert len(front) == len(expected)
        for got, want in zip(front, expected):
            assert got == pytest.approx(want)
        dominated = collection_with_label(ax, "dominated") if len(expected) < len(done) else []
        assert len(front) + len(dominated) == len(done)
        chosen = collection_with_label(ax, "chosen (trial 04)")
        best = [t for t in done if t["trial_id"] == "04"][0]
        assert tuple(chosen[0]) == pytest.approx((best["metrics"][key], best["metrics"]["val_accuracy"]))
    # In this search the params front has two points: 266 params / 0.26 and 458 / 0.30.
    assert sorted(collection_with_label(par_ax, "Pareto front")[:, 0]) == [266, 458]


def test_plot_pareto_needs_a_cost():
    summary = load(NB201)
    for t in summary["trials"]:
        t["params"] = None
        t["metrics"].pop("params", None)
        t["metrics"].pop("latency_ms", None)
    with pytest.raises(ValueError, match="latency_ms"):
        plots.plot_pareto(summary)
    # params only (from the trial field, as summary.json has it): one panel.
    fig = plots.plot_pareto(DARTS)
    assert len([a for a in fig.axes if a.get_xlabel()]) == 1


# -- controller ----------------------------------------------------------------------------
def controller_history(n=12):
    rng = np.random.default_rng(0)
    steps, baseline = [], 0.5
    for i in range(n):
        reward = float(0.5 + 0.03 * i + rng.normal(0, 0.02))
        baseline = 0.9 * baseline + 0.1 * reward
        p = 0.2 + 0.6 * i / (n - 1)
        probs = {
            "edge_0_1": {"nor_conv_3x3": p, "skip_connect": (1 - p) / 2, "none": (1 - p) / 2},
            "edge_0_2": {"avg_pool_3x3": 0.5, "nor_conv_1x1": 0.5},
        }
        steps.append({"step": i, "reward": reward, "baseline": baseline, "entropy": 2.0 - 0.1 * i,
                      "probabilities": probs})
    return steps


def test_plot_controller_curves_and_decisions():
    history = controller_history()
    fig = plots.plot_controller(history)
    assert len(fig.axes) == 2 + 2  # reward/baseline, entropy, one panel per decision
    reward_ax, entropy_ax, edge01, edge02 = fig.axes
    labels = {ln.get_label(): ln for ln in reward_ax.get_lines()}
    assert set(labels) == {"reward", "baseline"}
    assert list(labels["reward"].get_ydata()) == [s["reward"] for s in history]
    assert entropy_ax.get_lines()[0].get_ydata()[-1] == pytest.approx(2.0 - 0.1 * 11)
    assert edge01.get_title() == "edge_0_1"
    assert {ln.get_label() for ln in edge01.get_lines()} == {"nor_conv_3x3", "skip_connect", "none"}
    assert len(edge02.get_lines()) == 2
    conv = [ln for ln in edge01.get_lines() if ln.get_label() == "nor_conv_3x3"][0]
    assert conv.get_ydata()[-1] == pytest.approx(0.8)
    # The same history inside a summary or an oracle state.
    assert len(plots.plot_controller({"controller_history": history}).axes) == 4
    assert len(plots.plot_controller({"reinforce": {"history": history}}).axes) == 4


def test_plot_controller_bad_input():
    with pytest.raises(ValueError, match="empty"):
        plots.plot_controller([])
    with pytest.raises(ValueError, match="reward"):
        plots.plot_controller([{"step": 0}])
    with pytest.raises(TypeError, match="history"):
        plots.plot_controller(5)


# -- cells ---------------------------------------------------------------------------------
def edge_labels(fig):
    return sorted(t.get_text() for t in fig.axes[0].texts if t.get_bbox_patch() is not None)


def test_plot_cell_nasbench201():
    arch = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    fig = plots.plot_cell(arch)
    ax = fig.axes[0]
    assert edge_labels(fig) == sorted(["nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1"])
    assert "none" not in edge_labels(fig)
    nodes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(nodes) == 4
    assert {"in", "1", "2", "out"} <= {t.get_text() for t in ax.texts}
    assert "width 1.5c, depth 2" in ax.get_title()  # node2 is a dead end


def test_plot_cell_darts_and_summary():
    fig = plots.plot_cell(PUBLISHED_CELLS["DARTS"])
    assert len(edge_labels(fig)) == 8
    assert "width 3.5c, depth 3" in fig.axes[0].get_title()
    nodes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(nodes) == 2 + 4 + 1
    # From a summary: its best_architecture (a DartsSpace string).
    fig = plots.plot_cell(load(DARTS))
    assert len(edge_labels(fig)) == 8
    # Labels are placed without overlapping each other where possible (NASNet's 10 edges).
    fig = plots.plot_cell(PUBLISHED_CELLS["NASNet"])
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in fig.axes[0].texts if t.get_bbox_patch() is not None]
    assert len(boxes) == 10
    overlaps = sum(1 for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b))
    assert overlaps <= 2


@pytest.mark.parametrize("cell", [BENT_CELL, BENT_DOWN_CELL, PUBLISHED_CELLS["AmoebaNet"], DEAD_END_CELL],
                         ids=["bent_up", "bent_down", "amoebanet", "nasbench201"])
def test_plot_cell_keeps_bent_edges_inside_the_view(cell):
    fig = plots.plot_cell(cell)
    fig.canvas.draw()
    ax = fig.axes[0]
    view = ax.bbox  # edges are clipped to it: what sticks out is cut off the image
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert arrows
    for arrow in arrows:
        ext = arrow.get_window_extent()
        inside = (view.x0 - 1 <= ext.x0 and ext.x1 <= view.x1 + 1
                  and view.y0 - 1 <= ext.y0 and ext.y1 <= view.y1 + 1)
        assert inside, f"an edge spans {ext.bounds}, outside the view {view.bounds}"


def test_plot_cell_legend_explains_dashed_and_faded_edges():
    def legend_texts(cell):
        return [t.get_text() for t in plots.plot_cell(cell).axes[0].get_legend().get_texts()]

    dead_end = legend_texts(DEAD_END_CELL)  # node 2 feeds nothing: its edge is faded
    assert "faded: on no input-to-output path" in dead_end
    assert "concatenated into the output" not in dead_end
    live = legend_texts("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
                        .replace("none~2", "skip_connect~2"))
    assert not any(t.startswith("faded") for t in live)
    for cell in (BENT_CELL, PUBLISHED_CELLS["NASNet"]):  # NASNet has two equal edges c_{k-2} -> 3
        darts = legend_texts(cell)
        assert "concatenated into the output" in darts
        assert not any(t.startswith("faded") for t in darts)


def test_plot_cell_shapes_marks_trials_and_published():
    fig = plots.plot_cell_shapes(DARTS)
    ax = fig.axes[0]
    assert len(collection_with_label(ax, "trials")) == 3
    assert len(collection_with_label(ax, "chosen")) == 1
    labels = [t.get_text() for t in ax.texts]
    for name in PUBLISHED_CELLS:  # cells on the same spot (NASNet, ENAS) share one label
        assert sum(name in label.split(", ") for label in labels) == 1, labels


@pytest.mark.parametrize("draw", [
    lambda: plots.plot_history(NB201),  # the legend sat on trial 10 and the failed trial
    lambda: plots.plot_pareto(NB201),
    lambda: plots.plot_history(LATENCY),
    lambda: plots.plot_pareto(LATENCY),
    lambda: plots.plot_cell_shapes(DARTS),
    lambda: plots.plot_controller(controller_history()),
], ids=["history", "pareto", "history_latency", "pareto_latency", "cell_shapes", "controller"])
def test_legends_cover_no_data_points(draw):
    assert points_under_legends(draw()) == []


# -- latency target --------------------------------------------------------------------------
def test_quality_metric_is_accuracy_under_a_latency_reward():
    summary = load(LATENCY)
    assert summary["objective"]["name"] == "constrained_accuracy"
    assert plots.latency_target(summary) == summary["latency_target_ms"]
    assert plots.quality_metric(summary) == ("val_accuracy", "max")
    summary["latency_objective"] = {"target": 0.02, "metric": "accuracy"}  # a reward's config
    assert plots.quality_metric(summary) == ("accuracy", "max")
    assert plots.latency_target(load(NB201)) is None
    assert plots.quality_metric(load(NB201)) == ("val_accuracy", "max")


def test_latency_target_figures_show_accuracy_latency_and_the_target():
    summary = load(LATENCY)
    target = summary["latency_target_ms"]
    done = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    over = [t for t in done if t["metrics"]["latency_ms"] > target]
    within = [t for t in done if t not in over]
    assert over and within  # the search has trials on both sides of the target
    assert any(t["metrics"]["constrained_accuracy"] < 0 for t in over)

    def accuracy(trials):
        return sorted(t["metrics"]["val_accuracy"] for t in trials)

    history = plots.plot_history(summary)
    for ax in history.axes:
        assert ax.get_ylabel() == "val accuracy"
        assert sorted(collection_with_label(ax, "trial")[:, 1]) == pytest.approx(accuracy(within))
        assert sorted(collection_with_label(ax, "over latency target")[:, 1]) == pytest.approx(accuracy(over))
        best = [ln for ln in ax.get_lines() if ln.get_label() == "best within target so far"][0]
        assert best.get_ydata()[-1] == pytest.approx(max(accuracy(within)))
        assert ax.get_ylim()[0] > -0.1  # no reward (-1.3 and below) on the accuracy axis
    assert f"latency target {target:g} ms" in history._suptitle.get_text()

    pareto = plots.plot_pareto(summary)
    lat_ax, par_ax = pareto.axes[:2]
    for ax, key in ((lat_ax, "latency_ms"), (par_ax, "params")):
        assert ax.get_ylabel().startswith("val accuracy")
        plotted = [tuple(p) for c in ax.collections if isinstance(c, PathCollection)
                   and c.get_label() in ("dominated", "Pareto front") for p in c.get_offsets()]
        expected = sorted((t["metrics"][key], t["metrics"]["val_accuracy"]) for t in done)
        assert np.allclose(sorted(plotted), expected)
        ringed = sorted(map(tuple, collection_with_label(ax, "over latency target")))
        assert np.allclose(ringed, sorted((t["metrics"][key], t["metrics"]["val_accuracy"]) for t in over))
    line = [ln for ln in lat_ax.get_lines() if ln.get_label().startswith("latency target")]
    assert len(line) == 1 and list(line[0].get_xdata()) == [target, target]
    assert lat_ax.get_xlim()[0] < target < lat_ax.get_xlim()[1]
    assert not [ln for ln in par_ax.get_lines() if ln.get_label().startswith("latency target")]

    shapes = plots.plot_cell_shapes(summary)
    assert shapes.axes[-1].get_ylabel() == "val accuracy"  # the colorbar
    colors = shapes.axes[0].collections[0].get_array()
    assert sorted(colors) == pytest.approx(accuracy(done))

    summary["latency_target_ms"] = 1e-6  # every trial over it: no best within the target
    ax = plots.plot_history(summary).axes[0]
    assert not ax.get_lines()
    assert len(collection_with_label(ax, "over latency target")) == len(done)


# -- macro ---------------------------------------------------------------------------------
BLOCKS = [
    {"stage": 0, "kernel": 3, "expansion": 1, "filters": 16, "stride": 1},
    {"stage": 1, "kernel": 5, "expansion": 6, "filters": 24, "stride": 2},
    {"stage": 1, "kernel": 3, "expansion": 3, "filters": 24, "stride": 1},
    {"stage": 2, "kernel": 7, "expansion": 6, "filters": 40, "stride": 2},
]


def test_plot_macro_blocks_and_stages():
    fig = plots.plot_macro(BLOCKS)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 4
    texts = [t.get_text() for t in ax.texts]
    assert "MB6\n5x5\n24" in texts
    assert texts.count("↓2") == 2
    assert {"stage 0", "stage 1", "stage 2"} <= set(texts)
    assert "4 blocks, 3 stages" in ax.get_title()
    with pytest.raises(ValueError, match="stride"):
        plots.plot_macro([{"stage": 0, "kernel": 3, "expansion": 1, "filters": 16}])
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_macro([])


def test_macro_blocks_from_architecture_string():
    blocks = plots.macro_blocks("w1.0|k3e1|k5e6-k3e3", stages=[(16, 1, 1), (24, 2, 2)])
    assert blocks == [
        {"stage": 0, "kernel": 3, "expansion": 1, "filters": 16, "stride": 1},
        {"stage": 1, "kernel": 5, "expansion": 6, "filters": 24, "stride": 2},
        {"stage": 1, "kernel": 3, "expansion": 3, "filters": 24, "stride": 1},
    ]
    with pytest.raises(ValueError, match="stages"):
        plots.macro_blocks("w1.0|k3e1", stages=[(16, 1, 1), (24, 2, 2)])


# -- save_figures --------------------------------------------------------------------------
def test_save_figures_writes_pngs(tmp_path):
    summary = load(DARTS)
    summary["controller_history"] = controller_history(5)
    paths = plots.save_figures(summary, tmp_path / "figs")
    assert set(paths) == {"history", "pareto", "controller", "cell", "cell_shapes"}
    for path in paths.values():
        data = Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_save_figures_keeps_figures_newer_than_a_time(tmp_path):
    summary = load(NB201)
    summary["best_architecture"] = None  # history and pareto only
    paths = plots.save_figures(summary, tmp_path)
    assert set(paths) == {"history", "pareto"}
    for path in paths.values():
        os.utime(path, (1000.0, 1000.0))
    assert plots.save_figures(summary, tmp_path, keep_newer_than=500.0) == paths
    assert all(Path(path).stat().st_mtime == 1000.0 for path in paths.values())  # kept
    plots.save_figures(summary, tmp_path, keep_newer_than=2000.0)
    assert all(Path(path).stat().st_mtime > 2000.0 for path in paths.values())  # redrawn


def test_save_figures_macro(tmp_path):
    summary = {
        "space": "mobilenet", "strategy": "random", "objective": {"name": "val_accuracy", "direction": "max"},
        "best_trial_id": "0", "best_architecture": "w1.0|k3e1|k5e6-k3e3", "stages": [[16, 1, 1], [24, 2, 2]],
        "trials": [{"trial_id": "0", "number": 0, "status": "COMPLETED", "architecture": "w1.0|k3e1|k5e6-k3e3",
                    "metrics": {"val_accuracy": 0.5}, "score": 0.5, "params": 1000,
                    "started": 0.0, "ended": 1.0, "duration_s": 1.0, "error": None}],
    }
    paths = plots.save_figures(summary, tmp_path)
    assert set(paths) == {"history", "pareto", "macro"}
    assert Path(paths["macro"]).stat().st_size > 5000


# -- data functions: what each figure shows, as plain values, without matplotlib -----------------
PLOT_MODULES = ["_data", "_style", "history", "pareto", "controller", "cell", "cell_shapes", "macro", "save"]


def small_summary(**extra):
    """Four finished trials (one failed) and one running, `val_accuracy` maximised."""
    def trial(n, status="COMPLETED", acc=None, latency=None):
        metrics = {} if acc is None else {"val_accuracy": acc}
        if latency is not None:
            metrics["latency_ms"] = latency
        return {"trial_id": str(n), "number": n, "status": status, "metrics": metrics, "score": acc,
                "started": 10.0 + n, "ended": 11.0 + n}

    trials = [trial(0, acc=0.5, latency=2.0), trial(1, "FAILED"), trial(2, acc=0.7, latency=9.0),
              trial(3, acc=0.6, latency=3.0), trial(4, "RUNNING")]
    return {"space": "cell", "strategy": "random", "objective": {"name": "val_accuracy", "direction": "max"},
            "best_trial_id": "2", "trials": trials, **extra}


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Makes every matplotlib import fail while the test runs."""
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import matplotlib.figure  # noqa: F401


def test_plots_modules_import_matplotlib_only_when_drawing():
    import ast
    import importlib

    for name in PLOT_MODULES:
        module = importlib.import_module(f"keras_nas.results.plots.{name}")
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] == "matplotlib"], (name, names)


def test_history_data_best_so_far(no_matplotlib):
    data = plots.history_data(small_summary())
    assert data["metric"] == "val_accuracy" and data["direction"] == "max"
    assert data["trial_ids"] == ["0", "1", "2", "3"]  # the running trial is left out
    assert data["numbers"] == [1, 2, 3, 4]
    assert data["wall_times"] == [1.0, 2.0, 3.0, 4.0]
    assert data["values"] == [0.5, None, 0.7, 0.6]
    assert data["best_so_far"] == [0.5, 0.5, 0.7, 0.7]
    assert data["best_index"] == 2
    assert data["over_target"] == [False] * 4 and data["latency_target"] is None
    assert data["title"] == "Search history — space cell, strategy random"
    # Minimised objective: the best so far goes down.
    summary = small_summary(objective={"name": "val_loss", "direction": "min"})
    for t, loss in zip(summary["trials"], [0.9, None, 0.4, 0.3, None]):
        t["metrics"] = {} if loss is None else {"val_loss": loss}
    assert plots.history_data(summary)["best_so_far"] == [0.9, 0.9, 0.4, 0.3]
    with pytest.raises(ValueError, match="finished"):
        plots.history_data({"trials": [{"status": "RUNNING"}]})


def test_history_data_counts_only_trials_within_the_latency_target(no_matplotlib):
    data = plots.history_data(small_summary(latency_target_ms=5.0))
    assert data["latency_target"] == 5.0
    assert data["over_target"] == [False, False, True, False]
    assert data["best_so_far"] == [0.5, 0.5, 0.5, 0.6]  # trial 2 (0.7) is over the target
    assert data["best_index"] == 3
    assert data["title"].endswith(", latency target 5 ms")
    data = plots.history_data(small_summary(latency_target_ms=1.0))  # every trial over it
    assert data["best_so_far"] == [None] * 4 and data["best_index"] is None


def test_pareto_data_front(no_matplotlib):
    summary = small_summary(latency_target_ms=5.0)
    summary["trials"].append({"trial_id": "5", "number": 5, "status": "COMPLETED",
                              "metrics": {"val_accuracy": 0.55, "latency_ms": 4.0}})
    data = plots.pareto_data(summary, metrics=["latency_ms"])
    assert (data["metric"], data["direction"], data["latency_target"]) == ("val_accuracy", "max", 5.0)
    assert data["chosen_trial_id"] == "2"
    (panel,) = data["panels"]
    assert panel["cost_metric"] == "latency_ms"
    points = panel["points"]
    assert [(p["trial_id"], p["cost"], p["quality"], p["over_target"]) for p in points] == [
        ("0", 2.0, 0.5, False), ("2", 9.0, 0.7, True), ("3", 3.0, 0.6, False), ("5", 4.0, 0.55, False)]
    assert [points[i]["trial_id"] for i in panel["front"]] == ["0", "2", "3"]  # 5 is beaten by 3
    assert panel["front"] == plots.pareto_front([(p["quality"], p["cost"]) for p in points], ["max", "min"])
    # Default metrics: those present (latency_ms; no params here).
    assert [p["cost_metric"] for p in plots.pareto_data(summary)["panels"]] == ["latency_ms"]
    with pytest.raises(ValueError, match="no completed trial has both"):
        plots.pareto_data(summary, metrics=["params"])


def test_controller_cell_shapes_macro_and_figures_data(no_matplotlib):
    history = [{"step": 0, "reward": 0.5, "entropy": 1.0, "probabilities": {"e": {"a": 0.5, "b": 0.5}}},
               {"step": 1, "reward": 0.6, "baseline": 0.55, "probabilities": {"e": {"a": 0.7, "b": 0.3}}}]
    data = plots.controller_data({"controller_history": history})
    assert data["steps"] == [0, 1] and data["rewards"] == [0.5, 0.6]
    assert data["baseline"] == [(1, 0.55)] and data["entropy"] == [(0, 1.0)]
    assert data["decisions"] == {"e": {"a": [(0, 0.5), (1, 0.7)], "b": [(0, 0.5), (1, 0.3)]}}

    cell = plots.cell_data(DEAD_END_CELL)
    assert (cell["kind"], cell["width"], cell["depth"]) == ("nasbench201", 1.5, 2)
    assert cell["title"] == "NAS-Bench-201 cell: width 1.5c, depth 2"
    assert sorted(e["op"] for e in cell["edges"]) == ["avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect"]
    assert [e["live"] for e in cell["edges"] if e["op"] == "avg_pool_3x3"] == [False]  # into the dead end
    assert [n["role"] for n in cell["nodes"]].count("input") == 1

    shapes = plots.cell_shapes_data(DARTS)
    assert len(shapes["cells"]) == 3
    assert shapes["cells"][shapes["chosen_index"]]["trial_id"] == str(load(DARTS)["best_trial_id"])
    assert sorted(n for spot in shapes["published"] for n in spot["names"]) == sorted(PUBLISHED_CELLS)

    assert plots.macro_data({"blocks": BLOCKS})["stages"] == [0, 1, 2]
    assert list(plots.figures_data(DARTS)) == ["history", "pareto", "cell", "cell_shapes"]
    assert list(plots.figures_data(small_summary())) == ["history", "pareto"]


def test_figures_follow_the_space_the_summary_records():
    # A cell-looking string from a space that is not a cell space gets no cell figure, and a
    # "w..." architecture of a MobileNet subclass gets the network layout: the recorded space
    # decides, not the form of the string.
    from keras_nas.results.plots.save import _blocks_in, _cell_in

    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    own = {"best_architecture": cell, "trials": [],
           "settings": {"space_config": {"class": "MySpace", "kinds": ["MySpace"]}}}
    assert _cell_in(own) is None
    sub = {"best_architecture": cell, "trials": [],
           "settings": {"space_config": {"class": "Mine", "kinds": ["Mine", "NASBench201Space"]}}}
    assert _cell_in(sub) == cell
    legacy = {"best_architecture": cell, "trials": []}  # written before the space was recorded
    assert _cell_in(legacy) == cell
    macro = {"best_architecture": "w1.0|k3e6|k5e3-k3e3|k3e6", "trials": [],
             "settings": {"space_config": {"class": "M", "kinds": ["M", "MobileNetSpace"],
                                           "stages": [[16, 1, 1], [24, 2, 2], [32, 2, 2]]}}}
    assert [b["filters"] for b in _blocks_in(macro)] == [16, 24, 24, 32]
    assert _cell_in(macro) is None
    not_macro = dict(macro, settings={"space_config": {"class": "W", "kinds": ["W"]}})
    assert _blocks_in(not_macro) is None


@pytest.mark.slow
def test_summary_records_the_space_classes(tmp_path):
    import keras_nas
    from keras_nas.results.summary import space_kinds_of
    from keras_nas.spaces import NASBench201Space

    class MySpace(NASBench201Space):
        pass

    search = keras_nas.Search(space=MySpace(channels=4, cells_per_stage=0), strategy="random",
                              max_trials=1, epochs=1, directory=str(tmp_path), verbose=0)
    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    y = np.arange(40) % 4
    search.fit(x, y)
    assert space_kinds_of(plots.load_summary(search.summary_path)) == ["MySpace", "NASBench201Space"]
