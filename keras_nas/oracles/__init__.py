"""Search strategies as `keras_tuner.Oracle` subclasses, and the registry of their names."""

from keras_nas.oracles.controller import LSTMController  # noqa: F401
from keras_nas.oracles.evolution import EvolutionOracle  # noqa: F401
from keras_nas.oracles.gp import GPOracle  # noqa: F401
from keras_nas.oracles.local_search import LocalSearchOracle  # noqa: F401
from keras_nas.oracles.reinforce import ReinforceOracle  # noqa: F401
from keras_nas.oracles.registry import STRATEGIES, make_oracle  # noqa: F401
