import io
import json
import pathlib
import re

import numpy as np
import pytest

from keras_nas.tuning.progress import ProgressPrinter, format_duration, shorten
from keras_nas.spaces import DartsSpace, NASBench201Space

NB201 = pathlib.Path(__file__).parent / "data" / "summary_nb201_random.json"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rows_are_aligned_with_estimates():
    trials = json.loads(NB201.read_text())["trials"]
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressPrinter(max_trials=10, max_time=100, stream=out, clock=clock, width=200)
    progress.start()
    rows = []
    for t in trials[:4]:
        clock.now += 5.0
        rows.append(progress.on_trial_end(t))
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["trial", "status", "val_accuracy", "best", "elapsed",
                                "remaining", "architecture"]
    assert lines[1:5] == rows
    # Columns line up: every row starts its status column where the header does.
    status_at = lines[0].index("status")
    assert all(row[status_at:status_at + 9].strip() in ("COMPLETED", "FAILED") for row in rows)
    assert [row.split()[0] for row in rows] == ["1/10", "2/10", "3/10", "4/10"]
    # Trial 3 (id 02) failed: no objective, the best so far is kept.
    assert rows[2].split()[1:3] == ["FAILED", "-"] and rows[2].split()[3] == "0.2250"
    # 4 trials in 20 s: 6 left at 5 s each = 30 s, under the 80 s left of max_time.
    assert rows[3].split()[3:6] == ["0.2250", "20.0s", "~30.0s"]
    # A wide line shows every architecture whole, last.
    assert all(row.endswith(t["architecture"]) for row, t in zip(rows, trials))
    assert lines[-1].startswith("done: 4 of 10 trials in 20.0s; best val_accuracy 0.2250 (trial 00)")


def test_narrow_lines_cut_the_architecture_in_the_middle_and_short_forms_keep_it_whole():
    trials = json.loads(NB201.read_text())["trials"][:3]
    space = NASBench201Space()
    narrow, short = io.StringIO(), io.StringIO()
    for stream, describe in ((narrow, None), (short, space.short_architecture)):
        progress = ProgressPrinter(max_trials=3, stream=stream, width=100, describe=describe,
                                   legend=space.architecture_legend() if describe else None)
        for t in trials:
            progress(t)
    cut = narrow.getvalue().splitlines()[1:]
    assert all(len(row) <= 100 and "…" in row for row in cut)
    rows = short.getvalue().splitlines()
    assert rows[1] == ("  (ap = avg_pool_3x3, - = none, c1 = nor_conv_1x1, c3 = nor_conv_3x3, "
                       "sk = skip_connect)")
    for row, t in zip(rows[2:], trials):
        arch = row.split()[-1]
        assert "…" not in arch and arch == space.short_architecture(t["architecture"])
        # The short form names every op: it reads back to the same architecture.
        full = {short: op for short, op in (e.split(" = ") for e in rows[1].strip(" ()").split(", "))}
        back = re.sub(r"([^|+~]+)~", lambda m: full[m.group(1)] + "~", arch)
        assert back == t["architecture"]
    darts = DartsSpace()
    genotype = darts.random_architecture(seed=0)
    assert len(darts.short_architecture(genotype)) < 0.5 * len(genotype)


def test_a_resumed_search_counts_on_from_the_trials_it_had():
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressPrinter(max_trials=4, stream=out, clock=clock, width=120)
    progress.start(elapsed=30.0).resume(done=1)  # one trial ran before, 30 s ago
    clock.now += 10
    row = progress({"trial_id": "1", "status": "COMPLETED", "architecture": "a",
                    "metrics": {"val_accuracy": 0.5}})
    # Trial 2 of 4; the pace is that of this run's trials (10 s), not the 40 s elapsed.
    assert row.split()[0] == "2/4" and row.split()[-3:-1] == ["40.0s", "~20.0s"]


def test_latency_target_shows_accuracy_and_latency_and_ranks_by_the_reward():
    out = io.StringIO()
    progress = ProgressPrinter(max_trials=3, metrics=("latency_ms",), stream=out, width=120,
                               rank=lambda record: record.get("score"))
    fast = {"trial_id": "0", "status": "COMPLETED", "architecture": "fast", "score": 0.8,
            "metrics": {"val_accuracy": 0.8, "latency_ms": 1.5, "constrained_accuracy": 0.8}}
    slow = {"trial_id": "1", "status": "COMPLETED", "architecture": "slow", "score": -1.36,
            "metrics": {"val_accuracy": 0.9, "latency_ms": 9.0, "constrained_accuracy": -1.36}}
    progress(fast)
    row = progress(slow)
    assert out.getvalue().splitlines()[0].split()[2:4] == ["val_accuracy", "latency_ms"]
    # The trial over the target shows its accuracy and latency; the best stays the fast one.
    assert row.split()[2:5] == ["0.9000", "9.0000", "0.8000"]
    assert progress.best_trial_id == "0"
    # One the search did not train (over a hard target): its latency, no accuracy, not best.
    skipped = {"trial_id": "2", "status": "COMPLETED", "architecture": "slower", "score": -2.0,
               "skipped": "latency_ms 10 over the target 5: not trained",
               "metrics": {"latency_ms": 10.0, "constrained_accuracy": -2.0}}
    row = progress(skipped)
    # It does not use up the budget: no number of its own, and the count goes on at 3/3.
    assert row.split()[0:5] == ["-", "SKIPPED", "-", "10.0000", "0.8000"]
    assert progress.best_trial_id == "0"
    assert progress({**fast, "trial_id": "3"}).split()[0] == "3/3"
    assert progress.finish().startswith("done: 3 of 3 trials (and 1 skipped untrained) in ")


def test_progress_printer_time_budget_and_min_direction():
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressPrinter(max_time=60, objective="val_loss", direction="min", stream=out,
                               clock=clock)
    clock.now += 50
    row = progress({"trial_id": "0", "status": "COMPLETED", "architecture": None,
                    "hyperparameters": {"units": 32}, "metrics": {"val_loss": 0.7}})
    assert row.split()[-1] == "units=32" and row.split()[0] == "1"
    assert row.split()[-2] == "~10.0s"  # only the time budget is known
    clock.now += 5
    row = progress({"trial_id": "1", "status": "COMPLETED", "architecture": "b",
                    "metrics": {"val_loss": 0.5}})
    assert row.split()[2:4] == ["0.5000", "0.5000"]
    row = progress({"trial_id": "2", "status": "COMPLETED", "architecture": "c", "metrics": {},
                    "score": 0.9})
    assert row.split()[3] == "0.5000"  # the score 0.9 is worse for a min objective
    assert out.getvalue().count("\n") == 4  # header + 3 rows


def test_progress_printer_validation_and_formatting():
    with pytest.raises(ValueError, match="max_trials"):
        ProgressPrinter(max_trials=0)
    with pytest.raises(ValueError, match="max_time"):
        ProgressPrinter(max_time=-1)
    with pytest.raises(ValueError, match="direction"):
        ProgressPrinter(direction="up")
    with pytest.raises(TypeError, match="rank"):
        ProgressPrinter(rank="score")
    with pytest.raises(ValueError, match="width"):
        ProgressPrinter(width=10)
    with pytest.raises(TypeError, match="trial"):
        ProgressPrinter(stream=io.StringIO()).on_trial_end("trial 1")
    assert format_duration(4.25) == "4.2s"
    assert format_duration(125) == "2m05s"
    assert format_duration(7380) == "2h03m"
    assert format_duration(None) == "?"
    assert shorten("abcdefghij", 5) == "ab…ij"
    assert np.isclose(len(shorten("x" * 100, 20)), 20)
