"""Model compression: a smaller student taught by a teacher (distillation), weights set to
zero by magnitude (pruning) and kept there while fine-tuning, whole heads and neurons removed
(structured pruning), and int8 weights (quantisation)."""

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
from jaxllm.compress.quantize import QuantizationError, int8_rows, quantize_int8, weight_bytes
from jaxllm.compress.structured import prune_heads_and_neurons

__all__ = [
    "DistillConfig",
    "DistillationError",
    "PruningError",
    "QuantizationError",
    "apply_masks",
    "dense_kernels",
    "int8_rows",
    "distillation_loss",
    "keep_pruned",
    "leaf_sparsities",
    "magnitude_masks",
    "prune_heads_and_neurons",
    "quantize_int8",
    "soft_target_loss",
    "sparsity_of",
    "sparsity_schedule",
    "weight_bytes",
]
