import json
import math

import keras_tuner
import pytest

from keras_nas.oracles import LocalSearchOracle
from keras_nas.oracles import make_oracle
from tests import oracle_driver
from tests.oracle_driver import matches, run, toy_space
from keras_nas.search import strategy_names

MAX = keras_tuner.Objective("score", "max")


def new_oracle(tmp_path, name="p", **kwargs):
    kwargs.setdefault("seed", 5)
    return oracle_driver.new_oracle(LocalSearchOracle, tmp_path, name, **kwargs)


def differences(a, b):
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def key(values):
    return json.dumps(values, sort_keys=True)


def test_without_restarts_neighbours_of_the_best_open_centre(tmp_path):
    oracle = new_oracle(tmp_path, initial_samples=4, restarts=False)
    tried = []
    for _ in range(60):
        # The centre the next trial must neighbour: the best whose neighbours are not all tried.
        tried_keys = {key(v) for _, v in tried}
        open_centres = [
            tid for tid in oracle._rewards
            if any(key(dict(oracle.trials[tid].hyperparameters.values, **{hp.name: o}))
                   not in tried_keys for hp, o in
                   oracle.neighbours(oracle.trials[tid].hyperparameters.values))
        ]
        best = max((oracle._rewards[t] for t in open_centres), default=None)
        (tid, values), = run(oracle, matches, 1)
        tried.append((tid, values))
        if len(tried) <= 4:
            assert oracle._origin[tid] is None
            continue
        centre = oracle._origin[tid]
        assert centre is not None and oracle._rewards[centre] == best
        assert differences(values, oracle.trials[centre].hyperparameters.values) == 1
    assert len({key(v) for _, v in tried}) == 60
    assert max(matches(v) for _, v in tried) == 1.0  # the optimum of this smooth toy space


def test_restarts_climb_from_a_random_architecture_after_a_local_optimum(tmp_path):
    def reward(values):  # two hills: all op2 (1.0) and all op0 (0.8), apart by 5 edits
        return max(matches(values), 0.8 * sum(v == "op0" for v in values.values()) / 5)

    oracle = new_oracle(tmp_path, initial_samples=3)
    tried = run(oracle, reward, 300)
    climb, origin, rewards = oracle._climb, oracle._origin, oracle._rewards
    restarts = [tid for tid, _ in tried[3:] if origin[tid] is None]
    assert len(restarts) >= 2
    for tid, values in tried[3:]:
        centre = origin[tid]
        if centre is None:
            # A restart: the climb before it ended on a local optimum, fully explored.
            before = [t for t in rewards if climb[t] == climb[tid] - 1 and t < tid]
            best = max(before, key=lambda t: rewards[t])
            assert oracle._exhausted.get(best)
            continue
        # A neighbour of the best trial of its own climb that had ended before it.
        assert climb[tid] == climb[centre]
        assert differences(values, oracle.trials[centre].hyperparameters.values) == 1
        done = [t for t in rewards if climb[t] == climb[tid] and t < tid]
        assert rewards[centre] == max(rewards[t] for t in done)
    ends = {max((t for t in rewards if climb[t] == c), key=lambda t: rewards[t])
            for c in set(climb.values())}
    assert {round(reward(oracle.trials[t].hyperparameters.values), 6) for t in ends} >= {1.0}


def test_restarts_is_checked():
    with pytest.raises((TypeError, ValueError), match="restarts"):
        LocalSearchOracle(objective=MAX, restarts="yes")


def test_neighbours_change_exactly_one_decision():
    oracle = LocalSearchOracle(objective=MAX, hyperparameters=toy_space(n=3, k=3), seed=0)
    values = {"d0": "op0", "d1": "op1", "d2": "op2"}
    moves = oracle.neighbours(values)
    assert len(moves) == 3 * 2
    assert {(hp.name, o) for hp, o in moves} == {
        (f"d{i}", f"op{j}") for i in range(3) for j in range(3) if values[f"d{i}"] != f"op{j}"}


def test_full_neighbourhood_finishes_a_centre_before_moving(tmp_path):
    oracle = new_oracle(tmp_path, initial_samples=1, full_neighbourhood=True,
                        hyperparameters=toy_space(n=3, k=3))
    tried = run(oracle, lambda v: sum(x == "op2" for x in v.values()), 7)
    first = tried[0][0]
    # The 6 neighbours of the first trial come first, whatever they score.
    assert [oracle._origin[t] for t, _ in tried[1:]] == [first] * 6


def test_stops_when_two_booleans_are_exhausted(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Boolean("a")
    hp.Boolean("b")
    oracle = new_oracle(tmp_path, hyperparameters=hp, initial_samples=1)
    tried = run(oracle, lambda v: float(v["a"]) + 2 * float(v["b"]), 10)
    assert len(tried) == len({key(v) for _, v in tried}) == 4
    assert oracle.create_trial("t0").status == "STOPPED"
    assert oracle.create_trial("t1").status == "STOPPED"


def test_state_is_json_and_reload_continues_identically(tmp_path):
    a = new_oracle(tmp_path, "resume", initial_samples=3)
    run(a, matches, 12)
    json.dumps(a.get_state())
    b = new_oracle(tmp_path, "resume", initial_samples=3, seed=77)
    b.reload()
    assert b._rewards == a._rewards and b._origin == a._origin
    assert b._exhausted == a._exhausted
    ta, tb = run(a, matches, 30), run(b, matches, 30)
    assert ta == tb
    assert b._rewards == a._rewards
    assert sorted(b._rewards) == sorted(b.trials)


def test_reload_in_the_middle_of_a_local_optimum(tmp_path):
    # A small space, so that centres run out of neighbours and the search moves on.
    space = toy_space(n=3, k=3)
    a = new_oracle(tmp_path, "opt", initial_samples=2, hyperparameters=space)
    c = new_oracle(tmp_path, "opt_c", initial_samples=2, hyperparameters=toy_space(n=3, k=3))
    full = run(c, matches, 27)
    first = run(a, matches, 15)
    assert a._exhausted  # at least one centre ran out before the reload
    b = new_oracle(tmp_path, "opt", initial_samples=2, hyperparameters=toy_space(n=3, k=3))
    b.reload()
    rest = run(b, matches, 20)
    assert [v for _, v in first + rest] == [v for _, v in full]
    assert len(rest) == 12 and b.create_trial("t0").status == "STOPPED"


def test_failed_and_nan_trials_are_tried_but_never_centres(tmp_path):
    def reward(values):
        if values["d0"] == "op1":
            return None  # failed
        if values["d0"] == "op3":
            return math.nan
        return matches(values)

    oracle = new_oracle(tmp_path, "nan", initial_samples=3, max_consecutive_failed_trials=100)
    tried = run(oracle, reward, 80)
    assert len({key(v) for _, v in tried}) == len(tried) == 80
    bad = {t for t, v in tried if v["d0"] in ("op1", "op3")}
    assert bad and not bad & set(oracle._rewards)
    assert not bad & {oracle._origin[t] for t, _ in tried}
    assert set(oracle._rewards) == {t for t, _ in tried} - bad


def test_nan_trial_with_a_retry_is_not_learned(tmp_path):
    oracle = new_oracle(tmp_path, "retry", initial_samples=2, max_retries_per_trial=1)
    trial = oracle.create_trial("t0")
    for _ in range(2):  # first run and its retry both report NaN
        oracle.update_trial(trial.trial_id, {"score": math.nan})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        if oracle.trials[trial.trial_id].status == "INVALID":
            trial = oracle.create_trial("t0")
    assert oracle.trials[trial.trial_id].status == "FAILED"
    assert oracle._rewards == {}
    run(oracle, matches, 5)
    assert len(oracle._rewards) == 5


def test_minimized_objective(tmp_path):
    oracle = new_oracle(tmp_path, "min", objective=keras_tuner.Objective("score", "min"))
    tried = run(oracle, lambda v: 1 - matches(v), 80)
    assert max(matches(v) for _, v in tried) == 1.0


def test_a_seed_reproduces_the_proposals(tmp_path):
    a = run(new_oracle(tmp_path, "s1", seed=3), matches, 30)
    b = run(new_oracle(tmp_path, "s2", seed=3), matches, 30)
    c = run(new_oracle(tmp_path, "s3", seed=4), matches, 30)
    assert a == b and a != c


def test_binned_values_keep_to_the_bins_and_stay_new(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Int("n", 0, 1000)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    oracle = new_oracle(tmp_path, "bins", hyperparameters=hp, num_bins=3, initial_samples=2)
    tried = run(oracle, lambda v: -abs(v["n"] - 500) - abs(math.log10(v["lr"]) + 2), 25)
    assert len(tried) == len({key(v) for _, v in tried}) == 25
    assert all(0 <= v["n"] <= 1000 and 1e-4 <= v["lr"] <= 1e-1 for _, v in tried)


def test_conditional_decisions_are_completed_and_dropped(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", ["a"]):
        hp.Int("width", 0, 20, step=10)
    with hp.conditional_scope("kind", ["b"]):
        hp.Boolean("flag")
    oracle = new_oracle(tmp_path, "cond", hyperparameters=hp, initial_samples=1)
    tried = run(oracle, lambda v: v.get("width", 0) + 5 * v.get("flag", 0), 10)
    assert len(tried) == 5 and oracle.create_trial("t0").status == "STOPPED"
    for _, v in tried:
        assert set(v) == ({"kind", "width"} if v["kind"] == "a" else {"kind", "flag"})


def test_registered_by_name():
    assert "local" in strategy_names()
    oracle = make_oracle("local", objective=MAX, max_trials=5, epochs=1, seed=0,
                         initial_samples=3)
    assert isinstance(oracle, LocalSearchOracle) and oracle.initial_samples == 3
    # By default a tenth of 100 trials, and a fifth of a small budget (at least 2).
    for trials, initial in ((100, 10), (1000, 10), (20, 4), (5, 2), (None, 10)):
        oracle = make_oracle("local", objective=MAX, max_trials=trials, epochs=1)
        assert oracle.initial_samples == initial


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_initial_samples_is_checked(bad):
    with pytest.raises((TypeError, ValueError), match="initial_samples"):
        LocalSearchOracle(objective=MAX, initial_samples=bad)


def op_number(values):
    """A proxy for the toy space: the sum of the ops' numbers (higher ops score higher)."""
    return float(sum(int(v[2:]) for v in values.values()))


def test_a_proxy_chooses_the_starts_and_orders_the_neighbours(tmp_path):
    scored = []

    def proxy(values):
        scored.append(key(values))
        return op_number(values)

    oracle = new_oracle(tmp_path, initial_samples=3, proxy=proxy, proxy_pool=40)
    tried = []
    for _ in range(40):
        before = {key(v) for _, v in tried}
        (tid, values), = run(oracle, matches, 1)
        tried.append((tid, values))
        origin = oracle._origin[tid]
        if len(tried) == 1:
            pool = list(oracle._proxy_pool)  # drawn for the first start
            assert len({key(v) for v in pool}) == 40
        if len(tried) <= 3:  # a start: the best-scored untried architecture of the pool
            assert origin is None and values in pool
            assert op_number(values) == max(op_number(v) for v in pool if key(v) not in before)
            continue
        if origin is None:
            continue  # a restart: random, as without a proxy
        # A neighbour: the best-scored of the centre's untried neighbours.
        centre = oracle.trials[origin].hyperparameters.values
        untried = [dict(centre, **{hp.name: o}) for hp, o in oracle.neighbours(centre)]
        untried = [v for v in untried if key(v) not in before]
        assert op_number(values) == max(op_number(v) for v in untried)
    assert len(scored) == len(set(scored))  # each architecture scored once
    assert oracle._proxy_pool == []  # the starts are chosen: the pool is not kept in the state


def test_a_proxy_that_fails_puts_the_candidate_last_without_stopping(tmp_path):
    def proxy(values):
        if values["d0"] == "op3":
            raise RuntimeError("cannot build")
        return math.nan if values["d1"] == "op3" else op_number(values)

    oracle = new_oracle(tmp_path, initial_samples=2, proxy=proxy, proxy_pool=30)
    with pytest.warns(RuntimeWarning, match="cannot build") as warned:
        tried = run(oracle, matches, 60)
    assert len([w for w in warned if "proxy" in str(w.message)]) == 1  # once
    assert len(tried) == 60 == len({key(v) for _, v in tried})
    assert oracle._proxy_scores and None in oracle._proxy_scores.values()
    assert max(matches(v) for _, v in tried) == 1.0


def test_a_proxy_search_reloads_and_continues_identically(tmp_path):
    a = new_oracle(tmp_path, "resume", initial_samples=3, proxy=op_number, proxy_pool=20)
    run(a, matches, 2)  # reloaded between two starts
    state = json.loads(json.dumps(a.get_state()))
    assert len(state["proxy"]["pool"]) == 19  # the first start left it
    assert len(state["proxy"]["scores"]) == 20
    calls = []
    b = new_oracle(tmp_path, "resume", initial_samples=3, seed=77,
                   proxy=lambda v: calls.append(1) or op_number(v), proxy_pool=20)
    b.reload()
    assert b._proxy_pool == a._proxy_pool and b._proxy_scores == a._proxy_scores
    assert run(a, matches, 30) == run(b, matches, 30)
    assert len(calls) < 30 * 15  # scores known before the reload are not computed again


@pytest.mark.parametrize("bad", ["bogus", "naswot", 3])
def test_proxy_is_checked(bad):
    with pytest.raises(ValueError, match="`proxy`"):
        LocalSearchOracle(objective=MAX, proxy=bad)
    with pytest.raises((TypeError, ValueError), match="proxy_pool"):
        LocalSearchOracle(objective=MAX, proxy="params", proxy_pool=0)


def test_a_proxy_name_needs_a_tuner_to_compute_it(tmp_path):
    oracle = new_oracle(tmp_path, initial_samples=2, proxy="params")
    with pytest.raises(RuntimeError, match="NASTuner"):
        run(oracle, matches, 1)


def test_a_proxy_name_with_a_hypermodel_that_is_not_a_space_is_an_error(tmp_path):
    from keras_nas.tuning.tuner import NASTuner

    oracle = new_oracle(tmp_path, proxy="synflow")
    with pytest.raises(ValueError, match="only a keras-nas Space"):
        NASTuner(oracle, keras_tuner.HyperModel(), directory=str(tmp_path), project_name="t")
