"""Models: GPT (built from :mod:`jaxllm.nn` layers) and a multilayer perceptron written as its
equations, with hand-derived back-propagation (:mod:`jaxllm.models.mlp`)."""

from jaxllm.models.gpt import (
    GPT,
    GPTCache,
    GPTConfig,
    check_tokens,
    count_params,
    init_cache,
    init_params,
    with_cpu_tuned_attention,
)
from jaxllm.models.mlp import (
    MLPConfig,
    init_mlp,
    mlp_apply,
    mlp_forward,
    mlp_gradient_descent,
    mlp_gradients,
    mlp_loss,
)

__all__ = [
    "GPT",
    "GPTCache",
    "GPTConfig",
    "MLPConfig",
    "check_tokens",
    "count_params",
    "init_cache",
    "init_mlp",
    "init_params",
    "mlp_apply",
    "mlp_forward",
    "mlp_gradient_descent",
    "mlp_gradients",
    "mlp_loss",
    "with_cpu_tuned_attention",
]
