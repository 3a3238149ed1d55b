"""The main-job benchmark (tools/bench_main_job.py): one tiny run of the command, read back."""

import json

import pytest

from tests.tools_loader import load_tool


@pytest.mark.slow
def test_one_seed_runs_the_command_and_reads_its_summary(tmp_path):
    bench = load_tool("bench_main_job")
    out = tmp_path / "main_job.json"
    quick = "--max-trials 1 --epochs 1 --channels 4 --cells 1 --no-export --no-figures"
    assert bench.main(["--seeds", "3", "--extra", quick, "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    run, = saved["runs"]
    assert run["seed"] == 3 and run["returncode"] == 0 and "--seed 3" in run["command"]
    assert 0 <= run["test_accuracy"] <= 1 and run["trials"] == 1 and run["process_s"] > 0
    assert run["final_model"]["policy"] == "retrain"
    assert saved["machine"]["cpu_count"] and "commit" in saved["code"]
    table = bench.markdown(saved["runs"])
    assert f"| 3 | {run['test_accuracy']:.4f} |" in table and "| mean |" in table


def test_extra_arguments_are_split_like_a_shell():
    bench = load_tool("bench_main_job")
    args = bench.parse_args(["--extra", "--max-time 50 --space 'cell'"])
    assert args.extra == ["--max-time", "50", "--space", "cell"] and args.seeds == [0, 1, 2]
