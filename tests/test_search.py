import json
import os
import warnings

import keras
import keras_tuner
import numpy as np
import pytest

import keras_nas
from keras_nas import data

# A tiny cell space so each trial is a second or two on a laptop CPU.
TINY = dict(channels=4, cells_per_stage=1)


@pytest.fixture(scope="module")
def digits():
    (x, y), (xt, yt) = data.load_digits()
    return (x[:300], y[:300]), (x[300:400], y[300:400]), (xt[:100], yt[:100])


@pytest.mark.slow
def test_search_function_model_saves_and_reloads_without_custom_objects(digits, tmp_path):
    (x, y), val, test = digits
    model = keras_nas.search(x, y, validation_data=val, space="cell", strategy="random",
                             max_trials=2, epochs=1, seed=0, directory=tmp_path,
                             space_kwargs=TINY, verbose=0)
    assert isinstance(model, keras.Model) and model.optimizer is not None
    path = tmp_path / "best.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(model.predict(test[0], verbose=0),
                               loaded.predict(test[0], verbose=0), atol=1e-5)


@pytest.mark.slow
def test_the_final_model_is_what_the_summary_says_it_is(digits, tmp_path):
    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, final_epochs=2)
    s.fit(x, y, validation_data=val)
    info = json.loads(open(s.summary_path).read())["final_model"]
    assert info["policy"] == "retrain" and info["trained_on"] == "train+validation"
    assert info["epochs"] == 2 and info["validation_accuracy"] is None
    assert info["augmentation"] == {"kind": "shift", "max_shift": 1}  # the default, 8x8 images
    assert info["checked_on"] is None and info["architecture"] == s.best_architecture
    # Two epochs over train + validation: the optimizer ran 2 * ceil(400 / 32) steps.
    assert int(s.best_model.optimizer.iterations.numpy()) == 2 * int(np.ceil(400 / 32))
    kept = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1, seed=0,
                            directory=tmp_path, project_name="kept", final_model="checkpoint",
                            space_kwargs=TINY, verbose=0).fit(x, y, validation_data=val)
    info = kept.summary["final_model"]
    assert info["augmentation"] is None  # the trial's own weights: trained on the images as they are
    val_acc = kept.best_model.evaluate(*val, verbose=0)[1]
    assert info["policy"] == "checkpoint" and info["checked_on"] == "validation"
    assert val_acc == pytest.approx(info["validation_accuracy"], abs=1e-6)
    assert val_acc == pytest.approx(kept.trials[0]["metrics"]["val_accuracy"], abs=1e-6)
    assert info["search_validation_accuracy"] == kept.trials[0]["metrics"]["val_accuracy"]


@pytest.mark.slow
def test_max_time_bounds_the_whole_call(digits, tmp_path):
    import time

    (x, y), val, _ = digits
    started = time.time()
    s = keras_nas.Search(space="cell", strategy="random", max_trials=50, epochs=200, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, max_time=25)
    s.fit(x, y, validation_data=val)
    elapsed = time.time() - started
    # The one trial that started was stopped at the deadline, the final model fitted into
    # what was left (or fell back to the checkpoint) and was saved within the budget.
    assert elapsed <= 25 * 1.05 + 2.0, elapsed
    first = s.trials[0]
    assert first["stopped_by_time"] and first["epochs_trained"] < 200
    assert os.path.exists(s.best_model_path)
    assert s.summary["final_model"]["policy"] == "retrain"


@pytest.mark.slow
def test_successive_halving_stops_weak_trials_at_a_rung(digits, tmp_path):
    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="random", max_trials=2, epochs=3, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0,
                         final_model="checkpoint")
    real_halving = s._halving

    def strict_halving(oracle):  # a rung where an earlier trial reached 100%: all stop
        halving = real_halving(oracle)
        halving.values[1] = [1.0, 1.0, 1.0]
        return halving

    s._halving = strict_halving
    s.fit(x, y, validation_data=val)
    for trial in s.trials:
        assert trial["status"] == "COMPLETED"
        assert trial["stopped_at_rung"] == 1 and trial["epochs_trained"] == 1
    assert s.tuner.halving.values[1][3:] == [t["metrics"]["val_accuracy"] for t in s.trials]
    off = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=3, seed=0,
                           directory=tmp_path, project_name="off", space_kwargs=TINY,
                           verbose=0, final_model="checkpoint", successive_halving=False)
    off.fit(x, y, validation_data=val)
    assert off.tuner.halving is None and off.trials[0]["epochs_trained"] == 3


@pytest.mark.slow
def test_rerun_resumes_and_keeps_completed_trials(digits, tmp_path):
    (x, y), val, _ = digits
    kwargs = dict(space="cell", strategy="random", epochs=1, seed=2, directory=tmp_path,
                  project_name="resume", space_kwargs=TINY, verbose=0, final_model="checkpoint")
    first = keras_nas.Search(max_trials=2, **kwargs).fit(x, y, validation_data=val)
    before = {t["trial_id"]: t["architecture"] for t in first.trials}
    second = keras_nas.Search(max_trials=3, **kwargs).fit(x, y, validation_data=val)
    after = {t["trial_id"]: t["architecture"] for t in second.trials}
    assert len(after) == 3
    assert all(after[k] == v for k, v in before.items())
    fresh = keras_nas.Search(max_trials=1, overwrite=True, **kwargs).fit(x, y, validation_data=val)
    assert len(fresh.trials) == 1


@pytest.mark.slow
def test_any_oracle_instance_and_tf_dataset_input(digits, tmp_path):
    import tensorflow as tf

    (x, y), (xv, yv), _ = digits
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=1, seed=5)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(32)
    s = keras_nas.Search(space="cell", strategy=oracle, max_trials=1, epochs=1,
                         directory=tmp_path, space_kwargs=TINY, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.fit(train, validation_data=val)
    assert s.summary["strategy"] == "RandomSearchOracle"
    assert s.trials[0]["status"] == "COMPLETED"
    # The dataset shuffles itself (or not): fit is not asked to, so Keras does not warn.
    assert not [w for w in caught if "shuffle" in str(w.message)]


@pytest.mark.slow
def test_every_space_by_name_runs_a_trial(digits, tmp_path):
    (x, y), val, _ = digits
    small_mobilenet = dict(stages=((8, 1, 1), (16, 2, 2)), stem_channels=8, head_channels=32)
    for space, kwargs in [("darts", dict(channels=4, layers=2)), ("mobilenet", small_mobilenet)]:
        s = keras_nas.Search(space=space, strategy="random", max_trials=1, epochs=1, seed=0,
                             directory=tmp_path, project_name=space, space_kwargs=kwargs,
                             verbose=0, final_model="checkpoint")
        s.fit(x[:100], y[:100], validation_data=(val[0][:50], val[1][:50]))
        assert s.trials[0]["status"] == "COMPLETED", s.trials[0]["error"]
        assert s.space.decode(s.best_architecture) is not None


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_trials=0), "`max_trials` must be a positive integer"),
    (dict(epochs=-1), "`epochs` must be a positive integer"),
    (dict(max_time=0), "`max_time` must be a positive number"),
    (dict(space="nope"), "space"),
    (dict(strategy="nope"), "Unknown `strategy`"),
    (dict(seed=-3), "`seed`"),
    (dict(final_model="best"), "`final_model` must be one of"),
    (dict(final_epochs=0), "`final_epochs` must be a positive integer"),
    (dict(final_augmentation="flip"), "`final_augmentation` must be one of"),
    (dict(learning_rate_schedule="step"), "`learning_rate_schedule` must be one of"),
    (dict(time_after_search=-1), "`time_after_search`"),
])
def test_bad_settings_fail_before_any_training(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        keras_nas.Search(directory=tmp_path, **kwargs)


def test_bad_data_fails_before_the_results_folder_is_touched(tmp_path):
    s = keras_nas.Search(directory=tmp_path, project_name="p", verbose=0)
    with pytest.raises(ValueError, match="same length"):
        s.fit(np.zeros((10, 8, 8, 1)), np.zeros(9))
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_latency_target_measures_every_trial_and_scores_the_reward(digits, tmp_path):
    from keras_nas.results.objectives import MnasNetReward

    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="random", max_trials=2, epochs=1, seed=4,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, final_model="checkpoint",
                         latency_ms=0.05)
    s.fit(x[:150], y[:150], validation_data=(val[0][:50], val[1][:50]))
    reward = MnasNetReward(0.05)
    for t in s.trials:
        m = t["metrics"]
        assert m["latency_ms"] > 0 and m["flops"] > 0 and m["size_bytes"] > 0
        assert t["score"] == pytest.approx(reward(m))
    assert s.summary["objective"]["name"] == "mnasnet_reward"
    front = s.pareto_front()
    assert front and all(t["status"] == "COMPLETED" for t in front)


class ConvCountLatency:
    """A stand-in latency predictor: 1 ms per 3x3 convolution in the cell, 0.5 ms base."""

    def missing(self, architectures):
        return []

    def predict(self, architecture):
        return 0.5 + architecture.count("nor_conv_3x3")


@pytest.mark.slow
def test_a_hard_latency_target_skips_candidates_over_it_without_training(digits, tmp_path,
                                                                          monkeypatch):
    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="random", max_trials=3, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, final_model="checkpoint",
                         latency_ms=1.6, latency_objective="hard", hardware="predict",
                         latency_predictor=ConvCountLatency())
    s.fit(x[:150], y[:150], validation_data=(val[0][:50], val[1][:50]))
    over = [t for t in s.trials if t["architecture"].count("nor_conv_3x3") >= 2]
    within = [t for t in s.trials if t["architecture"].count("nor_conv_3x3") < 2]
    assert over and within  # seed 0 draws both kinds
    assert len(within) == 3  # `max_trials` counts trained candidates; the skipped are extra
    for t in over:  # known to be too slow before training: reported, not trained
        assert t["status"] == "COMPLETED" and t["epochs_trained"] == 0
        assert "over the target 1.6: not trained" in t["skipped"]
        assert "val_accuracy" not in t["metrics"] and t.get("fit_s") is None
        assert t["score"] == pytest.approx(-t["metrics"]["latency_ms"] / 1.6)
        assert t["metrics"]["skipped_infeasible"] == 1.0  # what the oracle learns from
        assert t["metrics"]["latency_to_target"] == pytest.approx(-t["score"])
    for t in within:
        assert t.get("skipped") is None and t["epochs_trained"] == 1
        assert t["score"] == pytest.approx(t["metrics"]["val_accuracy"])
        assert "skipped_infeasible" not in t["metrics"]
        assert t["metrics"]["latency_to_target"] <= 1
    assert s.best_architecture.count("nor_conv_3x3") < 2
    # When no candidate fits, the skipped ones are capped (SKIPPED_PER_TRIAL per trial).
    monkeypatch.setattr(keras_nas.tuning.tuner, "SKIPPED_PER_TRIAL", 2)
    none_fit = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1,
                                seed=0, directory=tmp_path, project_name="none_fit",
                                space_kwargs=TINY, verbose=0, latency_ms=0.1,
                                latency_objective="hard", hardware="predict",
                                latency_predictor=ConvCountLatency())
    with pytest.raises(RuntimeError, match="No candidate met the latency target of 0.1 ms"):
        none_fit.fit(x[:150], y[:150], validation_data=(val[0][:50], val[1][:50]))
    assert len(none_fit.trials) == 3 and all(t["skipped"] for t in none_fit.trials)


def test_non_positive_latency_target_is_rejected(tmp_path):
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`latency_ms` must be a positive number"):
            keras_nas.Search(directory=tmp_path, latency_ms=bad)


@pytest.mark.slow
def test_one_shot_strategies_write_the_records_every_search_writes(digits, tmp_path):
    # Every one-shot strategy runs through the command in tests/test_cli.py; here the API's
    # view of one of them (DARTS: a single candidate).
    strategy = "darts"
    (x, y), val, test = digits
    s = keras_nas.Search(space="cell", strategy=strategy, max_trials=2, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0)
    s.fit(x[:200], y[:200], validation_data=(val[0][:64], val[1][:64]))
    # The supernet's candidates (one for DARTS) are trained stand-alone as ordinary trials.
    summary = json.loads(open(s.summary_path).read())
    candidates = summary["oneshot"]["candidates"]
    assert 1 <= len(s.trials) == len(candidates) <= 2
    for trial, candidate in zip(s.trials, candidates):
        assert trial["status"] == "COMPLETED" and trial["params"] > 0
        assert 0.0 <= trial["metrics"]["val_accuracy"] <= 1.0
        assert trial["architecture"] == candidate["architecture"]
        assert s.space.decode(trial["architecture"]) == trial["hyperparameters"]
    assert summary["oneshot"]["strategy"] == strategy and summary["oneshot"]["seconds"] > 0
    assert summary["oneshot"]["eager_paths"] is False  # DARTS trains the relaxed supernet
    assert summary["best_architecture"] == s.best_architecture
    assert s.best_architecture in {t["architecture"] for t in s.pareto_front()}
    assert s.best_model.evaluate(*test, verbose=0)[1] >= 0.0


@pytest.mark.slow
def test_one_shot_search_resumes_without_training_the_supernet_again(digits, tmp_path):
    (x, y), val, _ = digits
    kwargs = dict(space="cell", strategy="spos", epochs=1, seed=0, directory=tmp_path,
                  space_kwargs=TINY, verbose=0, final_model="checkpoint")
    first = keras_nas.Search(max_trials=1, **kwargs).fit(x[:200], y[:200], validation_data=val)
    assert first.oneshot_search is not None
    # A few supernet steps on a wider supernet: its paths ran eagerly (`run_eagerly="auto"`).
    assert first.summary["oneshot"]["eager_paths"] is True
    again = keras_nas.Search(max_trials=1, **kwargs).fit(x[:200], y[:200], validation_data=val)
    assert again.oneshot_search is None  # read from oneshot.json
    assert again.summary["oneshot"] == first.summary["oneshot"]
    assert [t["architecture"] for t in again.trials] == [t["architecture"] for t in first.trials]


def _folder_state(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CHANGES = [
    (dict(space="darts", space_kwargs=dict(channels=4, layers=1)), "space: 'cell' there, 'darts' here"),
    (dict(epochs=2), "epochs: 1 there, 2 here"),
    (dict(space_kwargs=dict(channels=8, cells_per_stage=1)), "space_config.channels: 4 there, 8 here"),
    (dict(strategy="evolution"), "strategy: 'random' there, 'evolution' here"),
    (dict(seed=4), "seed: 3 there, 4 here"),
]


@pytest.mark.slow
def test_a_folder_with_another_search_is_an_error_and_left_unchanged(digits, tmp_path):
    (x, y), val, _ = digits
    kwargs = dict(space="cell", strategy="random", max_trials=1, epochs=1, seed=3,
                  directory=tmp_path, project_name="used", space_kwargs=TINY, verbose=0,
                  final_model="checkpoint")
    keras_nas.Search(**kwargs).fit(x, y, validation_data=val)
    before = _folder_state(tmp_path / "used")
    for change, difference in CHANGES:
        with pytest.raises(ValueError) as error:
            keras_nas.Search(**{**kwargs, **change}).fit(x, y, validation_data=val)
        message = str(error.value)
        assert "\n" not in message and str(tmp_path / "used") in message
        assert difference in message and "`overwrite`=True" in message
        assert _folder_state(tmp_path / "used") == before
    # Other data shapes are another search too.
    with pytest.raises(ValueError, match="input_shape"):
        keras_nas.Search(**kwargs).fit(np.zeros((20, 9, 9, 1)), np.arange(20) % 2)
    assert _folder_state(tmp_path / "used") == before


@pytest.mark.slow
def test_without_a_seed_one_is_drawn_recorded_and_repeats_the_run(digits, tmp_path):
    (x, y), val, _ = digits
    kwargs = dict(space="cell", strategy="random", max_trials=2, epochs=1, directory=tmp_path,
                  space_kwargs=TINY, verbose=0, final_model="checkpoint")
    first = keras_nas.Search(project_name="a", **kwargs).fit(x, y, validation_data=val)
    seed = json.loads(open(first.summary_path).read())["seed"]
    assert isinstance(seed, int) and first.seed == seed
    again = keras_nas.Search(project_name="b", seed=seed, **kwargs).fit(x, y, validation_data=val)
    assert [t["architecture"] for t in again.trials] == [t["architecture"] for t in first.trials]
    assert [t["metrics"]["val_accuracy"] for t in again.trials] == pytest.approx(
        [t["metrics"]["val_accuracy"] for t in first.trials], abs=1e-6)
    # A resumed search keeps the seed its folder recorded.
    resumed = keras_nas.Search(project_name="a", **{**kwargs, "max_trials": 3}).fit(
        x, y, validation_data=val)
    assert resumed.seed == seed and len(resumed.trials) == 3


@pytest.mark.slow
def test_a_resumed_search_numbers_its_rows_on(digits, tmp_path, capsys):
    (x, y), val, _ = digits
    kwargs = dict(space="cell", strategy="random", epochs=1, seed=0, directory=tmp_path,
                  space_kwargs=TINY, verbose=1, final_model="checkpoint")
    keras_nas.Search(max_trials=1, **kwargs).fit(x, y, validation_data=val)
    capsys.readouterr()
    keras_nas.Search(max_trials=3, **kwargs).fit(x, y, validation_data=val)
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()
            if "COMPLETED" in line]
    assert rows == ["2/3", "3/3"]


@pytest.mark.slow
def test_objective_given_as_a_keras_tuner_objective(digits, tmp_path):
    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, final_model="checkpoint",
                         objective=keras_tuner.Objective("val_loss", "min"))
    s.fit(x[:100], y[:100], validation_data=(val[0][:50], val[1][:50]))
    assert s.summary["objective"] == {"name": "val_loss", "direction": "min"}
    assert s.trials[0]["score"] == pytest.approx(s.trials[0]["metrics"]["val_loss"])


@pytest.mark.slow
def test_trials_measured_on_a_remote_device(digits, tmp_path):
    from test_litert_server import _start, _stop

    from keras_nas.hardware import RemoteDevice

    (x, y), val, _ = digits
    proc, url = _start("--token", "t0k3n")
    try:
        s = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1, seed=0,
                             directory=tmp_path, space_kwargs=TINY, verbose=0, final_model="checkpoint",
                             latency_ms=1.0, latency_device=RemoteDevice(url, token="t0k3n"))
        s.fit(x[:100], y[:100], validation_data=(val[0][:50], val[1][:50]))
    finally:
        _stop(proc)
    assert s.trials[0]["status"] == "COMPLETED", s.trials[0]["error"]
    assert s.trials[0]["metrics"]["latency_ms"] > 0


@pytest.mark.slow
def test_reinforce_search_records_its_controller_for_the_figure(digits, tmp_path):
    from keras_nas.results import plots

    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="reinforce", max_trials=3, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0, final_model="checkpoint",
                         strategy_kwargs={"batch_size": 1})
    s.fit(x[:100], y[:100], validation_data=(val[0][:50], val[1][:50]))
    saved = json.loads(open(s.summary_path).read())
    history = saved["controller_history"]
    assert history and {"step", "reward", "baseline", "entropy"} <= set(history[0])
    paths = plots.save_figures(saved, tmp_path / "figures")
    assert os.path.getsize(paths["controller"]) > 0


@pytest.mark.slow
def test_summary_json_is_readable_by_everyone_like_the_other_outputs(digits, tmp_path):
    (x, y), val, _ = digits
    old = os.umask(0o022)
    try:
        s = keras_nas.Search(space="cell", strategy="random", max_trials=1, epochs=1, seed=0,
                             directory=tmp_path, space_kwargs=TINY, verbose=0)
        s.fit(x, y, validation_data=val)
    finally:
        os.umask(old)
    assert os.stat(s.summary_path).st_mode & 0o777 == 0o644
    assert os.stat(s.best_model_path).st_mode & 0o777 == 0o644


@pytest.mark.slow
def test_a_strategy_given_a_proxy_by_name_starts_from_the_best_scored(digits, tmp_path):
    (x, y), val, _ = digits
    s = keras_nas.Search(space="cell", strategy="local", max_trials=3, epochs=1, seed=0,
                         directory=tmp_path, space_kwargs=TINY, verbose=0,
                         final_model="checkpoint",
                         strategy_kwargs={"proxy": "params", "proxy_pool": 6,
                                          "initial_samples": 2})
    s.fit(x[:100], y[:100], validation_data=(val[0][:50], val[1][:50]))
    oracle = s.tuner.oracle
    assert callable(oracle.proxy)  # `NASTuner` made the name a function of its space
    pool = list(oracle._proxy_scores.values())[:6]  # scored first: the pool of the starts
    assert None not in pool and len(set(pool)) > 1
    first = oracle.trials[s.trials[0]["trial_id"]].hyperparameters.values
    assert s.trials[0]["status"] == "COMPLETED"
    assert oracle.proxy_score(first) == max(pool)
    model = s.space.build_values(first)  # the score is the model's trainable parameters
    assert oracle.proxy_score(first) == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
