"""The NAS-Bench-201 table as a search landscape: local optima, basins, one local search's cost.

Neighbours differ in one of the six edges (24 per cell). For a reward column (the 12-epoch
CIFAR-10 validation accuracy the strategy benchmarks use) it prints every local optimum (no
neighbour better) with its reward, its 200-epoch test accuracy, its edit distance to the
optimum and the share of cells whose steepest ascent ends on it; then, over `--starts` random
starting cells, what one first-improvement local search (untried neighbours in random order,
the first better one becomes the centre, stop when a centre's 24 neighbours are all worse)
costs in queries and how often it ends on one of the `--top` best cells. Last, how many
networks the cells are (`NASBench201Space.architecture_key`: cells that build the same
network, which a search tries once) and how much the reward and the `--latency` column vary
among the spellings of one network.

    python tools/nasbench201_landscape.py --table ../shared/data/nasbench201/nasbench201.csv
"""

import argparse
import itertools
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from keras_nas.benchmarks.nasbench201 import EDGES  # noqa: E402
from keras_nas.benchmarks.nasbench201 import OPS  # noqa: E402
from keras_nas.benchmarks.nasbench201 import NASBench201  # noqa: E402
from keras_nas.benchmarks.nasbench201 import edge_name  # noqa: E402

DEFAULT_TABLE = os.path.join(REPO, "..", "shared", "data", "nasbench201", "nasbench201.csv")


class Landscape:
    """Every cell of the table as a code (one op index per edge) with its reward and report.

    Example: `Landscape(NASBench201(path)).local_optima()`.
    """

    def __init__(self, bench, reward="12ep_cifar10_val", report="c10_200ep_test"):
        self.codes = np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES))))
        self._powers = len(OPS) ** np.arange(len(EDGES) - 1, -1, -1)
        self.reward = np.full(len(self.codes), np.nan)
        self.report = np.full(len(self.codes), np.nan)
        for code in self.codes:
            values = {edge_name(i, j): OPS[op] for (i, j), op in zip(EDGES, code)}
            row = bench.query(NASBench201.values_to_arch(values), [reward, report])
            index = self.index(code)
            self.reward[index], self.report[index] = row[reward], row[report]
        self.neighbours = np.array([self._neighbours(code) for code in self.codes])

    def index(self, code):
        return int(np.asarray(code) @ self._powers)

    def _neighbours(self, code):
        out = []
        for edge, op in itertools.product(range(len(EDGES)), range(len(OPS))):
            if op != code[edge]:
                moved = code.copy()
                moved[edge] = op
                out.append(self.index(moved))
        return out

    def local_optima(self):
        """Cells no neighbour beats, best first."""
        found = [i for i in range(len(self.codes))
                 if self.reward[i] >= self.reward[self.neighbours[i]].max()]
        return sorted(found, key=lambda i: -self.reward[i])

    def steepest_ascent_ends(self):
        """For every cell, the local optimum that always moving to the best neighbour reaches."""
        best_neighbour = self.neighbours[np.arange(len(self.codes)),
                                         np.argmax(self.reward[self.neighbours], axis=1)]
        ends = np.arange(len(self.codes))
        for _ in range(len(self.codes)):
            better = self.reward[best_neighbour[ends]] > self.reward[ends]
            if not better.any():
                return ends
            ends = np.where(better, best_neighbour[ends], ends)
        return ends

    def local_search(self, start, rng):
        """One first-improvement local search from `start`: (queries, the optimum it ends on)."""
        centre, tried = start, {start}
        while True:
            for j in rng.permutation(self.neighbours[centre]):
                if int(j) in tried:
                    continue
                tried.add(int(j))
                if self.reward[j] > self.reward[centre]:
                    centre = int(j)
                    break
            else:
                return len(tried), centre


def equivalent_spellings(bench, columns):
    """How the table's `columns` vary among the cells that build one network."""
    from keras_nas.spaces import NASBench201Space

    space = NASBench201Space()
    networks = {}
    for i, arch in enumerate(bench.architectures):
        networks.setdefault(space.architecture_key(space.decode(arch)), []).append(i)
    shared = [rows for rows in networks.values() if len(rows) > 1]
    out = {"cells": sum(len(rows) for rows in networks.values()), "networks": len(networks)}
    for name in columns:
        column = bench.column(name)
        spread = np.array([np.ptp(column[rows]) for rows in shared])
        relative = np.array([np.ptp(column[rows]) / max(column[rows].min(), 1e-9)
                             for rows in shared])
        out[name] = {"median": float(np.median(spread)), "max": float(spread.max()),
                     "median_relative": float(np.median(relative)),
                     "max_relative": float(relative.max())}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default=DEFAULT_TABLE, help="path of nasbench201.csv")
    parser.add_argument("--reward", default="12ep_cifar10_val", help="column climbed")
    parser.add_argument("--report", default="c10_200ep_test", help="column reported")
    parser.add_argument("--starts", type=int, default=3000, help="random local-search starts")
    parser.add_argument("--top", type=int, default=2, help="cells that count as a success")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", default="lat_pixel3", help="latency column compared")
    parser.add_argument("--json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.starts < 1 or args.top < 1:
        parser.error("--starts and --top must be >= 1")

    land = Landscape(NASBench201(args.table), args.reward, args.report)
    optima = land.local_optima()
    ends = land.steepest_ascent_ends()
    best = optima[0]
    rows = []
    for i in optima:
        rows.append({
            "arch": NASBench201.values_to_arch(
                {edge_name(a, b): OPS[op] for (a, b), op in zip(EDGES, land.codes[i])}),
            "reward": float(land.reward[i]), "report": float(land.report[i]),
            "edits_to_optimum": int((land.codes[i] != land.codes[best]).sum()),
            "basin_share": float(np.mean(ends == i)),
        })
    print(f"{len(optima)} local optima of {args.reward} (one-edit neighbourhood):")
    print("reward  report  edits  basin")
    for row in rows:
        print(f"{row['reward']:6.2f}  {row['report']:6.2f}  {row['edits_to_optimum']:5d}  "
              f"{row['basin_share']:5.1%}")

    rng = np.random.default_rng(args.seed)
    top = set(np.argsort(-land.reward, kind="stable")[: args.top].tolist())
    runs = [land.local_search(int(rng.integers(len(land.codes))), rng)
            for _ in range(args.starts)]
    costs = np.array([cost for cost, _ in runs])
    success = np.array([end in top for _, end in runs])
    summary = {"starts": args.starts, "mean_queries": float(costs.mean()),
               "success_share": float(success.mean()), "top": args.top}
    print(f"first-improvement local search from {args.starts} random cells: "
          f"{costs.mean():.1f} queries on average, ends on one of the {args.top} best cells "
          f"{success.mean():.1%} of the time")
    spellings = equivalent_spellings(NASBench201(args.table), [args.reward, args.latency])
    print(f"{spellings['cells']} cells are {spellings['networks']} networks; among the "
          f"spellings of one network {args.reward} varies by a median "
          f"{spellings[args.reward]['median']:.2f} (max {spellings[args.reward]['max']:.2f}), "
          f"{args.latency} by a median {spellings[args.latency]['median_relative']:.0%} "
          f"of its smallest (max {spellings[args.latency]['max']:.2f})")
    summary["spellings"] = spellings
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"local_optima": rows, "local_search": summary, "reward": args.reward,
                       "report": args.report, "command": " ".join(sys.argv)}, f, indent=1)
    return rows, summary


if __name__ == "__main__":
    main()
