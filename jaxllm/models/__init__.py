"""Models built from :mod:`jaxllm.nn` layers."""

from jaxllm.models.gpt import (
    GPT,
    GPTCache,
    GPTConfig,
    check_tokens,
    count_params,
    init_cache,
    init_params,
)

__all__ = ["GPT", "GPTCache", "GPTConfig", "check_tokens", "count_params", "init_cache", "init_params"]
