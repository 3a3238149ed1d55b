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


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


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
                   help="search strategy: random, bayesian, hyperband, ... (default: bayesian)")
    s.add_argument("--max-trials", type=_positive_int, default=5)
    s.add_argument("--epochs", type=_positive_int, default=2)
    s.add_argument("--batch-size", type=_positive_int, default=32)
    s.add_argument("--seed", type=_non_negative_int, default=0)
    s.add_argument("--max-time", type=_positive_float, default=None,
                   help="wall-clock budget in seconds; no trial starts after it")
    s.add_argument("--channels", type=_positive_int, default=None,
                   help="width of the cell spaces' first stage (small for quick runs)")
    s.add_argument("--overwrite", action="store_true", help="discard an earlier search in OUTPUT")
    s.add_argument("--no-retrain", action="store_true",
                   help="return the best trial's own weights instead of retraining on train+val")
    s.add_argument("--quiet", action="store_true", help="no trial table")
    s.set_defaults(run=run_search)
    return parser


def run_search(args):
    import keras_nas
    from keras_nas.oracles import STRATEGIES
    from keras_nas.spaces import SPACES

    if args.space not in SPACES:
        raise CommandError(f"unknown --space {args.space!r}; expected one of {sorted(SPACES)}")
    if args.strategy not in STRATEGIES:
        raise CommandError(
            f"unknown --strategy {args.strategy!r}; expected one of {sorted(STRATEGIES)}")
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
        space_kwargs=space_kwargs,
    )
    search.fit(dataset=args.dataset, data_dir=args.data_dir)
    best = search.summary
    print(f"best architecture: {best['best_architecture']}")
    if search.data.test is not None:
        x_test, y_test = search.data.test
        loss, accuracy = search.best_model.evaluate(x_test, y_test, verbose=0)[:2]
        print(f"test accuracy: {accuracy:.4f}")
    print(f"wrote {search.best_model_path}")
    print(f"wrote {search.summary_path}")
    return 0


def main(argv=None):
    """Entry point of the `keras-nas` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return args.run(args)
    except (CommandError, ValueError, FileNotFoundError, PermissionError, RuntimeError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"keras-nas: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("keras-nas: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
