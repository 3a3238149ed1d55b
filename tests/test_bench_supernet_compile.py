"""The supernet compile-time benchmark (tools/bench_supernet_compile.py)."""

import json

import pytest

from tests.tools_loader import load_tool


def test_spaces_are_the_documented_ones_and_bad_steps_are_refused():
    bench = load_tool("bench_supernet_compile")
    assert bench.make_space("darts-small").nodes == 2
    assert bench.make_space("mobilenet-small").width_multipliers == [0.5, 1.0]
    with pytest.raises(SystemExit):
        bench.main(["--steps", "-1"])


@pytest.mark.slow
def test_one_space_is_measured_and_appended(tmp_path):
    bench = load_tool("bench_supernet_compile")
    out = tmp_path / "compile.json"
    out.write_text(json.dumps([{"space": "earlier"}]))
    assert bench.main(["--space", "nasbench201", "--steps", "1", "--json", str(out),
                       "--run-eagerly", "false", "true"]) == 0
    earlier, result, eager = json.loads(out.read_text())
    assert earlier == {"space": "earlier"}
    assert (result["run_eagerly"], result["eager"], eager["run_eagerly"], eager["eager"]) == (
        False, False, True, True)
    assert eager["traces"] is None and eager["step_s_median"] > 0  # nothing traced
    assert result["candidate_layers"] == eager["candidate_layers"] == 90
    assert result["supernet"] == "ChoiceSupernet" and result["decisions"] == 6
    assert result["first_step_s"] > 0 and result["step_s_median"] > 0 and result["params"] > 0
    assert result["code"]["keras_nas"] and result["traces"] == 1  # the optimizer is built first
    assert result["backend"] == "tensorflow"
