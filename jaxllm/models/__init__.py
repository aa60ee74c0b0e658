"""Models built from :mod:`jaxllm.nn` layers."""

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

__all__ = [
    "GPT",
    "GPTCache",
    "GPTConfig",
    "check_tokens",
    "count_params",
    "init_cache",
    "init_params",
    "with_cpu_tuned_attention",
]
