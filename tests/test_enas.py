import numpy as np
import pytest

from keras_nas.oneshot import ENASSearch
from keras_nas.testing.toy_task import OneOpSpace, diagonal_task


@pytest.mark.parametrize("run_eagerly", [False, True])
def test_enas_controller_learns_the_only_useful_op(run_eagerly):
    x, y = diagonal_task(384, seed=0)
    xv, yv = diagonal_task(192, seed=1)
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2, channels=4)
    search = ENASSearch(space, final_samples=5, controller_steps=5, seed=0,
                        run_eagerly=run_eagerly)
    assert search.run_eagerly is run_eagerly
    search.fit(x, y, validation_data=(xv, yv), epochs=4, batch_size=32)
    assert search.best_architecture == "nor_conv_3x3"
    probs = {o: search.controller_probability(o) for o in space.options}
    # REINFORCE moved the policy towards the op with the highest reward
    assert max(probs, key=probs.get) == "nor_conv_3x3"
    assert probs["nor_conv_3x3"] > 0.25
    assert len(search.history["reward"]) == 4 and search.num_evaluated >= 4 * 5 * 4


def test_enas_bad_arguments():
    space = OneOpSpace(input_shape=(8, 8, 1), num_classes=2)
    with pytest.raises(ValueError, match="controller_batch"):
        ENASSearch(space, controller_batch=0)
    with pytest.raises(ValueError, match="baseline_decay"):
        ENASSearch(space, baseline_decay=1.0)
