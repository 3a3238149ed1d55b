import numpy as np
import pytest

from keras_nas.tuning.augmentation import ShiftedImages, default_shift


@pytest.mark.parametrize("shape, expected", [
    ((8, 8, 1), 1), ((28, 28, 1), 3), ((100, 32, 32, 3), 3), ((64, 40, 3), 4),
    ((3, 3, 1), 0),        # too small to move
    ((20,), 0), ((5, 20), 0),  # not images
])
def test_default_shift_is_a_tenth_of_the_smaller_side(shape, expected):
    assert default_shift(shape) == expected


def test_each_epoch_shows_every_image_once_moved_by_at_most_max_shift():
    # Image i holds one bright pixel at the centre and its label is i, so a batch says
    # which image each row is and how far it moved.
    n, side, shift = 10, 9, 2
    x = np.zeros((n, side, side, 1), "float32")
    x[:, 4, 4, 0] = np.arange(1, n + 1)
    batches = ShiftedImages(x, np.arange(n), batch_size=4, max_shift=shift, seed=0)
    assert len(batches) == 3
    moves = set()
    for _ in range(2):
        labels = []
        for i in range(len(batches)):
            images, y = batches[i]
            assert images.shape[1:] == x.shape[1:] and images.dtype == x.dtype
            for image, label in zip(images, y):
                rows, cols = np.nonzero(image[..., 0])
                assert len(rows) == 1 and image[rows[0], cols[0], 0] == label + 1
                moves.add((rows[0] - 4, cols[0] - 4))
            labels.extend(y.tolist())
        assert sorted(labels) == list(range(n))
        batches.on_epoch_end()
    assert all(abs(dy) <= shift and abs(dx) <= shift for dy, dx in moves)
    assert len(moves) > 5  # the shifts vary


def test_no_shift_only_shuffles():
    x = np.random.default_rng(0).random((7, 8, 8, 1))
    batches = ShiftedImages(x, np.arange(7), batch_size=7, max_shift=0, seed=1)
    images, y = batches[0]
    np.testing.assert_array_equal(images, x[y])


@pytest.mark.parametrize("x, shift, match", [
    (np.zeros((4, 8)), 1, "`x` must be images"),
    (np.zeros((4, 8, 8, 1)), 8, "`max_shift` must be a whole number"),
    (np.zeros((4, 8, 8, 1)), 1.5, "`max_shift` must be a whole number"),
    (np.zeros((4, 8, 8, 1)), -1, "`max_shift` must be a whole number"),
])
def test_bad_arguments_are_named(x, shift, match):
    with pytest.raises(ValueError, match=match):
        ShiftedImages(x, np.zeros(len(x)), batch_size=2, max_shift=shift)
