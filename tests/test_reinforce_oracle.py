import json
import math

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas.oracles import ReinforceOracle
from keras_nas.oracles import make_oracle
from keras_nas.oracles.controller import LSTMController
from keras_nas.oracles.decisions import decision_options


def toy_space(n=5, k=4):
    hp = keras_tuner.HyperParameters()
    for i in range(n):
        hp.Choice(f"d{i}", [f"op{j}" for j in range(k)])
    return hp


def run(oracle, reward, n, tuner_id="t0"):
    """Drives an oracle like a Tuner does; returns the values of each trial."""
    out = []
    for _ in range(n):
        trial = oracle.create_trial(tuner_id)
        if trial.status != "RUNNING":
            break
        values = dict(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"score": reward(values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        out.append(values)
    return out


def new_oracle(tmp_path, name="p", **kwargs):
    kwargs.setdefault("objective", keras_tuner.Objective("score", "max"))
    kwargs.setdefault("hyperparameters", toy_space())
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("units", 8)
    oracle = ReinforceOracle(**kwargs)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def matches(values):
    return sum(values[f"d{i}"] == "op2" for i in range(5)) / 5


BEST = {f"d{i}": "op2" for i in range(5)}


@pytest.mark.slow
def test_learns_the_best_of_a_toy_space(tmp_path):
    oracle = new_oracle(tmp_path, max_trials=60, learning_rate=0.05)
    p0 = oracle.probability(BEST)
    tried = run(oracle, matches, 60)
    assert len(tried) == 60
    # Every proposal is a new architecture.
    assert len({json.dumps(v, sort_keys=True) for v in tried}) == 60
    # The best of 4**5 = 1024 architectures is found, and the policy now favours it.
    assert BEST in tried
    assert oracle.probability(BEST) > 20 * p0
    assert oracle.updates == 60
    # Later trials are better than the first ones: the policy learned.
    assert np.mean([matches(v) for v in tried[-20:]]) > np.mean([matches(v) for v in tried[:20]])
    # One history record per update, in the documented format, showing the same learning.
    history = oracle.controller_history
    assert [h["step"] for h in history] == list(range(60))
    assert history[0]["reward"] == matches(tried[0])
    assert all(set(h) == {"step", "reward", "baseline", "entropy", "probabilities"} for h in history)
    for h in (history[0], history[-1]):
        assert sorted(h["probabilities"]) == [f"d{i}" for i in range(5)]
        for dist in h["probabilities"].values():
            assert sorted(dist) == ["op0", "op1", "op2", "op3"]
            assert abs(sum(dist.values()) - 1) < 1e-6
    assert abs(history[0]["entropy"] - 5 * math.log(4)) < 0.05  # near-uniform at first
    assert history[-1]["entropy"] < history[0]["entropy"]
    assert history[-1]["probabilities"]["d0"]["op2"] > history[0]["probabilities"]["d0"]["op2"]
    # The first decision's record is its exact distribution under the policy.
    first = oracle.controller.probabilities([(0, 2)])[0]
    assert abs(history[-1]["probabilities"]["d0"]["op2"] - first) < 1e-6
    assert oracle.get_state()["reinforce"]["history"] == history


@pytest.mark.slow
def test_minimized_objective_and_reward_fn(tmp_path):
    # Minimizing 1 - matches must learn the same thing as maximizing matches.
    oracle = new_oracle(
        tmp_path, "min", objective=keras_tuner.Objective("score", "min"), max_trials=40
    )
    tried = run(oracle, lambda v: 1 - matches(v), 40)
    assert np.mean([matches(v) for v in tried[-15:]]) > np.mean([matches(v) for v in tried[:15]])
    # A reward function replaces the objective (here it rewards op0 instead).
    oracle = new_oracle(
        tmp_path, "fn", max_trials=40,
        reward_fn=lambda t: sum(v == "op0" for v in t.hyperparameters.values.values()),
    )
    tried = run(oracle, matches, 40)
    count = [sum(v == "op0" for v in t.values()) for t in tried]
    assert np.mean(count[-15:]) > np.mean(count[:15])


@pytest.mark.slow
def test_state_is_json_and_reload_continues_the_same_policy(tmp_path):
    a = new_oracle(tmp_path, "resume", max_trials=20, batch_size=2)
    run(a, matches, 5)  # 4 learned, one pending in the batch
    state = a.get_state()
    text = json.dumps(state)  # plain JSON: no numpy types
    assert json.loads(text)["reinforce"]["pending"] == a._pending
    assert len(a.learned_trial_ids) == 4 and len(a._pending) == 1

    b = new_oracle(tmp_path, "resume", max_trials=20, batch_size=2, seed=99)
    b.reload()
    assert b.learned_trial_ids == a.learned_trial_ids
    assert b._pending == a._pending
    assert len(a.controller_history) == 2 and b.controller_history == a.controller_history
    assert b.baseline == a.baseline
    for wa, wb in zip(a.controller.get_weights(), b.controller.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    for va, vb in zip(a._optimizer.variables, b._optimizer.variables):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    # Both continue identically: same proposals, same updates.
    ta = run(a, matches, 4)
    tb = run(b, matches, 4)
    assert ta == tb
    for wa, wb in zip(a.controller.get_weights(), b.controller.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    # Every trial was learned exactly once.
    assert b.learned_trial_ids == sorted(b.trials)[: len(b.learned_trial_ids)]
    assert len(b.learned_trial_ids) + len(b._pending) == 9
    assert b.updates == a.updates == 4
    assert b.controller_history == a.controller_history


@pytest.mark.slow
def test_history_is_capped_and_normalized_advantage_is_scale_free(tmp_path):
    oracle = new_oracle(tmp_path, "cap", max_trials=8, advantage="normalized")
    oracle.HISTORY_LENGTH = 3
    tried = run(oracle, matches, 8)
    assert [h["step"] for h in oracle.controller_history] == [5, 6, 7]
    # Normalized advantages ignore the reward's scale and offset: the same proposals.
    scaled = new_oracle(tmp_path, "scaled", max_trials=8, advantage="normalized")
    assert run(scaled, lambda v: 1000 * matches(v) - 7, 8) == tried
    # Plain advantages grow with the reward's scale; normalized ones do not.
    rewards = [[0.2], [0.6], [0.4], [0.8]]
    for kind, ratio in [("baseline", 1000.0), ("normalized", 1.0)]:
        a = new_oracle(tmp_path, kind, advantage=kind)
        b = new_oracle(tmp_path, kind + "_x", advantage=kind)
        for r in rewards:
            _, adv_a = a._advantages(r)
            _, adv_b = b._advantages([1000 * x + 5 for x in r])
        assert adv_a[0] != 0 and abs(adv_b[0] / adv_a[0] - ratio) < 1e-6 * ratio


def test_replay_of_the_best_trials_pulls_the_policy(tmp_path):
    # Equal rewards: REINFORCE has no signal (every advantage is 0), so without replay and
    # without entropy the controller does not move; with replay it moves toward the elite
    # (ties go to the earliest trial).
    kwargs = dict(max_trials=8, entropy_weight=0.0)
    plain = new_oracle(tmp_path, "plain", replay_best=0, **kwargs)
    before = plain.controller.get_weights()
    run(plain, lambda v: 1.0, 8)
    for a, b in zip(before, plain.controller.get_weights()):
        np.testing.assert_array_equal(a, b)
    replay = new_oracle(tmp_path, "replay", replay_best=1, replay_weight=1.0, **kwargs)
    tried = run(replay, lambda v: 1.0, 8)
    assert replay.updates == 8
    assert replay.probability(tried[0]) > 3 * plain.probability(tried[0])


def test_trial_completed_after_last_save_is_learned_once(tmp_path):
    a = new_oracle(tmp_path, "crash", max_trials=10)
    run(a, matches, 3)
    saved = a.get_state()
    run(a, matches, 1)  # completed, but suppose the oracle file was not written
    a.save = lambda: None
    b = new_oracle(tmp_path, "crash", max_trials=10)
    # Trials come from their own files, the oracle state from before the 4th trial.
    for tid in a.trials:
        b.trials[tid] = keras_tuner.engine.trial.Trial.load(
            str(tmp_path / "crash" / f"trial_{tid}" / "trial.json")
        )
    b.set_state(saved)
    assert b.learned_trial_ids == sorted(a.trials)[:3]
    assert b._pending == [sorted(a.trials)[3]]
    run(b, matches, 1)
    assert b.learned_trial_ids == sorted(b.trials)
    assert len(b.learned_trial_ids) == len(set(b.learned_trial_ids)) == 5


class RaisingTuner(keras_tuner.Tuner):
    """A Tuner whose trials raise (odd trials) or report NaN (when asked)."""

    def __init__(self, *args, behaviour="raise", **kwargs):
        self.behaviour = behaviour
        self.calls = 0
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        self.calls += 1
        if self.behaviour == "raise":
            raise RuntimeError("this trial breaks")
        return {"score": math.nan}


def test_trial_that_raises_is_retried_then_failed(tmp_path):
    oracle = new_oracle(tmp_path, "raise", max_trials=1, max_retries_per_trial=2)
    tuner = RaisingTuner(
        oracle=oracle, hypermodel=lambda hp: None, directory=str(tmp_path), project_name="raise"
    )
    tuner.search(verbose=0)
    assert tuner.calls == 3  # first run + 2 retries
    (trial,) = oracle.trials.values()
    assert trial.status == "FAILED"
    assert "this trial breaks" in trial.message
    assert oracle.learned_trial_ids == [] and oracle.updates == 0


def test_nan_score_is_invalid_retried_and_not_learned(tmp_path):
    oracle = new_oracle(tmp_path, "nan", max_trials=3, max_retries_per_trial=1)
    trial = oracle.create_trial("t0")
    oracle.update_trial(trial.trial_id, {"score": math.nan})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert oracle.trials[trial.trial_id].status == "INVALID"
    again = oracle.create_trial("t0")  # the retry
    assert again.trial_id == trial.trial_id
    oracle.update_trial(again.trial_id, {"score": math.nan})
    again.status = "COMPLETED"
    oracle.end_trial(again)
    assert oracle.trials[trial.trial_id].status == "FAILED"
    assert oracle.learned_trial_ids == [] and oracle._pending == []
    assert oracle.baseline is None


@pytest.mark.slow
def test_conditional_int_and_float_decisions(tmp_path):
    hp = keras_tuner.HyperParameters()
    kind = hp.Choice("kind", ["mlp", "conv"])
    with hp.conditional_scope("kind", ["conv"]):
        hp.Int("filters", 8, 64, step=8)
    with hp.conditional_scope("kind", ["mlp"]):
        hp.Boolean("wide")
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Fixed("epochs", 3)
    del kind
    oracle = new_oracle(tmp_path, "cond", hyperparameters=hp, num_bins=4, max_trials=30)
    lr_options = decision_options(hp._hps["lr"][0], 4)
    assert len(lr_options) == 4 and lr_options[0] < lr_options[-1]
    filters = decision_options(hp._hps["filters"][0], 4)  # 8 grid values cut into 4 bins
    assert len(filters) == 4 and all(f % 8 == 0 and 8 <= f <= 64 for f in filters)

    def reward(values):
        return float(values["kind"] == "conv") + values.get("filters", 0) / 64

    p_conv = oracle.probability({"kind": "conv"})
    tried = run(oracle, reward, 24)
    assert len(tried) == 24  # all 4 * 4 + 2 * 4 binned combinations, each once
    for v in tried:
        assert ("filters" in v) == (v["kind"] == "conv")
        assert ("wide" in v) == (v["kind"] == "mlp")
        assert v["lr"] in lr_options and v["epochs"] == 3
        if "filters" in v:
            assert v["filters"] in decision_options(hp._hps["filters"][0], 4)
    # Only the active decisions are learned: kind, one of filters / wide, lr (epochs is fixed).
    for v in tried[:5]:
        names = [oracle._decisions[d][0].name for d, _ in oracle.sequence_of(v)]
        assert names == [n for n in ["kind", "filters", "wide", "lr"] if n in v]
    # The controller learned to prefer the rewarded branch.
    assert oracle.probability({"kind": "conv"}) > p_conv + 0.1
    # `lr` and `filters` have more values than bins: the search goes on inside the bins.
    more = run(oracle, reward, 10)
    assert len(more) == 6 and not any(v in tried for v in more)  # up to max_trials
    assert all(1e-4 <= v["lr"] <= 1e-1 and v.get("filters", 8) % 8 == 0 for v in more)


def test_numpy_sampling_matches_keras_controller():
    controller = LSTMController([3, 5, 2], units=8, seed=1, tanh_constant=2.5, temperature=1.5)
    policy = controller.numpy_policy()
    state_k, state_n = controller.initial_state(), policy.initial_state()
    previous = None
    for d, o in [(0, 2), (1, 4), (2, 1)]:
        logits_k, state_k = controller.step(previous, d, state_k)
        logits_n, state_n = policy.step(previous, d, state_n)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(logits_k), logits_n, atol=1e-5)
        previous = (d, o)
    config = controller.get_config()
    assert config["num_options"] == [3, 5, 2] and config["tanh_constant"] == 2.5


def test_bad_arguments_and_registry():
    with pytest.raises(ValueError, match="learning_rate"):
        ReinforceOracle(objective="val_accuracy", learning_rate=0)
    with pytest.raises(ValueError, match="batch_size"):
        ReinforceOracle(objective="val_accuracy", batch_size=0)
    with pytest.raises(TypeError, match="reward_fn"):
        ReinforceOracle(objective="val_accuracy", reward_fn=3)
    with pytest.raises(ValueError, match="num_bins"):
        ReinforceOracle(objective="val_accuracy", num_bins=1)
    with pytest.raises(ValueError, match="advantage"):
        ReinforceOracle(objective="val_accuracy", advantage="rank")
    with pytest.raises(ValueError, match="replay_best"):
        ReinforceOracle(objective="val_accuracy", replay_best=-1)
    with pytest.raises(ValueError, match="replay_weight"):
        ReinforceOracle(objective="val_accuracy", replay_weight=-0.5)
    with pytest.raises(ValueError, match="proxy_starts"):
        ReinforceOracle(objective="val_accuracy", proxy_starts=-1)
    with pytest.raises(ValueError, match="proxy_samples"):
        ReinforceOracle(objective="val_accuracy", proxy_samples=0)
    with pytest.raises(ValueError, match="`proxy`"):
        ReinforceOracle(objective="val_accuracy", proxy="accuracy")
    oracle = make_oracle("reinforce", objective="val_accuracy", max_trials=5, epochs=1, seed=0)
    assert isinstance(oracle, ReinforceOracle) and oracle.max_trials == 5 and oracle.seed == 0


@pytest.mark.slow
def test_real_tiny_search_with_reinforce_on_digits(tmp_path):
    import keras_nas
    from keras_nas import data

    (x, y), _ = data.load_digits()
    # 200 samples, 2 trials of 1 epoch, no retraining: the real search, kept tiny.
    model = keras_nas.search(
        x[:150], y[:150], validation_data=(x[150:200], y[150:200]), space="cell",
        strategy="reinforce", strategy_kwargs={"units": 8}, max_trials=2, epochs=1, seed=2,
        space_kwargs={"channels": 4, "cells_per_stage": 1}, directory=tmp_path,
        project_name="rl", verbose=0, final_model="checkpoint",
    )
    assert isinstance(model, keras.Model)
    summary = json.loads((tmp_path / "rl" / "summary.json").read_text())
    assert summary["strategy"] == "reinforce" and summary["best_architecture"].startswith("|")
    assert [t["status"] for t in summary["trials"]] == ["COMPLETED"] * 2
    assert len({t["architecture"] for t in summary["trials"]}) == 2
    state = json.loads((tmp_path / "rl" / "oracle.json").read_text())
    assert state["reinforce"]["updates"] == 2
    # The controller's history reaches the summary (one record per update).
    history = summary["controller_history"]
    assert [h["step"] for h in history] == [0, 1]
    names = set(summary["trials"][0]["hyperparameters"])
    edges = {n for n in names if n.startswith("edge_")}
    assert len(edges) == 6 and edges <= set(history[0]["probabilities"]) <= names


@pytest.mark.parametrize("outcome", ["failed", "nan", "pending"])
def test_reload_after_the_space_grew_in_an_unlearned_trial(tmp_path, outcome):
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["mlp", "conv"])
    kwargs = dict(hyperparameters=hp, max_trials=10, batch_size=2 if outcome == "pending" else 1)
    a = new_oracle(tmp_path, outcome, **kwargs)
    trial = a.create_trial("t0")
    # The hypermodel's build declares new hyperparameters, then the trial is not learned.
    trial.hyperparameters.Choice("act", ["relu", "tanh", "gelu"])
    with trial.hyperparameters.conditional_scope("kind", ["conv"]):
        trial.hyperparameters.Int("filters", 8, 64, step=8)
    if outcome == "failed":
        trial.status = "FAILED"
    else:
        a.update_trial(trial.trial_id, {"score": math.nan if outcome == "nan" else 0.5})
        trial.status = "COMPLETED"
    a.end_trial(trial)
    assert a.updates == 0 and "act" in a.hyperparameters
    assert a.get_state()["reinforce"]["controller"]["signature"] == [["kind", 2]]

    b = new_oracle(tmp_path, outcome, seed=99, **kwargs)
    b.reload()

    def reward(values):
        return float(values["kind"] == "conv") + values.get("filters", 0) / 64

    ta, tb = run(a, reward, 5), run(b, reward, 5)
    assert ta == tb and all("act" in v for v in tb)
    assert b.controller.names == ["kind", "act", "filters"]
    for wa, wb in zip(a.controller.get_weights(), b.controller.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    assert b.updates == a.updates > 0


def test_int_range_is_searched_past_its_bins(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Int("n", 0, 1000)
    oracle = new_oracle(tmp_path, "int", hyperparameters=hp, max_trials=30)
    tried = run(oracle, lambda v: v["n"] / 1000, 30)
    assert len(tried) == len({v["n"] for v in tried}) == 30
    # First every bin (both ends of the range included), then values inside the bins.
    assert sorted(v["n"] for v in tried[:10]) == decision_options(hp._hps["n"][0], 10)
    assert decision_options(hp._hps["n"][0], 10)[::9] == [0, 1000]
    assert oracle.updates == 30


def test_with_a_proxy_a_trial_is_the_best_scored_of_several_samples(tmp_path):
    def proxy(values):  # higher ops score higher
        return float(sum(int(v[2:]) for v in values.values()))

    oracle = new_oracle(tmp_path, proxy=proxy, proxy_starts=2, proxy_samples=4)
    drawn = []
    untried_sample = oracle._untried_sample
    oracle._untried_sample = lambda: drawn.append(untried_sample()) or drawn[-1]
    tried = run(oracle, matches, 8)
    assert len(drawn) == 6 * 4  # four samples for each trial after the two starts
    for k, values in enumerate(tried[2:]):
        assert values in drawn[4 * k: 4 * k + 4]
        assert proxy(values) == max(proxy(v) for v in drawn[4 * k: 4 * k + 4])
    assert oracle.updates == 8  # it learns from every trial, the starts included
