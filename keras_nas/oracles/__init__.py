"""Search strategies as `keras_tuner.Oracle` subclasses, and the registry of their names."""

from keras_nas.oracles.registry import STRATEGIES, make_oracle  # noqa: F401
