"""Zero-cost proxies in a search: score architectures of a space, keep the most promising.

A proxy costs one or two forward/backward passes of an untrained network, against minutes
of training per trial, so a search can afford to score many more candidates than it trains:

- **Pre-screening.** Draw a pool of candidates (e.g. `space.random_architecture(seed)` for
  many seeds, or an evolution's children), keep the `k` best by a proxy with
  `prescreen(...)`, and train only those.
- **Warm start.** Give the survivors to a strategy as its first trials:
  `warm_start(oracle, space, survivors)` makes any KerasTuner oracle propose them (decoded
  with `space.decode`, since every architecture decision of a keras-nas space is a KerasTuner
  hyperparameter) before its own choices; an evolution oracle's random initial population,
  a Bayesian oracle's initial points or a REINFORCE controller's first samples are then
  proxy-selected instead of random, and the strategy learns from their real results.
- **Guiding a strategy.** `proxy_function(space, "params")` is `fn(values) -> float` for the
  `proxy` of a keras-nas strategy (`keras_nas.oracles.NASOracle`: local search, evolution,
  REINFORCE and gp start from, and move to, the best-scored candidates); `NASTuner` makes it
  from a proxy name given to the strategy.
- **Cheap estimate of one trial.** `ProxyEstimator(...).estimate_model(model)` or
  `keras_nas.estimation.score(model, proxy, x, y)`.

Example:

```python
from keras_nas.estimation import prescreen
pool = [space.random_architecture(seed=s) for s in range(100)]
best10 = prescreen(space, pool, "synflow", keep=10)
oracle = keras_nas.oracles.make_oracle("evolution", objective="val_accuracy",
                                      max_trials=30, epochs=5)
warm_start(oracle, space, best10)   # trials 0..9 are best10, then the oracle takes over
```
"""

import json
import math

from keras_nas.estimation.proxies import DATA_FREE, NEEDS_LABELS, PROXIES, score


class ProxyEstimator:
    """Scores architectures of a search space with one zero-cost proxy.

    Args:
        proxy: a key of `keras_nas.estimation.PROXIES`, e.g. `"synflow"`.
        x: the fixed batch of inputs data-dependent proxies see (unused by data-free ones,
            except to give `synflow`/`flops` the input shape).
        y: labels of `x` (needed by `snip` and `grad_norm`).

    Example:

    ```python
    est = ProxyEstimator("jacob_cov", x=x_train[:64])
    ranked = est.rank(space, [space.random_architecture(s) for s in range(50)])
    ```
    """

    def __init__(self, proxy="synflow", x=None, y=None):
        if not isinstance(proxy, str) or proxy not in PROXIES:
            raise ValueError(f"Unknown `proxy` {proxy!r}: expected one of {sorted(PROXIES)}.")
        if proxy not in DATA_FREE and x is None:
            raise ValueError(f"`x` is required: proxy {proxy!r} looks at a batch of data.")
        if proxy in NEEDS_LABELS and y is None:
            raise ValueError(f"`y` is required: proxy {proxy!r} needs labels.")
        self.proxy = proxy
        self.x = x
        self.y = y

    def estimate_model(self, model):
        """The proxy's score of a built model (higher predicts better)."""
        return score(model, self.proxy, self.x, self.y)

    def estimate(self, space, arch_str):
        """Builds `arch_str` with `space.build_architecture` and returns its score."""
        model = space.build_architecture(arch_str)
        try:
            return self.estimate_model(model)
        finally:
            del model

    def rank(self, space, candidates):
        """`[(arch_str, score), ...]` for the distinct candidates, best first.

        Ties keep the candidates' order; NaN scores rank last.
        """
        candidates = _check_candidates(candidates)
        scored = []
        for order, arch in enumerate(candidates):
            value = float(self.estimate(space, arch))
            key = -math.inf if math.isnan(value) else value
            scored.append((key, order, arch, value))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [(arch, value) for _, _, arch, value in scored]

    def prescreen(self, space, candidates, keep):
        """The `keep` best candidates by the proxy, best first (all of them if fewer)."""
        keep = _check_keep(keep)
        return [arch for arch, _ in self.rank(space, candidates)[:keep]]


def _check_candidates(candidates):
    if isinstance(candidates, str) or not hasattr(candidates, "__iter__"):
        raise TypeError(
            f"`candidates` must be a list of architecture strings, got {type(candidates).__name__}."
        )
    seen, out = set(), []
    for arch in candidates:
        if not isinstance(arch, str):
            raise TypeError(f"`candidates` must hold architecture strings, got {arch!r}.")
        if arch not in seen:
            seen.add(arch)
            out.append(arch)
    if not out:
        raise ValueError("`candidates` is empty.")
    return out


def _check_keep(keep):
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"`keep` must be a positive int, got {keep!r}.")
    return keep


def prescreen(space, candidates, proxy, x=None, y=None, keep=10):
    """Keeps the `keep` candidate architectures of `space` that score best by `proxy`.

    Each distinct candidate is built with `space.build_architecture(arch)` and scored
    once; the result is ordered best first (ties in input order).

    Args:
        space: a `keras_nas.spaces.Space` configured with `input_shape` and `num_classes`.
        candidates: architecture strings of that space.
        proxy: a key of `keras_nas.estimation.PROXIES`.
        x: a batch of inputs for data-dependent proxies.
        y: its labels (for `snip`, `grad_norm`).
        keep: how many to keep.

    Returns:
        A list of at most `keep` architecture strings.

    Example:

    ```python
    survivors = prescreen(space, pool, "naswot", x=x_train[:64], keep=10)
    ```
    """
    _check_keep(keep)
    return ProxyEstimator(proxy, x=x, y=y).prescreen(space, candidates, keep)


def warm_start(oracle, space, architectures):
    """Makes a KerasTuner oracle propose `architectures` as its first new trials.

    The architectures (decoded by `space.decode`; hyperparameters an architecture does not
    set keep their defaults) go to the oracle's `warm_start_queue`
    (`keras_nas.oracles.warm_start`), which it proposes before its own strategy; the queue is
    part of the oracle's state, so a resumed search does not propose them twice. The oracle must already know the space's hyperparameters
    (a Tuner registers them when it is created).

    Args:
        oracle: a `keras_tuner.Oracle`.
        space: the `keras_nas.spaces.Space` the architectures belong to.
        architectures: architecture strings, e.g. from `prescreen()`.

    Returns:
        The same oracle (changed in place).

    Example:

    ```python
    warm_start(tuner.oracle, space, prescreen(space, pool, "synflow", keep=10))
    ```
    """
    from keras_nas.oracles.warm_start import with_queue

    oracle = with_queue(oracle)
    queue = [space.decode(arch) for arch in _check_candidates(architectures)]
    try:
        queue = json.loads(json.dumps(queue))
    except TypeError as e:
        raise ValueError(f"`space.decode` gave values that are not plain JSON: {e}") from None
    oracle.warm_start_queue = queue
    return oracle


def check_proxy(proxy):
    """`proxy` if it is None, callable, or the name of a data-free proxy; else a clear error.

    Data-free proxies (`DATA_FREE`: `"params"`, `"synflow"`, `"flops"`) need no batch of
    data, so a strategy can name one before the search has seen any.
    """
    if proxy is None or callable(proxy) or (isinstance(proxy, str) and proxy in DATA_FREE):
        return proxy
    raise ValueError(f"`proxy` must be a function `fn(values) -> float`, None, or one of "
                     f"{list(DATA_FREE)} (the data-free proxies), got {proxy!r}.")


def proxy_function(space, proxy):
    """`fn(values) -> float`: the data-free `proxy` of the model `space` builds from `values`.

    For a strategy's `proxy` (`keras_nas.oracles.NASOracle`): the values are a trial's
    hyperparameter values; the model is built untrained and uncompiled
    (`space.build_values`) and scored by `ProxyEstimator(proxy)`. Building costs what a
    trial's build costs (0.1-0.2 s for `search()`'s sized cell space on 28x28 images, 0.4-1.3 s
    for the NAS-Bench-201 network on CIFAR-10 shapes), so a strategy scores each architecture
    once.

    Example:

    ```python
    space = NASBench201Space(input_shape=(32, 32, 3), num_classes=10)
    size = proxy_function(space, "params")
    size(space.decode("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|...|"))
    ```
    """
    if not (isinstance(proxy, str) and proxy in DATA_FREE):
        raise ValueError(f"`proxy` must be one of {list(DATA_FREE)} (the data-free proxies), "
                         f"got {proxy!r}.")
    estimator = ProxyEstimator(proxy)

    def scored(values):
        # raises if the space is not configured (no input shape or classes yet)
        return estimator.estimate_model(space.build_values(dict(values)))

    scored.__name__ = f"{proxy}_of_{type(space).__name__}"
    return scored
