"""The report page (Markdown and HTML) and the progress printer."""

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from keras_nas.results import plots
from keras_nas.results.report import write_report

DATA = Path(__file__).parent / "data"
NB201 = DATA / "summary_nb201_random.json"
DARTS = DATA / "summary_darts_small.json"
# A real search: `keras-nas search --max-trials 4 --epochs 1 --channels 4 --latency-ms 0.05
# --latency-objective hard` (one trial over the target, two within, one failed measuring latency).
LATENCY = DATA / "summary_latency_hard.json"
FIGURES = ["figures/history.png", "figures/pareto.png", "figures/cell.png", "figures/cell_shapes.png"]


def cells(line):
    """The cells of a Markdown table row (`\\|` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def table(text, first_header):
    """The Markdown table whose header starts with `first_header`, as a list of dicts."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = cells(lines[start])
    rows = []
    for line in lines[start + 1:]:
        row = cells(line)
        if len(row) != len(header):
            break
        rows.append(dict(zip(header, row)))
    return rows


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
    assert sorted(images) == sorted(FIGURES)
    for name in images:  # drawn into the results' figures/ folder, non-empty PNGs
        assert (results_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert not list(results_dir.glob("*.png"))  # no copies beside figures/
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
    assert "faded nodes and edges lie on no input-to-output path" in text  # the cell's caption
    assert "latency in the search: **0.00162 ms** (trial 04's TFLite export)" in text
    assert "Best model summary" not in text  # no best_model.keras here
    assert "test accuracy" not in text  # none recorded


def test_html_report_with_model_tflite_and_measured_latency(results_dir, tmp_path):
    import keras

    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="stem_conv"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="classifier"),
    ])
    model.save(results_dir / "best_model.keras")
    (results_dir / "model_int8.tflite").write_bytes(b"\0" * 3072)
    summary = json.loads((results_dir / "summary.json").read_text())
    summary["best"] = {"latency_ms": 1.234, "device": "pixel-test", "tflite": "model_int8.tflite"}
    (results_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "site" / "index.html"
    path = write_report(results_dir, output=out, format="html")
    assert path == str(out)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(srcs) == sorted(f"../search/{name}" for name in FIGURES)  # linked, not copied
    assert all((out.parent / s).stat().st_size > 1000 for s in srcs)
    assert not list(out.parent.glob("*.png"))
    assert text.count("<tr>") >= 10 + 6  # trial rows + cell rows
    assert "stem_conv" in text and "classifier" in text  # model.summary() text
    assert "Total params" in text
    assert "model_int8.tflite</code>: 3.0 KiB" in text
    assert ("latency of <code>model_int8.tflite</code>: <strong>1.234 ms</strong> median, batch 1, "
            "on pixel-test") in text
    assert "<script" not in text


def test_report_shows_test_accuracy_and_where_latencies_come_from(results_dir):
    summary = json.loads((results_dir / "summary.json").read_text())
    summary["best"] = {"test_accuracy": 0.3583333194255829, "tflite": "best_model.tflite",
                       "latency_ms": 1.234, "latency_p90_ms": 1.5, "device": "pixel-test",
                       "tflite_top1_agreement": 0.995, "tflite_max_abs_diff": 2.5e-06}
    (results_dir / "summary.json").write_text(json.dumps(summary))
    text = Path(write_report(results_dir)).read_text()
    best = text.split("## Best model")[1].split("##")[0]
    assert "- test accuracy of the returned model: **0.3583**" in best
    assert "- latency of `best_model.tflite`: **1.234 ms** median, p90 1.5 ms, batch 1, on pixel-test" in best
    assert "- latency in the search: **0.00162 ms** (trial 04's TFLite export)" in best
    assert "- TFLite against Keras: top-1 agreement 0.995, max |difference| 2.5e-06" in best
    assert "summary[" not in text and "(from " not in text  # no debug strings


def test_report_links_the_figures_the_search_wrote(results_dir):
    drawn = plots.save_figures(results_dir, results_dir / "figures")  # as `keras-nas search` does
    before = {name: Path(path).stat().st_mtime_ns for name, path in drawn.items()}
    text = Path(write_report(results_dir)).read_text()
    assert sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == sorted(FIGURES)
    assert {name: Path(path).stat().st_mtime_ns for name, path in drawn.items()} == before  # not redrawn
    assert not list(results_dir.glob("*.png"))


def test_report_with_latency_target_shows_accuracy_latency_and_reward(tmp_path):
    d = tmp_path / "latency"
    d.mkdir()
    shutil.copy(LATENCY, d / "summary.json")
    summary = json.loads(LATENCY.read_text())
    target = summary["latency_target_ms"]
    text = Path(write_report(d)).read_text()
    settings = {row["setting"]: row["value"] for row in table(text, "setting")}
    assert settings["objective"] == "constrained_accuracy (max)"
    assert settings["latency target"].startswith(f"{target:g} ms, scored by `HardConstraint(")
    rows = table(text, "#")
    assert list(rows[0])[4:7] == ["val_accuracy", "latency_ms", "constrained_accuracy"]
    done = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    assert any(t["metrics"]["latency_ms"] > target for t in done)
    for t, row in zip(summary["trials"], rows):
        if t not in done:
            continue
        m = t["metrics"]
        assert row["val_accuracy"] == f"{m['val_accuracy']:.4g}"  # the accuracy, never the reward
        over = " (over target)" if m["latency_ms"] > target else ""
        assert row["latency_ms"] == f"{m['latency_ms']:.4g}{over}"
        assert row["constrained_accuracy"] == f"{m['constrained_accuracy']:.4g}"
    best = [t for t in done if t["trial_id"] == summary["best_trial_id"]][0]
    assert (f"trial **{best['trial_id']}**, val_accuracy **{best['metrics']['val_accuracy']:.4g}** "
            f"(search score `constrained_accuracy` {best['score']:.4g})") in text
    assert (f"latency in the search: **{best['metrics']['latency_ms']:.4g} ms** (trial {best['trial_id']}'s "
            f"TFLite export), within the {target:g} ms target") in text
    assert f"test accuracy of the returned model: **{summary['best']['test_accuracy']:.4g}**" in text
    assert f"The dashed red line is the {target:g} ms latency target" in text


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


# -- a real small search: figures, report, TensorBoard HParams -----------------------------
@pytest.mark.slow
def test_real_search_figures_report_and_tensorboard_hparams(tmp_path):
    """A 2-trial search on 240 digits: every figure that applies is drawn from its summary,
    the report references them, and KerasTuner's TensorBoard HParams logging still works."""
    import keras
    from sklearn.datasets import load_digits

    import keras_nas
    from keras_nas.results import plots

    digits = load_digits()
    x = (digits.images[:240] / 16.0).astype("float32")[..., None]
    y = digits.target[:240]
    logs = tmp_path / "tb"
    search = keras_nas.Search(
        space="cell", strategy="random", max_trials=2, epochs=1, batch_size=32, seed=3,
        directory=str(tmp_path), project_name="real", final_model="checkpoint", verbose=0,
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
    for name in FIGURES:
        assert f"]({name})" in page and (results / name).stat().st_size > 1000
    for t in summary["trials"]:
        assert f"`{t['architecture']}`".replace("|", "\\|") in page

    # KerasTuner gives each trial its own TensorBoard folder with the HParams plugin data.
    events = [p for p in logs.rglob("events.out.tfevents.*")]
    assert events, list(logs.rglob("*"))
    assert any(b"hparams" in p.read_bytes() for p in events)
