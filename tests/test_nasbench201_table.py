"""The NAS-Bench-201 table and the benchmark driver.

`tests/data/nasbench201_subset.csv` holds 301 rows of the full table: the 40 best cells by
`12ep_cifar10_val`, 260 random cells (random.Random(0)) and the README's example cell.
"""

import json
from pathlib import Path

import keras_tuner
import numpy as np
import pytest

from keras_nas.benchmarks import NASBench201
from keras_nas.spaces import NASBench201Space
from tests.tools_loader import load_tool

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "tests" / "data" / "nasbench201_subset.csv"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def table():
    return NASBench201(SUBSET)


def test_query_columns_and_best(table):
    assert len(table) == 301
    row = table.query(BEST)
    assert row["c10_200ep_test"] == pytest.approx(94.3733)
    assert row["12ep_cifar10_val"] == pytest.approx(84.892)
    assert row["params_M_cifar10"] > 0 and "lat_pixel3" in row
    assert table.best("12ep_cifar10_val")[0] == BEST
    assert table.query(BEST, ["c10_200ep_test"]) == {"c10_200ep_test": pytest.approx(94.3733)}
    assert table.column("c10_200ep_test").shape == (301,)
    assert BEST in table and "|x~0|" not in table


def test_bad_inputs(table, tmp_path):
    with pytest.raises(ValueError, match="arch_str"):
        table.query("|none~0|+|none~0|none~1|")
    with pytest.raises(ValueError, match="column"):
        table.query(BEST, ["no_such_column"])
    with pytest.raises(ValueError, match="path"):
        NASBench201(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="arch_str"):
        NASBench201.arch_to_values("|nor_conv_3x3~0|")


def test_values_match_the_space_encoding(table):
    space = NASBench201Space()
    for arch in table.architectures[:50]:
        values = NASBench201.arch_to_values(arch)
        assert NASBench201.values_to_arch(values) == arch
        assert space.encode(values) == arch
        assert space.decode(arch) == values
    hp = keras_tuner.HyperParameters()
    NASBench201.declare(hp)
    hp_space = keras_tuner.HyperParameters()
    space.declare(hp_space)
    assert [p.name for p in hp.space] == [p.name for p in hp_space.space]


class FakeTable:
    """Every cell, with a made-up smooth score: 3x3 convolutions are good."""

    def query(self, arch, columns):
        values = NASBench201.arch_to_values(arch)
        score = sum({"nor_conv_3x3": 3, "nor_conv_1x1": 2, "skip_connect": 1}.get(v, 0)
                    for v in values.values())
        return {column: (60 if i == 0 else 80) + score for i, column in enumerate(columns)}


def load_nasbench201_tool():
    return load_tool("nasbench201")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random", "evolution", "reinforce"])
def test_driver_runs_the_real_oracles(strategy):
    tool = load_nasbench201_tool()
    kwargs = {"units": 8} if strategy == "reinforce" else {}
    r = tool.run_seed(strategy, 10007, 25, FakeTable(), "val", "test", kwargs)
    assert r["trials"] == 25 and r["distinct"] == 25
    curve = np.array(r["curve"])
    assert np.all(np.diff(curve) >= 0)  # best-so-far (by reward) of this fake table
    assert r["test"] == curve[-1] == r["reward"] + 20


def test_driver_gives_a_strategy_the_params_proxy_from_the_table():
    tool = load_nasbench201_tool()
    table, seen = FakeTable(), []
    query = table.query
    table.query = lambda arch, columns: seen.append(tuple(columns)) or query(arch, columns)
    r = tool.run_seed("local", 10007, 25, table, "val", "test",
                      {"initial_samples": 2, "proxy_pool": 20}, proxy="params")
    assert ("params_M_cifar10",) in seen and r["proxy_scored"] >= 20
    # The fake table's parameter count orders cells as its reward does: the search climbs
    # straight from the best-scored start to the optimum (all 3x3 convolutions).
    assert r["reward"] == 60 + 18 and r["curve"].index(r["test"]) < 12
    with pytest.raises(SystemExit):
        tool.parse_args(["--strategy", "random", "--proxy", "params"])


@pytest.mark.slow
def test_the_tables_params_column_is_the_params_proxy_of_the_spaces_model(table):
    from keras_nas.estimation import proxy_function

    space = NASBench201Space(input_shape=(32, 32, 3), num_classes=10)
    size = proxy_function(space, "params")
    column = load_nasbench201_tool().PROXY_COLUMNS["params"]
    other = ("|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|"
             "+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|")
    for arch in (BEST, other):
        # (the subset keeps the column's millions to 5 decimals)
        assert size(space.decode(arch)) == pytest.approx(table.query(arch, [column])[column] * 1e6,
                                                         abs=5)


def test_driver_main_writes_json(tmp_path, monkeypatch):
    tool = load_nasbench201_tool()
    import keras_nas.benchmarks

    monkeypatch.setattr(keras_nas.benchmarks, "NASBench201", lambda path: FakeTable())
    out = tmp_path / "r.json"
    tool.main(["--strategy", "evolution", "--queries", "12", "--seeds", "2",
               "--population-size", "4", "--sample-size", "2", "--json", str(out),
               "--reward", "val", "--report", "test"])
    result = json.loads(out.read_text())
    for key in ("strategy", "queries", "seeds", "test_mean", "test_std", "curve_mean"):
        assert key in result
    assert result["seeds"] == 2 and result["queries"] == 12 and len(result["curve_mean"]) == 12
    assert result["options"] == {"population_size": 4, "sample_size": 2}
    assert [r["seed"] for r in result["per_seed"]] == [10007, 20014]
    assert result["complete"] is True and result["seeds_requested"] == 2
    # 'none' turns a float option off (passed on as None).
    args = tool.parse_args(["--strategy", "reinforce", "--temperature", "none",
                            "--tanh-constant", "2", "--replay-best", "0"])
    assert tool.strategy_kwargs(args) == {"temperature": None, "tanh_constant": 2.0,
                                          "replay_best": 0}


class FakeLatencyTable(FakeTable):
    """FakeTable with a latency: 2 ms per 3x3 convolution, plus 1."""

    def query(self, arch, columns):
        row = super().query(arch, columns[:2])
        convs = list(NASBench201.arch_to_values(arch).values()).count("nor_conv_3x3")
        row[columns[2]] = 1.0 + 2.0 * convs
        return row


@pytest.mark.parametrize("strategy", ["local", "evolution"])
def test_latency_driver_trains_no_candidate_over_a_hard_target(strategy):
    tool = load_tool("nasbench201_latency")
    args = tool.parse_args(["--strategy", strategy, "--objective", "hard", "--target-ms", "4",
                            "--queries", "15", "--reward-column", "val",
                            "--report-column", "test", "--device", "lat"])
    r = tool.run_seed(args, FakeLatencyTable(), 3)
    # 15 trainings, every one within the target (at most one 3x3 convolution); the
    # candidates over it were reported to the oracle untrained, costing no query.
    assert r["trials"] == r["feasible_trials"] == 15 and r["skipped"] > 0
    assert r["latency_ms"] <= 4 and r["test"] is not None
    args.skip_infeasible = False
    r = tool.run_seed(args, FakeLatencyTable(), 3)
    assert r["trials"] == 15 and r["skipped"] == 0 and r["feasible_trials"] < 15


def test_landscape_of_a_table_with_one_hill():
    tool = load_tool("nasbench201_landscape")
    land = tool.Landscape(FakeTable(), reward="val", report="test")
    optima = land.local_optima()
    # FakeTable's score adds up per edge: one optimum (3x3 everywhere), every climb ends on it.
    assert len(optima) == 1 and land.reward[optima[0]] == 60 + 3 * 6
    assert np.all(land.steepest_ascent_ends() == optima[0])
    queries, end = land.local_search(0, np.random.default_rng(0))  # from all-`none`
    assert end == optima[0] and queries >= 6 + 24  # at least 6 moves and a last neighbourhood


def test_landscape_counts_the_spellings_of_one_network():
    from keras_nas.spaces.nasbench201 import all_architectures

    class Spelled:
        """A flat column, and one counting the 3x3 convolutions as spelled (dead ones too)."""
        architectures = list(all_architectures())

        def column(self, name):
            if name == "flat":
                return np.ones(len(self.architectures))
            return np.array([a.count("nor_conv_3x3") for a in self.architectures], float)

    out = load_tool("nasbench201_landscape").equivalent_spellings(Spelled(), ["flat", "convs"])
    assert out["cells"] == 15625 and out["networks"] == 6100
    assert out["flat"]["max"] == 0 and out["convs"]["max"] >= 2
