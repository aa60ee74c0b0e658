"""Optimisers from optax: SGD (with momentum), Adam, AdamW, schedules and clipping."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

import jax
import optax

from jaxllm.config import require

OptimizerName = Literal["sgd", "adam", "adamw"]
OPTIMIZERS = get_args(OptimizerName)

# AdamW's decoupled weight decay when the config leaves it unset: PyTorch's default.
ADAMW_DEFAULT_WEIGHT_DECAY = 0.01


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """How parameters are updated. The defaults are what the name says: ``"sgd"`` is plain
    gradient descent and ``"adam"`` plain Adam (no momentum, L2, or clipping unless set);
    ``"adamw"`` decays weights by 0.01 (PyTorch's default) unless ``weight_decay`` is set.
    Recipes choose their own (the LM recipe: weight decay 0.1 and clipping at 1.0).

    Attributes:
      name: ``"sgd"`` (θ ← θ − α·v, v the momentum buffer), ``"adam"`` or ``"adamw"``.
      learning_rate: peak learning rate α.
      warmup_steps: linear warm-up from 0 to ``learning_rate``.
      decay_steps: steps of the cosine decay after warm-up (0: constant after warm-up; -1: until
        the end of the run, filled in by the recipe that knows the step count).
      min_lr_ratio: the cosine ends at ``learning_rate * min_lr_ratio``.
      momentum: SGD momentum (0 for plain gradient descent); ignored by Adam.
      nesterov: Nesterov momentum for SGD.
      b1, b2, eps: Adam's moment decay rates and epsilon.
      weight_decay: decoupled weight decay (AdamW), or L2 added to the gradient (SGD, Adam);
        applied to matrices and embeddings only, never to norms and biases. ``None``: 0.01
        for AdamW, none for SGD and Adam (see :attr:`decay`).
      grad_clip: clip the gradient's global norm to this (0: no clipping).
    """

    name: OptimizerName = "adamw"
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay_steps: int = 0
    min_lr_ratio: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    b1: float = 0.9
    b2: float = 0.99
    eps: float = 1e-8
    weight_decay: float | None = None
    grad_clip: float = 0.0

    def __post_init__(self):
        require(
            self.name in OPTIMIZERS,
            f"OptimizerConfig.name must be one of {OPTIMIZERS}, got {self.name!r}",
        )
        require(
            self.learning_rate > 0,
            f"OptimizerConfig.learning_rate must be > 0, got {self.learning_rate}",
        )
        require(self.warmup_steps >= 0, "OptimizerConfig.warmup_steps must be >= 0")
        require(
            self.decay_steps >= -1,
            "OptimizerConfig.decay_steps must be >= 0, or -1 for 'until the end'",
        )
        require(0.0 <= self.min_lr_ratio <= 1.0, "OptimizerConfig.min_lr_ratio must be in [0, 1]")
        require(self.decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0")
        require(self.momentum >= 0, f"OptimizerConfig.momentum must be >= 0, got {self.momentum}")
        require(
            not self.nesterov or (self.name == "sgd" and self.momentum > 0),
            "OptimizerConfig.nesterov needs SGD with momentum > 0 (set momentum, e.g. 0.9)",
        )

    def with_decay_until(self, num_steps: int) -> OptimizerConfig:
        """This config with ``decay_steps=-1`` ("until the end") resolved for a run of
        ``num_steps`` steps: the steps after warm-up. Any other value is kept."""
        if self.decay_steps != -1:
            return self
        return dataclasses.replace(self, decay_steps=max(num_steps - self.warmup_steps, 0))

    @property
    def decay(self) -> float:
        """The weight decay applied: ``weight_decay``, or the name's default when unset."""
        if self.weight_decay is not None:
            return self.weight_decay
        return ADAMW_DEFAULT_WEIGHT_DECAY if self.name == "adamw" else 0.0


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """Linear warm-up to the peak, then cosine decay to ``peak * min_lr_ratio``, then constant."""
    peak = config.learning_rate
    require(
        config.decay_steps >= 0,
        "OptimizerConfig.decay_steps is -1 ('until the end of the run'): "
        "resolve it with the run's step count first (dataclasses.replace(config, decay_steps=...))",
    )
    if config.decay_steps == 0:
        if config.warmup_steps == 0:
            return optax.constant_schedule(peak)
        return optax.linear_schedule(0.0, peak, config.warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=config.warmup_steps,
        decay_steps=config.warmup_steps + config.decay_steps,
        end_value=peak * config.min_lr_ratio,
    )


def weight_decay_mask(params: Any) -> Any:
    """``True`` for leaves that are decayed: matrices and embeddings (ndim ≥ 2), not norms or
    biases."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """The optax transformation for ``config``: clip → (L2) → update rule with the schedule."""
    schedule = learning_rate_schedule(config)
    parts = []
    if config.grad_clip:
        parts.append(optax.clip_by_global_norm(config.grad_clip))
    if config.name == "adamw":
        parts.append(
            optax.adamw(
                schedule,
                b1=config.b1,
                b2=config.b2,
                eps=config.eps,
                weight_decay=config.decay,
                mask=weight_decay_mask,
            )
        )
    else:
        if config.decay:
            parts.append(optax.add_decayed_weights(config.decay, mask=weight_decay_mask))
        if config.name == "adam":
            parts.append(optax.adam(schedule, b1=config.b1, b2=config.b2, eps=config.eps))
        else:
            parts.append(
                optax.sgd(schedule, momentum=config.momentum or None, nesterov=config.nesterov)
            )
    return optax.chain(*parts)
