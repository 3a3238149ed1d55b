"""The record of a search: one dict per trial, written to `summary.json` as trials finish."""

import json
import math
import os
import tempfile


def _plain(value):
    """A JSON-safe plain Python value (numpy scalars to numbers, NaN/inf to None)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _last_line(message, limit=500):
    """The most telling line of a trial's traceback: its final exception line."""
    if not message:
        return None
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else str(message)
    return text[:limit]


def trial_record(trial, space=None, timing=None):
    """Describes one `keras_tuner` trial as a plain dict (one entry of `summary["trials"]`).

    Args:
        trial: a `keras_tuner.engine.trial.Trial`.
        space: the search space, to encode the architecture string (optional).
        timing: optional dict with `started`, `ended` (unix seconds) and other timings.
    """
    values = {k: v for k, v in trial.hyperparameters.values.items()}
    architecture = None
    if space is not None and hasattr(space, "encode"):
        try:
            architecture = space.encode(space.values_of(trial.hyperparameters))
        except Exception:  # an architecture that cannot be encoded still gets a record
            architecture = None
    metrics = {}
    for name in trial.metrics.metrics:
        history = trial.metrics.get_history(name)
        if history:
            best = trial.metrics.get_best_value(name)
            metrics[name] = _plain(best if best is not None else history[-1].value[0])
    timing = dict(timing or {})
    started, ended = timing.pop("started", None), timing.pop("ended", None)
    params = metrics.get("params")
    record = {
        "trial_id": trial.trial_id,
        "number": int(trial.trial_id) if str(trial.trial_id).isdigit() else None,
        "status": str(trial.status),
        "architecture": architecture,
        "hyperparameters": _plain(values),
        "metrics": metrics,
        "score": _plain(trial.score),
        "params": int(params) if params is not None else None,
        "started": started,
        "ended": ended,
        "duration_s": (ended - started) if started is not None and ended is not None else None,
        "error": _last_line(trial.message) if str(trial.status) != "COMPLETED" else None,
    }
    record.update(_plain(timing))
    return record


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (a crash never leaves half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        # mkstemp makes the file private (0600); give it the mode any other output gets.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            json.dump(_plain(data), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path):
    """Reads a JSON file `write_json` wrote (`summary.json`, `oneshot.json`)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
