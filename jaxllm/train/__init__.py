"""Training: the state pytree, pure steps, checkpoints, metrics and the ``fit`` loop."""

from jaxllm.train.checkpoint import Checkpointer, CheckpointError
from jaxllm.train.logging import MetricsWriter, read_metrics
from jaxllm.train.loop import FitResult, LoopConfig, NonFiniteLossError, fit
from jaxllm.train.state import TrainState, create_train_state
from jaxllm.train.step import evaluate, jit_train_step, make_eval_step, make_train_step, perplexity

__all__ = [
    "CheckpointError", "Checkpointer", "FitResult", "LoopConfig", "MetricsWriter",
    "NonFiniteLossError", "TrainState", "create_train_state", "evaluate", "fit", "jit_train_step",
    "make_eval_step", "make_train_step", "perplexity", "read_metrics",
]
