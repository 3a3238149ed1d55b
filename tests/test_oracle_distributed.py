"""ReinforceOracle in KerasTuner's distributed mode: a chief and two workers on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    import keras
    import keras_tuner
    import numpy as np
    from keras_nas.oracles import ReinforceOracle

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(hp.Choice("units", [2, 4, 8]), activation=hp.Choice("act", ["relu", "tanh"])),
            keras.layers.Dense(2, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(hp.Choice("lr", [0.01, 0.1])),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    class Tiny(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            model = self.hypermodel.build(trial.hyperparameters)
            history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
            with open(os.path.join({out!r}, os.environ["KERASTUNER_TUNER_ID"] + ".log"), "a") as f:
                f.write(trial.trial_id + "\\n")
            return {{"val_accuracy": history.history["val_accuracy"][-1]}}

    oracle = ReinforceOracle(objective=keras_tuner.Objective("val_accuracy", "max"),
                             max_trials={max_trials}, seed=1, units=8)
    tuner = Tiny(oracle=oracle, hypermodel=build, directory={out!r}, project_name="dist")
    tuner.search(verbose=0)
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_finish_every_trial(tmp_path):
    max_trials = 5
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), out=str(tmp_path), max_trials=max_trials))
    port = free_port()
    procs = {}
    for tuner_id in ["chief", "tuner0", "tuner1"]:
        env = dict(os.environ)
        env.update(
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
        )
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, str(script)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    try:
        for tuner_id in ["tuner0", "tuner1"]:
            out, _ = procs[tuner_id].communicate(timeout=150)
            assert procs[tuner_id].returncode == 0, out[-3000:]
        # The chief saved its state at the last end_trial; it may sleep 20 s before leaving.
        try:
            procs["chief"].wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    ran = {}
    for tuner_id in ["tuner0", "tuner1"]:
        log = tmp_path / f"{tuner_id}.log"
        ran[tuner_id] = log.read_text().split() if log.exists() else []
    all_ran = ran["tuner0"] + ran["tuner1"]
    # Every trial ran exactly once, on one of the workers, and both workers took part.
    assert sorted(all_ran) == sorted(set(all_ran)) and len(all_ran) == max_trials
    assert ran["tuner0"] and ran["tuner1"]
    # The chief's oracle recorded every trial as completed and learned from each once.
    trials = [json.loads(p.read_text()) for p in (tmp_path / "dist").glob("trial_*/trial.json")]
    assert sorted(t["trial_id"] for t in trials) == sorted(all_ran)
    assert all(t["status"] == "COMPLETED" for t in trials)
    state = json.loads((tmp_path / "dist" / "oracle.json").read_text())
    assert sorted(state["reinforce"]["learned"]) == sorted(all_ran)
    assert state["reinforce"]["updates"] == max_trials
    assert state["reinforce"]["controller"]["signature"] == [["units", 3], ["act", 2], ["lr", 2]]
