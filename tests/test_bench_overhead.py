"""The overhead benchmark (tools/bench_overhead.py) runs and its numbers add up."""


import pytest

from tests.tools_loader import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_overhead")


@pytest.mark.slow
def test_trial_overhead_accounts_for_every_part_of_a_trial(bench):
    result = bench.trial_overhead(trials=2, channels=4, cells=1, seed=0)
    assert result["trials"] == 2
    assert 0.0 < result["share_outside_fit_whole_search"] < 1.0
    parts = (result["release_s_median"], result["build_s_median"], result["checkpoint_s_median"])
    assert all(p >= 0.0 for p in parts) and result["build_s_median"] > 0.0
    assert result["fit_s_total"] < result["search_wall_s"]
    assert result["plain_keras_build_plus_fit_s_per_architecture"] > 0.0
    assert result["search_trial_relative_to_plain_keras"] > 0.0
