"""Candidate operations and searchable Keras layers.

All layers are registered with `keras.saving.register_keras_serializable(package="keras_nas")`,
so a model built from them saves as `.keras` and loads after `import keras_nas`.

- `OPS`, `get_op(name, channels, stride=1)`, `register_op()`: the named candidate ops.
- `Cell`: the NAS-Bench-201 DAG cell; `ResNetBasicBlock`: the block between its stages.
- `DartsCell`: the DARTS normal/reduction cell; `NodeInput`: one of its node's ops on one state.
- `MBConv`: the MobileNetV2 inverted-residual block.
"""

from keras_nas.layers.cell import Cell, ResNetBasicBlock, cell_edges  # noqa: F401
from keras_nas.layers.darts_cell import (  # noqa: F401
    DartsCell,
    NodeInput,
    format_cell_genotype,
    parse_cell_genotype,
)
from keras_nas.layers.mbconv import MBConv  # noqa: F401
from keras_nas.layers.ops import (  # noqa: F401
    ALIASES,
    OPS,
    DilConv,
    FactorizedReduce,
    Identity,
    Pool,
    ReLUConvBN,
    SepConv,
    SkipConnect,
    Zero,
    canonical_op_name,
    get_op,
    register_op,
)
