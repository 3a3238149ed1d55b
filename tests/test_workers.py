"""`Search(workers=N)`: trials in worker processes served by this process' oracle."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import grpc
import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_nas
from keras_nas import data
from keras_nas.spaces import NASBench201Space
from keras_nas.oracles.base import SKIPPED_METRIC
from keras_nas.tuning.budget import TimeBudget
from keras_nas.compat import send_oracle_calls_through
from keras_nas.tuning.chief import MESSAGES, Chief, Trial, threads_per_worker
from keras_nas.tuning.protocol import ChiefLink, ChiefUnreachable, encode_file
from keras_nas.tuning.pruning import SuccessiveHalving
from keras_nas.tuning.tuner import CHECKPOINT_FILE, NASTuner
from keras_nas.tuning.worker import CHIEF_LOST_S, RUNG_METRIC, TIMINGS_FILE, ChiefWatch

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
    """`{worker id: pid}` of the worker processes `parent` started."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().decode().split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and "keras_nas.tuning.worker" in command:
            found[command[command.index("--id") + 1]] = int(entry)
    return found


@pytest.mark.slow
def test_two_workers_train_every_trial_and_a_killed_one_loses_nothing(digits, tmp_path):
    (x, y), val = digits
    killed = []

    def kill_the_other_worker(record):
        """At the first trial's end, SIGKILL the worker that is still training."""
        if killed:
            return
        for worker_id, pid in _worker_processes(os.getpid()).items():
            if worker_id != record["worker"]:
                os.kill(pid, signal.SIGKILL)
                killed.append(worker_id)

    s = _search(tmp_path, on_trial_end=kill_the_other_worker).fit(x, y, validation_data=val)
    trials = s.trials
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert all(t["status"] == "COMPLETED" for t in trials)  # the killed one's trial was rerun
    assert len(killed) == 1 and s.summary["workers"]["restarts"] == 1
    assert {t["worker"] for t in trials} == {"worker0", "worker1"}  # both took part
    # The workers' timings reached the chief, as a one-process search records them.
    assert all(t["epoch_s"] > 0 and t["epochs_trained"] >= 1 and t["best_epoch"] >= 0
               for t in trials)
    # Successive halving ran at the chief: every trial was ranked at the 1-epoch rung.
    assert len(s.tuner.halving.values[1]) >= 5
    on_disk = json.loads(Path(s.summary_path).read_text())
    assert on_disk["trials"] == json.loads(json.dumps(s.summary["trials"]))
    assert on_disk["workers"] == {"count": 2, "threads_per_worker": threads_per_worker(2),
                                  "restarts": 1}
    # The returned model is the best trial's checkpoint, which its worker sent here.
    best = max(trials, key=lambda t: t["metrics"]["val_accuracy"])
    assert s.best_model.evaluate(*val, verbose=0)[1] == pytest.approx(
        best["metrics"]["val_accuracy"], abs=1e-6)


CHIEF_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import keras_nas
    from keras_nas import data
    (x, y), _ = data.load_digits()
    keras_nas.Search(space="cell", strategy="random", max_trials=8, epochs=3, seed=0,
                     directory=sys.argv[1], space_kwargs=dict(channels=4, cells_per_stage=1),
                     verbose=0, workers=1, listen=sys.argv[2], token="secret",
                     final_model="checkpoint").fit(
        x[:300], y[:300], validation_data=(x[300:400], y[300:400]))
""")


def _trials(summary_path):
    try:
        return json.loads(Path(summary_path).read_text())["trials"]
    except (OSError, ValueError, KeyError):
        return []


@pytest.mark.slow
def test_a_worker_joins_from_elsewhere_workers_leave_a_killed_chief_and_the_search_resumes(
        tmp_path):
    script = tmp_path / "chief.py"
    script.write_text(CHIEF_SCRIPT.format(root=str(ROOT)))
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, str(script), str(tmp_path / "results"), address]
    summary = tmp_path / "results" / "search" / "summary.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    chief = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    # A worker that the chief did not start, as on another machine: the command line.
    joined = subprocess.Popen(
        [sys.executable, "-m", "keras_nas_cli", "worker", "--chief", address, "--id", "remote0"],
        env=dict(env, KERAS_NAS_TOKEN="secret"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and chief.poll() is None and not {
                t.get("worker") for t in _trials(summary)} >= {"worker0", "remote0"}:
            time.sleep(0.2)
        assert {t.get("worker") for t in _trials(summary)} >= {"worker0", "remote0"}, (
            chief.stdout.read()[-3000:] if chief.poll() is not None else "")
        here = _worker_processes(chief.pid)
        assert list(here) == ["worker0"]
        chief.send_signal(signal.SIGKILL)
        chief.wait(timeout=10)
        # Unanswered, each worker gives its chief up after CHIEF_LOST_S and exits.
        pids = [here["worker0"], joined.pid]
        left_by = time.time() + CHIEF_LOST_S + 20
        while time.time() < left_by and any(_is_running(p) for p in pids):
            time.sleep(0.2)
        assert not any(_is_running(p) for p in pids)
        out = joined.communicate(timeout=10)[0]
        assert joined.returncode == 3 and "has not answered" in out and "is gone" in out, out
    finally:
        for process in (chief, joined):
            if process.poll() is None:
                process.kill()
    # The same command again resumes: it finishes the trials without redoing the done ones.
    done_before = {t["trial_id"] for t in _trials(summary) if t["status"] == "COMPLETED"}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    trials = _trials(summary)
    assert [t["number"] for t in trials] == list(range(8))
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
    (dict(workers=0), "arrays", ValueError, "`workers` must be a positive integer or .auto."),
    (dict(workers="2"), "arrays", TypeError, "`workers` must be a positive integer or .auto."),
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


def _chief(tmp_path, budget=None, ended=None, max_trials=10, **kwargs):
    """A `Chief` over a real tuner and oracle, without worker processes."""
    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, **TINY)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=max_trials, seed=0)
    oracle.verbose = 0
    ended = [] if ended is None else ended
    tuner = NASTuner(oracle, space, budget=budget or TimeBudget(max_time=1000),
                     directory=tmp_path, project_name="p",
                     halving=SuccessiveHalving(max_epochs=3, grace=1),
                     on_trial_end_callback=lambda tuner, trial: ended.append(trial.trial_id))
    x = np.zeros((4, 8, 8, 1), "float32")
    y = np.zeros(4, "int32")
    return Chief(tuner, workers=1, spec={"space": space}, data=((x, y), (x, y)),
                 folder=str(tmp_path / "w"), **kwargs)


def test_the_chief_service_stops_ranks_and_records_trials(tmp_path):
    """The chief's side of the protocol, called directly (no processes, no network)."""
    ended = []
    budget = TimeBudget(max_time=1000)
    chief = _chief(tmp_path, budget, ended)
    chief._prepare()
    service, oracle, tuner = chief._servicer, chief.tuner.oracle, chief.tuner

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

    # A trial's end: its files reach its folder here, the oracle learns its result, the
    # chief reads the timings and tells the search's listener.
    service.put_file(encode_file(first.trial_id, TIMINGS_FILE,
                                 json.dumps({"epoch_s": 1.5, "worker": "worker0"}).encode()), None)
    service.put_file(encode_file(first.trial_id, CHECKPOINT_FILE, b"weights"), None)
    service.UpdateTrial(MESSAGES.UpdateTrialRequest(
        trial_id=first.trial_id, metrics={"val_accuracy": 0.9}, step=1), None)
    first.status = "COMPLETED"
    service.EndTrial(MESSAGES.EndTrialRequest(trial=first.to_proto()), None)
    assert oracle.trials[first.trial_id].status == "COMPLETED" and ended == [first.trial_id]
    assert tuner.timings[first.trial_id] == {"epoch_s": 1.5, "worker": "worker0"}
    assert service.get_file(encode_file(first.trial_id, CHECKPOINT_FILE), None) == b"weights"
    assert service.get_file(encode_file(second.trial_id, CHECKPOINT_FILE), None) == b""
    # The heartbeat answers with the deadline and marks the worker alive.
    answer = json.loads(service.beat(json.dumps({"worker": "w9"}).encode(), None))
    assert answer["search_deadline"] == pytest.approx(budget.search_deadline())
    assert "w9" in chief.last_seen

    # A worker that died: its trial goes to the next worker that asks; dying twice fails it.
    chief._lose_worker("worker1", "killed")
    assert create("worker2").trial_id == second.trial_id
    chief._lose_worker("worker2", "killed again")
    assert oracle.trials[second.trial_id].status == "FAILED"
    assert "died twice" in oracle.trials[second.trial_id].message and not oracle.ongoing_trials

    # Out of time: no new trial for anyone.
    budget.reserve("final_model", 2000.0)
    assert create("worker0").status == "STOPPED" and chief.stopping
    assert len(oracle.trials) == 2


def test_the_chief_counts_only_trained_trials_against_max_trials(tmp_path):
    chief = _chief(tmp_path, max_trials=2)
    chief._prepare()
    service, oracle = chief._servicer, chief.tuner.oracle

    def run(worker_id, metrics):
        answer = service.CreateTrial(MESSAGES.CreateTrialRequest(tuner_id=worker_id), None)
        trial = Trial.from_proto(answer.trial)
        if trial.status != "RUNNING":
            return trial.status
        service.UpdateTrial(MESSAGES.UpdateTrialRequest(
            trial_id=trial.trial_id, metrics=metrics, step=0), None)
        trial.status = "COMPLETED"
        service.EndTrial(MESSAGES.EndTrialRequest(trial=trial.to_proto()), None)
        return trial.status

    # A candidate skipped untrained (over a hard latency target) does not use up the budget.
    assert run("worker0", {"val_accuracy": -2.0, SKIPPED_METRIC: 1.0}) == "COMPLETED"
    assert run("worker0", {"val_accuracy": 0.5}) == "COMPLETED"
    assert run("worker0", {"val_accuracy": 0.6}) == "COMPLETED"
    assert run("worker0", {"val_accuracy": 0.7}) == "STOPPED"
    assert len(oracle.trials) == 3


def test_a_worker_keeps_the_chiefs_deadline_and_notices_when_it_is_gone():
    class Link:
        address = "chief:1"
        answers = [100.0, None, ChiefUnreachable("gone")]

        def beat(self, worker_id, timeout):
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    now = [50.0]
    watch = ChiefWatch(Link(), "worker0", clock=lambda: now[0], lost_s=10.0)
    assert not watch.limited and watch.search_left() == float("inf")
    assert watch.beat() and watch.limited and watch.search_left() == 50.0
    assert watch.beat() and not watch.limited  # a search without a time limit
    now[0] = 59.0
    assert not watch.beat() and not watch.chief_lost()
    now[0] = 61.0
    assert watch.chief_lost()


def test_only_workers_with_the_token_are_served(tmp_path):
    chief = _chief(tmp_path, token="right-token")
    server = chief.serve()
    try:
        address = f"127.0.0.1:{chief.port}"
        assert ChiefLink(address, "right-token").spec(timeout=10)["space"] is not None
        with pytest.raises(ChiefUnreachable, match="refused this worker.*check --token"):
            ChiefLink(address, "wrong-token").spec(timeout=10)
        # KerasTuner's oracle calls are refused as well.
        client = types.SimpleNamespace()
        send_oracle_calls_through(client, ChiefLink(address, "wrong-token").channel)
        with pytest.raises(grpc.RpcError) as refused:
            client.stub.GetSpace(MESSAGES.GetSpaceRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(grace=None)


def test_heartbeats_are_answered_while_a_long_oracle_call_runs(tmp_path):
    """A Bayesian oracle may compute for seconds in `create_trial` on a busy machine; the
    workers' heartbeats must not wait for it, or they take the chief for gone."""
    chief = _chief(tmp_path)
    server = chief.serve()
    busy = threading.Thread(target=lambda: (chief._servicer.lock.acquire(), time.sleep(3),
                                            chief._servicer.lock.release()))
    try:
        busy.start()
        time.sleep(0.2)
        link = ChiefLink(f"127.0.0.1:{chief.port}", chief.token)
        started = time.time()
        assert link.beat("worker0", timeout=2) == pytest.approx(
            chief.tuner.budget.search_deadline())
        assert time.time() - started < 1.5
    finally:
        busy.join()
        server.stop(grace=None)


def test_a_worker_that_cannot_reach_its_chief_says_so_in_one_line(capsys):
    from keras_nas import cli

    code = cli.main(["worker", "--chief", f"127.0.0.1:{_free_port()}", "--token", "t",
                     "--connect-timeout", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "cannot reach the chief at 127.0.0.1:" in err[0]


@pytest.mark.parametrize("listen, token, words", [
    ("0.0.0.0:7000", None, "reaches beyond this machine: give a `token`"),
    ("nohost", "t", "must be 'HOST:PORT'"),
    ("127.0.0.1:99999", None, "a port 0-65535"),
])
def test_a_chief_beyond_loopback_needs_a_token(listen, token, words):
    with pytest.raises(ValueError, match=words):
        keras_nas.Search(listen=listen, token=token)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_hyperband_continues_trials_from_checkpoints_the_chief_holds(digits, tmp_path):
    """Hyperband's later rounds start from an earlier trial's weights, which another worker
    process may have trained: the worker fetches them from the chief."""
    (x, y), val = digits
    s = _search(tmp_path, strategy="hyperband", epochs=3, max_trials=None)
    s.fit(x, y, validation_data=val)
    trials = s.trials
    continued = [t for t in trials if t["hyperparameters"].get("tuner/trial_id")]
    assert continued and all(t["status"] == "COMPLETED" for t in trials)
    for t in continued:  # each started from the earlier trial's weights, wherever trained
        earlier = t["hyperparameters"]["tuner/trial_id"]
        assert t["continued_from"] == earlier and t["hyperparameters"]["tuner/initial_epoch"] > 0
        assert (tmp_path / "search" / f"trial_{earlier}" / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize("settings, cores, expected", [
    (dict(max_time=300), 2, 2),
    (dict(max_time=300), 16, 8),                          # at most AUTO_MAX_WORKERS
    (dict(max_time=300), 1, 1),                           # one core: nothing to share out
    (dict(), 2, 1),                                       # no time budget
    (dict(max_time=100), 2, 1),                           # the main job: measured slower
    (dict(max_time=300, strategy="spos"), 2, 1),          # one-shot: one supernet
    (dict(max_time=300, latency_ms=5.0), 2, 1),           # latency timed here
    (dict(max_time=300, space=_SpaceFromMain(**TINY), space_kwargs=None), 2, 1),
    (dict(max_time=300, workers=1), 2, 1),                # what the user says wins
    (dict(workers=3), 2, 3),
])
def test_auto_workers_where_they_measured_faster(digits, monkeypatch, settings, cores,
                                                 expected):
    monkeypatch.setattr("keras_nas.tuning.chief.available_cores", lambda: cores)
    settings = {"space_kwargs": TINY, **settings}
    s = keras_nas.Search(**settings)
    s.data = data.prepare(*digits[0], validation_data=digits[1], seed=0)
    s._size_space()
    s._resolve_workers(None)
    assert s.workers == expected and s.parallel == (expected > 1)


def test_a_listening_search_serves_workers_whatever_auto_decides(digits):
    s = keras_nas.Search(space_kwargs=TINY, listen="127.0.0.1:0")  # no max_time: "auto" is 1
    s.data = data.prepare(*digits[0], validation_data=digits[1], seed=0)
    s._size_space()
    s._resolve_workers(None)
    assert s.workers == 1 and s.parallel  # workers from elsewhere still join
