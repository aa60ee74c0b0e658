"""jaxllm: a functional JAX research library for language models.

    import jaxllm as jl
    docs = jl.data.clean_corpus(jl.data.load_corpus("pydoc"))
    model = jl.models.GPT(jl.models.GPTConfig(vocab_size=100))

Importing jaxllm before JAX starts its backends lets XLA:CPU steps reuse their memory instead
of page-faulting it back in on every call; CPU computations then run in the calling thread
(see :mod:`jaxllm.runtime`; ``JAXLLM_REUSE_STEP_MEMORY=0`` opts out).
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
    runtime,
    train,
)
from jaxllm.generate import generate_text
from jaxllm.lm import DataConfig, LMConfig, LMRun, train_lm
from jaxllm.models import GPT, GPTConfig
from jaxllm.optim import OptimizerConfig, make_optimizer

__version__ = "0.1.0"

runtime.reuse_step_memory()

__all__ = [
    "GPT", "DataConfig", "GPTConfig", "LMConfig", "LMRun", "OptimizerConfig", "classic", "config",
    "data", "embeddings", "generate", "generate_text", "losses", "make_optimizer", "metrics", "models", "nn",
    "optim", "plots", "runtime", "train", "train_lm",
]
