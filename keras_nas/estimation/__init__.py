"""How to evaluate an architecture cheaply: zero-cost proxies and proxy-based pre-screening.

- `synflow`, `snip`, `grad_norm`, `jacob_cov`, `naswot`: zero-cost proxies of an untrained
  Keras model (TensorFlow or JAX backend); `params`, `flops`: size baselines.
- `score(model, proxy, x, y)` and the `PROXIES` registry.
- `ProxyEstimator` and `prescreen(space, candidates, proxy, x, y, keep=k)`: rank candidate
  architectures of a space by a proxy, to pre-screen or warm-start a search.
- `proxy_function(space, proxy)`: a data-free proxy as `fn(values) -> float`, the `proxy` a
  strategy (`keras_nas.oracles.NASOracle`) starts from and orders its candidates by.

See `keras_nas/estimation/proxies.py` for the exact definitions and conventions.
"""

from keras_nas.estimation.proxies import (  # noqa: F401
    DATA_FREE,
    NEEDS_LABELS,
    PROXIES,
    flops,
    grad_norm,
    input_jacobians,
    jacob_cov,
    jacob_cov_from_correlation,
    jacobian_correlation,
    naswot,
    naswot_kernel,
    naswot_kernel_of,
    params,
    register_relu_layer,
    relu_codes,
    relu_layers,
    score,
    snip,
    snip_and_grad_norm,
    synflow,
)
from keras_nas.estimation.screening import (  # noqa: F401
    ProxyEstimator,
    check_proxy,
    prescreen,
    proxy_function,
    warm_start,
)
