"""The `keras-nas` command.

```
keras-nas search --output results/      # a short search on the embedded digits data
keras-nas search --dataset mnist --space mobilenet --strategy random --max-trials 20
```
"""

import argparse
import os
import sys


class CommandError(Exception):
    """An error the command reports as one line, without a traceback."""


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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-nas", description="Neural architecture search for Keras.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    s = commands.add_parser(
        "search", help="search for an architecture and write the best model and a summary",
        description="Search for an architecture; writes OUTPUT/best_model.keras and "
                    "OUTPUT/summary.json. Running the same command again resumes the search.")
    s.add_argument("--output", default="results", help="results folder (default: results)")
    s.add_argument("--dataset", default="digits",
                   help="'digits' (embedded, default) or a TensorFlow Datasets name")
    s.add_argument("--data-dir", default=None, help="TensorFlow Datasets data folder")
    s.add_argument("--space", default="cell",
                   help="search space: cell (NAS-Bench-201), darts, mobilenet (default: cell)")
    s.add_argument("--strategy", default="bayesian",
                   help="random, bayesian, hyperband, reinforce, evolution, darts, spos, enas "
                        "(default: bayesian)")
    s.add_argument("--max-trials", type=_positive_int, default=5)
    s.add_argument("--epochs", type=_positive_int, default=2)
    s.add_argument("--batch-size", type=_positive_int, default=32)
    s.add_argument("--seed", type=_non_negative_int, default=0)
    s.add_argument("--max-time", type=_positive_float, default=None,
                   help="wall-clock budget in seconds; no trial starts after it")
    s.add_argument("--channels", type=_positive_int, default=None,
                   help="width of the cell spaces' first stage (small for quick runs)")
    s.add_argument("--latency-ms", type=_positive_float, default=None,
                   help="latency target (ms, batch 1, TFLite on this machine): every trial is "
                        "measured and the search maximizes --latency-objective")
    s.add_argument("--latency-objective", default="mnasnet",
                   choices=("mnasnet", "mnasnet_hard", "hard", "tunas"),
                   help="how accuracy and latency combine (default: mnasnet, ACC*(LAT/T)^-0.07)")
    s.add_argument("--overwrite", action="store_true", help="discard an earlier search in OUTPUT")
    s.add_argument("--no-retrain", action="store_true",
                   help="return the best trial's own weights instead of retraining on train+val")
    s.add_argument("--quiet", action="store_true", help="no trial table")
    s.add_argument("--no-export", action="store_true",
                   help="skip writing best_model.tflite and measuring its latency")
    s.add_argument("--no-figures", action="store_true", help="skip writing figures/*.png")
    s.set_defaults(run=run_search)

    e = commands.add_parser(
        "export", help="convert a .keras model to TFLite, checked against the Keras model",
        description="Convert MODEL to TFLite; the export is compared with the Keras model on "
                    "the dataset's test split (max |diff| for float, top-1 agreement).")
    e.add_argument("model", metavar="MODEL", help="a .keras file")
    e.add_argument("--quantize", default=None,
                   help="float16, dynamic or int8 (default: float32)")
    e.add_argument("--output", default=None, help="the .tflite path (default: beside MODEL)")
    e.add_argument("--dataset", default="digits",
                   help="data for int8 calibration and the check (default: digits)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--latency", action="store_true", help="also measure latency here")
    e.add_argument("--runs", type=_positive_int, default=50)
    e.set_defaults(run=run_export)

    lat = commands.add_parser(
        "latency", help="measure a .tflite (or .keras) model's batch-1 latency with LiteRT")
    lat.add_argument("model", metavar="MODEL", help="a .tflite or .keras file")
    lat.add_argument("--runs", type=_positive_int, default=50)
    lat.add_argument("--warmup", type=_non_negative_int, default=10)
    lat.add_argument("--threads", type=_positive_int, default=1)
    lat.add_argument("--url", default=None,
                     help="measure on a device running tools/litert_server.py instead")
    lat.add_argument("--token", default=None, help="the device server's token")
    lat.set_defaults(run=run_latency)

    r = commands.add_parser("report", help="write a page with a search's figures and trials")
    r.add_argument("results_dir", metavar="RESULTS_DIR")
    r.add_argument("--format", choices=("markdown", "html"), default="markdown")
    r.add_argument("--output", default=None, help="the page's path (default: in RESULTS_DIR)")
    r.set_defaults(run=run_report)
    return parser


def run_search(args):
    import keras_nas
    from keras_nas.search import strategy_names
    from keras_nas.spaces import SPACES

    if args.space not in SPACES:
        raise CommandError(f"unknown --space {args.space!r}; expected one of {sorted(SPACES)}")
    if args.strategy not in strategy_names():
        raise CommandError(
            f"unknown --strategy {args.strategy!r}; expected one of {strategy_names()}")
    output = os.path.abspath(args.output)
    directory, project_name = os.path.split(output.rstrip(os.sep))
    space_kwargs = {}
    if args.channels is not None:
        space_kwargs["channels"] = args.channels
    search = keras_nas.Search(
        space=args.space, strategy=args.strategy, max_trials=args.max_trials,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        directory=directory, project_name=project_name, overwrite=args.overwrite,
        retrain=not args.no_retrain, max_time=args.max_time, verbose=0 if args.quiet else 1,
        space_kwargs=space_kwargs, latency_ms=args.latency_ms,
        latency_objective=args.latency_objective,
    )
    search.fit(dataset=args.dataset, data_dir=args.data_dir)
    print(f"best architecture: {search.best_architecture}")
    x_check = search.data.validation[0]
    if search.data.test is not None:
        x_test, y_test = search.data.test
        loss, accuracy = search.best_model.evaluate(x_test, y_test, verbose=0)[:2]
        search.record_best(test_accuracy=float(accuracy))
        print(f"test accuracy: {accuracy:.4f}")
        x_check = x_test
    print(f"wrote {search.best_model_path}")
    if not args.no_export:
        _export_and_measure(search, x_check[:200])
    if not args.no_figures:
        from keras_nas import plots

        for path in plots.save_figures(search.summary_path,
                                       os.path.join(search.results_dir, "figures")).values():
            print(f"wrote {path}")
    print(f"wrote {search.summary_path}")
    return 0


def _export_and_measure(search, x_check):
    """Writes the best model as float TFLite beside it and measures its latency here."""
    from keras_nas import hardware

    path = os.path.join(search.results_dir, "best_model.tflite")
    report = hardware.export_tflite(search.best_model, path, verify_data=x_check)
    stats = hardware.measure_latency(path, runs=50, warmup=10, threads=1)
    search.record_best(
        tflite=os.path.basename(path), tflite_bytes=report.size_bytes,
        tflite_max_abs_diff=report.max_abs_diff, tflite_top1_agreement=report.top1_agreement,
        latency_ms=stats.median_ms, latency_p90_ms=stats.p90_ms,
        device=f"this machine ({stats.runtime}, {stats.threads} thread)",
    )
    print(f"wrote {path} ({report.size_bytes} bytes; max |TFLite - Keras| = "
          f"{report.max_abs_diff:.2e}; latency {stats.median_ms:.3f} ms median, batch 1)")


def run_export(args):
    import keras

    import keras_nas  # noqa: F401  (registers the layers)
    from keras_nas import hardware

    if args.quantize is not None and args.quantize not in hardware.QUANTIZATIONS:
        raise CommandError(f"unknown --quantize {args.quantize!r}; expected one of "
                           f"{[q for q in hardware.QUANTIZATIONS if q]}")
    model = _load_keras_model(args.model)
    output = args.output or os.path.splitext(args.model)[0] + (
        f"_{args.quantize}.tflite" if args.quantize else ".tflite")
    sample = _calibration_data(args.dataset, model, args.data_dir)
    report = hardware.export_tflite(
        model, output, quantization=args.quantize,
        representative_data=sample if args.quantize == "int8" else None, verify_data=sample)
    agreement = "" if report.num_samples == 0 else (
        f"; top-1 agreement {report.top1_agreement:.4f}, max |diff| {report.max_abs_diff:.3g} "
        f"on {report.num_samples} examples")
    print(f"wrote {output} ({report.size_bytes} bytes, {args.quantize or 'float32'}{agreement})")
    if args.latency:
        stats = hardware.measure_latency(output, runs=args.runs, threads=1)
        print(f"latency: {stats.median_ms:.3f} ms median, {stats.p90_ms:.3f} ms p90 "
              f"({stats.runs} runs, batch 1, {stats.runtime})")
    return 0


def _load_keras_model(path):
    import keras

    if not os.path.isfile(path):
        raise CommandError(f"MODEL {path!r} is not a file")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # a corrupt or foreign file
        raise CommandError(f"MODEL {path!r} is not a loadable .keras model: "
                           f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")


def _calibration_data(dataset, model, data_dir):
    """Examples to calibrate int8 and to compare the export on: the dataset's test split."""
    from keras_nas import data

    _, (x_test, _) = data.load_named(dataset, data_dir=data_dir)
    expected = tuple(model.input_shape[1:])
    if tuple(x_test.shape[1:]) != expected:
        raise CommandError(f"--dataset {dataset!r} has examples of shape {x_test.shape[1:]}, "
                           f"but the model takes {expected}")
    return x_test


def run_latency(args):
    from keras_nas import hardware

    if not os.path.isfile(args.model):
        raise CommandError(f"MODEL {args.model!r} is not a file")
    if args.model.endswith(".keras"):
        model = _load_keras_model(args.model)
    else:
        with open(args.model, "rb") as f:
            model = f.read()
        if not hardware.is_tflite(model):
            raise CommandError(f"MODEL {args.model!r} is not a TFLite flatbuffer "
                               "(no 'TFL3' identifier)")
    device = hardware.RemoteDevice(args.url, token=args.token) if args.url else None
    stats = hardware.measure_latency(model, runs=args.runs, warmup=args.warmup,
                                     threads=args.threads, device=device)
    print(f"latency: {stats.median_ms:.3f} ms median, {stats.p90_ms:.3f} ms p90, "
          f"{stats.mean_ms:.3f} ± {stats.std_ms:.3f} ms ({stats.runs} runs, batch 1, "
          f"{stats.threads} thread(s), {stats.runtime}, {stats.device})")
    return 0


def run_report(args):
    from keras_nas import report

    if not os.path.isfile(os.path.join(args.results_dir, "summary.json")):
        raise CommandError(f"RESULTS_DIR {args.results_dir!r} holds no summary.json")
    path = report.write_report(args.results_dir, output=args.output, format=args.format)
    print(f"wrote {path}")
    return 0


def main(argv=None):
    """Entry point of the `keras-nas` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return args.run(args)
    except (CommandError, ValueError, TypeError, FileNotFoundError, PermissionError,
            RuntimeError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"keras-nas: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("keras-nas: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
