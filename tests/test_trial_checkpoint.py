import os

import keras
import keras_tuner
import numpy as np
import pytest

import keras_nas
from keras_nas import data
from keras_nas.tuning.trial_checkpoint import BestEpochWeights, restore_checkpoint, write_checkpoint


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = data.load_digits()
    return x[:200], y[:200]


def _model(units=10, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_keeps_the_weights_of_the_best_epoch_not_the_last():
    model = _model()
    keeper = BestEpochWeights(keras_tuner.Objective("val_accuracy", "max"))
    keeper.set_model(model)
    keeper.on_epoch_end(0, {"val_accuracy": 0.5})
    first = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1.0 for w in first])
    keeper.on_epoch_end(1, {"val_accuracy": 0.4})  # worse: the copy stays
    assert keeper.best_epoch == 0
    for kept, expected in zip(keeper.weights, first):
        np.testing.assert_array_equal(kept, expected)
    keeper.on_epoch_end(2, {"val_accuracy": 0.6})
    assert keeper.best_epoch == 2 and keeper.best_value == 0.6
    np.testing.assert_array_equal(keeper.weights[0], first[0] + 1.0)


def test_without_the_metric_every_epoch_counts_as_best():
    model = _model()
    keeper = BestEpochWeights(keras_tuner.Objective("val_loss", "min"))
    keeper.set_model(model)
    keeper.on_epoch_end(0, {"loss": 1.0})
    keeper.on_epoch_end(1, {"loss": 2.0})
    assert keeper.best_epoch == 1


def test_round_trip_restores_the_model_and_optimizer(digits, tmp_path):
    x, y = digits
    model = _model()
    keeper = BestEpochWeights(keras_tuner.Objective("loss", "min"))
    model.fit(x, y, epochs=2, batch_size=50, verbose=0, callbacks=[keeper])
    path = str(tmp_path / "trial" / "checkpoint.weights.npz")
    assert write_checkpoint(keeper, path) is True
    assert os.listdir(tmp_path / "trial") == ["checkpoint.weights.npz"]  # no partial file
    fresh = restore_checkpoint(_model(seed=9), path, optimizer=True)
    np.testing.assert_allclose(fresh.predict(x[:20], verbose=0), model.predict(x[:20], verbose=0),
                               atol=1e-6)
    assert int(fresh.optimizer.iterations.numpy()) == 8  # 2 epochs of 4 steps
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    only_weights = restore_checkpoint(_model(seed=9), path)
    assert not only_weights.optimizer.built


def test_a_checkpoint_of_another_architecture_is_refused(digits, tmp_path):
    x, y = digits
    model = _model(units=10)
    keeper = BestEpochWeights(keras_tuner.Objective("loss", "min"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keeper])
    path = str(tmp_path / "c.weights.npz")
    write_checkpoint(keeper, path)
    with pytest.raises(ValueError, match="another architecture"):
        restore_checkpoint(_model(units=12), path)


def test_nothing_kept_writes_nothing(tmp_path):
    keeper = BestEpochWeights(keras_tuner.Objective("loss", "min"))
    assert write_checkpoint(keeper, str(tmp_path / "c.npz")) is False
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_hyperband_continues_a_trial_from_its_checkpoint(digits, tmp_path):
    x, y = digits
    s = keras_nas.Search(space="cell", strategy="hyperband", max_trials=4, epochs=3, seed=0,
                         directory=tmp_path, space_kwargs=dict(channels=4, cells_per_stage=1),
                         verbose=0, final_model="checkpoint")
    s.fit(x[:150], y[:150], validation_data=(x[150:], y[150:]))
    continued = [t for t in s.trials if "tuner/trial_id" in t["hyperparameters"]]
    assert continued, [t["hyperparameters"] for t in s.trials]
    for trial in continued:
        assert trial["status"] == "COMPLETED", trial["error"]
        parent = trial["hyperparameters"]["tuner/trial_id"]
        assert os.path.exists(s.tuner._get_checkpoint_fname(parent))
    # Every completed trial's best epoch is on disk and loads into its own architecture.
    best = s.tuner.oracle.get_best_trials(1)[0]
    model = s.tuner.load_model(best)
    accuracy = model.evaluate(x[150:], y[150:], verbose=0)[1]
    assert accuracy == pytest.approx(best.metrics.get_best_value("val_accuracy"), abs=1e-6)
