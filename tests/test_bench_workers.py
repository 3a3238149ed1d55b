"""The parallel-trials benchmark (tools/bench_workers.py): its curves and table, and one tiny
pair of runs when the mnist2500 data is there."""

import json
import os

import pytest

from tests.tools_loader import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_workers")


def _trial(ended, accuracy, status="COMPLETED"):
    return {"ended": ended, "status": status, "metrics": {"val_accuracy": accuracy}}


def test_best_accuracy_over_time_and_the_time_to_reach_a_target(bench):
    summary = {"trials": [_trial(130.0, 0.80), _trial(110.0, 0.90), _trial(150.0, 0.85),
                          _trial(160.0, None, status="FAILED"), _trial(170.0, 0.95)]}
    curve = bench.best_over_time(summary, call_started=100.0)
    assert curve == [(10.0, 0.90), (30.0, 0.90), (50.0, 0.90), (70.0, 0.95)]
    assert bench.seconds_to_reach(curve, 0.95) == 70.0
    assert bench.seconds_to_reach(curve, 0.9) == 10.0 and bench.seconds_to_reach(curve, 0.99) is None


def test_each_seed_is_judged_against_its_one_worker_run(bench):
    one = {"seed": 0, "workers": 1, "best_over_time": [(50.0, 0.9), (250.0, 0.95)]}
    two = {"seed": 0, "workers": 2, "best_over_time": [(40.0, 0.92), (120.0, 0.96)]}
    other_seed = {"seed": 1, "workers": 2, "best_over_time": [(40.0, 0.5)]}
    bench.add_time_to_target([one, two, other_seed])
    assert one["seconds_to_target"] == 250.0 and two["seconds_to_target"] == 120.0
    assert two["target_val_accuracy"] == 0.95 and "seconds_to_target" not in other_seed


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(load_tool("bench_realdata").DEFAULT_DATA),
                    reason="needs ../shared/data/mnist2500")
def test_a_tiny_pair_of_runs_is_measured_and_tabled(bench, tmp_path):
    out = tmp_path / "workers.json"
    assert bench.main(["--budget", "45", "--seeds", "0", "--limit", "200", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["status"] == "ok" for r in runs)
    assert runs[1]["workers_summary"]["count"] == 2 and set(runs[1]["trials_by_worker"]) == {
        "worker0", "worker1"}
    assert runs[0]["seconds_to_target"] is not None and runs[0]["trials_per_hour"] > 0
    assert "| 2 | mean |" in bench.markdown(runs)
