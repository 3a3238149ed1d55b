"""Random shifts of training images: what the final retraining trains on by default.

A search's trials train a few epochs each and are compared with each other, so they see the
images as they are. The returned model is trained longest (4 x a trial's epochs by default),
and on images from writers or cameras it has not seen a model generalizes better when each
epoch shows every image moved by a few pixels (`docs/BENCHMARKS.md` §4 measures it: on
scikit-learn's digits, whose test images come from other writers, the retrained model gains
1.5-3.5 points of test accuracy).

```python
batches = ShiftedImages(x_train, y_train, batch_size=32, max_shift=default_shift(x_train.shape))
model.fit(batches, epochs=20)
```
"""

import math

import keras
import numpy as np

#: The largest shift, as a share of the image's smaller side (at least one pixel).
SHIFT_SHARE = 0.1


def default_shift(shape):
    """The largest shift, in pixels, for images of `shape` (`(n, height, width, channels)`
    or one image's `(height, width, channels)`); 0 for data that are not images.

    Example: `default_shift((8, 8, 1))` is 1, `default_shift((28, 28, 1))` is 3.
    """
    shape = tuple(shape)[-3:] if len(shape) >= 3 else ()
    if len(shape) != 3 or min(shape[:2]) < 4:
        return 0
    return max(1, int(round(SHIFT_SHARE * min(shape[:2]))))


class ShiftedImages(keras.utils.PyDataset):
    """Shuffled batches of `(x, y)` whose images are each moved by up to `max_shift` pixels.

    Every image of every epoch gets its own shift (whole pixels, each axis drawn uniformly
    from `-max_shift..max_shift`); the uncovered border is filled with zeros.

    Args:
        x: images, `(n, height, width, channels)`; y: their labels.
        batch_size: images per batch.
        max_shift: the largest shift in pixels (>= 0; 0 shuffles only).
        seed: seeds the shuffling and the shifts.

    Example: `model.fit(ShiftedImages(x, y, batch_size=32, max_shift=2), epochs=10)`.
    """

    def __init__(self, x, y, batch_size, max_shift, seed=None):
        super().__init__()
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"`x` must be images of shape (n, height, width, channels), "
                             f"got shape {x.shape}.")
        if not (isinstance(max_shift, int) and 0 <= max_shift < min(x.shape[1:3])):
            raise ValueError(f"`max_shift` must be a whole number of pixels from 0 to less "
                             f"than the image's side, got {max_shift!r}.")
        self.x, self.y = x, np.asarray(y)
        self.batch_size = int(batch_size)
        self.max_shift = max_shift
        self._rng = np.random.default_rng(seed)
        pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0))
        self._padded = np.pad(x, pad) if max_shift else x
        self._order = self._rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        if not self.max_shift:
            return self.x[rows], self.y[rows]
        height, width = self.x.shape[1:3]
        offsets = self._rng.integers(0, 2 * self.max_shift + 1, size=(len(rows), 2))
        images = np.stack([self._padded[row, dy:dy + height, dx:dx + width]
                           for row, (dy, dx) in zip(rows, offsets)])
        return images, self.y[rows]

    def on_epoch_end(self):
        self._order = self._rng.permutation(len(self.x))
