"""Trained models are really released: TensorFlow's gradient registry does not keep their graphs."""

import gc

import keras
import pytest

from keras_nas.tuning import trial_memory
from tests.test_reliability import ToySpace, toy_data, toy_search


def _live_training_graphs():
    """How many traced Keras training steps are still in memory."""
    from tensorflow.python.framework.func_graph import FuncGraph

    keras.backend.clear_session()
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if isinstance(o, FuncGraph) and o.name.startswith("one_step_on_data"))


def _train_one(x, y):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)


@pytest.mark.slow
def test_a_plain_fit_leaves_its_graph_behind_and_the_context_manager_releases_it():
    x, y = toy_data()
    graphs, entries = _live_training_graphs(), trial_memory.custom_gradient_count()
    _train_one(x, y)
    # The premise of the module: after a plain fit the registry keeps the traced step.
    assert trial_memory.custom_gradient_count() > entries
    assert _live_training_graphs() > graphs
    graphs, entries = _live_training_graphs(), trial_memory.custom_gradient_count()
    with trial_memory.forget_new_custom_gradients():
        _train_one(x, y)
        assert trial_memory.custom_gradient_count() > entries
    # Only what was registered inside the block is removed, and the graph goes with it.
    assert trial_memory.custom_gradient_count() == entries
    assert _live_training_graphs() == graphs


def _graphs_left_by_search(tmp_path, max_trials):
    x, y = toy_data()
    graphs, entries = _live_training_graphs(), trial_memory.custom_gradient_count()
    search = toy_search(tmp_path / str(max_trials), space=ToySpace(), max_trials=max_trials)
    search.fit(x, y)
    assert len(search.trials) == max_trials
    for record in search.trials:  # each trial's time, split by phase
        assert all(record[k] >= 0 for k in ("release_s", "build_s", "fit_s"))
        assert record["release_s"] + record["build_s"] + record["fit_s"] <= record["duration_s"]
    assert trial_memory.custom_gradient_count() == entries
    return _live_training_graphs() - graphs


@pytest.mark.slow
def test_a_search_keeps_no_trial_graph_alive(tmp_path):
    # The returned model keeps the graphs of its own evaluation; the trials keep none, so
    # four trials leave no more behind than one.
    assert _graphs_left_by_search(tmp_path, 4) <= _graphs_left_by_search(tmp_path, 1)
