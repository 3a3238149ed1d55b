"""The report page (Markdown and HTML) and the progress printer."""

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_nas.progress import ProgressPrinter, format_duration, shorten
from keras_nas.report import write_report

DATA = Path(__file__).parent / "data"
NB201 = DATA / "summary_nb201_random.json"
DARTS = DATA / "summary_darts_small.json"


@pytest.fixture
def results_dir(tmp_path):
    d = tmp_path / "search"
    d.mkdir()
    shutil.copy(NB201, d / "summary.json")
    return d


def test_markdown_report_references_figures_and_trials(results_dir):
    path = write_report(results_dir)
    assert path == str(results_dir / "report.md")
    text = Path(path).read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(["history.png", "pareto.png", "cell.png", "cell_shapes.png"])
    for name in images:  # saved next to the page, non-empty PNGs
        assert (results_dir / name).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(NB201.read_text())
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and ("COMPLETED" in line or "FAILED" in line)]
    assert len(rows) == len(summary["trials"]) == 10
    for t in summary["trials"]:
        assert f"| {t['trial_id']}" in text
    assert "| 5 | 04 ★ | COMPLETED |" in text  # the best trial is starred
    assert "injected failure" in text  # the failed trial's error
    # Cell diagnostics: the found cell and the five published cells.
    assert "| **found cell** | **1c** | **1** |" in text
    for line in ("| NASNet (published) | 5c | 2 |", "| AmoebaNet (published) | 4c | 4 |",
                 "| DARTS (published) | 3.5c | 3 |"):
        assert line in text
    assert "wide and shallow" in text
    assert "latency: **0.00162 ms**" in text  # from the best trial's metrics
    assert "Best model summary" not in text  # no best_model.keras here


def test_html_report_with_model_tflite_and_measured_latency(results_dir, tmp_path):
    import keras

    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="stem_conv"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="classifier"),
    ])
    model.save(results_dir / "best_model.keras")
    (results_dir / "model_int8.tflite").write_bytes(b"\0" * 3072)
    summary = json.loads((results_dir / "summary.json").read_text())
    summary["best"] = {"latency_ms": 1.234, "device": "pixel-test"}
    (results_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "site" / "index.html"
    path = write_report(results_dir, output=out, format="html")
    assert path == str(out)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(srcs) == sorted(["history.png", "pareto.png", "cell.png", "cell_shapes.png"])
    assert all((out.parent / s).stat().st_size > 1000 for s in srcs)
    assert text.count("<tr>") >= 10 + 6  # trial rows + cell rows
    assert "stem_conv" in text and "classifier" in text  # model.summary() text
    assert "Total params" in text
    assert "model_int8.tflite</code>: 3.0 KiB" in text
    assert "1.234 ms" in text and "pixel-test" in text
    assert "<script" not in text


def test_report_darts_summary_and_errors(tmp_path):
    d = tmp_path / "darts"
    d.mkdir()
    shutil.copy(DARTS, d / "summary.json")
    text = Path(write_report(d)).read_text()
    assert "INVALID" in text and "RUNNING" in text
    assert "![" in text and "pareto.png" in text  # params-only Pareto
    assert "| **found cell** |" in text
    with pytest.raises(ValueError, match="format"):
        write_report(d, format="pdf")
    with pytest.raises(ValueError, match="summary.json"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="results_dir"):
        write_report(3)


# -- progress ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_printer_rows_aligned_with_estimates():
    trials = json.loads(NB201.read_text())["trials"]
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressPrinter(max_trials=10, max_time=100, stream=out, clock=clock, arch_width=30)
    progress.start()
    rows = []
    for t in trials[:4]:
        clock.now += 5.0
        rows.append(progress.on_trial_end(t))
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["trial", "status", "architecture", "val_accuracy", "best", "elapsed", "remaining"]
    assert lines[1:5] == rows
    # Columns line up: every row starts its status column where the header does.
    status_at = lines[0].index("status")
    assert all(row[status_at:status_at + 9].strip() in ("COMPLETED", "FAILED") for row in rows)
    assert rows[0].split()[0] == "1/10"
    assert rows[3].split()[0] == "4/10"
    # Trial 3 (id 02) failed: no objective, the best so far is kept.
    assert "FAILED" in rows[2] and " - " in rows[2]
    assert rows[2].split()[-3] == "0.2250"
    # 4 trials in 20 s: 6 left at 5 s each = 30 s, under the 80 s left of max_time.
    assert rows[3].split()[-2:] == ["20.0s", "~30.0s"]
    assert rows[3].split()[-3] == "0.2250"  # best of 0.225, 0.200, -, 0.165
    assert all(len(shorten(t["architecture"], 30)) <= 30 for t in trials)
    assert lines[-1].startswith("done: 4 of 10 trials in 20.0s; best val_accuracy 0.2250 (trial 00)")


def test_progress_printer_time_budget_and_min_direction():
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressPrinter(max_time=60, objective="val_loss", direction="min", stream=out, clock=clock)
    clock.now += 50
    row = progress({"trial_id": "0", "status": "COMPLETED", "architecture": None,
                    "hyperparameters": {"units": 32}, "metrics": {"val_loss": 0.7}})
    assert "units=32" in row and row.split()[0] == "1"
    assert row.split()[-1] == "~10.0s"  # only the time budget is known
    clock.now += 5
    row = progress({"trial_id": "1", "status": "COMPLETED", "architecture": "b", "metrics": {"val_loss": 0.5}})
    assert row.split()[-4:-2] == ["0.5000", "0.5000"]
    row = progress({"trial_id": "2", "status": "COMPLETED", "architecture": "c", "metrics": {}, "score": 0.9})
    assert row.split()[-3] == "0.5000"  # the score 0.9 is worse for a min objective
    assert out.getvalue().count("\n") == 4  # header + 3 rows


def test_progress_printer_validation_and_formatting():
    with pytest.raises(ValueError, match="max_trials"):
        ProgressPrinter(max_trials=0)
    with pytest.raises(ValueError, match="max_time"):
        ProgressPrinter(max_time=-1)
    with pytest.raises(ValueError, match="direction"):
        ProgressPrinter(direction="up")
    with pytest.raises(TypeError, match="trial"):
        ProgressPrinter(stream=io.StringIO()).on_trial_end("trial 1")
    assert format_duration(4.25) == "4.2s"
    assert format_duration(125) == "2m05s"
    assert format_duration(7380) == "2h03m"
    assert format_duration(None) == "?"
    assert shorten("abcdefghij", 5) == "ab…ij"
    assert np.isclose(len(shorten("x" * 100, 20)), 20)


# -- a real small search: figures, report, TensorBoard HParams -----------------------------
def test_real_search_figures_report_and_tensorboard_hparams(tmp_path):
    """A 2-trial search on 240 digits: every figure that applies is drawn from its summary,
    the report references them, and KerasTuner's TensorBoard HParams logging still works."""
    import keras
    from sklearn.datasets import load_digits

    import keras_nas
    from keras_nas import plots

    digits = load_digits()
    x = (digits.images[:240] / 16.0).astype("float32")[..., None]
    y = digits.target[:240]
    logs = tmp_path / "tb"
    search = keras_nas.Search(
        space="cell", strategy="random", max_trials=2, epochs=1, batch_size=32, seed=3,
        directory=str(tmp_path), project_name="real", retrain=False, verbose=0,
        space_kwargs={"channels": 4, "cells_per_stage": 1},
    )
    search.fit(x[:160], y[:160], validation_data=(x[160:], y[160:]),
               callbacks=[keras.callbacks.TensorBoard(log_dir=str(logs))])
    results = Path(search.results_dir)
    summary = plots.load_summary(results)
    done = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    assert done, summary["trials"]

    fig = plots.plot_history(results)
    assert len(fig.axes[0].collections[0].get_offsets()) == len(done)
    fig = plots.plot_pareto(results)  # params of every trial
    assert fig.axes[0].get_xlabel().startswith("parameters")
    fig = plots.plot_cell(results)  # the found NAS-Bench-201 cell
    assert "NAS-Bench-201 cell" in fig.axes[0].get_title()
    assert len(plots.plot_cell_shapes(results).axes[0].collections[0].get_offsets()) == len(done)

    page = Path(write_report(results, format="markdown")).read_text()
    for name in ("history.png", "pareto.png", "cell.png", "cell_shapes.png"):
        assert f"]({name})" in page and (results / name).stat().st_size > 1000
    for t in summary["trials"]:
        assert f"`{t['architecture']}`".replace("|", "\\|") in page

    # KerasTuner gives each trial its own TensorBoard folder with the HParams plugin data.
    events = [p for p in logs.rglob("events.out.tfevents.*")]
    assert events, list(logs.rglob("*"))
    assert any(b"hparams" in p.read_bytes() for p in events)
