"""The one set of argument and data checks (keras_nas/validation.py)."""

import numpy as np
import pytest

from keras_nas import validation


def test_integers_are_checked_for_type_then_range():
    assert validation.check_int(np.int64(3), "epochs", minimum=1) == 3
    assert validation.check_int(None, "seed", minimum=0, allow_none=True) is None
    for bad, error in (("3", TypeError), (True, TypeError), (2.0, TypeError), (0, ValueError)):
        with pytest.raises(error, match="`epochs` must be a positive integer"):
            validation.check_int(bad, "epochs", minimum=1)
    with pytest.raises(ValueError, match="`threads` must be an integer between 1 and 64, got 65"):
        validation.check_int(65, "threads", minimum=1, maximum=64)
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer or None"):
        validation.check_int(-1, "seed", minimum=0, allow_none=True)


def test_numbers_must_be_finite_and_in_range():
    assert validation.check_number(3, "max_time", positive=True) == 3.0
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`max_time` must be a positive number of seconds"):
            validation.check_number(bad, "max_time", positive=True, unit="seconds")
    with pytest.raises(TypeError, match="`latency_ms`"):
        validation.check_number("5", "latency_ms", positive=True)
    with pytest.raises(ValueError, match=r"`replay_weight` must be a number >= 0, got -0.5"):
        validation.check_number(-0.5, "replay_weight", minimum=0)


def test_choices_list_what_is_allowed():
    assert validation.check_choice(None, "schedule", ("cosine", None)) is None
    with pytest.raises(ValueError, match=r"`final_model` must be one of \('retrain', 'checkpoint'\)"):
        validation.check_choice("best", "final_model", ("retrain", "checkpoint"))
    with pytest.raises(ValueError, match="`mode`"):
        validation.check_choice(1, "mode", (True,))  # 1 == True, but not a boolean


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((4, 8, 8)), np.arange(3), "same length"),
    (np.zeros((4, 8)), np.arange(4), "shape"),
    (np.full((2, 8, 8), np.nan), np.arange(2), "NaN"),
    (np.zeros((0, 8, 8)), np.arange(0), "empty"),
    (np.zeros((2, 8, 8)), np.array([0.5, 1]), "integer class labels"),
    (np.zeros((2, 8, 8)), np.array([-1, 1]), "labels >= 0"),
    (np.array([["a"]]), np.arange(1), "numbers"),
])
def test_arrays_are_checked_once_for_every_path(x, y, match):
    with pytest.raises(ValueError, match=match):
        validation.check_arrays(x, y)


def test_one_shot_searches_use_the_same_array_rules(tmp_path):
    from keras_nas.oneshot import SPOSSearch
    from keras_nas.spaces import NASBench201Space

    search = SPOSSearch(NASBench201Space(channels=4, cells_per_stage=0))
    with pytest.raises(ValueError, match="NaN"):
        search.fit(np.full((4, 8, 8), np.nan), np.arange(4) % 2, epochs=1)
