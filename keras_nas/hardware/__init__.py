"""Where a model runs: TFLite export, latency measured with the TFLite runtime, cost models.

Latency is measured paired against a fixed reference model (`reference_tflite()`), whose
latency on each device is calibrated once (`calibrate_reference()`); see `measure_latency`.

```python
from keras_nas import hardware
data = hardware.to_tflite(model, quantization="int8", representative_data=x[:200])
stats = hardware.measure_latency(data, runs=50, threads=1)   # stats.median_ms, stats.ratio
cost = hardware.cost_report(model)
```
"""

from keras_nas.hardware.export import (  # noqa: F401
    QUANTIZATIONS,
    ExportReport,
    export_tflite,
    is_tflite,
    load_interpreter,
    run_tflite,
    to_tflite,
    verify_tflite,
)
from keras_nas.hardware.latency import (  # noqa: F401
    Calibration,
    LatencyStats,
    calibrate_reference,
    calibration_cache_path,
    local_fingerprint,
    measure_latency,
    measure_latency_many,
)
from keras_nas.hardware.reference import (  # noqa: F401
    REFERENCE_NAME,
    build_reference_model,
    reference_tflite,
)
from keras_nas.hardware.remote import RemoteDevice, RemoteDeviceError  # noqa: F401
from keras_nas.hardware.cost import (  # noqa: F401
    CostReport,
    cost_report,
    count_flops,
    count_macs,
    count_params,
    model_size_bytes,
    param_counts,
    profile,
)
from keras_nas.hardware.predictor import (  # noqa: F401
    BlockSpec,
    LatencyPredictor,
    cell_blocks,
    mobilenet_blocks,
    spearman,
)
from keras_nas.hardware.metrics import hardware_metrics  # noqa: F401
