import math

import keras
import numpy as np
import pytest

from keras_nas.tuning.budget import EpochTimer, StopAtDeadline, TimeBudget
from keras_nas.tuning.pruning import SuccessiveHalving
from keras_nas.tuning.schedules import CosineLearningRate
from keras_nas.spaces.sizing import LADDER, sized_space_kwargs, trial_seconds


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def test_time_budget_keeps_reserves_back_from_the_search():
    clock = FakeClock()
    budget = TimeBudget(60, clock=clock)
    budget.reserve("final_model", 10.0)
    budget.reserve("after_search", 5.0)
    budget.reserve("final_model", 12.0)  # re-estimated: replaces, does not add
    assert budget.reserved() == 17.0
    clock.now += 20
    assert budget.left() == 40.0 and budget.search_left() == 23.0
    assert budget.search_deadline() == 100.0 + 60 - 17
    assert budget.to_dict()["reserved_s"] == {"final_model": 12.0, "after_search": 5.0}
    unlimited = TimeBudget(None, clock=clock)
    assert unlimited.left() == math.inf and unlimited.search_left() == math.inf
    assert not unlimited.limited
    for bad in (0, -3, float("nan"), "60", True):
        with pytest.raises(ValueError, match="`max_time`"):
            TimeBudget(bad)


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.random((n, 4)).astype("float32"), rng.integers(0, 3, n)


def test_stop_at_deadline_ends_fit_and_keeps_the_epoch_it_cut():
    clock = FakeClock()
    stop = StopAtDeadline(lambda: 105.0, clock=clock)

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 1.0

    x, y = _data()
    history = _tiny_model().fit(x, y, validation_data=(x, y), epochs=50, batch_size=8,
                                verbose=0, callbacks=[Tick(), stop])
    # 8 batches an epoch, one second each: the 5th batch of the first epoch passes 105 s.
    assert stop.stopped_early and len(history.history["loss"]) == 1
    assert "val_accuracy" in history.history  # the cut epoch was still validated


def test_epoch_timer_splits_tracing_from_steady_epochs():
    timer = EpochTimer(clock=iter([0.0, 5.0, 5.0, 6.0, 6.0, 7.2, 7.2, 8.0]).__next__)
    for epoch in range(4):
        timer.on_epoch_begin(epoch)
        timer.on_epoch_end(epoch)
    assert timer.seconds == pytest.approx([5.0, 1.0, 1.2, 0.8])
    assert timer.steady_epoch_s() == pytest.approx(1.0)
    assert timer.first_epoch_extra_s() == pytest.approx(4.0)
    assert EpochTimer().steady_epoch_s() is None


def test_successive_halving_rungs_and_the_top_third_rule():
    assert SuccessiveHalving(5).rungs == [1, 3]
    assert SuccessiveHalving(10).rungs == [1, 3, 9]
    assert SuccessiveHalving(1).rungs == []
    assert SuccessiveHalving(9, eta=2).rungs == [1, 2, 4, 8]
    halving = SuccessiveHalving(5, eta=3)
    # The first `eta` trials go on whatever they score (grace); then only the top third.
    assert [halving.judge(1, v) for v in (0.5, 0.6, 0.7)] == [False, False, False]
    assert halving.judge(1, 0.4) is True       # 4 seen: keep 1, the best is 0.7
    assert halving.judge(1, 0.9) is False      # the new best
    assert halving.judge(1, 0.65) is True      # 6 seen: keep 2 (0.9, 0.7)
    assert halving.judge(1, 0.71) is False     # 7 seen: keep 2 (0.9, 0.71)
    assert halving.judge(2, 0.1) is False      # not a rung
    assert halving.judge(1, float("nan")) is False and len(halving.values[1]) == 7
    low = SuccessiveHalving(5, direction="min", grace=1)
    assert [low.judge(3, v) for v in (0.5, 0.4, 0.6)] == [False, False, True]
    restored = SuccessiveHalving(5)
    restored.set_state(halving.get_state())
    assert restored.values == halving.values
    with pytest.raises(ValueError, match="`eta`"):
        SuccessiveHalving(5, eta=1)
    with pytest.raises(ValueError, match="`direction`"):
        SuccessiveHalving(5, direction="up")


def test_successive_halving_stops_fit_at_a_rung():
    import keras_tuner

    halving = SuccessiveHalving(9, grace=1)
    halving.values[1] = [1.0]  # an earlier trial reached a perfect score after one epoch
    stop = halving.callback(keras_tuner.Objective("accuracy", "max"))
    x, y = _data()
    history = _tiny_model().fit(x, y, epochs=9, verbose=0, callbacks=[stop])
    assert stop.stopped_at == 1 and len(history.history["loss"]) == 1


def test_cosine_learning_rate_decays_to_zero_and_restores_the_peak():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate.numpy()))

    model = _tiny_model()
    x, y = _data(40)  # 5 batches of 8, 4 epochs: 20 steps
    model.fit(x, y, epochs=4, batch_size=8, verbose=0,
              callbacks=[CosineLearningRate(), Record()])
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * t / 20)) for t in range(20)]
    assert seen == pytest.approx(expected, rel=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    warm = []

    class RecordWarm(Record):
        def on_train_batch_end(self, batch, logs=None):
            warm.append(float(self.model.optimizer.learning_rate.numpy()))

    _tiny_model().fit(x, y, epochs=2, batch_size=8, verbose=0,
                      callbacks=[CosineLearningRate(warmup_epochs=1), RecordWarm()])
    assert warm[:5] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.01])
    with pytest.raises(ValueError, match="warmup_epochs"):
        CosineLearningRate(warmup_epochs=-1)


def test_sizing_picks_the_smallest_network_unless_the_budget_affords_more():
    small = sized_space_kwargs("cell", (28, 28, 1), n_train=1750, epochs=5, max_time=600)
    assert small == {"max_resolution": 16, "channels": 16, "cells_per_stage": 1}
    assert sized_space_kwargs("cell", (28, 28, 1), 1750, 5, max_time=None) == small
    # A budget that affords 20 trials of the second rung in its search share gets it.
    enough = 20 * trial_seconds(LADDER[1], 1750, 5) / 0.6 + 1
    assert sized_space_kwargs("cell", (28, 28, 1), 1750, 5, enough)["max_resolution"] == 32
    huge = sized_space_kwargs("nasbench201", (32, 32, 3), 100, 1, max_time=10**6)
    assert huge == {"max_resolution": 32, "channels": 16, "cells_per_stage": 5}
    # The user's settings win; spaces that are not cell spaces are left alone.
    mine = sized_space_kwargs("cell", (28, 28, 1), 1750, 5, 600, {"channels": 8})
    assert mine["channels"] == 8 and mine["cells_per_stage"] == 1
    assert sized_space_kwargs("darts", (28, 28, 1), 1750, 5, 600) == {
        "max_resolution": 16, "layers": 3}
    assert sized_space_kwargs("mobilenet", (28, 28, 1), 1750, 5, 600, {"a": 1}) == {"a": 1}
