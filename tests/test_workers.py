"""`Search(workers=N)`: trials in worker processes served by this process' oracle."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import keras_tuner
import pytest
import tensorflow as tf

import keras_nas
from keras_nas import data
from keras_nas.spaces import NASBench201Space
from keras_nas.tuning.budget import TimeBudget
from keras_nas.tuning.chief import MESSAGES, Chief, Trial, threads_per_worker
from keras_nas.tuning.pruning import SuccessiveHalving
from keras_nas.tuning.tuner import NASTuner
from keras_nas.tuning.worker import (
    ORPHAN_CHECK_S, RUNG_METRIC, TIMINGS_FILE, SharedDeadline, write_deadline)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(channels=4, cells_per_stage=1)


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = data.load_digits()
    return (x[:300], y[:300]), (x[300:400], y[300:400])


def _search(tmp_path, **kwargs):
    settings = dict(space="cell", strategy="random", max_trials=5, epochs=3, seed=0,
                    directory=tmp_path, space_kwargs=TINY, verbose=0, workers=2,
                    final_model="checkpoint")
    settings.update(kwargs)
    return keras_nas.Search(**settings)


def _worker_processes(parent):
    """`{KERASTUNER_TUNER_ID: pid}` of the worker processes `parent` started."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"keras_nas.tuning.worker" in command:
            found[env[b"KERASTUNER_TUNER_ID"].decode()] = int(entry)
    return found


@pytest.mark.slow
def test_two_workers_train_every_trial_and_the_chief_records_them(digits, tmp_path):
    (x, y), val = digits
    s = _search(tmp_path).fit(x, y, validation_data=val)
    trials = s.trials
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert {t["worker"] for t in trials} == {"worker0", "worker1"}  # both took part
    # The workers' timings reached the chief, as a one-process search records them.
    assert all(t["epoch_s"] > 0 and t["epochs_trained"] >= 1 and t["best_epoch"] >= 1
               for t in trials)
    # Successive halving ran at the chief: every trial was ranked at the 1-epoch rung.
    assert len(s.tuner.halving.values[1]) == 5
    on_disk = json.loads(Path(s.summary_path).read_text())
    assert on_disk["trials"] == json.loads(json.dumps(s.summary["trials"]))
    assert on_disk["workers"] == {"count": 2, "threads_per_worker": threads_per_worker(2),
                                  "restarts": 0}
    # The returned model is the best trial's checkpoint, made by this process.
    best = max(trials, key=lambda t: t["metrics"]["val_accuracy"])
    assert s.best_model.evaluate(*val, verbose=0)[1] == pytest.approx(
        best["metrics"]["val_accuracy"], abs=1e-6)
    assert not (tmp_path / "search" / "workers" / "data.npz").exists()  # cleaned up


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_restarted_and_no_trial_is_lost(digits, tmp_path):
    (x, y), val = digits
    killed = []

    def kill_the_other_worker(record):
        if killed:
            return
        others = {k: v for k, v in _worker_processes(os.getpid()).items()
                  if k != record["worker"]}
        for worker_id, pid in others.items():
            os.kill(pid, signal.SIGKILL)
            killed.append(worker_id)

    s = _search(tmp_path, max_trials=4, on_trial_end=kill_the_other_worker)
    s.fit(x, y, validation_data=val)
    assert len(killed) == 1
    assert [t["status"] for t in s.trials] == ["COMPLETED"] * 4
    assert s.summary["workers"]["restarts"] == 1
    assert killed[0] in {t["worker"] for t in s.trials}  # it came back and trained


CHIEF_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import keras_nas
    from keras_nas import data
    (x, y), _ = data.load_digits()
    keras_nas.Search(space="cell", strategy="random", max_trials=4, epochs=2, seed=0,
                     directory=sys.argv[1], space_kwargs=dict(channels=4, cells_per_stage=1),
                     verbose=0, workers=2, final_model="checkpoint").fit(
        x[:300], y[:300], validation_data=(x[300:400], y[300:400]))
""")


def _completed(summary_path):
    try:
        trials = json.loads(Path(summary_path).read_text())["trials"]
    except (OSError, ValueError, KeyError):
        return []
    return [t for t in trials if t["status"] == "COMPLETED"]


@pytest.mark.slow
def test_workers_leave_when_the_chief_is_killed_and_the_same_command_resumes(tmp_path):
    script = tmp_path / "chief.py"
    script.write_text(CHIEF_SCRIPT.format(root=str(ROOT)))
    command = [sys.executable, str(script), str(tmp_path / "results")]
    summary = tmp_path / "results" / "search" / "summary.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    chief = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while not _completed(summary) and time.time() < deadline and chief.poll() is None:
            time.sleep(0.2)
        workers = _worker_processes(chief.pid)
        assert _completed(summary) and len(workers) == 2, chief.stdout.read()[-3000:]
        chief.send_signal(signal.SIGKILL)
        chief.wait(timeout=10)
        # Orphaned, each worker notices within its check interval and exits.
        left_by = time.time() + ORPHAN_CHECK_S + 10
        while time.time() < left_by and any(os.path.exists(f"/proc/{p}") and
                                            _is_running(p) for p in workers.values()):
            time.sleep(0.2)
        assert not any(_is_running(p) for p in workers.values())
    finally:
        if chief.poll() is None:
            chief.kill()
    log = (tmp_path / "results" / "search" / "workers" / "worker0.log").read_text()
    assert "the chief" in log and "is gone" in log
    # The same command again resumes: it finishes the 4 trials without redoing the done ones.
    done_before = {t["trial_id"] for t in _completed(summary)}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    trials = json.loads(summary.read_text())["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert done_before <= {t["trial_id"] for t in trials}


def _is_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class _SpaceFromMain(NASBench201Space):
    pass


_SpaceFromMain.__module__ = "__main__"  # as a class defined in the user's script


@pytest.mark.parametrize("kwargs, data_kind, error, words", [
    (dict(workers=0), "arrays", ValueError, "`workers` must be a positive integer"),
    (dict(workers="2"), "arrays", TypeError, "`workers` must be a positive integer"),
    (dict(), "dataset", ValueError, "`x`: `workers`=2 takes numpy arrays"),
    (dict(space=_SpaceFromMain(**TINY), space_kwargs=None), "arrays", ValueError,
     "`space`: with `workers`=2 its class must come from a module"),
    (dict(callbacks=True), "arrays", ValueError, "`callbacks` must be picklable"),
])
def test_bad_worker_settings_fail_before_any_training(digits, tmp_path, kwargs, data_kind,
                                                      error, words):
    (x, y), val = digits
    callbacks = None
    if kwargs.pop("callbacks", False):
        callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda *a: None)]
    started = time.time()
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        s = _search(tmp_path, **kwargs)
        if data_kind == "dataset":
            train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
            validation = tf.data.Dataset.from_tensor_slices(val).batch(32)
            s.fit(train, validation_data=validation, num_classes=10)
        else:
            s.fit(x, y, validation_data=val, callbacks=callbacks)
    assert time.time() - started < 20
    assert not list(tmp_path.glob("search/trial_*"))


def test_the_chief_service_stops_ranks_and_records_trials(tmp_path):
    """The chief's side of the protocol, called directly (no processes, no network)."""
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, **TINY)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=10, seed=0)
    ended = []
    budget = TimeBudget(max_time=1000)
    tuner = NASTuner(oracle, space, budget=budget, directory=tmp_path, project_name="p",
                     halving=SuccessiveHalving(max_epochs=3, grace=1),
                     on_trial_end_callback=lambda tuner, trial: ended.append(trial.trial_id))
    chief = Chief(tuner, workers=2, spec={}, data=None, folder=str(tmp_path / "w"))
    service = chief._servicer

    def create(worker_id):
        answer = service.CreateTrial(MESSAGES.CreateTrialRequest(tuner_id=worker_id), None)
        return Trial.from_proto(answer.trial)

    def rung(trial, value):
        answer = service.UpdateTrial(MESSAGES.UpdateTrialRequest(
            trial_id=trial.trial_id, metrics={RUNG_METRIC: value}, step=1), None)
        return Trial.from_proto(answer.trial).status

    first, second = create("worker0"), create("worker1")
    assert first.status == second.status == "RUNNING" and first.trial_id != second.trial_id
    # Both workers' trials are ranked together at the rung: the worse one stops.
    assert rung(first, 0.9) == "RUNNING" and rung(second, 0.5) == "STOPPED"
    assert tuner.halving.values[1] == [0.9, 0.5]
    assert not oracle.trials[first.trial_id].metrics.exists(RUNG_METRIC)  # a query, not a metric

    # A trial's end: the oracle learns its result, the chief reads the worker's timings, tells
    # the search's listener and writes the deadline the workers read.
    service.UpdateTrial(MESSAGES.UpdateTrialRequest(
        trial_id=first.trial_id, metrics={"val_accuracy": 0.9}, step=1), None)
    Path(tuner.get_trial_dir(first.trial_id), TIMINGS_FILE).write_text(
        json.dumps({"epoch_s": 1.5, "worker": "worker0"}))
    first.status = "COMPLETED"
    service.EndTrial(MESSAGES.EndTrialRequest(trial=first.to_proto()), None)
    assert oracle.trials[first.trial_id].status == "COMPLETED" and ended == [first.trial_id]
    assert tuner.timings[first.trial_id] == {"epoch_s": 1.5, "worker": "worker0"}
    assert SharedDeadline(chief.deadline_path).search_deadline() == pytest.approx(
        budget.search_deadline())

    # Out of time: no new trial for anyone.
    budget.reserve("final_model", 2000.0)
    assert create("worker0").status == "STOPPED" and chief.stopping
    assert len(oracle.trials) == 2


def test_a_worker_reads_the_deadline_the_chief_writes(tmp_path):
    path = tmp_path / "deadline.json"
    now = [100.0]
    shared = SharedDeadline(str(path), clock=lambda: now[0], reread_s=0.0)
    write_deadline(str(path), TimeBudget(None))
    assert not shared.limited and shared.search_left() == float("inf")
    budget = TimeBudget(60, started=100.0, clock=lambda: now[0])
    budget.reserve("final_model", 10.0)
    write_deadline(str(path), budget)
    assert shared.limited and shared.search_deadline() == 150.0
    now[0] = 120.0
    assert shared.search_left() == 30.0
