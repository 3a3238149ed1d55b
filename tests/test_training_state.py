import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas import data
from keras_nas.tuning.training_state import BuildTrainingState, build_training_state


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = data.load_digits()
    return x[:200], y[:200]


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _traced_steps():
    """How many graphs of Keras' per-batch step (`one_step_on_data`) are alive."""
    gc.collect()
    return sum(1 for g in gc.get_objects()
               if isinstance(g, tf.Graph) and getattr(g, "name", "").startswith("one_step_on_data"))


@pytest.mark.slow
def test_the_training_step_is_traced_once_instead_of_twice(digits):
    x, y = digits
    keras.backend.clear_session()
    before = _traced_steps()
    lazy = _model()
    lazy.fit(x, y, validation_split=0.25, epochs=1, batch_size=32, verbose=0)
    # Keras alone: the training step twice (the first trace creates Adam's and the
    # metrics' variables), the test step once.
    assert _traced_steps() - before == 3
    del lazy
    keras.backend.clear_session()
    before = _traced_steps()
    model = _model()
    callback = BuildTrainingState(x, y)
    model.fit(x, y, validation_split=0.25, epochs=1, batch_size=32, verbose=0,
              callbacks=[callback])
    assert callback.built is True
    assert _traced_steps() - before == 2


def test_training_gives_the_same_numbers_with_the_state_built_first(digits):
    x, y = digits
    keras.backend.clear_session()
    lazy = _model(seed=3)
    lazy_history = lazy.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    keras.backend.clear_session()
    model = _model(seed=3)
    assert build_training_state(model, x, y) is True
    assert model.optimizer.built and len(model.optimizer.variables) > 1
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    np.testing.assert_allclose(history.history["loss"], lazy_history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(history.history["accuracy"], lazy_history.history["accuracy"])
    for a, b in zip(model.get_weights(), lazy.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_dataset_of_batches_is_read_from_its_element_spec(digits):
    x, y = digits
    keras.backend.clear_session()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model = _model()
    assert build_training_state(model, dataset) is True
    model.fit(dataset, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == int(np.ceil(len(x) / 32))


def test_models_it_cannot_prepare_are_left_to_keras(digits):
    x, y = digits
    uncompiled = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(10)])
    assert build_training_state(uncompiled, x, y) is False
    unbuilt = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])
    unbuilt.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert build_training_state(unbuilt, x, y) is False
    assert not unbuilt.optimizer.built
    model = _model()
    assert build_training_state(model, object(), y) is False  # not data it can read
    # `fit` still trains such a model: Keras builds the state itself.
    callback = BuildTrainingState(object())
    unbuilt.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.built is False and unbuilt.optimizer.built
