import math
import random

import pytest

from keras_nas.results import objectives as O


def test_mnasnet_soft_and_hard():
    assert O.mnasnet_reward(0.75, 80.0, 75.0) == pytest.approx(0.75 * (80 / 75) ** -0.07)
    assert O.mnasnet_reward(0.75, 50.0, 75.0) == pytest.approx(0.75 * (50 / 75) ** -0.07)
    # Soft: a faster model at equal accuracy scores higher, smoothly across the target.
    assert O.mnasnet_reward(0.8, 4.0, 5.0) > O.mnasnet_reward(0.8, 6.0, 5.0)
    # Hard: no bonus below the target, proportional penalty above it.
    assert O.mnasnet_hard_reward(0.8, 4.0, 5.0) == pytest.approx(0.8)
    assert O.mnasnet_hard_reward(0.8, 10.0, 5.0) == pytest.approx(0.4)


def test_tunas_and_hard_constraint():
    assert O.tunas_reward(0.8, 5.0, 5.0) == pytest.approx(0.8)
    assert O.tunas_reward(0.8, 6.0, 5.0) == pytest.approx(0.8 - 0.07 * 0.2)
    assert O.tunas_reward(0.8, 4.0, 5.0) == pytest.approx(0.8 - 0.07 * 0.2)  # absolute
    assert O.hard_constraint_reward(0.9, 5.0, 5.0) == 0.9
    assert O.hard_constraint_reward(0.9, 6.0, 5.0) == pytest.approx(-1.2)
    assert O.hard_constraint_reward(0.01, 5.0, 5.0) > O.hard_constraint_reward(0.99, 5.01, 5.0)


def test_objective_objects_read_metric_dicts():
    trial = {"trial_id": "3", "status": "COMPLETED", "params": 1200,
             "metrics": {"val_accuracy": 0.8, "latency_ms": 10.0}}
    assert O.make_objective("mnasnet_hard", target=5.0)(trial) == pytest.approx(0.4)
    soft = O.make_objective("mnasnet", target=5.0)
    assert soft(trial) == pytest.approx(0.8 * 2 ** -0.07)
    assert soft.name == "mnasnet_reward" and soft.direction == "max"
    assert soft.keras_tuner_objective().name == "mnasnet_reward"
    tunas = O.make_objective("tunas", target=5.0, beta=-0.5)
    assert tunas({"val_accuracy": 0.8, "latency_ms": 10.0}) == pytest.approx(0.3)
    hard = O.make_objective("hard", target=5.0, latency_metric="params")
    assert hard(trial) == pytest.approx(-1200 / 5.0)
    assert not hard.feasible(trial)
    assert O.make_objective("hard", 11.0).feasible(trial)
    assert O.make_objective(soft, 1.0) is soft
    assert soft.get_config() == {"target": 5.0, "metric": "val_accuracy",
                                 "latency_metric": "latency_ms", "w": -0.07, "hard": False}
    with pytest.raises(ValueError, match="latency_ms"):
        soft({"val_accuracy": 0.9})


def test_feasible():
    m = {"latency_ms": 4.0, "params": 900}
    assert O.feasible(m, {"latency_ms": 5.0, "params": 1000})
    assert not O.feasible(m, {"latency_ms": 3.0})
    assert not O.feasible(m, {"flops": 10})  # missing metric


def test_bad_input():
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="target"):
            O.mnasnet_reward(0.9, 1.0, bad)
    for bad in ("5", True):
        with pytest.raises(TypeError, match="target"):
            O.mnasnet_reward(0.9, 1.0, bad)
    with pytest.raises(ValueError, match="target"):
        O.make_objective("tunas", target=0)
    with pytest.raises(ValueError, match="latency"):
        O.tunas_reward(0.9, -1.0, 5.0)
    with pytest.raises(ValueError, match="objective"):
        O.make_objective("fastest", 5.0)
    with pytest.raises(ValueError, match="beta"):
        O.TuNASReward(5.0, beta=0.1)
    with pytest.raises(ValueError, match="'min' or 'max'"):
        O.pareto_front([], {"val_accuracy": "up"})
    with pytest.raises(TypeError, match="objectives"):
        O.pareto_front([], ["val_accuracy"])


def _brute_ranks(points):
    remaining = set(range(len(points)))
    ranks = {}
    rank = 0
    while remaining:
        front = {i for i in remaining
                 if not any(all(points[j][k] <= points[i][k] for k in range(2))
                            and points[j] != points[i] for j in remaining)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return [ranks[i] for i in range(len(points))]


def test_non_dominated_ranks_match_brute_force():
    rng = random.Random(0)
    pts = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(60)]
    trials = [{"metrics": {"val_accuracy": -a, "latency_ms": b}} for a, b in pts]
    ranks = O.non_dominated_ranks(trials, {"val_accuracy": "max", "latency_ms": "min"})
    assert ranks == _brute_ranks(pts)


def test_pareto_front_skips_incomplete_and_sorts():
    trials = [
        {"trial_id": "0", "status": "COMPLETED", "params": 10,
         "metrics": {"val_accuracy": 0.9, "latency_ms": 5.0}},
        {"trial_id": "1", "status": "COMPLETED", "params": 5,
         "metrics": {"val_accuracy": 0.8, "latency_ms": 2.0}},
        {"trial_id": "2", "status": "COMPLETED", "params": 20,
         "metrics": {"val_accuracy": 0.7, "latency_ms": 6.0}},  # dominated by 0
        {"trial_id": "3", "status": "FAILED", "params": None,
         "metrics": {"val_accuracy": 0.99, "latency_ms": 1.0}},
        {"trial_id": "4", "status": "COMPLETED", "params": 1,
         "metrics": {"val_accuracy": float("nan"), "latency_ms": 0.5}},
    ]
    front = O.pareto_front(trials)
    assert [t["trial_id"] for t in front] == ["0", "1"]
    ranks = O.non_dominated_ranks(trials, {"val_accuracy": "max", "latency_ms": "min",
                                           "params": "min"})
    assert ranks == [0, 0, 1, None, None]
    # Without accuracy, trial 4 (NaN accuracy, but fastest and smallest) dominates all.
    front2 = O.pareto_front(trials, {"latency_ms": "min", "params": "min"})
    assert [t["trial_id"] for t in front2] == ["4"]
    assert math.isclose(O.metric_value(trials[0], "params"), 10)


def test_only_the_hard_constraint_scores_an_infeasible_trial_without_its_accuracy():
    from keras_nas.results.objectives import HardConstraint, MnasNetReward, TuNASReward

    over, within = {"latency_ms": 6.0}, {"latency_ms": 4.0}
    assert HardConstraint(5.0).infeasible_score(over) == pytest.approx(-1.2)
    assert HardConstraint(5.0).infeasible_score(within) is None
    assert HardConstraint(5.0).infeasible_score({}) is None
    assert HardConstraint(5.0).target_ratio(over) == pytest.approx(1.2)
    assert HardConstraint(5.0).target_ratio({}) is None
    for soft in (MnasNetReward(5.0), MnasNetReward(5.0, hard=True), TuNASReward(5.0)):
        assert soft.infeasible_score(over) is None  # their score weighs the accuracy too
