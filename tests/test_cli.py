import contextlib
import io
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_nas import cli

QUICK = ["--max-trials", "2", "--epochs", "1", "--channels", "4"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real search through the command, shared by the tests below: (folder, stdout)."""
    out = tmp_path_factory.mktemp("cli") / "results"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["search", "--output", str(out), "--strategy", "random", *QUICK]) == 0
    return out, printed.getvalue()


def test_search_command_writes_model_and_summary(searched):
    out, printed = searched
    assert "status" in printed and "COMPLETED" in printed and "remaining" in printed  # table
    assert "test accuracy:" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["trials"]) == 2
    for t in summary["trials"]:
        assert {"architecture", "hyperparameters", "metrics", "params", "status"} <= set(t)
    model = keras.saving.load_model(out / "best_model.keras")
    assert model.output_shape == (None, 10)


def test_console_script_runs_with_no_arguments_but_the_output(tmp_path):
    # The installed `keras-nas` entry point, in a fresh process, on the embedded default data.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "keras_nas.cli", "search", "--output", str(tmp_path / "r"),
         "--max-trials", "1", "--epochs", "1", "--channels", "4", "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r" / "best_model.keras").exists()


@pytest.mark.parametrize("argv, message", [
    (["search", "--space", "nope"], "unknown --space 'nope'"),
    (["search", "--strategy", "nope"], "unknown --strategy 'nope'"),
    (["search", "--dataset", "not_a_dataset_name"], "Unknown `dataset`"),
])
def test_bad_arguments_print_one_line_and_exit_non_zero(argv, message, tmp_path, capsys):
    code = cli.main([*argv, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("keras-nas: error:") and message in err[0]


def test_non_positive_budget_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "--max-trials", "0"])
    assert exit_info.value.code != 0
    assert "--max-trials" in capsys.readouterr().err


def test_search_writes_tflite_latency_and_figures(searched):
    searched, _ = searched
    summary = json.loads((searched / "summary.json").read_text())
    best = summary["best"]
    assert (searched / best["tflite"]).stat().st_size == best["tflite_bytes"] > 0
    assert best["tflite_max_abs_diff"] < 1e-4 and best["latency_ms"] > 0
    assert (searched / "figures" / "history.png").stat().st_size > 0
    assert (searched / "figures" / "cell.png").exists()


def test_export_int8_reports_agreement(searched, tmp_path, capsys):
    searched, _ = searched
    out = tmp_path / "m.tflite"
    code = cli.main(["export", str(searched / "best_model.keras"), "--quantize", "int8",
                     "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.stat().st_size > 0
    assert "top-1 agreement" in printed and "int8" in printed


def test_report_command_writes_a_page(searched, capsys):
    searched, _ = searched
    assert cli.main(["report", str(searched)]) == 0
    page = (searched / "report.md").read_text()
    assert "history.png" in page


@pytest.mark.parametrize("argv, message", [
    (["export", "{tmp}/missing.keras"], "is not a file"),
    (["export", "{tmp}/corrupt.keras"], "is not a loadable .keras model"),
    (["export", "{model}", "--quantize", "int4"], "unknown --quantize 'int4'"),
    (["report", "{tmp}"], "holds no summary.json"),
])
def test_export_and_report_reject_bad_files(argv, message, searched, tmp_path, capsys):
    searched, _ = searched
    (tmp_path / "corrupt.keras").write_bytes(b"this is not a zip file")
    argv = [a.format(tmp=tmp_path, model=searched / "best_model.keras") for a in argv]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err


def test_latency_command_measures_and_rejects_non_tflite(searched, tmp_path, capsys):
    searched, _ = searched
    assert cli.main(["latency", str(searched / "best_model.tflite"), "--runs", "5"]) == 0
    assert "ms median" in capsys.readouterr().out
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    assert cli.main(["latency", str(bad)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a TFLite flatbuffer" in err[0]


def test_unwritable_output_directory_is_one_clear_line(tmp_path, capsys):
    # A path below a regular file can never be created (chmod would not stop root).
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code = cli.main(["search", "--output", str(blocker / "r"), *QUICK])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "not writable" in err[0]
    assert blocker.read_text() == "x"
