import json
import math

import keras_tuner
import pytest

from keras_nas.oracles import EvolutionOracle
from keras_nas.oracles import make_oracle
from tests.oracle_driver import matches, run, toy_space


def new_oracle(tmp_path, name="p", **kwargs):
    kwargs.setdefault("objective", keras_tuner.Objective("score", "max"))
    kwargs.setdefault("hyperparameters", toy_space())
    kwargs.setdefault("seed", 5)
    kwargs.setdefault("max_trials", 100)
    oracle = EvolutionOracle(**kwargs)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def differences(a, b):
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def test_random_start_then_one_decision_mutations_and_aging(tmp_path):
    oracle = new_oracle(tmp_path, population_size=8, sample_size=3)
    tried = run(oracle, matches, 40)
    ids = [tid for tid, _ in tried]
    assert all(oracle._origin[tid] is None for tid in ids[:8])
    for tid, values in tried[8:]:
        parent = oracle._origin[tid]
        assert parent is not None and parent in ids
        # A child differs from its parent (one decision, more only when that repeated).
        assert differences(values, oracle.trials[parent].hyperparameters.values) >= 1
    one_step = sum(
        differences(v, oracle.trials[oracle._origin[t]].hyperparameters.values) == 1
        for t, v in tried[8:]
    )
    assert one_step >= 0.8 * len(tried[8:])
    # Aging: the population is exactly the 8 most recent trials.
    assert oracle.population == ids[-8:]
    assert len({json.dumps(v, sort_keys=True) for _, v in tried}) == 40


def test_tournament_takes_the_best_of_the_sample(tmp_path):
    oracle = new_oracle(tmp_path, population_size=6, sample_size=6)
    run(oracle, matches, 6)
    best = max(oracle.population, key=lambda t: oracle._rewards[t])
    for _ in range(5):
        assert oracle._select_parent() == best


def test_finds_the_best_of_a_toy_space(tmp_path):
    oracle = new_oracle(tmp_path, population_size=10, sample_size=4)
    tried = run(oracle, matches, 100)
    assert max(matches(v) for _, v in tried) == 1.0
    late = [matches(v) for _, v in tried[-20:]]
    early = [matches(v) for _, v in tried[:10]]
    assert sum(late) / len(late) > sum(early) / len(early)


def test_minimized_objective(tmp_path):
    oracle = new_oracle(
        tmp_path, "min", objective=keras_tuner.Objective("score", "min"),
        population_size=10, sample_size=4,
    )
    tried = run(oracle, lambda v: 1 - matches(v), 100)
    assert max(matches(v) for _, v in tried) == 1.0


def test_state_is_json_and_reload_continues_identically(tmp_path):
    a = new_oracle(tmp_path, "resume", population_size=6, sample_size=3)
    run(a, matches, 10)
    json.dumps(a.get_state())
    b = new_oracle(tmp_path, "resume", population_size=6, sample_size=3, seed=77)
    b.reload()
    assert b.population == a.population and b._rewards == a._rewards
    ta, tb = run(a, matches, 10), run(b, matches, 10)
    assert ta == tb
    assert b.population == a.population
    # Each trial joined once.
    assert sorted(b._rewards) == sorted(b.trials)


def test_failed_and_nan_trials_never_join(tmp_path):
    oracle = new_oracle(tmp_path, "nan", population_size=4, sample_size=2, max_retries_per_trial=1)
    trial = oracle.create_trial("t0")
    for _ in range(2):  # first run and its retry both report NaN
        oracle.update_trial(trial.trial_id, {"score": math.nan})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        if oracle.trials[trial.trial_id].status == "INVALID":
            trial = oracle.create_trial("t0")
    assert oracle.trials[trial.trial_id].status == "FAILED"
    failed = oracle.create_trial("t0")
    failed.status = "FAILED"
    oracle.end_trial(failed)
    assert oracle.population == []
    run(oracle, matches, 3)
    assert len(oracle.population) == 3 and trial.trial_id not in oracle.population


def test_conditional_mutation_keeps_only_active_values(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["mlp", "conv"])
    with hp.conditional_scope("kind", ["conv"]):
        hp.Int("filters", 8, 32, step=8)
    with hp.conditional_scope("kind", ["mlp"]):
        hp.Int("units", 16, 64, step=16)
    oracle = new_oracle(tmp_path, "cond", hyperparameters=hp, population_size=2, sample_size=1)
    for _ in range(30):
        child = oracle.mutate({"kind": "mlp", "units": 32})
        assert ("filters" in child) == (child["kind"] == "conv")
        assert ("units" in child) == (child["kind"] == "mlp")
        if child["kind"] == "mlp":
            assert child["units"] != 32
    tried = run(oracle, lambda v: v.get("filters", 0), 8)
    assert len({json.dumps(v, sort_keys=True) for _, v in tried}) == 8


def test_bad_arguments_and_registry():
    with pytest.raises(ValueError, match="population_size"):
        EvolutionOracle(objective="val_accuracy", population_size=0)
    with pytest.raises(ValueError, match="sample_size"):
        EvolutionOracle(objective="val_accuracy", population_size=4, sample_size=5)
    with pytest.raises(TypeError, match="seed"):
        EvolutionOracle(objective="val_accuracy", seed="x")
    with pytest.raises(TypeError, match="popsize"):  # a misspelt option is not swallowed
        EvolutionOracle(objective="val_accuracy", popsize=4)
    oracle = make_oracle("evolution", objective="val_accuracy", max_trials=100, epochs=1, seed=1)
    assert isinstance(oracle, EvolutionOracle)
    assert oracle.sample_size <= oracle.population_size


def test_stops_once_every_combination_was_tried(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Boolean("a")
    hp.Boolean("b")
    oracle = new_oracle(
        tmp_path, "two", hyperparameters=hp, max_trials=None, population_size=4, sample_size=2
    )
    tried = run(oracle, lambda v: float(v["a"]) + float(v["b"]), 200)
    assert len(tried) == len({json.dumps(v, sort_keys=True) for _, v in tried}) == 4
    assert oracle.create_trial("t1").status == "STOPPED"


def test_mutation_goes_on_inside_the_bins_of_a_large_range(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["a", "b"])
    hp.Int("n", 0, 1000)
    oracle = new_oracle(
        tmp_path, "bins", hyperparameters=hp, num_bins=4, population_size=4, sample_size=2
    )
    tried = run(oracle, lambda v: v["n"] / 1000 + (v["op"] == "a"), 40)
    # 2 * 4 binned combinations, yet 40 different trials, every one after the random start a
    # child of its parent (mutated, then redrawn inside its bins).
    assert len(tried) == len({json.dumps(v, sort_keys=True) for _, v in tried}) == 40
    assert all(oracle._origin[tid] is not None for tid, _ in tried[4:])
    assert all(0 <= v["n"] <= 1000 for _, v in tried)


def test_with_a_proxy_a_child_is_the_parents_best_scored_untried_neighbour(tmp_path):
    def proxy(values):  # higher ops score higher
        return float(sum(int(v[2:]) for v in values.values()))

    oracle = new_oracle(tmp_path, population_size=4, sample_size=2, proxy=proxy, proxy_pool=10)
    tried = []
    for _ in range(30):
        before = {json.dumps(v, sort_keys=True) for _, v in tried}
        (tid, values), = run(oracle, matches, 1)
        tried.append((tid, values))
        parent = oracle._origin[tid]
        if parent is None:
            continue
        parent_values = oracle.trials[parent].hyperparameters.values
        neighbours = [dict(parent_values, **{name: f"op{j}"}) for name in parent_values
                      for j in range(4) if parent_values[name] != f"op{j}"]  # toy_space's ops
        untried = [v for v in neighbours if json.dumps(v, sort_keys=True) not in before]
        assert untried and proxy(values) == max(proxy(v) for v in untried)
    assert sum(oracle._origin[tid] is not None for tid, _ in tried) == 26
