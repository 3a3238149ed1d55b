"""The `keras-nas` command: its arguments, and the hand-over to `keras_nas.cli`.

This module lives outside the `keras_nas` package on purpose: importing the package imports
Keras and TensorFlow (so that found models load after `import keras_nas`), which takes
seconds. Parsing here first lets `keras-nas --help` and every argument error answer at once;
only a command that runs imports the package, with TensorFlow's start-up lines hidden.

```
keras-nas search --output results/      # a short search on the embedded digits data
keras-nas search --dataset split.npz --space mobilenet --strategy random --max-time 600
```
"""

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time

#: The names the `keras_nas` registries accept; a test checks these against them.
SPACE_NAMES = ("cell", "nasbench201", "darts", "mobilenet", "macro")
STRATEGY_NAMES = ("random", "bayesian", "hyperband", "reinforce", "evolution", "local", "gp",
                  "darts", "spos", "enas")
ONESHOT_STRATEGY_NAMES = ("darts", "spos", "enas")
LATENCY_OBJECTIVES = ("mnasnet", "mnasnet_hard", "hard", "tunas")
QUANTIZATIONS = ("float16", "dynamic", "int8")
FINAL_MODELS = ("retrain", "checkpoint")
#: `search --max-time` when neither it nor `--max-trials` is given: the main job on the
#: embedded digits finishes, export and figures included, in under two minutes.
DEFAULT_MAX_TIME_S = 100.0

#: API argument -> flag, to say the flag in messages that come from the library.
FLAGS = {
    "directory": "--output", "project_name": "--output", "dataset": "--dataset",
    "data_dir": "--data-dir", "space": "--space", "strategy": "--strategy",
    "max_trials": "--max-trials", "epochs": "--epochs", "batch_size": "--batch-size",
    "seed": "--seed", "max_time": "--max-time", "channels": "--channels",
    "cells_per_stage": "--cells", "cells": "--cells",
    "latency_ms": "--latency-ms", "latency_objective": "--latency-objective",
    "overwrite": "--overwrite", "x": "--dataset", "y": "--dataset", "workers": "--workers",
    "listen": "--listen", "token": "--token",
}

#: Exit statuses: bad arguments or input (as argparse), and work that failed.
EXIT_BAD_ARGUMENTS = 2
EXIT_FAILED = 1


class CommandError(Exception):
    """A bad argument or input, reported as one line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the flag, exit status 2."""

    def error(self, message):
        hint = f" (see {self.prog} --help)"
        self.exit(EXIT_BAD_ARGUMENTS, f"keras-nas: error: {message}{hint}\n")


def _number(kind, minimum, inclusive):
    """An argparse type: `kind(text)` that must be >= (or >) `minimum`."""
    expected = (f"{'an integer' if kind is int else 'a number'} "
                f"{'>=' if inclusive else '>'} {minimum}")

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, 1, inclusive=True)
_non_negative_int = _number(int, 0, inclusive=True)
_positive_float = _number(float, 0, inclusive=False)


def _workers(text):
    """`--workers`: `auto` or an integer >= 1."""
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1 or auto, got {text!r}") from None


def build_parser():
    """The `keras-nas` argument parser (imports nothing heavy)."""
    parser = _Parser(prog="keras-nas", description="Neural architecture search for Keras.")
    parser.add_argument("--tf-logs", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden by default)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=_Parser)
    commands.required = True

    s = commands.add_parser(
        "search", help="search for an architecture and write the best model and a summary",
        description="Search for an architecture; writes OUTPUT/best_model.keras, "
                    "best_model.tflite, figures/ and summary.json. Running the same command "
                    "again resumes the search; other settings in a used OUTPUT are an error.")
    s.add_argument("--output", default="results", help="results folder (default: results)")
    s.add_argument("--dataset", default="digits",
                   help="'digits' (embedded, default), a .npz file (x_train, y_train and "
                        "optionally x_val, y_val, x_test, y_test; or x, y) or the name of a "
                        "prepared TensorFlow Datasets set")
    s.add_argument("--data-dir", default=None, help="TensorFlow Datasets data folder")
    s.add_argument("--space", default="cell", choices=SPACE_NAMES, metavar="SPACE",
                   help="cell (NAS-Bench-201), darts or mobilenet (default: cell)")
    s.add_argument("--strategy", default="bayesian", choices=STRATEGY_NAMES,
                   metavar="STRATEGY",
                   help=f"{', '.join(STRATEGY_NAMES)} (default: bayesian)")
    s.add_argument("--max-trials", type=_positive_int, default=None,
                   help="architectures trained (default: as many as --max-time allows); "
                        "one-shot strategies (darts, spos, enas): the found candidates "
                        "trained stand-alone")
    s.add_argument("--epochs", type=_positive_int, default=5,
                   help="epochs per trial; one-shot strategies: supernet epochs (default 5)")
    s.add_argument("--batch-size", type=_positive_int, default=32)
    s.add_argument("--seed", type=_non_negative_int, default=None,
                   help="makes the search repeatable (default: a fresh seed, recorded in "
                        "summary.json)")
    s.add_argument("--max-time", type=_positive_float, default=None,
                   help="wall-clock budget in seconds for the whole command: the search, the "
                        "final model, its TFLite export and the figures (default: "
                        f"{DEFAULT_MAX_TIME_S:.0f} when --max-trials is not given, else none)")
    s.add_argument("--channels", type=_positive_int, default=None,
                   help="width of the cell spaces' first stage (small for quick runs)")
    s.add_argument("--cells", type=_non_negative_int, default=None,
                   help="cells per stage of the cell spaces (small for quick runs)")
    s.add_argument("--latency-ms", type=_positive_float, default=None,
                   help="latency target (ms, batch 1, TFLite on this machine): every trial is "
                        "measured and the search maximizes --latency-objective")
    s.add_argument("--latency-objective", default="mnasnet", choices=LATENCY_OBJECTIVES,
                   metavar="OBJECTIVE",
                   help=f"{', '.join(LATENCY_OBJECTIVES)}: how accuracy and latency combine "
                        "(default: mnasnet, ACC*(LAT/T)^-0.07)")
    s.add_argument("--workers", type=_workers, default="auto",
                   help="trials trained at once, each in its own process with the cores "
                        "shared out (default: auto, one per core for a --max-time of 200 s "
                        "or more, else 1)")
    s.add_argument("--listen", default=None, metavar="HOST:PORT",
                   help="serve the search to workers on other machines too (they join with "
                        "`keras-nas worker --chief HOST:PORT`); needs --token")
    s.add_argument("--token", default=None,
                   help="the secret workers present (default: $KERAS_NAS_TOKEN)")
    s.add_argument("--overwrite", action="store_true", help="discard an earlier search in OUTPUT")
    s.add_argument("--final-model", default="retrain", choices=FINAL_MODELS,
                   metavar="POLICY",
                   help="retrain (the best architecture trained anew on train+validation, "
                        "the default) or checkpoint (the best trial's own weights)")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--no-export", action="store_true",
                   help="skip writing best_model.tflite and measuring its latency")
    s.add_argument("--no-figures", action="store_true", help="skip writing figures/*.png")
    s.set_defaults(command="search")

    e = commands.add_parser(
        "export", help="convert a .keras model to TFLite, checked against the Keras model",
        description="Convert MODEL to TFLite; the export is compared with the Keras model on "
                    "the dataset's test split (max |diff| for float, top-1 agreement).")
    e.add_argument("model", metavar="MODEL", help="a .keras file")
    e.add_argument("--quantize", default=None, choices=QUANTIZATIONS, metavar="KIND",
                   help=f"{', '.join(QUANTIZATIONS)} (default: float32)")
    e.add_argument("--output", default=None, help="the .tflite path (default: beside MODEL)")
    e.add_argument("--dataset", default="digits",
                   help="data for int8 calibration and the check (default: digits)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--latency", action="store_true", help="also measure latency here")
    e.add_argument("--runs", type=_positive_int, default=50)

    lat = commands.add_parser(
        "latency", help="measure a .tflite (or .keras) model's batch-1 latency with LiteRT")
    lat.add_argument("model", metavar="MODEL", help="a .tflite or .keras file")
    lat.add_argument("--runs", type=_positive_int, default=50)
    lat.add_argument("--warmup", type=_non_negative_int, default=10)
    lat.add_argument("--threads", type=_positive_int, default=1)
    lat.add_argument("--url", default=None,
                     help="measure on a device running tools/litert_server.py instead")
    lat.add_argument("--token", default=None, help="the device server's token")

    w = commands.add_parser(
        "worker", help="join a running search (started with --listen) from this machine",
        description="Train trials of the search a chief serves, until it has none left.")
    w.add_argument("--chief", required=True, metavar="HOST:PORT",
                   help="the address the search listens on")
    w.add_argument("--token", default=None,
                   help="the search's token (default: $KERAS_NAS_TOKEN)")
    w.add_argument("--id", default=None, help="this worker's name (default: host-process)")
    w.add_argument("--connect-timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the chief to answer (default: 30)")

    r = commands.add_parser("report", help="write a page with a search's figures and trials")
    r.add_argument("results_dir", metavar="RESULTS_DIR")
    r.add_argument("--format", choices=("markdown", "html"), default="markdown")
    r.add_argument("--output", default=None, help="the page's path (default: in RESULTS_DIR)")
    return parser


def _in_flags(message):
    """A library message with its API argument names (`max_trials`) said as flags."""
    return re.sub(r"`(\w+)`", lambda m: FLAGS.get(m.group(1), m.group(0)), message)


def _one_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def native_logs_hidden(show=False):
    """Hides what native (C++) code prints on standard error inside the block.

    TensorFlow's start-up lines (CUDA probing, CPU features) and LiteRT's "Created TensorFlow
    Lite XNNPACK delegate" are printed before any log level applies, so the process' standard
    error is pointed at a temporary file meanwhile; if the block raises, what was printed is
    shown. With `show=True` nothing is hidden (`keras-nas --tf-logs`).
    """
    if show:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv=None):
    """Entry point of the `keras-nas` command; returns the exit status."""
    started = time.time()  # `--max-time` counts from here: the backend's import included
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad argument (2, already said)
        return exit_.code
    args.started = started
    if args.command == "search" and args.max_time is None and args.max_trials is None:
        args.max_time = DEFAULT_MAX_TIME_S
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        with native_logs_hidden(show=args.tf_logs):
            import keras  # noqa: F401  (with its backend: TensorFlow unless KERAS_BACKEND says)
        from keras_nas import cli

        return cli.COMMANDS[args.command](args)
    except (CommandError, ValueError, TypeError, FileNotFoundError, PermissionError) as e:
        print(f"keras-nas: error: {_in_flags(_one_line(e))}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    except RuntimeError as e:  # the work itself failed (e.g. every trial failed)
        print(f"keras-nas: error: {_in_flags(_one_line(e))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("keras-nas: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
