"""Training: the state pytree, pure steps, checkpoints, metrics and the ``fit`` loop."""

from jaxllm.privacy.dp_sgd import DPConfig
from jaxllm.train.averaging import average_checkpoints
from jaxllm.train.checkpoint import (
    Checkpointer,
    CheckpointError,
    CorruptCheckpointError,
    NonFiniteStateError,
)
from jaxllm.train.epochs import EpochsResult, fit_epochs
from jaxllm.train.logging import MetricsWriter, read_metrics
from jaxllm.train.loop import (
    FitResult,
    LoopConfig,
    NonFiniteLossError,
    fit,
)
from jaxllm.train.parallel import (
    DistributedInitError,
    Layout,
    ParallelConfig,
    initialize_distributed,
    make_layout,
    setup_parallel,
)
from jaxllm.train.state import TrainState, create_train_state
from jaxllm.train.step import evaluate, jit_train_step, make_eval_step, make_train_step
from jaxllm.train.stops import TrainingInterrupted

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "CorruptCheckpointError",
    "DPConfig",
    "DistributedInitError",
    "EpochsResult",
    "FitResult",
    "Layout",
    "LoopConfig",
    "MetricsWriter",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "ParallelConfig",
    "TrainState",
    "TrainingInterrupted",
    "average_checkpoints",
    "create_train_state",
    "evaluate",
    "fit",
    "fit_epochs",
    "initialize_distributed",
    "jit_train_step",
    "make_eval_step",
    "make_layout",
    "make_train_step",
    "read_metrics",
    "setup_parallel",
]
