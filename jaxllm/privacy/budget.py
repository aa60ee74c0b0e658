"""A recipe's privacy settings: the target ε (or σ) of a whole run, turned into DP-SGD's
settings for the run's data size, batch size and steps, and the guarantee it ends with."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jaxllm.config import require
from jaxllm.privacy.accountant import METHODS, Method, epsilon, noise_multiplier_for
from jaxllm.privacy.dp_sgd import DPConfig

# δ when none is given: a tenth of 1 / (training examples), below the 1 / n at which an
# (ε, δ) guarantee allows leaking one whole example.
DEFAULT_DELTA_FACTOR = 0.1


@dataclasses.dataclass(frozen=True)
class PrivacySettings:
    """Differentially private training (DP-SGD with Poisson sampling) for a recipe.

    Attributes:
      target_epsilon: the ε the whole run must keep at ``delta`` (``math.inf``: clipping and
        Poisson sampling without noise; 0 with ``noise_multiplier`` 0: no DP-SGD at all).
      delta: δ (0: filled in at the start as 0.1 / training examples).
      clip_norm: ``C``, the largest gradient norm an example keeps.
      noise_multiplier: ``σ`` (0: filled in at the start, the smallest σ that keeps
        ``target_epsilon`` over the run's planned steps); a given σ is used as it is, and
        the run reports the ε it reaches.
      accountant: ``"rdp"`` or ``"pld"`` (:mod:`jaxllm.privacy.accountant`).
    """

    target_epsilon: float = 0.0
    delta: float = 0.0
    clip_norm: float = 1.0
    noise_multiplier: float = 0.0
    accountant: Method = "rdp"

    def __post_init__(self):
        require(
            self.target_epsilon >= 0,
            f"privacy.target_epsilon must be >= 0 (0: no DP-SGD), got {self.target_epsilon}",
        )
        require(0.0 <= self.delta < 1.0, f"privacy.delta must be in [0, 1), got {self.delta}")
        require(self.clip_norm > 0, f"privacy.clip_norm must be > 0, got {self.clip_norm}")
        require(
            self.noise_multiplier >= 0,
            f"privacy.noise_multiplier must be >= 0, got {self.noise_multiplier}",
        )
        require(
            self.accountant in METHODS,
            f"privacy.accountant must be one of {METHODS}, got {self.accountant!r}",
        )

    @property
    def enabled(self) -> bool:
        return self.target_epsilon > 0 or self.noise_multiplier > 0


def sampling_rate(examples: int, batch_size: int) -> float:
    """``q``: the expected batch size over the training examples (at most 1)."""
    return min(1.0, batch_size / examples)


def resolve_privacy(
    settings: PrivacySettings, examples: int, batch_size: int, steps: int
) -> PrivacySettings:
    """``settings`` with ``delta`` and ``noise_multiplier`` filled in for a run of ``steps``
    steps over ``examples`` examples in expected batches of ``batch_size``.

    Raises:
      PrivacyBudgetError: a target ε no σ reaches (too many steps or too large a batch).
    """
    if not settings.enabled:
        return settings
    delta = settings.delta or DEFAULT_DELTA_FACTOR / examples
    sigma = settings.noise_multiplier
    if sigma == 0 and not math.isinf(settings.target_epsilon):
        sigma = noise_multiplier_for(
            target_epsilon=settings.target_epsilon,
            delta=delta,
            sampling_rate=sampling_rate(examples, batch_size),
            steps=steps,
            method=settings.accountant,
        )
    return dataclasses.replace(settings, delta=delta, noise_multiplier=sigma)


def dp_config(settings: PrivacySettings, examples: int, batch_size: int) -> DPConfig:
    """The train step's DP-SGD settings: ``C``, ``σ``, and the expected batch size ``q·n``."""
    return DPConfig(
        clip_norm=settings.clip_norm,
        noise_multiplier=settings.noise_multiplier,
        expected_batch_size=sampling_rate(examples, batch_size) * examples,
    )


def privacy_report(
    settings: PrivacySettings, examples: int, batch_size: int, steps: int
) -> dict[str, Any]:
    """The guarantee of ``steps`` steps of a resolved run: ``epsilon`` (``inf`` without
    noise) at ``delta``, with σ, ``q``, the steps and the accountant."""
    q = sampling_rate(examples, batch_size)
    eps = epsilon(
        sampling_rate=q,
        noise_multiplier=settings.noise_multiplier,
        steps=steps,
        delta=settings.delta,
        method=settings.accountant,
    )
    return {
        "epsilon": eps,
        "delta": settings.delta,
        "noise_multiplier": settings.noise_multiplier,
        "clip_norm": settings.clip_norm,
        "sampling_rate": q,
        "steps": steps,
        "accountant": settings.accountant,
    }


def describe_privacy(report: dict[str, Any], target: float) -> str:
    """One line for a run's log: the guarantee of :func:`privacy_report`, and a warning when
    it is above the ``target`` ε (a resumed run that went on past its planned steps)."""
    text = (
        f"(ε={report['epsilon']:.3g}, δ={report['delta']:.2g})-DP after {report['steps']} "
        f"steps (σ={report['noise_multiplier']:.3g}, C={report['clip_norm']:g}, "
        f"q={report['sampling_rate']:.3g}, {report['accountant'].upper()})"
    )
    if target and report["epsilon"] > target * (1 + 1e-6):
        text += (
            f"; ABOVE the target ε={target:g}: σ (given, or fixed for the steps planned when "
            "the run began) does not keep it over the steps run (e.g. a resume with more steps)"
        )
    return text


def json_report(report: dict[str, Any]) -> dict[str, Any]:
    """:func:`privacy_report` for ``summary.json``: an infinite ε written ``"inf"`` (JSON has
    no infinity)."""
    return report | {"epsilon": "inf" if math.isinf(report["epsilon"]) else report["epsilon"]}
