"""The backends benchmark (tools/bench_backends.py): its order, its reading of a search's
records, and one tiny run per backend."""

import json

import pytest

from tests.tools_loader import load_tool


def test_runs_alternate_in_pairs_so_drift_hits_every_configuration():
    bench = load_tool("bench_backends")
    assert bench.order(["tensorflow", "jax"], 2) == ["tensorflow", "jax", "jax", "tensorflow"] * 2
    assert bench.order(["a", "b", "c"], 1) == ["a", "b", "c", "c", "b", "a"]
    assert bench.order(["tensorflow", "jax"], 3, once=True) == ["tensorflow", "jax"]


def _trial(number, started, duration, epochs, extra, architecture="arch"):
    return {"trial_id": str(number), "number": number, "status": "COMPLETED",
            "architecture": architecture, "started": started, "ended": started + duration,
            "duration_s": duration, "epochs_trained": epochs, "epoch_s": 1.0,
            "first_epoch_extra_s": extra, "build_s": 0.1, "fit_s": duration - 0.2,
            "metrics": {"val_accuracy": 0.5 + number / 10}}


def test_compile_events_are_counted_in_the_trial_they_fell_in():
    bench = load_tool("bench_backends")
    summary = {"trials": [_trial(1, 100.0, 10.0, 5, 4.0), _trial(0, 50.0, 20.0, 5, 12.0)],
               "best_architecture": "arch", "best": {"test_accuracy": 0.9, "command_s": 40.0},
               "elapsed_s": 39.0}
    events = [[55.0, "trace", 0.5, "train_step"], [56.0, "compile", 9.0, "jit(train_step)"],
              [60.0, "compile", 2.0, "jit(test_step)"], [105.0, "compile", 3.0, "jit(x)"],
              [106.0, "cache_hit", None, None], [80.0, "compile", 7.0, "between trials"]]
    out = bench.read_summary(summary, events)
    first, second = out["trials"]  # in trial order
    assert first["number"] == 0 and first["jax_compiles"] == 2 and first["jax_compile_s"] == 11.0
    assert first["jax_traces"] == 1 and first["jax_cache_hits"] == 0
    assert second["jax_compile_s"] == 3.0 and second["jax_cache_hits"] == 1
    assert out["best_val_accuracy"] == pytest.approx(0.6) and out["test_accuracy"] == 0.9
    assert out["jax_totals"]["compile"] == {"count": 4, "seconds": 21.0}

    run = {"config": "jax", "index": 0, "process_s": 45.0, "load_average_before": [1.0] * 3,
           "load_average_after": [2.0] * 3, **out}
    row, = bench.summarize([run])
    assert row["trials"] == 2 and row["trial_s"] == 15.0 and row["first_trial_s"] == 20.0
    assert row["later_trial_s"] == 10.0 and row["first_epoch_extra_share"] == pytest.approx(16 / 30)
    assert row["jax_compile_s"] == pytest.approx((0.5 + 11.0 + 3.0) / 2)
    table = bench.markdown([run])
    assert "| jax | 1 | 2 | 15.0 | 20.0 | 10.0 |" in table and "| 1 | jax | 45 | 2 |" in table


@pytest.mark.slow
def test_one_tiny_search_per_backend_is_timed_and_read_back(tmp_path):
    pytest.importorskip("jax")
    bench = load_tool("bench_backends")
    out = tmp_path / "backends.json"
    assert bench.main(["--configs", "tensorflow", "jax", "--once", "--trials", "1", "--epochs",
                       "1", "--extra", "--channels 4 --cells 1", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    tf_run, jax_run = saved["runs"]
    assert (tf_run["backend"], jax_run["backend"]) == ("tensorflow", "jax")
    for run in (tf_run, jax_run):
        assert run["returncode"] == 0 and len(run["trials"]) == 1
        assert run["trials"][0]["duration_s"] > 0 and 0 <= run["best_val_accuracy"] <= 1
        argv = run["cli_argv"]
        assert argv[argv.index("--max-trials") + 1] == "1" and "--no-export" in argv
    # The JAX child heard JAX's compile events: the training step traced once per batch shape.
    trial = jax_run["trials"][0]
    assert trial["jax_compiles"] >= 2 and trial["jax_compile_s"] > 0
    assert "jax_compile_s" not in tf_run["trials"][0]
    assert [row["config"] for row in saved["summary"]] == ["tensorflow", "jax"]
    assert saved["machine"]["versions"]["jax"] and "commit" in saved["code"]
    assert "| tensorflow | 1 | 1 |" in bench.markdown(saved["runs"])
