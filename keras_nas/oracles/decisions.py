"""The decisions of a KerasTuner search space as finite lists of options.

A strategy that proposes architectures one decision at a time (REINFORCE, evolution's
mutations) sees every hyperparameter of the space as a list of options:

- `Choice`: its values; `Boolean`: `[False, True]`; `Fixed`: no decision at all;
- `Int` / `Float`: every value when there are at most `num_bins` of them (an `Int`, or a
  `Float` with a `step`); otherwise `num_bins` values evenly spaced in the hyperparameter's
  own sampling (linear, log, ...; on its `step` grid if it has one), from the first to the
  last value of the range, both included. Such an `Int` / `Float` is *binned*: each option
  stands for the interval around it, and `within_bin` draws a value from that interval.
  The options of an `Int` / `Float` are in increasing order.

A space without binned decisions is finite, and exhausted once every combination of values
was tried. A binned range is not exhausted by its bins: once every binned combination was
tried, the oracles keep proposing new values drawn inside the bins.
"""

import math

from keras_tuner.engine import hyperparameters as hp_types

from keras_nas import compat

_RANGES = (hp_types.Int, hp_types.Float)


def decision_options(hp, num_bins=10):
    """The finite list of values a strategy chooses from for one hyperparameter.

    Args:
        hp: a `keras_tuner` hyperparameter (`Choice`, `Boolean`, `Int`, `Float`, `Fixed`).
        num_bins: the most options an `Int` or `Float` is cut into.

    Returns:
        A list of values, or `None` for a `Fixed` hyperparameter (nothing to decide).

    Example:

    ```python
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 0, 1000)
    decision_options(hp._hps["units"][0], num_bins=5)  # [0, 250, 500, 750, 1000]
    ```
    """
    if not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"`num_bins` must be an integer >= 2, got {num_bins!r}.")
    if isinstance(hp, hp_types.Fixed):
        return None
    if isinstance(hp, hp_types.Boolean):
        return [False, True]
    if isinstance(hp, hp_types.Choice):
        return list(hp.values)
    if isinstance(hp, _RANGES):
        values = _all_values(hp, num_bins)
        if values is not None:
            return values
        if hp.step is not None:
            n, value_at = compat.hp_grid(hp)
            picks = [value_at(k * (n - 1) // (num_bins - 1)) for k in range(num_bins)]
        else:
            picks = [compat.hp_value_at_quantile(hp, k / (num_bins - 1)) for k in range(num_bins)]
            picks[0], picks[-1] = hp.min_value, hp.max_value
        return sorted({_plain(value, hp) for value in picks})
    raise TypeError(
        f"Unsupported hyperparameter type {type(hp).__name__} for `hp` {hp.name!r}."
    )


def _all_values(hp, limit):
    """Every value of an `Int` / `Float` when it has at most `limit` of them, else None."""
    if hp.step is not None:
        n, value_at = compat.hp_grid(hp)
        if n > limit:
            return None
        return sorted(_plain(value_at(i), hp) for i in range(n))
    if isinstance(hp, hp_types.Int) and hp.max_value - hp.min_value < limit:
        return list(range(hp.min_value, hp.max_value + 1))
    return None


def _plain(value, hp):
    if isinstance(hp, hp_types.Int):
        return int(round(value))
    return float(value)


def is_binned(hp, num_bins=10):
    """True for an `Int` / `Float` with more values than `num_bins` (its options are bins)."""
    return isinstance(hp, _RANGES) and _all_values(hp, num_bins) is None


def option_index(options, value, hp=None):
    """Index of the option of `options` equal to (or, for numbers, nearest) `value`.

    Nearness is measured in the sampling of `hp` when it is an `Int` / `Float` (so a value
    drawn by `within_bin` maps back to its bin), else on a log scale for positive numbers.
    """
    for i, option in enumerate(options):
        if option == value and type(option) is type(value):
            return i
    for i, option in enumerate(options):
        if option == value:
            return i
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(hp, _RANGES):
            target = hp.value_to_prob(value)
            numeric = [(abs(hp.value_to_prob(o) - target), i) for i, o in enumerate(options)]
        else:
            numeric = [
                (abs(math.log(o) - math.log(value)) if o > 0 and value > 0 else abs(o - value), i)
                for i, o in enumerate(options)
                if isinstance(o, (int, float)) and not isinstance(o, bool)
            ]
        if numeric:
            return min(numeric)[1]
    raise ValueError(f"Value {value!r} is not one of the options {options!r}.")


def within_bin(hp, options, value, rng):
    """A random value of the binned `hp` in the interval of the option nearest `value`.

    The interval of an option reaches half-way to its neighbours in `hp`'s sampling (to
    the end of the range for the first and last option); values stay on the `step` grid.
    """
    index = option_index(options, value, hp)
    probs = sorted(hp.value_to_prob(o) for o in options)
    k = probs.index(hp.value_to_prob(options[index]))
    low = 0.0 if k == 0 else (probs[k - 1] + probs[k]) / 2
    high = 1.0 if k == len(probs) - 1 else (probs[k] + probs[k + 1]) / 2
    for _ in range(10):  # a value rounded onto the border may belong to the next bin
        value = _plain(hp.prob_to_value(float(rng.uniform(low, high))), hp)
        if option_index(options, value, hp) == index:
            return value
    return options[index]


def space_decisions(hyperparameters, num_bins=10):
    """The decisions of a search space: a list of `(hp, options)` in declaration order.

    `Fixed` hyperparameters and those with a single option are left out.
    """
    decisions = []
    for hp in hyperparameters.space:
        options = decision_options(hp, num_bins)
        if options is not None and len(options) > 1:
            decisions.append((hp, options))
    return decisions


def is_active(hp, values):
    """Whether `hp`'s conditions hold for the (active) `values` chosen so far."""
    return all(condition.is_active(values) for condition in hp.conditions)


def complete_values(hyperparameters, values, choose):
    """Fills in the active decisions of `values`, keeping only the active ones.

    Args:
        hyperparameters: the `keras_tuner.HyperParameters` search space.
        values: dict of values already chosen (kept where still active).
        choose: `fn(hp) -> value` called for an active hyperparameter with no value yet.

    Returns:
        A dict of the values of the active hyperparameters, in declaration order.
    """
    out = {}
    for hp in hyperparameters.space:
        if is_active(hp, out):
            out[hp.name] = values[hp.name] if hp.name in values else choose(hp)
    return out


def within_bins(hyperparameters, values, num_bins, rng):
    """`values` with every active binned `Int` / `Float` redrawn inside its bin.

    Returns `None` when no active decision is binned. Conditional hyperparameters the new
    values switch off are dropped, those they switch on take their default.
    """
    out = dict(values)
    binned = False
    for hp in hyperparameters.space:
        if hp.name in out and is_active(hp, out) and is_binned(hp, num_bins):
            out[hp.name] = within_bin(hp, decision_options(hp, num_bins), out[hp.name], rng)
            binned = True
    if not binned:
        return None
    return complete_values(hyperparameters, out, lambda hp: hp.default)


def neighbour_moves(decisions, values):
    """The one-decision moves away from `values`: `(hp, option)` for every other option of
    each active decision of `decisions` (`space_decisions`)."""
    moves = []
    for hp, options in decisions:
        if hp.name not in values or not is_active(hp, values):
            continue
        current = option_index(options, values[hp.name], hp)
        moves.extend((hp, options[i]) for i in range(len(options)) if i != current)
    return moves


def untried_completion(hyperparameters, values, num_bins, rng, is_new):
    """`values` with the decisions it switches on filled in, for which `is_new` holds; `None`
    when no completion is new.

    Decisions of `values` that are still active are kept, those switched off are dropped;
    every combination of the newly active ones is visited (in random order), so `None`
    means all completions were tried.
    """
    space = list(hyperparameters.space)

    def walk(i, out):
        while i < len(space) and not is_active(space[i], out):
            i += 1  # switched off (or never on): dropped
        if i == len(space):
            return dict(out) if is_new(out) else None
        hp = space[i]
        if hp.name in values:  # kept as it is
            out[hp.name] = values[hp.name]
            found = walk(i + 1, out)
            del out[hp.name]
            return found
        options = decision_options(hp, num_bins) or [hp.default]
        for k in rng.permutation(len(options)):
            out[hp.name] = options[int(k)]
            found = walk(i + 1, out)
            if found is not None:
                return found
        del out[hp.name]
        return None

    return walk(0, {})


def untried_neighbours(hyperparameters, moves, values, num_bins, rng, is_new, first=False):
    """The untried neighbours of `values`, in random order: `values` with one move
    `(hp, option)` of `moves` (`neighbour_moves`) applied, completed by `untried_completion`;
    with `first`, only the first one found (a list of at most one).

    Example: `untried_neighbours(hp, neighbour_moves(decisions, v), v, 10, rng, is_new)`.
    """
    found = []
    for k in rng.permutation(len(moves)):
        hp, option = moves[int(k)]
        child = dict(values)
        child[hp.name] = option
        child = untried_completion(hyperparameters, child, num_bins, rng, is_new)
        if child is not None:
            found.append(child)
            if first:
                break
    return found


def untried_values(hyperparameters, num_bins, rng, is_new, near=None, tries=100):
    """Values of the space for which `is_new(values)` holds, or `None` if none turns up.

    First a depth-first walk over the options of the active decisions, each decision's
    options in random order: its first set of values is a uniform random one, and it visits
    at most one set per set already tried. Without binned decisions, `None` then means the
    space is exhausted. Otherwise up to `tries` sets drawn inside the bins (`within_bins`)
    of `near` (the first half of the tries, when given) or of random options.
    """
    space = list(hyperparameters.space)
    found = untried_completion(hyperparameters, {}, num_bins, rng, is_new)
    if found is not None or not any(is_binned(hp, num_bins) for hp in space):
        return found

    def random_option(hp):
        options = decision_options(hp, num_bins) or [hp.default]
        return options[int(rng.integers(len(options)))]

    for t in range(tries):
        if near is not None and t < tries // 2:
            base = near
        else:
            base = complete_values(hyperparameters, {}, random_option)
        values = within_bins(hyperparameters, base, num_bins, rng)
        if values is not None and is_new(values):
            return values
    return None
