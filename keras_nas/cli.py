"""What each `keras-nas` command does.

The arguments are parsed in `keras_nas_cli` (outside this package, so `keras-nas --help`
does not import TensorFlow); `COMMANDS` maps each command to its function here.
"""

import os

from keras_nas.tuning.protocol import TOKEN_ENV
from keras_nas_cli import CommandError, main, native_logs_hidden  # noqa: F401  (`main`: `python -m keras_nas.cli`)


def run_search(args):
    """`keras-nas search`: a search, then the model, its TFLite file, figures and summary."""
    import keras_nas

    output = os.path.abspath(args.output)
    directory, project_name = os.path.split(output.rstrip(os.sep))
    space_kwargs = {}
    for flag, value, name in (("--channels", args.channels, "channels"),
                              ("--cells", args.cells,
                               "layers" if args.space == "darts" else "cells_per_stage")):
        if value is not None:
            if args.space in ("mobilenet", "macro"):
                raise CommandError(f"{flag} applies to the cell spaces (cell, darts), "
                                   f"not --space {args.space}")
            space_kwargs[name] = value
    steps = [name for name, skip in (("export", args.no_export), ("figures", args.no_figures))
             if not skip]
    after = sum(AFTER_SEARCH_S[name] for name in steps)
    if args.max_time is not None:  # the command's own work counts in --max-time too
        after = min(after, 0.25 * args.max_time)
    search = keras_nas.Search(
        space=args.space, strategy=args.strategy, max_trials=args.max_trials,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        directory=directory, project_name=project_name, overwrite=args.overwrite,
        final_model=args.final_model, max_time=args.max_time,
        verbose=0 if args.quiet else 1, space_kwargs=space_kwargs, latency_ms=args.latency_ms,
        latency_objective=args.latency_objective, time_after_search=after,
        started=getattr(args, "started", None), workers=args.workers, listen=args.listen,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
    )
    search.fit(dataset=args.dataset, data_dir=args.data_dir)
    print(f"best architecture: {search.best_architecture} (seed {search.seed})")
    x_check = search.data.validation[0]
    if search.data.test is not None:
        x_test, y_test = search.data.test
        loss, accuracy = search.best_model.evaluate(x_test, y_test, verbose=0)[:2]
        search.record_best(test_accuracy=float(accuracy))
        print(f"test accuracy: {accuracy:.4f}")
        x_check = x_test
    print(f"wrote {search.best_model_path}")
    if "export" in steps:
        if search.budget.left() >= _MIN_STEP_S:
            _export_and_measure(search, x_check[:200], show_logs=args.tf_logs)
        else:
            print("skipped best_model.tflite: --max-time left no time for it")
    if "figures" in steps:
        if search.budget.left() >= _MIN_STEP_S:
            from keras_nas.results import plots

            for path in plots.save_figures(search.summary_path,
                                           os.path.join(search.results_dir, "figures")).values():
                print(f"wrote {path}")
        else:
            print("skipped figures/: --max-time left no time for them")
    search.record_best(command_s=search.budget.elapsed())
    print(f"wrote {search.summary_path} ({search.budget.elapsed():.0f} s in all)")
    return 0


#: Seconds `search` keeps back for its work after the search: the TFLite export and its
#: paired latency (conversion ~2 s, the measuring process and window ~6 s, its first
#: calibration 4 s), and the four figures (~1 s each, more on a busy machine).
AFTER_SEARCH_S = {"export": 12.0, "figures": 6.0}
_MIN_STEP_S = 1.0  # a step starts only with at least this much of --max-time left


def _export_and_measure(search, x_check, show_logs=False):
    """Writes the best model as float TFLite beside it and measures its latency here."""
    from keras_nas import hardware

    path = os.path.join(search.results_dir, "best_model.tflite")
    with native_logs_hidden(show=show_logs):  # LiteRT's "Created ... XNNPACK delegate"
        report = hardware.export_tflite(search.best_model, path, verify_data=x_check)
    left = search.budget.left() - AFTER_SEARCH_S["figures"]
    if left < 2.0:
        search.record_best(tflite=os.path.basename(path), tflite_bytes=report.size_bytes,
                           tflite_max_abs_diff=report.max_abs_diff,
                           tflite_top1_agreement=report.top1_agreement)
        print(f"wrote {path} ({report.size_bytes} bytes; latency not measured: --max-time "
              "left no time for it)")
        return
    window = None if not search.budget.limited else max(1.0, min(30.0, left - 3.0))
    stats = hardware.measure_latency(path, runs=50, warmup=10, threads=1, max_seconds=window)
    search.record_best(
        tflite=os.path.basename(path), tflite_bytes=report.size_bytes,
        tflite_max_abs_diff=report.max_abs_diff, tflite_top1_agreement=report.top1_agreement,
        latency_ms=stats.median_ms, latency_p90_ms=stats.p90_ms,
        device=f"this machine ({stats.runtime}, {stats.threads} thread)",
    )
    print(f"wrote {path} ({report.size_bytes} bytes; max |TFLite - Keras| = "
          f"{report.max_abs_diff:.2e}; latency {_latency_text(stats)}, batch 1)")


def run_export(args):
    import keras

    import keras_nas  # noqa: F401  (registers the layers)
    from keras_nas import hardware

    model = _load_keras_model(args.model)
    output = args.output or os.path.splitext(args.model)[0] + (
        f"_{args.quantize}.tflite" if args.quantize else ".tflite")
    sample = _calibration_data(args.dataset, model, args.data_dir)
    with native_logs_hidden(show=args.tf_logs):
        report = hardware.export_tflite(
            model, output, quantization=args.quantize,
            representative_data=sample if args.quantize == "int8" else None,
            verify_data=sample)
    agreement = "" if report.num_samples == 0 else (
        f"; top-1 agreement {report.top1_agreement:.4f}, max |diff| {report.max_abs_diff:.3g} "
        f"on {report.num_samples} examples")
    print(f"wrote {output} ({report.size_bytes} bytes, {args.quantize or 'float32'}{agreement})")
    if args.latency:
        stats = hardware.measure_latency(output, runs=args.runs, threads=1)
        print(f"latency: {_latency_text(stats)} ({stats.runs} runs, batch 1, {stats.runtime})")
    return 0


def _load_keras_model(path):
    """The model saved at `path`; a one-line `CommandError` for anything else."""
    import zipfile

    import keras

    if not os.path.isfile(path):
        raise CommandError(f"MODEL {path!r} is not a file")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise CommandError(f"MODEL {path!r} is not a .keras model file (the zip archive "
                           "`model.save('name.keras')` writes)")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # a damaged archive, or layers keras-nas does not know
        raise CommandError(f"MODEL {path!r} could not be loaded as a Keras model "
                           f"({type(e).__name__})") from None


def _calibration_data(dataset, model, data_dir):
    """Examples to calibrate int8 and to compare the export on: the dataset's test split."""
    from keras_nas import data

    named = data.load_named(dataset, data_dir=data_dir)
    x_test = (named.test or named.validation or named.train)[0]
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
    print(f"latency: {_latency_text(stats)} ({stats.runs} runs, batch 1, {stats.threads} "
          f"thread(s), {stats.runtime}, {stats.device})")
    return 0


def _latency_text(stats):
    """`0.123 ms (1.31 x the reference's 0.094 ms)` for a paired measurement."""
    if stats.reference is not None:
        return (f"{stats.median_ms:.3f} ms ({stats.ratio:.3f} x the reference model's "
                f"{stats.reference['calibrated_ms']:.3f} ms, timed interleaved with it)")
    return f"{stats.median_ms:.3f} ms median, {stats.p90_ms:.3f} ms p90"


def run_report(args):
    from keras_nas.results import report

    if not os.path.isfile(os.path.join(args.results_dir, "summary.json")):
        raise CommandError(f"RESULTS_DIR {args.results_dir!r} holds no summary.json")
    path = report.write_report(args.results_dir, output=args.output, format=args.format)
    print(f"wrote {path}")
    return 0


def run_worker(args):
    """`keras-nas worker`: trains the trials of a search served elsewhere until it ends."""
    from keras_nas.tuning import worker

    worker.run(args.chief, args.token or os.environ.get(TOKEN_ENV, ""), args.id,
               connect_timeout=args.connect_timeout)
    return 0


COMMANDS = {"search": run_search, "export": run_export, "latency": run_latency,
            "report": run_report, "worker": run_worker}


if __name__ == "__main__":
    import sys

    sys.exit(main())
