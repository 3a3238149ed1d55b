import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_nas_cli
from keras_nas import cli

QUICK = ["--max-trials", "2", "--epochs", "1", "--channels", "4", "--cells", "1"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real search through the command, shared by the tests below: (folder, stdout)."""
    out = tmp_path_factory.mktemp("cli") / "results"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["search", "--output", str(out), "--strategy", "random", *QUICK]) == 0
    return out, printed.getvalue()


@pytest.mark.slow
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


@pytest.mark.slow
def test_console_script_runs_and_prints_only_its_own_lines(tmp_path):
    # The installed `keras-nas` entry point, in a fresh process, on the embedded default data;
    # TensorFlow's start-up lines and LiteRT's delegate line stay hidden.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [*_console_script(), "search", "--output", str(tmp_path / "r"), "--max-trials", "1",
         "--epochs", "1", "--channels", "4", "--cells", "1", "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r" / "best_model.keras").exists()
    assert result.stderr == ""
    assert "XNNPACK" not in result.stdout and all(
        line.startswith(("best architecture:", "test accuracy:", "wrote "))
        for line in result.stdout.splitlines()), result.stdout


@pytest.mark.parametrize("argv, message", [
    (["search", "--space", "nope"], "argument --space: invalid choice: 'nope'"),
    (["search", "--strategy", "nope"], "argument --strategy: invalid choice: 'nope'"),
    (["search", "--max-trials", "0"], "argument --max-trials: expected an integer >= 1"),
    (["search", "--max-time", "-5"], "argument --max-time: expected a number > 0"),
    (["search", "--workers", "0"], "argument --workers: expected an integer >= 1 or auto"),
    (["search", "--dataset", "not_a_dataset_name"], "Unknown --dataset 'not_a_dataset_name'"),
    (["search", "--dataset", "{tmp}/missing.npz"], "--dataset '{tmp}/missing.npz' is not a file"),
    (["search", "--space", "mobilenet", "--channels", "4"], "--channels applies to the cell"),
    (["export", "{tmp}/m.keras", "--quantize", "int4"], "argument --quantize: invalid choice"),
    (["search", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_are_one_line_naming_the_flag_with_exit_status_2(argv, message, tmp_path,
                                                                        capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = cli.main([*argv, "--output", str(tmp_path / "o")] if argv[0] == "search" else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("keras-nas: error:"), err
    assert message.format(tmp=tmp_path) in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, max_time", [
    ([], keras_nas_cli.DEFAULT_MAX_TIME_S),        # the main job: a time budget
    (["--max-time", "30"], 30.0),
    (["--max-trials", "3"], None),                # a trial count alone: no time limit
])
def test_search_without_max_trials_gets_the_default_time_budget(argv, max_time, monkeypatch):
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "search", lambda args: seen.append(args) or 0)
    assert cli.main(["search", *argv]) == 0
    assert seen[0].max_time == max_time
    assert seen[0].workers == "auto"  # worker processes only where they measured faster


def test_help_and_argument_errors_do_not_import_tensorflow():
    # The console script's module parses first; TensorFlow is imported only to do the work.
    probe = ("import sys, keras_nas_cli; code = keras_nas_cli.main(sys.argv[1:]); "
             "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
             "sys.exit(code)")
    for argv, status in ((["--help"], 0), (["search", "--help"], 0),
                         (["search", "--epochs", "x"], 2)):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == status, result.stderr


def test_static_names_match_the_registries():
    import keras_nas_cli
    from keras_nas import hardware
    from keras_nas.tuning.final_model import POLICIES
    from keras_nas.search import strategy_names
    from keras_nas.spaces import SPACES

    assert set(keras_nas_cli.SPACE_NAMES) == set(SPACES)
    assert set(keras_nas_cli.STRATEGY_NAMES) == set(strategy_names())
    assert set(keras_nas_cli.QUANTIZATIONS) == {q for q in hardware.QUANTIZATIONS if q}
    assert set(keras_nas_cli.FINAL_MODELS) == set(POLICIES)


def _console_script():
    """The installed `keras-nas` command (or the module it runs)."""
    script = os.path.join(os.path.dirname(sys.executable), "keras-nas")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "keras_nas_cli"]


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_hidden(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [*_console_script(), "report", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"keras-nas: error: RESULTS_DIR {str(tmp_path)!r} holds no summary.json"]


@pytest.mark.slow
def test_search_writes_tflite_latency_and_figures(searched):
    searched, _ = searched
    summary = json.loads((searched / "summary.json").read_text())
    best = summary["best"]
    assert (searched / best["tflite"]).stat().st_size == best["tflite_bytes"] > 0
    assert best["tflite_max_abs_diff"] < 1e-4 and best["latency_ms"] > 0
    assert (searched / "figures" / "history.png").stat().st_size > 0
    assert (searched / "figures" / "cell.png").exists()


@pytest.mark.slow
def test_export_int8_reports_agreement(searched, tmp_path, capsys):
    searched, _ = searched
    out = tmp_path / "m.tflite"
    code = cli.main(["export", str(searched / "best_model.keras"), "--quantize", "int8",
                     "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.stat().st_size > 0
    assert "top-1 agreement" in printed and "int8" in printed


@pytest.mark.slow
def test_report_command_writes_a_page(searched, capsys):
    searched, _ = searched
    assert cli.main(["report", str(searched)]) == 0
    page = (searched / "report.md").read_text()
    assert "history.png" in page


@pytest.mark.parametrize("argv, message", [
    (["export", "{tmp}/missing.keras"], "is not a file"),
    (["export", "{tmp}/corrupt.keras"], "is not a .keras model file"),
    (["export", "{tmp}/passwd"], "is not a .keras model file"),
    (["report", "{tmp}"], "holds no summary.json"),
])
def test_export_and_report_reject_bad_files(argv, message, tmp_path, capsys):
    (tmp_path / "corrupt.keras").write_bytes(b"this is not a zip file")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" * 50)
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_latency_command_measures_and_rejects_non_tflite(searched, tmp_path, capsys):
    searched, _ = searched
    assert cli.main(["latency", str(searched / "best_model.tflite"), "--runs", "5"]) == 0
    assert "x the reference model" in capsys.readouterr().out
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
    assert code == 2 and len(err) == 1 and "--output" in err[0] and "not writable" in err[0]
    assert blocker.read_text() == "x"


TINY_CLI = ["--max-trials", "2", "--epochs", "1", "--channels", "4", "--cells", "1"]


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    """A 400/100/100 slice of digits as an .npz file: the every-strategy runs stay quick."""
    from keras_nas.data import load_digits

    (x, y), (xt, yt) = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits_small.npz"
    np.savez(path, x_train=x[:400], y_train=y[:400], x_val=x[400:500], y_val=y[400:500],
             x_test=xt[:100], y_test=yt[:100])
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", keras_nas_cli.STRATEGY_NAMES)
def test_every_strategy_writes_every_output_through_the_command(strategy, small_digits,
                                                                tmp_path, capsys):
    # The API and the command share `Search`: this is also each strategy's API test.
    out = tmp_path / "results"
    assert cli.main(["search", "--output", str(out), "--strategy", strategy, "--seed", "0",
                     "--dataset", small_digits, *TINY_CLI]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "best architecture:" in printed and "test accuracy:" in printed
    summary = json.loads((out / "summary.json").read_text())
    completed = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    assert completed and all(
        t["params"] > 0 and 0 <= t["metrics"]["val_accuracy"] <= 1 for t in completed)
    assert summary["best"]["test_accuracy"] >= 0 and summary["best"]["tflite_bytes"] > 0
    if strategy in keras_nas_cli.ONESHOT_STRATEGY_NAMES:
        assert summary["oneshot"]["strategy"] == strategy and summary["oneshot"]["seconds"] > 0
        assert "supernet epoch 1/1" in printed
        # The supernet's candidates (one for DARTS) are trained stand-alone as ordinary trials.
        candidates = summary["oneshot"]["candidates"]
        assert 1 <= len(summary["trials"]) == len(candidates) <= 2
        for trial, candidate in zip(summary["trials"], candidates):
            assert trial["architecture"] == candidate["architecture"]
    else:
        assert summary["strategy"] == strategy
    keras.saving.load_model(out / "best_model.keras")
    assert (out / "best_model.tflite").stat().st_size == summary["best"]["tflite_bytes"]
    for figure in ("history", "pareto", "cell"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 0
    assert cli.main(["report", str(out)]) == 0
    assert "figures/history.png" in (out / "report.md").read_text()


def _readme_commands():
    """The `keras-nas ...` command lines of the README's code blocks (not the synopsis)."""
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    lines, in_block = [], False
    for line in readme.splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            lines.append(line)
    parts = [part.strip() for line in lines for part in line.split("&&")]
    return [part.split() for part in parts
            if part.startswith("keras-nas ") and "[" not in part and "..." not in part]


@pytest.mark.slow
def test_the_readme_commands_run(tmp_path, monkeypatch, capsys):
    commands = _readme_commands()
    assert any(c[1] == "search" for c in commands), commands
    monkeypatch.chdir(tmp_path)
    for command in commands:
        if command[1] == "search":  # the main job, made quick: a test needs no 2 minutes
            command = command + TINY_CLI
        if command[1] == "latency" and "--url" in command:
            continue
        assert cli.main(command[1:]) == 0, (command, capsys.readouterr().err)
    assert (tmp_path / "results" / "best_model.tflite").exists()


@pytest.mark.slow
def test_max_time_bounds_the_whole_command(tmp_path):
    # Search, final model, TFLite export, latency and figures, all within --max-time.
    import time

    started = time.time()
    result = subprocess.run(
        [*_console_script(), "search", "--output", str(tmp_path / "r"), "--max-time", "45",
         "--epochs", "100", "--max-trials", "50", "--seed", "0"],
        capture_output=True, text=True, timeout=600)
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed <= 45 * 1.05 + 3.0, (elapsed, result.stdout)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["best"]["command_s"] <= 45 * 1.05
    assert (tmp_path / "r" / "best_model.keras").exists()
