"""Model compression: a smaller student taught by a teacher (distillation), and weights set
to zero by magnitude (pruning) and kept there while fine-tuning."""

from jaxllm.compress.distill import (
    DistillationError,
    DistillConfig,
    distillation_loss,
    soft_target_loss,
)
from jaxllm.compress.prune import (
    PruningError,
    apply_masks,
    dense_kernels,
    keep_pruned,
    leaf_sparsities,
    magnitude_masks,
    sparsity_of,
    sparsity_schedule,
)

__all__ = [
    "DistillConfig",
    "DistillationError",
    "PruningError",
    "apply_masks",
    "dense_kernels",
    "distillation_loss",
    "keep_pruned",
    "leaf_sparsities",
    "magnitude_masks",
    "soft_target_loss",
    "sparsity_of",
    "sparsity_schedule",
]
