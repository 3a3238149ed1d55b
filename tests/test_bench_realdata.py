"""The real-data benchmark driver (tools/bench_realdata.py): its split, its table, and one tiny
end-to-end invocation whose results file has every field and resumes."""

import json
import os

import numpy as np
import pytest

from tests.tools_loader import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_realdata")


def test_split_is_stratified_disjoint_and_fixed(bench):
    y = np.repeat(np.arange(10), 250)
    train, val, test = bench.stratified_split(y, seed=0)
    assert (len(train), len(val), len(test)) == (1750, 250, 500)
    assert len(set(train) | set(val) | set(test)) == 2500
    for part, per_class in ((train, 175), (val, 25), (test, 50)):
        assert np.all(np.bincount(y[part], minlength=10) == per_class)
    again = bench.stratified_split(y, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = bench.stratified_split(y, seed=1)
    assert not np.array_equal(train, other[0])
    small = bench.stratified_split(y, seed=0, limit=300)
    assert tuple(len(p) for p in small) == (210, 30, 60)


def test_arguments_and_variant_names(bench):
    args = bench.parse_args(["--methods", "keras_nas,kt_random", "--budgets", "300", "600",
                             "--keras-nas-kwargs", '{"epochs": 5}'])
    assert args.methods == ["keras_nas", "kt_random"] and args.budgets == [300.0, 600.0]
    assert bench.variant_name("keras_nas", args.keras_nas_kwargs, []) == "keras_nas[epochs=5]"
    assert bench.variant_name("kt_random", args.keras_nas_kwargs, []) == "kt_random"
    assert bench.variant_name("keras_nas_cli", {}, ["--epochs", "5"]) == \
        "keras_nas_cli[--epochs 5]"
    for bad in (["--methods", "autokeras"], ["--keras-nas-kwargs", '{"max_time": 5}'],
                ["--keras-nas-kwargs", "[1]"], ["--budgets", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_markdown_table_means_over_seeds(bench):
    def run(method, seed, accuracy, trials, call_s, status="ok"):
        return {"method": method, "budget_s": 300, "seed": seed, "status": status,
                "test_accuracy": accuracy, "trials": trials, "call_s": call_s,
                "process_s": call_s and call_s + 10, "load_average_before": [2.0, 0, 0],
                "load_average_after": [3.0, 0, 0], "error": None if status == "ok" else "boom"}

    results = {"split": {"sizes": {"train": 1750, "validation": 250, "test": 500},
                         "split_seed": 0, "limit": None},
               "runs": [run("kt_random", 0, 0.95, 20, 310), run("kt_random", 1, 0.97, 22, 300),
                        run("keras_nas", 0, None, None, None, status="failed")]}
    rows = bench.summarize(results["runs"])
    assert len(rows) == 1
    assert rows[0]["test_accuracy_mean"] == pytest.approx(96.0)
    assert rows[0]["test_accuracy_std"] == pytest.approx(1.41421, rel=1e-4)
    assert rows[0]["within_budget"] == 2  # 310 <= 315
    table = bench.markdown_table(results)
    assert "1750 train / 250 validation / 500 test" in table
    assert "| kt_random | 300 | 2 | 96.0 ± 1.4 |" in table
    assert "Failed runs (1)" in table and "keras_nas T=300 seed 0: boom" in table


@pytest.mark.slow
def test_tiny_invocation_end_to_end_and_resume(bench, tmp_path, capsys):
    if not os.path.exists(bench.DEFAULT_DATA):
        pytest.skip(f"{bench.DEFAULT_DATA} is not here")
    out = tmp_path / "results.json"
    # A tiny keras-nas space and no retraining: this checks the driver, not the search.
    kwargs = {"max_trials": 1, "epochs": 1, "final_model": "checkpoint",
              "space_kwargs": {"channels": 4, "cells_per_stage": 1}}
    argv = ["--methods", "kt_random,keras_nas", "--budgets", "10", "--seeds", "0",
            "--limit", "300", "--keras-nas-kwargs", json.dumps(kwargs), "--json", str(out),
            "--markdown"]
    assert bench.main(argv) == 0
    results = json.loads(out.read_text())
    assert results["split"]["sizes"] == {"train": 210, "validation": 30, "test": 60}
    machine = results["invocations"][0]["machine"]
    assert machine["cpu_count"] >= 1 and len(machine["load_average"]) == 3
    assert machine["versions"]["keras-tuner"] and machine["versions"]["tensorflow"]
    runs = {r["base_method"]: r for r in results["runs"]}
    assert set(runs) == {"kt_random", "keras_nas"}
    for run in runs.values():
        assert run["status"] == "ok", run.get("error")
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["trials"] >= 1 and run["params"] > 0
        assert 0 < run["call_s"] < run["process_s"] and run["startup_s"] > 0
        assert len(run["load_average_before"]) == len(run["load_average_after"]) == 3
        assert run["code"]["keras_nas_sha256"]
        assert run["user_evaluate_error"] is None
    assert runs["keras_nas"]["method"].startswith("keras_nas[")
    assert runs["keras_nas"]["search_settings"]["max_trials"] == 1
    assert runs["kt_random"]["search_settings"]["tuner"] == "RandomSearch"
    assert runs["kt_random"]["best_hyperparameters"]["conv_blocks"] in (1, 2, 3)
    printed = capsys.readouterr().out
    assert "| kt_random | 10 | 1 |" in printed

    # Running the same command again skips what is done and runs nothing.
    assert bench.main(argv) == 0
    again = json.loads(out.read_text())
    assert len(again["runs"]) == 2 and len(again["invocations"]) == 2
    assert [r["started_unix"] for r in again["runs"]] == \
        [r["started_unix"] for r in results["runs"]]
    assert "skip kt_random T=10 seed=0" in capsys.readouterr().out
