"""A lookup-table latency predictor for a space's networks (ProxylessNAS, nn-Meter style).

A network is cut into blocks whose latency depends only on their configuration and input
shape; the space does the cutting, in `Space.latency_blocks(values)`. `MobileNetSpace`: the
stem, each `MBConv` block and the head (1x1 conv, pooling, classifier). `NASBench201Space`:
the stem, the residual reduction blocks, the head, and inside every cell each edge's op plus
the additions that sum a node's inputs (edges that do not reach the cell's output are left
out: the TFLite converter removes them too). Each distinct block is built alone as a small
Keras model, converted to TFLite and timed once; a whole network is predicted as the sum of
its blocks' latencies, minus the per-model fixed overhead counted once per block beyond the
first (the overhead is the measured latency of a one-op model).
"""

import dataclasses
import json
import math
import os

import numpy as np

from keras_nas.hardware.export import to_tflite
from keras_nas.hardware.latency import measure_latency_many


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block of a network and the shape it sees.

    Attributes:
        kind: `"stem"`, `"mbconv"`, `"head"` (MobileNet); `"cell_stem"`, `"resblock"`,
            `"op"`, `"add"`, `"cell_head"` (NAS-Bench-201).
        input_shape: `(height, width, channels)` of the block's input.
        filters: output channels (head: channels of its 1x1 conv, 0 for none).
        kernel, expansion, stride, se_ratio: the block's configuration.
        num_classes: classifier size (head only).
        op, inputs: the op of an `"op"` block, the inputs of an `"add"` block.
        max_resolution: the size a `"cell_stem"` halves its input to (the space's).
    """

    kind: str
    input_shape: tuple
    filters: int
    kernel: int = 1
    expansion: int = 1
    stride: int = 1
    se_ratio: float = 0.0
    num_classes: int = 0
    op: str = ""
    inputs: int = 1
    max_resolution: int = 32

    @property
    def key(self):
        """A string that identifies the block in the lookup table."""
        h, w, c = self.input_shape
        key = (f"{self.kind}|{h}x{w}x{c}|f{self.filters}|k{self.kernel}|e{self.expansion}"
               f"|s{self.stride}|se{self.se_ratio:g}|n{self.num_classes}|{self.op}|i{self.inputs}")
        if self.max_resolution != 32:  # keys of tables measured before this field stay valid
            key += f"|r{self.max_resolution}"
        return key

    @property
    def output_shape(self):
        h, w, _ = self.input_shape
        if self.kind in ("head", "cell_head"):
            return (self.num_classes,)
        return (math.ceil(h / self.stride), math.ceil(w / self.stride), self.filters)

    def build(self):
        """The block alone as a `keras.Model` (inference graph; BN as in the full network)."""
        import keras

        from keras_nas.layers import MBConv, ResNetBasicBlock, get_op
        from keras_nas.spaces.base import stem_downsampling

        inputs = keras.Input(self.input_shape)
        if self.kind == "add":
            terms = [inputs] + [keras.Input(self.input_shape) for _ in range(self.inputs - 1)]
            x = terms[0]
            for t in terms[1:]:
                x = keras.ops.add(x, t)
            return keras.Model(terms, x)
        if self.kind == "cell_stem":
            x, _ = stem_downsampling(inputs, min(self.input_shape[:2]), self.filters,
                                     self.max_resolution)
            x = keras.layers.Conv2D(self.filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
        elif self.kind == "resblock":
            x = ResNetBasicBlock(self.filters, self.stride)(inputs)
        elif self.kind == "op":
            x = get_op(self.op, self.filters, self.stride)(inputs)
        elif self.kind == "cell_head":
            x = keras.layers.BatchNormalization()(inputs)
            x = keras.layers.ReLU()(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            x = keras.layers.Dense(self.num_classes, activation="softmax")(x)
        elif self.kind == "stem":
            x = keras.layers.Conv2D(self.filters, self.kernel, strides=self.stride,
                                    padding="same", use_bias=False)(inputs)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU(6.0)(x)
        elif self.kind == "mbconv":
            x = MBConv(self.filters, kernel_size=self.kernel, expansion=self.expansion,
                       strides=self.stride, se_ratio=self.se_ratio)(inputs)
        elif self.kind == "head":
            x = inputs
            if self.filters:
                x = keras.layers.Conv2D(self.filters, 1, use_bias=False)(x)
                x = keras.layers.BatchNormalization()(x)
                x = keras.layers.ReLU(6.0)(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            x = keras.layers.Dense(self.num_classes, activation="softmax")(x)
        else:
            raise ValueError(f"Unknown block kind {self.kind!r}.")
        return keras.Model(inputs, x)


def _decisions(space, architecture):
    """The decisions dict of `architecture` (a string is decoded with `space.decode`)."""
    return space.decode(architecture) if isinstance(architecture, str) else architecture


def mobilenet_blocks(space, architecture):
    """The blocks of a `MobileNetSpace` network: `MobileNetSpace.latency_blocks` of the
    decoded `architecture` (a string or a dict of decisions), kept for existing callers.

    Example: `[b.key for b in mobilenet_blocks(space, "w0.5|k3e3|k5e6-k7e3")]`.
    """
    return space.latency_blocks(_decisions(space, architecture))


def cell_blocks(space, architecture):
    """The blocks of a `NASBench201Space` network: `NASBench201Space.latency_blocks` of the
    decoded `architecture` (an `arch_str` or a dict of decisions), kept for existing callers.

    Example: `len(cell_blocks(space, arch))`.
    """
    return space.latency_blocks(_decisions(space, architecture))


class LatencyPredictor:
    """Predicts TFLite latency of a space's networks from measured block latencies.

    Args:
        space: a configured space (input shape and classes set) that implements
            `latency_blocks(values)`, as `MobileNetSpace` and `NASBench201Space` do; any other
            raises `TypeError` here, before anything is measured.
        runs, warmup, threads, xnnpack: how each block is measured (see `measure_latency`).
        quantization: `None`, `"float16"` or `"dynamic"`; the export the predictions are for
            (whole networks must be exported the same way to compare).
        table: optional `{block key: latency_ms}` to start from (e.g. from `load`).
        overhead_ms: the per-model fixed overhead; measured by `fit` when `None`.

    Example:

    ```python
    space = MobileNetSpace(input_shape=(32, 32, 3), num_classes=10)
    predictor = LatencyPredictor(space).fit([space.random_architecture(i) for i in range(50)])
    predictor.predict("w0.5|k3e3|k5e6-k7e3|...")   # milliseconds
    predictor.save("latency_table.json")
    ```
    """

    def __init__(self, space, runs=50, warmup=10, threads=1, xnnpack=True, quantization=None,
                 table=None, overhead_ms=None):
        from keras_nas.spaces import Space

        if not isinstance(space, Space):
            raise TypeError(
                f"`space` must be a keras_nas.spaces.Space, got {type(space).__name__}."
            )
        if type(space).latency_blocks is Space.latency_blocks:
            raise TypeError(
                f"`space` {type(space).__name__} does not implement `latency_blocks(values)`: "
                "the latency predictor needs the space to cut its networks into blocks "
                "(see `keras_nas.spaces.Space.latency_blocks`)."
            )
        space._check_configured()
        if quantization not in (None, "float16", "dynamic"):
            raise ValueError(
                f"`quantization` must be None, 'float16' or 'dynamic', got {quantization!r}."
            )
        self.space = space
        self.runs, self.warmup, self.threads = int(runs), int(warmup), int(threads)
        self.xnnpack = bool(xnnpack)
        self.quantization = quantization
        self.table = dict(table or {})
        self.overhead_ms = None if overhead_ms is None else float(overhead_ms)

    def blocks(self, architecture):
        """The `BlockSpec`s of an architecture (string or decisions dict)."""
        return self.space.latency_blocks(_decisions(self.space, architecture))

    def missing(self, architectures):
        """The distinct blocks of `architectures` that the table does not hold yet."""
        out = {}
        for arch in architectures:
            for spec in self.blocks(arch):
                if spec.key not in self.table:
                    out.setdefault(spec.key, spec)
        return list(out.values())

    def _measure(self, models):
        stats = measure_latency_many(models, runs=self.runs, warmup=self.warmup,
                                     threads=self.threads, xnnpack=self.xnnpack)
        return [s.median_ms for s in stats]

    def fit(self, architectures, chunk=16):
        """Measures every block of `architectures` missing from the table; returns `self`.

        Args:
            architectures: architecture strings (or decision dicts) of the space.
            chunk: blocks timed per measuring process.
        """
        import keras

        if isinstance(architectures, (str, dict)):
            architectures = [architectures]
        if self.overhead_ms is None:
            trivial = keras.Sequential([keras.Input((1, 1, 1)), keras.layers.ReLU()])
            self.overhead_ms = self._measure([to_tflite(trivial)])[0]
        todo = self.missing(architectures)
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            models = [to_tflite(spec.build(), quantization=self.quantization) for spec in part]
            for spec, ms in zip(part, self._measure(models)):
                self.table[spec.key] = float(ms)
            keras.backend.clear_session()
        return self

    def predict(self, architecture):
        """Predicted latency (ms) of an architecture; every block must be in the table."""
        specs = self.blocks(architecture)
        missing = [s.key for s in specs if s.key not in self.table]
        if missing or self.overhead_ms is None:
            raise ValueError(
                f"`architecture` has {len(missing)} block(s) the table lacks (e.g. "
                f"{missing[:1]}); call `fit([architecture, ...])` first."
            )
        total = sum(self.table[s.key] for s in specs)
        return float(max(total - (len(specs) - 1) * self.overhead_ms, 0.0))

    def get_config(self):
        return {"runs": self.runs, "warmup": self.warmup, "threads": self.threads,
                "xnnpack": self.xnnpack, "quantization": self.quantization}

    def save(self, path):
        """Writes the table, overhead and settings as JSON."""
        with open(os.fspath(path), "w") as f:
            json.dump({"settings": self.get_config(), "overhead_ms": self.overhead_ms,
                       "input_shape": list(self.space.input_shape),
                       "table": self.table}, f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path, space):
        """A predictor for `space` from a JSON written by `save`."""
        with open(os.fspath(path)) as f:
            data = json.load(f)
        return cls(space, table=data["table"], overhead_ms=data["overhead_ms"], **data["settings"])


def spearman(a, b):
    """Spearman rank correlation of two equal-length sequences (average ranks for ties)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("`a` and `b` must be equal-length sequences of at least 2 values.")

    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their average rank
            m = x == v
            r[m] = r[m].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])
