"""The `keras_tuner.Oracle` contract, for keras-nas' own oracles.

The points KerasTuner's own oracles keep: a trial never repeats the values of an earlier
one (failed trials included), the search stops (`STOPPED`) when a finite space is
exhausted and only then, and a reloaded oracle continues the search.
"""

import json

import keras_tuner
import numpy as np
import pytest

from keras_nas.oracles import EvolutionOracle
from keras_nas.oracles import GPOracle
from keras_nas.oracles import LocalSearchOracle
from keras_nas.oracles import ReinforceOracle
from keras_nas.oracles.decisions import decision_options
from tests import oracle_driver

ORACLES = {
    "evolution": lambda **kw: EvolutionOracle(population_size=4, sample_size=2, **kw),
    "reinforce": lambda **kw: ReinforceOracle(units=8, **kw),
    "local": lambda **kw: LocalSearchOracle(initial_samples=3, **kw),
    "gp": lambda **kw: GPOracle(initial_samples=3, **kw),
}


def new_oracle(kind, tmp_path, hp, name="p", **kwargs):
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("max_trials", None)
    oracle = ORACLES[kind](
        objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, **kwargs
    )
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def drive(oracle, n, score=lambda values: float(len(json.dumps(values))), grow=None):
    """Runs up to `n` trials (`tests.oracle_driver.drive`); returns the values of the trials
    run and the status that ended the run."""
    trials, status = oracle_driver.drive(oracle, score, n, grow=grow)
    return [values for _, values in trials], status


def distinct(tried):
    return len({json.dumps(v, sort_keys=True) for v in tried})


def finite_space():
    """15 combinations: a conditional Int with 3 values or a Boolean, and a Float with 3."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", ["a"]):
        hp.Int("width", 0, 20, step=10)
    with hp.conditional_scope("kind", ["b"]):
        hp.Boolean("flag")
    hp.Float("drop", 0.0, 0.5, step=0.25)
    hp.Fixed("epochs", 2)
    return hp


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ORACLES))
def test_stops_exactly_when_a_finite_space_is_exhausted(kind, tmp_path):
    oracle = new_oracle(kind, tmp_path, finite_space())
    tried, status = drive(oracle, 100)
    assert status == "STOPPED"
    assert len(tried) == distinct(tried) == 15
    assert {v["width"] for v in tried if v["kind"] == "a"} == {0, 10, 20}
    assert {v["drop"] for v in tried} == {0.0, 0.25, 0.5}
    assert oracle.create_trial("t1").status == "STOPPED"


@pytest.mark.parametrize("kind", sorted(ORACLES))
def test_values_of_failed_trials_are_not_proposed_again(kind, tmp_path):
    hp = keras_tuner.HyperParameters()
    for name in ("a", "b", "c"):
        hp.Boolean(name)
    oracle = new_oracle(kind, tmp_path, hp, max_consecutive_failed_trials=100)
    tried, status = drive(oracle, 50, score=lambda v: None if v["a"] else float(v["b"]))
    assert status == "STOPPED"
    assert len(tried) == distinct(tried) == 8


@pytest.mark.parametrize("kind", sorted(ORACLES))
@pytest.mark.parametrize("space", ["int", "float"])
def test_a_range_larger_than_its_bins_is_not_exhausted_by_them(kind, space, tmp_path):
    hp = keras_tuner.HyperParameters()
    if space == "int":
        hp.Int("n", 0, 1000)
        low, high = 0, 1000
    else:
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
        low, high = 1e-4, 1e-1
    oracle = new_oracle(kind, tmp_path, hp, num_bins=4)
    tried, status = drive(oracle, 30)
    assert status == "RUNNING" and len(tried) == distinct(tried) == 30
    assert all(low <= next(iter(v.values())) <= high for v in tried)


def test_bins_include_both_end_points():
    hp = keras_tuner.HyperParameters()
    hp.Int("n", 0, 1000)
    hp.Int("grid", 0, 10, step=3)
    hp.Int("pow2", 1, 1024, step=2, sampling="log")
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Float("quarter", 0.0, 1.0, step=0.25)
    hp.Float("rev", 1.0, 100.0, sampling="reverse_log")
    hp.Int("rev_grid", 1, 1024, step=2, sampling="reverse_log")
    options = {name: decision_options(hp._hps[name][0], 10) for name in hp._hps}
    assert options["n"] == [0, 111, 222, 333, 444, 555, 666, 777, 888, 1000]
    assert options["grid"] == [0, 3, 6, 9]  # every value: at most num_bins of them
    assert options["pow2"][0] == 1 and options["pow2"][-1] == 1024
    assert len(options["pow2"]) == 10 and all(v & (v - 1) == 0 for v in options["pow2"])
    assert options["lr"][0] == 1e-4 and options["lr"][-1] == 1e-1 and len(options["lr"]) == 10
    np.testing.assert_allclose(np.diff(np.log(options["lr"])), np.log(1000) / 9)
    assert options["quarter"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert options["rev"][0] == 1.0 and options["rev"][-1] == 100.0
    assert options["rev"] == sorted(options["rev"])
    assert options["rev_grid"] == [1, 769, 897, 961, 993, 1009, 1017, 1021, 1023, 1024]


def test_a_value_drawn_in_a_bin_maps_back_to_it():
    from keras_nas.oracles.decisions import is_binned
    from keras_nas.oracles.decisions import option_index
    from keras_nas.oracles.decisions import within_bin

    hp = keras_tuner.HyperParameters()
    hp.Int("n", 0, 1000)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Int("few", 0, 4)
    rng = np.random.default_rng(0)
    assert not is_binned(hp._hps["few"][0], 10)
    for name in ("n", "lr"):
        h = hp._hps[name][0]
        assert is_binned(h, 10)
        options = decision_options(h, 10)
        for k, option in enumerate(options):
            for _ in range(20):
                value = within_bin(h, options, option, rng)
                assert type(value) is type(option)
                assert h.min_value <= value <= h.max_value
                assert option_index(options, value, h) == k


@pytest.mark.parametrize("kind", sorted(ORACLES))
def test_reload_after_the_space_grew_in_a_failed_trial(kind, tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["a", "b", "c"])

    def grow(hps):  # what a hypermodel's build would declare
        hps.Choice("extra", ["x", "y"])
        with hps.conditional_scope("kind", ["a"]):
            hps.Int("width", 1, 3)

    a = new_oracle(kind, tmp_path, hp, name="grew", max_trials=12)
    drive(a, 1, score=lambda v: None, grow=grow)
    assert "extra" in a.hyperparameters
    b = new_oracle(kind, tmp_path, keras_tuner.HyperParameters(), name="grew", max_trials=12)
    b.reload()
    ta, _ = drive(a, 5)
    tb, _ = drive(b, 5)
    assert ta == tb and len(tb) == distinct(tb) == 5
    assert all("extra" in v for v in tb)


#: How many trials each strategy starts with (with a proxy: the best-scored of the pool).
PROXY_STARTS = {"evolution": 4, "local": 3, "gp": 3, "reinforce": 3}


@pytest.mark.parametrize("kind", sorted(ORACLES))
def test_with_a_proxy_the_starts_are_the_best_scored_of_a_random_pool(kind, tmp_path):
    def proxy(values):  # the toy space's ops, numbered: higher ops score higher
        return float(sum(int(v[2:]) for v in values.values()))

    k = PROXY_STARTS[kind]
    extra = {"proxy_starts": k} if kind == "reinforce" else {}
    oracle = new_oracle(kind, tmp_path, oracle_driver.toy_space(), proxy=proxy,
                        proxy_pool=12, **extra)
    tried, _ = drive(oracle, k + 3, score=lambda v: proxy(v) + 0.5 * (v["d0"] == "op1"))
    pool_scores = list(oracle._proxy_scores.values())[:12]  # scored first
    assert len(pool_scores) == 12
    assert [proxy(v) for v in tried[:k]] == sorted(pool_scores, reverse=True)[:k]
    assert oracle._proxy_pool == []  # dropped once the starts are done
    assert distinct(tried) == k + 3
    json.dumps(oracle.get_state())
    again = new_oracle(kind, tmp_path, oracle_driver.toy_space(), name="again", proxy=proxy,
                       proxy_pool=12, **extra)
    assert drive(again, k + 3, score=lambda v: proxy(v) + 0.5 * (v["d0"] == "op1"))[0] == tried
