"""The Gaussian-process surrogate and the model-based oracle built on it."""

import json

import keras_tuner
import numpy as np
import pytest

from keras_nas.oracles import GPOracle
from keras_nas.oracles import make_oracle
from keras_nas.oracles.base import SKIPPED_METRIC, TARGET_RATIO_METRIC
from keras_nas.oracles.surrogate import GaussianProcess
from keras_nas.oracles.surrogate import expected_improvement
from keras_nas.oracles.surrogate import normal_scores
from tests import oracle_driver
from tests.oracle_driver import matches, run, toy_space

MAX = keras_tuner.Objective("score", "max")


def new_oracle(tmp_path, name="p", **kwargs):
    kwargs.setdefault("seed", 3)
    return oracle_driver.new_oracle(GPOracle, tmp_path, name, **kwargs)


def test_normal_scores_are_rank_quantiles():
    scores = normal_scores([0.1, 0.9, 0.5, 0.5, -40.0])
    assert scores[4] < scores[0] < scores[2] == scores[3] < scores[1]
    np.testing.assert_allclose(normal_scores([1.0, 2.0, 3.0]), [-0.9674, 0.0, 0.9674], atol=1e-4)
    with pytest.raises(ValueError, match="`values` must be a non-empty 1-D array"):
        normal_scores([])


def test_gaussian_process_fits_a_smooth_function_and_knows_where_it_is_unsure():
    rng = np.random.default_rng(0)
    onehot = np.eye(4)
    x = np.array([np.concatenate([onehot[a], onehot[b]]) for a in range(4) for b in range(4)])
    y = np.array([a + 0.5 * b for a in range(4) for b in range(4)], dtype=float)
    seen = rng.permutation(16)[:12]
    gp = GaussianProcess().fit(x[seen], y[seen])
    mean, std = gp.predict(x)
    np.testing.assert_allclose(mean[seen], y[seen], atol=0.3)
    unseen = np.setdiff1d(np.arange(16), seen)
    assert std[unseen].min() > std[seen].max()
    assert np.abs(mean[unseen] - y[unseen]).max() < 1.0  # additive: generalizes
    with pytest.raises(RuntimeError, match="fit"):
        GaussianProcess().predict(x)
    with pytest.raises(ValueError, match="`length_scales` must be positive"):
        GaussianProcess(length_scales=(0.0,))
    with pytest.raises(ValueError, match="`x` must be \\(n, d\\)"):
        GaussianProcess().fit(x, y[:3])


def test_expected_improvement_grows_with_mean_and_uncertainty():
    ei = expected_improvement([0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 2.0, 1e-9], best=0.5)
    assert ei[1] > ei[0] and ei[2] > ei[0] and ei[3] == pytest.approx(0.0, abs=1e-9)
    assert np.all(ei >= 0)


def test_random_start_then_the_model_finds_the_optimum_quickly(tmp_path):
    oracle = new_oracle(tmp_path, initial_samples=5)
    tried = [v for _, v in run(oracle, matches, 40)]
    assert len({json.dumps(v, sort_keys=True) for v in tried}) == 40  # never twice
    # 1,024 architectures; random search finds the optimum in 40 trials with p = 0.04
    first = next(i for i, v in enumerate(tried) if matches(v) == 1.0)
    assert first < 30
    # after the random start, proposals beat random sampling on average (1 / 4 per decision)
    assert np.mean([matches(v) for v in tried[5:]]) > 0.5


def test_proposals_are_reproducible_and_survive_a_reload(tmp_path):
    a = new_oracle(tmp_path, name="a", initial_samples=4)
    b = new_oracle(tmp_path, name="b", initial_samples=4)
    first_a = [v for _, v in run(a, matches, 8)]
    first_b = [v for _, v in run(b, matches, 8)]
    assert first_a == first_b
    reloaded = new_oracle(tmp_path, name="a", initial_samples=4)
    reloaded.reload()
    assert [v for _, v in run(reloaded, matches, 5)] == [v for _, v in run(a, matches, 5)]


def slow_ops(values):
    """The toy's latency over its target: (slow ops (`op2`, `op3`) + 0.5) / 3, <= 1 fits."""
    return (sum(v in ("op2", "op3") for v in values.values()) + 0.5) / 3


@pytest.mark.parametrize("report_ratio", [True, False])
def test_skipped_candidates_train_a_constraint_model_not_the_reward_model(tmp_path,
                                                                          report_ratio):
    # The optimum of the reward (all op2) is over the target; the best that fits has two
    # op2 and the rest op0/op1. A candidate over the target is skipped as the tuner skips
    # it: its score is -ratio, untrained, marked; with or without the ratio itself.
    def reward(values):
        ratio = slow_ops(values)
        metrics = {TARGET_RATIO_METRIC: ratio} if report_ratio else {}
        if ratio > 1:
            return {**metrics, "score": -ratio, SKIPPED_METRIC: 1.0}
        return {**metrics, "score": matches(values)}

    oracle = new_oracle(tmp_path, initial_samples=8)
    tried = [v for _, v in run(oracle, reward, 40)]
    scored, margins = oracle._history()
    assert [values for values, _ in scored] == [v for v in tried if slow_ops(v) <= 1]
    assert [reward for _, reward in scored] == [matches(v) for v, _ in scored]  # no -ratio
    expected = [-np.log(slow_ops(v)) if report_ratio else (1.0 if slow_ops(v) <= 1 else -1.0)
                for v in tried]
    np.testing.assert_allclose([margin for _, margin in margins], expected)
    fits = [matches(v) for v in tried if slow_ops(v) <= 1]
    assert max(fits) == 0.4  # the best that fits: two op2, found
    assert np.mean(fits[4:]) > 0.2  # after the start, near the boundary (random: 0.156)


def test_registered_by_name_and_bad_arguments(tmp_path):
    oracle = make_oracle("gp", objective=MAX, max_trials=20, epochs=1, seed=0)
    assert isinstance(oracle, GPOracle) and oracle.initial_samples == 4
    with pytest.raises(ValueError, match="`initial_samples` must be an integer >= 2"):
        GPOracle(objective=MAX, initial_samples=1)
    with pytest.raises(ValueError, match="cannot both be 0"):
        GPOracle(objective=MAX, neighbours_of=0, random_candidates=0)
    with pytest.raises(TypeError, match="`max_points`"):
        GPOracle(objective=MAX, max_points="all")


def test_the_model_is_fitted_to_the_best_and_the_most_recent_trials(tmp_path):
    oracle = new_oracle(tmp_path, max_points=4)
    scored = [({"i": i}, r) for i, r in enumerate([5.0, 1.0, 9.0, 2.0, 3.0, 0.0])]
    kept = oracle._model_points(scored)
    assert [v["i"] for v, _ in kept] == [0, 2, 4, 5]  # best two (9, 5), latest two
