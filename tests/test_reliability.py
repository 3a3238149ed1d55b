"""A search survives failing candidates and crashes, honours budgets, and is reproducible."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import keras_tuner
import numpy as np
import pytest

import keras_nas
from keras_nas.search import SearchFailedError


class ToySpace(keras_tuner.HyperModel):
    """A fast user space. `poison` decides how a candidate breaks, for the tests."""

    def __init__(self, poison=()):
        super().__init__()
        self.poison = tuple(poison)

    def build(self, hp):
        units = hp.Choice("units", [4, 8, 16])
        kind = hp.Choice("kind", ["ok", "build_error", "nan"])
        if kind == "build_error" and "build_error" in self.poison:
            raise ValueError("this candidate cannot be built")
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(units, activation="relu")(x)
        if kind == "nan" and "nan" in self.poison:
            x = keras.layers.Lambda(lambda t: t * np.float32("nan"))(x)
        outputs = keras.layers.Dense(3, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def toy_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def toy_search(tmp_path, **kwargs):
    settings = dict(space=ToySpace(), strategy="random", max_trials=4, epochs=1, seed=0,
                    directory=tmp_path, project_name="toy", verbose=0, final_model="checkpoint")
    settings.update(kwargs)
    return keras_nas.Search(**settings)


@pytest.mark.slow
def test_failing_candidates_fail_their_trial_not_the_search(tmp_path):
    x, y = toy_data()
    s = toy_search(tmp_path, space=ToySpace(poison=("build_error", "nan")), max_trials=12,
                   max_consecutive_failed_trials=12)
    s.fit(x, y)
    by_kind = {}
    for t in s.trials:
        by_kind.setdefault(t["hyperparameters"]["kind"], []).append(t)
    assert by_kind.get("ok"), "the seed should propose some healthy candidates"
    assert all(t["status"] == "COMPLETED" for t in by_kind["ok"])
    for t in by_kind.get("build_error", []):
        assert t["status"] == "FAILED" and "cannot be built" in t["error"]
    for t in by_kind.get("nan", []):
        assert t["status"] in ("FAILED", "INVALID") and t["error"]
    saved = json.loads(open(s.summary_path).read())
    assert [t["status"] for t in saved["trials"]] == [t["status"] for t in s.trials]
    assert s.best_model is not None


def test_a_search_whose_every_candidate_fails_stops_with_the_first_failure(tmp_path):
    class Broken(keras_tuner.HyperModel):
        def build(self, hp):
            hp.Int("n", 0, 1000)
            raise RuntimeError(f"broken candidate {hp.get('n')}")

    x, y = toy_data()
    s = toy_search(tmp_path, space=Broken(), max_trials=10, max_consecutive_failed_trials=3)
    with pytest.raises(SearchFailedError, match=r"3 trials in a row failed.*first failure was "
                                                r"trial 0+: RuntimeError: broken candidate"):
        s.fit(x, y)
    saved = json.loads(open(s.summary_path).read())
    assert [t["status"] for t in saved["trials"]] == ["FAILED"] * 3


def test_max_time_starts_no_trial_after_the_deadline(tmp_path):
    x, y = toy_data()
    s = toy_search(tmp_path, max_trials=50, max_time=0.5)
    s.fit(x, y)
    assert 1 <= len(s.trials) < 50
    assert s.best_model is not None


@pytest.mark.parametrize("strategy",
                         ["random", "bayesian", "hyperband", "reinforce", "evolution", "gp"])
@pytest.mark.slow
def test_a_seed_makes_the_proposed_sequence_reproducible(strategy, tmp_path):
    if strategy not in keras_nas.oracles.STRATEGIES:
        pytest.skip(f"{strategy} is not registered")
    x, y = toy_data()
    runs = []
    for name in ("a", "b"):
        # Bayesian optimization (and gp) leave their random start after 2 trials, so their
        # model is used.
        kwargs = {"bayesian": {"num_initial_points": 2},
                  "gp": {"initial_samples": 2}}.get(strategy)
        s = toy_search(tmp_path, strategy=strategy, project_name=name, max_trials=4, epochs=1,
                       seed=7, strategy_kwargs=kwargs)
        s.fit(x, y)
        runs.append([(t["hyperparameters"]["units"], t["hyperparameters"]["kind"])
                     for t in s.trials])
    assert runs[0] == runs[1]


SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras_nas
    from keras_nas import data
    (x, y), _ = data.load_digits()
    s = keras_nas.Search(space="cell", strategy=sys.argv[2], max_trials=3, epochs=3, seed=3,
                         directory=sys.argv[1], project_name="crash", final_model="checkpoint", verbose=0,
                         space_kwargs=dict(channels=4, cells_per_stage=1))
    s.fit(x[:400], y[:400], validation_data=(x[400:500], y[400:500]))
    print("DONE", len(s.trials))
""")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random"])
def test_sigkill_mid_trial_then_the_same_command_resumes(strategy, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    command = [sys.executable, str(script), str(tmp_path), strategy]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    project = tmp_path / "crash"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait for one completed trial and the next one to start, then kill it mid-trial.
        deadline = time.time() + 400
        while time.time() < deadline:
            summary = project / "summary.json"
            if summary.exists() and (project / "trial_1").exists():
                done = json.loads(summary.read_text())["trials"]
                if any(t["status"] == "COMPLETED" for t in done):
                    break
            if proc.poll() is not None:
                pytest.fail("the search ended before it could be killed: "
                            + proc.stderr.read().decode()[-2000:])
            time.sleep(0.2)
        else:
            pytest.fail("no trial completed in time")
        before = json.loads((project / "summary.json").read_text())["trials"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    completed = {t["trial_id"]: t for t in before if t["status"] == "COMPLETED"}
    assert completed

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DONE 3" in result.stdout
    after = {t["trial_id"]: t for t in json.loads((project / "summary.json").read_text())["trials"]}
    assert len(after) == 3 and all(t["status"] == "COMPLETED" for t in after.values())
    for trial_id, t in completed.items():  # kept, not rerun
        assert after[trial_id]["architecture"] == t["architecture"]
        assert after[trial_id]["started"] == t["started"]
