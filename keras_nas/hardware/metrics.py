"""The hardware metrics a search trial records: `latency_ms`, `params`, `flops`, `size_bytes`."""

import time

from keras_nas.hardware.cost import profile
from keras_nas.hardware.export import to_tflite
from keras_nas.hardware.latency import measure_latency

LATENCY_MODES = ("measure", "predict", None)


def hardware_metrics(model, latency="measure", predictor=None, architecture=None, runs=30,
                     warmup=5, threads=1, device=None, quantization=None,
                     representative_data=None, protocol="paired", calibration=None):
    """Hardware metrics of one trained (or untrained) model, as plain JSON numbers.

    The model is converted to TFLite once; the flatbuffer gives `size_bytes` and, with
    `latency="measure"`, is timed by `measure_latency` (locally in a fresh process, or on
    `device`), paired with the reference model by default, so every trial of a search is
    read on the same calibrated clock. With `latency="predict"`,
    `predictor.predict(architecture)` gives the latency instead (no conversion needed).

    Args:
        model: a built `keras.Model`.
        latency: `"measure"`, `"predict"` or `None` (no latency).
        predictor: a fitted `LatencyPredictor`, for `latency="predict"`.
        architecture: the architecture string the predictor looks up.
        runs, warmup, threads, device, protocol, calibration: how latency is measured
            (see `measure_latency`).
        quantization, representative_data: the TFLite export measured and sized.

    Returns:
        `{"params", "macs", "flops", "size_bytes", "latency_ms", "latency_source",
        "hardware_s"}` (`latency_ms` is `None` when not asked for); a paired measurement
        adds `"latency_ratio"` (to the reference), `"latency_reference_ms"` (the reference's
        calibrated latency) and `"latency_protocol"`: a dict of the protocol and the
        reference's identity (`LatencyStats.protocol` and `.reference`).

    Example:

    ```python
    metrics.update(hardware_metrics(model, runs=30))   # inside a trial
    ```
    """
    if latency not in LATENCY_MODES:
        raise ValueError(f"`latency` must be 'measure', 'predict' or None, got {latency!r}.")
    if latency == "predict" and (predictor is None or architecture is None):
        raise ValueError("`latency='predict'` needs `predictor` and `architecture`.")
    start = time.perf_counter()
    report = profile(model)
    data = to_tflite(model, quantization=quantization, representative_data=representative_data)
    out = {"params": report.params, "macs": report.macs, "flops": report.flops,
           "size_bytes": len(data), "latency_ms": None, "latency_source": latency}
    if latency == "measure":
        stats = measure_latency(data, runs=runs, warmup=warmup, threads=threads, device=device,
                                protocol=protocol, calibration=calibration)
        out["latency_ms"] = stats.median_ms
        out["latency_protocol"] = {"protocol": stats.protocol, "reference": stats.reference,
                                   "runtime": stats.runtime, "device": stats.device}
        if stats.reference is not None:
            out["latency_ratio"] = stats.ratio
            out["latency_reference_ms"] = stats.reference["calibrated_ms"]
    elif latency == "predict":
        if predictor.missing([architecture]):
            predictor.fit([architecture])
        out["latency_ms"] = predictor.predict(architecture)
    out["hardware_s"] = time.perf_counter() - start
    return out
