"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): a small student learns from a
trained teacher's softened predictions as well as from the labels.

The student's loss, with temperature ``T`` and weight ``α`` of the soft term::

    α · T² · KL(softmax(z_teacher / T) ‖ softmax(z_student / T)) + (1 - α) · CE(z_student, y)

``T²`` keeps the soft term's gradients on the scale of the hard term's as ``T`` grows. The
result is an ordinary ``loss_fn(params, batch, key)``: it trains the student through
:func:`jaxllm.train.make_train_step` and ``fit``, with every parallel mode and checkpoints::

    loss_fn = distillation_loss(student, teacher, teacher_params, DistillConfig(2.0, 0.5))
    step = make_train_step(loss_fn, optimizer)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.losses import LossFn, cross_entropy, kl_divergence

Task = Literal["lm", "classifier"]


class DistillationError(ValueError):
    """The teacher and the student cannot be compared (different outputs or vocabularies)."""


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """How the student learns from the teacher.

    Attributes:
      temperature: ``T`` > 0: both distributions are ``softmax(logits / T)``; larger shows
        more of the teacher's view of the wrong classes.
      alpha: the soft term's weight in [0, 1] (0: labels only, the student trained alone;
        1: the teacher only).
    """

    temperature: float = 2.0
    alpha: float = 0.5

    def __post_init__(self):
        require(
            self.temperature > 0,
            f"DistillConfig.temperature must be > 0, got {self.temperature}",
        )
        require(
            0.0 <= self.alpha <= 1.0,
            f"DistillConfig.alpha must be in [0, 1] (the soft term's weight), got {self.alpha}",
        )


def soft_target_loss(
    teacher_logits: Array, student_logits: Array, temperature: float, mask: Array | None = None
) -> Array:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, the mean over unmasked
    positions. Logits float[..., classes] of the same shape."""
    if teacher_logits.shape[-1] != student_logits.shape[-1]:
        raise DistillationError(
            f"the teacher predicts {teacher_logits.shape[-1]} classes (tokens) and the student "
            f"{student_logits.shape[-1]}: distillation needs the same vocabulary (tokenizer) "
            "or label set for both"
        )
    t = temperature
    return t * t * kl_divergence(teacher_logits / t, student_logits / t, mask)


def distillation_loss(
    student: Any,
    teacher: Any,
    teacher_params: Any,
    config: DistillConfig = DistillConfig(),
    *,
    task: Task = "lm",
) -> LossFn:
    """The student's ``loss_fn(params, batch, key)``: the soft and hard terms above.

    The teacher runs without dropout and without gradients (its parameters are constants of
    the loss). Metrics: ``loss`` (the student's cross-entropy on the labels, so runs compare
    with a student trained alone), ``soft_loss`` (the ``T²``-scaled KL), and ``tokens`` for
    ``task="lm"``.

    Args:
      student: the Flax module trained.
      teacher: a Flax module with the same output classes (vocabulary or labels).
      teacher_params: the trained teacher's parameters.
      config: temperature and the soft term's weight.
      task: ``"lm"``: a causal LM's batch (``inputs``, ``targets``, optional ``mask``), as
        :func:`jaxllm.losses.language_model_loss`; ``"classifier"``: a text classifier's
        (``tokens``, ``mask``, ``labels``, optional ``weights``), as
        :func:`jaxllm.losses.classification_loss`.
    """
    require(task in ("lm", "classifier"), f"task must be 'lm' or 'classifier', got {task!r}")
    _check_vocabularies(student, teacher)
    apply = _apply_lm if task == "lm" else _apply_classifier

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        logits, labels, mask = apply(student, params, batch, key)
        teacher_logits, _, _ = apply(teacher, teacher_params, batch, None)
        teacher_logits = jax.lax.stop_gradient(teacher_logits)
        soft = soft_target_loss(teacher_logits, logits, config.temperature, mask)
        hard = cross_entropy(logits, labels, mask)
        loss = config.alpha * soft + (1.0 - config.alpha) * hard
        metrics = {"loss": hard, "soft_loss": soft}
        if task == "lm":
            count = labels.size if mask is None else jnp.sum(mask)
            metrics["tokens"] = jnp.asarray(count, jnp.float32)
        return loss, metrics

    return loss_fn


def _apply_lm(model: Any, params: Any, batch: dict, key: Array | None) -> tuple:
    mask = batch.get("mask")
    logits = model.apply(
        {"params": params},
        batch["inputs"],
        train=key is not None,
        padding_mask=None if mask is None else mask.astype(bool),
        rngs={"dropout": key} if key is not None else None,
    )
    return logits, batch["targets"], mask


def _apply_classifier(model: Any, params: Any, batch: dict, key: Array | None) -> tuple:
    logits = model.apply(
        {"params": params},
        batch["tokens"],
        batch["mask"],
        batch.get("weights"),
        train=key is not None,
        rngs={"dropout": key} if key is not None else None,
    )
    return logits, batch["labels"], None


def _check_vocabularies(student: Any, teacher: Any) -> None:
    """Refuse, before any tracing, a pair whose configs name different vocabulary sizes or
    class counts."""
    for field in ("vocab_size", "num_classes"):
        ours = getattr(getattr(student, "config", None), field, None)
        theirs = getattr(getattr(teacher, "config", None), field, None)
        if ours is not None and theirs is not None and ours != theirs:
            raise DistillationError(
                f"the teacher has {field}={theirs} and the student {field}={ours}: "
                "distillation needs the same vocabulary (tokenizer) or label set for both"
            )
