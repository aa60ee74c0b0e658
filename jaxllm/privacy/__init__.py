"""Differential privacy: DP-SGD as a train-step option, and its accountant.

    step = jaxllm.train.make_train_step(loss_fn, optimizer, privacy=DPConfig(1.0, 1.1))
    eps = epsilon(sampling_rate=256 / 60_000, noise_multiplier=1.1, steps=14_000, delta=1e-5)

Canaries measure what a language model memorised of its training text (their exposure).

The accountant needs the ``dp-accounting`` package (``pip install 'jaxllm[privacy]'``),
imported only when it is called.
"""

from jaxllm.privacy.accountant import (
    PrivacyBudgetError,
    epsilon,
    noise_multiplier_for,
)
from jaxllm.privacy.budget import PrivacySettings, privacy_report, resolve_privacy
from jaxllm.privacy.canaries import Canary, canary_exposure, insert_canaries, make_canaries
from jaxllm.privacy.dp_sgd import DPConfig
from jaxllm.privacy.sampling import PoissonBatches, PoissonWindows, poisson_indices

__all__ = [
    "Canary",
    "DPConfig",
    "PoissonBatches",
    "PoissonWindows",
    "PrivacyBudgetError",
    "PrivacySettings",
    "canary_exposure",
    "epsilon",
    "insert_canaries",
    "make_canaries",
    "noise_multiplier_for",
    "poisson_indices",
    "privacy_report",
    "resolve_privacy",
]
