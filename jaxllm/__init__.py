"""jaxllm: a functional JAX research library for language models.

    import jaxllm as jl
    docs = jl.data.clean_corpus(jl.data.load_corpus("pydoc"))
    model = jl.models.GPT(jl.models.GPTConfig(vocab_size=100))

Importing jaxllm changes no JAX flag, allocator setting or matplotlib backend, and loads
neither matplotlib nor orbax. Scripts that train on a CPU opt in to the process settings that
make XLA:CPU steps reuse their memory with :func:`jaxllm.runtime.configure_cpu`.
"""

from jaxllm import (
    classic,
    compress,
    config,
    ctc_decode,
    data,
    embeddings,
    explain,
    generate,
    interop,
    losses,
    metrics,
    models,
    nn,
    optim,
    plots,
    privacy,
    recipes,
    runtime,
    train,
)
from jaxllm.data import DataConfig
from jaxllm.generate import generate_text
from jaxllm.models import GPT, GPTConfig
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.recipes import LMConfig, LMRun, train_lm

__version__ = "0.1.0"

__all__ = [
    "GPT",
    "DataConfig",
    "GPTConfig",
    "LMConfig",
    "LMRun",
    "OptimizerConfig",
    "classic",
    "compress",
    "config",
    "ctc_decode",
    "data",
    "embeddings",
    "explain",
    "generate",
    "generate_text",
    "interop",
    "losses",
    "make_optimizer",
    "metrics",
    "models",
    "nn",
    "optim",
    "plots",
    "privacy",
    "recipes",
    "runtime",
    "train",
    "train_lm",
]
