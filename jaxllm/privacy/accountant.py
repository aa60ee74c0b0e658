"""How private a DP-SGD run is: ε at a given δ for (sampling rate, σ, steps), and the inverse,
the σ that reaches a target ε.

A DP-SGD step samples each training example with probability ``q`` (the sampling rate,
batch size / data-set size) and adds Gaussian noise ``σ·C`` to the sum of clipped gradients
(:mod:`jaxllm.privacy.dp_sgd`); ``steps`` such steps compose into an (ε, δ)-DP guarantee for
every example under the add-or-remove-one relation. Two accountants of Google's
``dp-accounting`` package compute ε (``pip install 'jaxllm[privacy]'``):

- ``"rdp"``: Rényi DP (Mironov 2017; Mironov, Talwar and Zhang 2019), Opacus's and
  TensorFlow Privacy's default; an upper bound, fast.
- ``"pld"``: privacy-loss distributions (Koskela et al. 2020; Doroshenko et al. 2022), tighter
  (a smaller ε for the same run), slower for many steps.

    epsilon(sampling_rate=256 / 60_000, noise_multiplier=1.1, steps=14_000, delta=1e-5)
    noise_multiplier_for(target_epsilon=3.0, delta=1e-5, sampling_rate=0.01, steps=1_000)
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any, Literal

from jaxllm.config import require

Method = Literal["rdp", "pld"]
METHODS = ("rdp", "pld")
# The largest σ the inverse searches: beyond it a step's update is noise alone.
MAX_NOISE_MULTIPLIER = 1_000.0
MIN_NOISE_MULTIPLIER = 1e-3
# Below this σ, PLD's discretised privacy loss needs more memory than a laptop has.
PLD_MIN_NOISE_MULTIPLIER = 0.05
# PLD's discretisation of the privacy loss: its ε is an upper bound within about this much.
PLD_DISCRETIZATION = 1e-4


class PrivacyBudgetError(ValueError):
    """An accountant's arguments are out of range, or a target ε cannot be reached."""


def epsilon(
    *,
    sampling_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    method: Method = "rdp",
) -> float:
    """ε such that ``steps`` DP-SGD steps with Poisson sampling rate ``sampling_rate`` and noise
    multiplier ``noise_multiplier`` are (ε, ``delta``)-differentially private.

    ``noise_multiplier == 0`` (no noise) gives ``math.inf``; ``steps == 0`` gives 0.

    Raises:
      PrivacyBudgetError: ``sampling_rate`` not in (0, 1], ``noise_multiplier`` < 0,
        ``steps`` < 0, ``delta`` not in (0, 1), or an unknown ``method``.
    """
    _check_run(sampling_rate, noise_multiplier, steps, method)
    _check_delta(delta)
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    require(
        method != "pld" or noise_multiplier >= PLD_MIN_NOISE_MULTIPLIER,
        f"σ={noise_multiplier} is below {PLD_MIN_NOISE_MULTIPLIER}, where PLD's discretised "
        "loss distribution grows too large for memory; use method='rdp'",
        PrivacyBudgetError,
    )
    accountant = _accountant(method)
    with _without_order_warnings():
        accountant.compose(_dp_sgd_event(sampling_rate, noise_multiplier, steps))
        return float(accountant.get_epsilon(delta))


def noise_multiplier_for(
    *,
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    method: Method = "rdp",
    tolerance: float = 1e-3,
) -> float:
    """The smallest σ (within ``tolerance``) for which ``steps`` DP-SGD steps at
    ``sampling_rate`` are (``target_epsilon``, ``delta``)-DP; ``math.inf`` as the target gives 0.

    Raises:
      PrivacyBudgetError: the arguments' ranges (as :func:`epsilon`), ``target_epsilon`` <= 0,
        or a target no σ up to ``MAX_NOISE_MULTIPLIER`` reaches.
    """
    _check_run(sampling_rate, 0.0, steps, method)
    _check_delta(delta)
    require(
        target_epsilon > 0,
        f"target_epsilon must be > 0 (math.inf: no privacy), got {target_epsilon}",
        PrivacyBudgetError,
    )
    if math.isinf(target_epsilon) or steps == 0:
        return 0.0
    reached = epsilon(
        sampling_rate=sampling_rate,
        noise_multiplier=MAX_NOISE_MULTIPLIER,
        steps=steps,
        delta=delta,
    )
    require(
        reached <= target_epsilon,
        f"ε={target_epsilon} at δ={delta} is out of reach: even σ={MAX_NOISE_MULTIPLIER:g} "
        f"gives ε={reached:.4g} (RDP) over {steps} steps at sampling rate {sampling_rate}. "
        "Ask for a larger ε or δ, or train fewer steps or with a smaller sampling rate.",
        PrivacyBudgetError,
    )
    least = epsilon(
        sampling_rate=sampling_rate,
        noise_multiplier=MIN_NOISE_MULTIPLIER,
        steps=steps,
        delta=delta,
    )
    require(
        least > target_epsilon,
        f"ε={target_epsilon} is so large that σ={MIN_NOISE_MULTIPLIER:g} already keeps it "
        f"(ε={least:.4g}): such noise protects nothing; train without noise "
        "(target_epsilon=math.inf) or ask for a smaller ε",
        PrivacyBudgetError,
    )
    run = (target_epsilon, delta, sampling_rate, steps)
    sigma = _calibrate(*run, "rdp", (MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER), tolerance)
    if method == "pld":  # PLD's ε is below RDP's: its σ lies below, and needs a tight bracket
        sigma = _calibrate(*run, "pld", (_pld_lower_bracket(*run, sigma), sigma), tolerance)
    return sigma


def _pld_lower_bracket(
    target_epsilon: float, delta: float, sampling_rate: float, steps: int, upper: float
) -> float:
    """A σ below ``upper`` whose PLD ε exceeds the target (halving from ``upper / 2``)."""
    low = upper / 2
    while (
        epsilon(
            sampling_rate=sampling_rate,
            noise_multiplier=low,
            steps=steps,
            delta=delta,
            method="pld",
        )
        <= target_epsilon
    ):
        require(
            low / 2 >= PLD_MIN_NOISE_MULTIPLIER,
            f"ε={target_epsilon} needs σ below {PLD_MIN_NOISE_MULTIPLIER} under PLD, where its "
            "discretised loss distribution grows too large; use method='rdp'",
            PrivacyBudgetError,
        )
        low /= 2
    return low


def _calibrate(
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    method: Method,
    bracket: tuple[float, float],
    tolerance: float,
) -> float:
    """Brent's search (``dp_accounting.calibrate_dp_mechanism``) for σ within ``bracket``."""
    mechanism_calibration = _dp_accounting().mechanism_calibration
    with _without_order_warnings():
        sigma = mechanism_calibration.calibrate_dp_mechanism(
            lambda: _accountant(method),
            lambda sigma: _dp_sgd_event(sampling_rate, sigma, steps),
            target_epsilon,
            delta,
            mechanism_calibration.ExplicitBracketInterval(*bracket),
            tol=tolerance,
        )
    return float(sigma)


class _OrderWarnings(logging.Filter):
    """dp-accounting's RDP accountant warns for every fractional order whose series does not
    converge (orders α near 1 at large ``q``) that it leaves that order out. The bound stays
    valid (ε is the least over the orders kept), and such an order could only give an ε above
    log(1/δ) / (α − 1): over 100 for α = 1.1 and over 50 for α = 1.2 at δ ≤ 1e-5, where these
    warnings come from. One per order per call (dozens in a calibration), they say nothing to
    act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "_compute_log_a_frac failed to converge" not in record.getMessage()


@contextlib.contextmanager
def _without_order_warnings() -> Iterator[None]:
    """While inside, absl's logger drops :class:`_OrderWarnings`' messages (only those)."""
    logger, quiet = logging.getLogger("absl"), _OrderWarnings()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _dp_sgd_event(sampling_rate: float, noise_multiplier: float, steps: int) -> Any:
    """``steps`` compositions of a Poisson-sampled Gaussian mechanism."""
    dp_event = _dp_accounting().dp_event
    one_step = dp_event.PoissonSampledDpEvent(
        sampling_rate, dp_event.GaussianDpEvent(noise_multiplier)
    )
    return dp_event.SelfComposedDpEvent(one_step, steps)


def _accountant(method: Method) -> Any:
    dp_accounting = _dp_accounting()
    if method == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)


def _dp_accounting() -> Any:
    try:
        import dp_accounting
    except ImportError as error:
        raise ImportError(
            "jaxllm's privacy accountant needs Google's dp-accounting package: "
            "pip install 'jaxllm[privacy]' (or pip install dp-accounting)"
        ) from error
    return dp_accounting


def _check_run(sampling_rate: float, noise_multiplier: float, steps: int, method: str) -> None:
    require(
        0 < sampling_rate <= 1,
        f"sampling_rate must be in (0, 1] (batch size / number of training examples), "
        f"got {sampling_rate}",
        PrivacyBudgetError,
    )
    require(
        noise_multiplier >= 0,
        f"noise_multiplier must be >= 0, got {noise_multiplier}",
        PrivacyBudgetError,
    )
    require(
        isinstance(steps, int) and steps >= 0,
        f"steps must be an int >= 0, got {steps!r}",
        PrivacyBudgetError,
    )
    require(
        method in METHODS, f"method must be one of {METHODS}, got {method!r}", PrivacyBudgetError
    )


def _check_delta(delta: float) -> None:
    require(
        0 < delta < 1,
        f"delta must be in (0, 1) (commonly below 1 / number of training examples), got {delta}",
        PrivacyBudgetError,
    )
