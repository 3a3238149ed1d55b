"""A Gaussian-process model of rewards over encoded architectures, for model-based search.

`GaussianProcess` regresses rewards on architecture encodings (e.g. one-hot decisions) with a
squared-exponential kernel, choosing its length scale and noise by marginal likelihood from a
small grid; `normal_scores` turns rewards into normal quantiles of their ranks first, so a few
broken candidates (a reward far below the rest) do not flatten the model around the good ones;
`expected_improvement` scores candidates for the next trial.

Example:

```python
gp = GaussianProcess().fit(encoded, normal_scores(rewards))
mean, std = gp.predict(candidates)
best = candidates[np.argmax(expected_improvement(mean, std, gp.y.max()))]
```
"""

import numpy as np
from scipy import special
from scipy import stats

LENGTH_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
NOISE_VARIANCES = (1e-3, 1e-2, 1e-1, 0.3)


def normal_scores(values):
    """`values` as standard normal quantiles of their ranks (ties share their mean rank)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"`values` must be a non-empty 1-D array, got shape {values.shape}.")
    return special.ndtri((stats.rankdata(values) - 0.5) / len(values))


def expected_improvement(mean, std, best):
    """The expected amount by which a normal `(mean, std)` exceeds `best` (elementwise)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    z = (mean - best) / std
    return (mean - best) * special.ndtr(z) + std * stats.norm.pdf(z)


class GaussianProcess:
    """GP regression, kernel `exp(-|x - x'|^2 / length_scale)` plus noise, on standardized `y`.

    `fit` picks the length scale and noise variance with the largest marginal likelihood
    from `length_scales` x `noise_variances`. On one-hot encodings `|x - x'|^2` is twice the
    number of decisions in which two architectures differ.

    Example: `mean, std = GaussianProcess().fit(x, y).predict(x_new)`.
    """

    def __init__(self, length_scales=LENGTH_SCALES, noise_variances=NOISE_VARIANCES):
        self.length_scales = tuple(float(v) for v in length_scales)
        self.noise_variances = tuple(float(v) for v in noise_variances)
        if not self.length_scales or min(self.length_scales) <= 0:
            raise ValueError(f"`length_scales` must be positive, got {length_scales!r}.")
        if not self.noise_variances or min(self.noise_variances) <= 0:
            raise ValueError(f"`noise_variances` must be positive, got {noise_variances!r}.")
        self.x = self.y = None

    def fit(self, x, y):
        """Fits the model to encodings `x` (n, d) and targets `y` (n,); returns `self`."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.shape != (len(x),) or not len(x):
            raise ValueError(f"`x` must be (n, d) and `y` (n,), got {x.shape} and {y.shape}.")
        self.x, self.y = x, y
        self._mean, self._scale = y.mean(), y.std() or 1.0
        z = (y - self._mean) / self._scale
        distances = _squared_distances(x, x)
        best = None
        for length_scale in self.length_scales:
            kernel = np.exp(-distances / length_scale)
            for noise in self.noise_variances:
                try:
                    chol = np.linalg.cholesky(kernel + noise * np.eye(len(z)))
                except np.linalg.LinAlgError:
                    continue
                alpha = _solve_cholesky(chol, z)
                likelihood = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
                if best is None or likelihood > best[0]:
                    best = (likelihood, length_scale, noise, chol, alpha)
        if best is None:
            raise np.linalg.LinAlgError("No kernel of the grid is positive definite on `x`.")
        _, self.length_scale, self.noise_variance, self._chol, self._alpha = best
        return self

    def predict(self, x):
        """The posterior mean and standard deviation (of the noise-free reward) at `x`."""
        if self.x is None:
            raise RuntimeError("`fit` the GaussianProcess before `predict`.")
        x = np.asarray(x, dtype=np.float64)
        cross = np.exp(-_squared_distances(x, self.x) / self.length_scale)
        mean = cross @ self._alpha
        v = np.linalg.solve(self._chol, cross.T)
        variance = np.clip(1.0 - (v * v).sum(axis=0), 1e-12, None)
        return mean * self._scale + self._mean, np.sqrt(variance) * self._scale


def _squared_distances(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _solve_cholesky(chol, z):
    return np.linalg.solve(chol.T, np.linalg.solve(chol, z))
