"""jaxllm: a functional JAX research library for language models.

    import jaxllm as jl
    docs = jl.data.clean_corpus(jl.data.load_corpus("pydoc"))
    model = jl.models.GPT(jl.models.GPTConfig(vocab_size=100))
"""

from jaxllm import (
    classic,
    config,
    data,
    embeddings,
    generate,
    losses,
    metrics,
    models,
    nn,
    optim,
    plots,
    train,
)
from jaxllm.generate import generate_text
from jaxllm.lm import DataConfig, LMConfig, LMRun, train_lm
from jaxllm.models import GPT, GPTConfig
from jaxllm.optim import OptimizerConfig, make_optimizer

__version__ = "0.1.0"

__all__ = [
    "GPT", "DataConfig", "GPTConfig", "LMConfig", "LMRun", "OptimizerConfig", "classic", "config",
    "data", "embeddings", "generate", "generate_text", "losses", "make_optimizer", "metrics", "models", "nn",
    "optim", "plots", "train", "train_lm",
]
