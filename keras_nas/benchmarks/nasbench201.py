"""NAS-Bench-201 as a lookup table: the trained accuracy of every cell of the space."""

import csv
import math
import os

import numpy as np

#: The operations on an edge of a NAS-Bench-201 cell.
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The edges `(i, j)` of the cell (node i feeds node j), in `arch_str` order.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


def edge_name(i, j):
    """The hyperparameter name of edge `i -> j` (`"edge_0_1"`, ...), as in `NASBench201Space`."""
    return f"edge_{i}_{j}"


class NASBench201:
    """The NAS-Bench-201 table: answers queries by architecture string.

    Every row is one cell of the space; columns include `12ep_cifar10_val` /
    `12ep_cifar10_test` (and `cifar100`, `imagenet`), `c10_200ep_test` (200-epoch CIFAR-10
    test accuracy, %), `c10valid_200ep_xvalid`, `params_M_cifar10` and `lat_<device>`
    latencies (ms). The full table ships beside the project in
    `../shared/data/nasbench201/nasbench201.csv`.

    Args:
        path: path of the CSV table (one row per cell, an `arch_str` column).

    Example:

    ```python
    bench = NASBench201("../shared/data/nasbench201/nasbench201.csv")
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    bench.query(arch)["c10_200ep_test"]  # 94.37
    ```
    """

    def __init__(self, path):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a path to the CSV table, got {path!r}.")
        if not os.path.exists(path):
            raise ValueError(f"`path` {str(path)!r} does not exist: expected the NAS-Bench-201 CSV.")
        self.path = str(path)
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "arch_str" not in reader.fieldnames:
                raise ValueError(f"`path` {self.path!r} has no `arch_str` column.")
            self.columns = [c for c in reader.fieldnames if c != "arch_str"]
            self._archs = []
            data = {c: [] for c in self.columns}
            for row in reader:
                self._archs.append(row["arch_str"])
                for c in self.columns:
                    data[c].append(_number(row[c]))
        self._data = {c: np.asarray(v, dtype=np.float64) for c, v in data.items()}
        self._index = {a: i for i, a in enumerate(self._archs)}

    def __len__(self):
        return len(self._archs)

    def __contains__(self, arch_str):
        return arch_str in self._index

    @property
    def architectures(self):
        """All architecture strings of the table, in row order."""
        return list(self._archs)

    def column(self, name):
        """One column as a numpy array (row order)."""
        self._check_column(name)
        return self._data[name].copy()

    def query(self, arch_str, columns=None):
        """The row of `arch_str` as a dict of column -> float.

        Args:
            arch_str: a NAS-Bench-201 architecture string.
            columns: optional list of columns to return (default: all).
        """
        if arch_str not in self._index:
            raise ValueError(f"`arch_str` {arch_str!r} is not in the table {self.path!r}.")
        i = self._index[arch_str]
        columns = self.columns if columns is None else columns
        out = {}
        for c in columns:
            self._check_column(c)
            out[c] = float(self._data[c][i])
        return out

    def best(self, column, k=1):
        """The `k` architectures with the largest `column`, best first."""
        self._check_column(column)
        order = np.argsort(-self._data[column], kind="stable")[:k]
        return [self._archs[int(i)] for i in order]

    def _check_column(self, name):
        if name not in self._data:
            raise ValueError(f"Unknown column {name!r}: expected one of {self.columns}.")

    # -- architecture strings <-> hyperparameter values -----------------------------------
    @staticmethod
    def declare(hp):
        """Declares the six `edge_i_j` choices on a `keras_tuner.HyperParameters`."""
        for i, j in EDGES:
            hp.Choice(edge_name(i, j), list(OPS))

    @staticmethod
    def values_to_arch(values):
        """The `arch_str` of a dict `{"edge_0_1": op, ...}`."""
        nodes = []
        for j in (1, 2, 3):
            ops = []
            for i in range(j):
                name = edge_name(i, j)
                if name not in values or values[name] not in OPS:
                    raise ValueError(f"`values` needs {name!r} in {OPS}, got {values.get(name)!r}.")
                ops.append(f"{values[name]}~{i}")
            nodes.append("|" + "|".join(ops) + "|")
        return "+".join(nodes)

    @staticmethod
    def arch_to_values(arch_str):
        """The dict `{"edge_0_1": op, ...}` of an `arch_str`."""
        if not isinstance(arch_str, str):
            raise TypeError(f"`arch_str` must be a string, got {arch_str!r}.")
        nodes = arch_str.split("+")
        values = {}
        if len(nodes) != 3:
            raise ValueError(f"`arch_str` must have 3 nodes separated by '+', got {arch_str!r}.")
        for j, node in enumerate(nodes, start=1):
            ops = [t for t in node.split("|") if t]
            if len(ops) != j:
                raise ValueError(f"Node {j} of `arch_str` {arch_str!r} must have {j} inputs.")
            for token in ops:
                op, _, i = token.partition("~")
                if op not in OPS or not i.isdigit() or int(i) >= j:
                    raise ValueError(f"Bad edge {token!r} in `arch_str` {arch_str!r}.")
                values[edge_name(int(i), j)] = op
        return values


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
