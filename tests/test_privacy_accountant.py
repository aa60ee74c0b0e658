"""The privacy accountant against Opacus's (an independent implementation of the same
analyses), its inverse, its monotonicity, and its errors."""

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.privacy import PrivacyBudgetError, epsilon, noise_multiplier_for

pytest.importorskip("dp_accounting")
accountants = pytest.importorskip("opacus.accountants")
opacus_utils = pytest.importorskip("opacus.accountants.utils")


def opacus_epsilon(kind: str, sigma: float, rate: float, steps: int, delta: float) -> float:
    accountant = accountants.RDPAccountant() if kind == "rdp" else accountants.PRVAccountant()
    accountant.history = [(sigma, rate, steps)]
    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser bound
        warnings.simplefilter("ignore")
        return accountant.get_epsilon(delta)


@settings(max_examples=25, deadline=None)
@given(
    rate=st.floats(1e-3, 0.05),
    sigma=st.floats(1.0, 2.5),
    steps=st.integers(50, 5_000),
    delta=st.sampled_from([1e-7, 1e-5, 1e-3]),
)
def test_rdp_epsilon_is_opacus_rdp_epsilon(rate, sigma, steps, delta):
    ours = epsilon(sampling_rate=rate, noise_multiplier=sigma, steps=steps, delta=delta)
    theirs = opacus_epsilon("rdp", sigma, rate, steps, delta)
    # Where the best Rényi order lies inside both libraries' grids of orders the two bounds
    # agree: enough steps and σ not large keep it below Opacus's largest order (63); a small
    # sampling rate keeps dp-accounting's fractional orders, which it drops where their
    # series does not converge (it logs a warning then, and its bound is looser).
    assert ours == pytest.approx(theirs, rel=0.01)


@pytest.mark.parametrize(
    ("sigma", "rate", "steps", "delta"), [(1.1, 0.01, 1_000, 1e-5), (0.8, 0.05, 300, 1e-6)]
)
def test_pld_epsilon_agrees_with_opacus_prv_and_is_below_rdp(sigma, rate, steps, delta):
    pld = epsilon(
        sampling_rate=rate, noise_multiplier=sigma, steps=steps, delta=delta, method="pld"
    )
    assert pld == pytest.approx(opacus_epsilon("prv", sigma, rate, steps, delta), rel=0.02)
    rdp = epsilon(sampling_rate=rate, noise_multiplier=sigma, steps=steps, delta=delta)
    assert pld < rdp


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_noise_multiplier_for_a_target_is_opacus_and_reaches_the_target(target):
    run = {"delta": 1e-5, "sampling_rate": 0.01, "steps": 1_000}
    sigma = noise_multiplier_for(target_epsilon=target, **run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = opacus_utils.get_noise_multiplier(
            target_epsilon=target,
            target_delta=run["delta"],
            sample_rate=run["sampling_rate"],
            steps=run["steps"],
            epsilon_tolerance=0.001,
        )
    assert sigma == pytest.approx(theirs, rel=0.01)
    reached = epsilon(noise_multiplier=sigma, **run)
    assert target * 0.99 <= reached <= target


def test_pld_needs_less_noise_than_rdp_for_the_same_target():
    run = {"target_epsilon": 3.0, "delta": 1e-5, "sampling_rate": 0.02, "steps": 200}
    pld = noise_multiplier_for(method="pld", **run)
    assert pld < noise_multiplier_for(**run)
    reached = epsilon(sampling_rate=0.02, noise_multiplier=pld, steps=200, delta=1e-5, method="pld")
    assert 3.0 * 0.99 <= reached <= 3.0


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(1e-3, 0.2), sigma=st.floats(0.5, 3.0), steps=st.integers(1, 2_000))
def test_more_noise_fewer_steps_or_sampling_less_is_more_private(rate, sigma, steps):
    def eps(rate=rate, sigma=sigma, steps=steps):
        return epsilon(sampling_rate=rate, noise_multiplier=sigma, steps=steps, delta=1e-5)

    base = eps()
    assert eps(sigma=sigma * 1.5) < base
    assert eps(steps=steps * 2) > base
    assert eps(rate=rate / 2) < base


def test_no_noise_is_no_privacy_and_no_step_costs_nothing():
    assert epsilon(sampling_rate=0.1, noise_multiplier=0.0, steps=10, delta=1e-5) == math.inf
    assert epsilon(sampling_rate=0.1, noise_multiplier=1.0, steps=0, delta=1e-5) == 0.0
    assert (
        noise_multiplier_for(target_epsilon=math.inf, delta=1e-5, sampling_rate=0.1, steps=10)
        == 0.0
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"sampling_rate": 1.5}, "sampling_rate must be in"),
        ({"sampling_rate": 0.0}, "sampling_rate must be in"),
        ({"noise_multiplier": -1.0}, "noise_multiplier must be >= 0"),
        ({"steps": -3}, "steps must be an int"),
        ({"delta": 0.0}, "delta must be in"),
        ({"delta": 1.0}, "delta must be in"),
        ({"method": "gdp"}, "method must be one of"),
    ],
)
def test_out_of_range_arguments_are_named(arguments, message):
    run = {"sampling_rate": 0.01, "noise_multiplier": 1.0, "steps": 10, "delta": 1e-5}
    with pytest.raises(PrivacyBudgetError, match=message):
        epsilon(**{**run, **arguments})


def test_a_target_out_of_reach_or_not_positive_is_refused():
    run = {"delta": 1e-5, "sampling_rate": 1.0, "steps": 10**7}
    with pytest.raises(PrivacyBudgetError, match="out of reach"):
        noise_multiplier_for(target_epsilon=1e-4, **run)
    with pytest.raises(PrivacyBudgetError, match="target_epsilon must be > 0"):
        noise_multiplier_for(target_epsilon=0.0, **run)


def test_the_accountant_leaves_out_dp_accountings_order_warnings_only(caplog):
    """At q = 0.03 and σ = 0.68 dp-accounting's series for orders 1.1 and 1.2 do not converge;
    it leaves them out and warns each time. jaxllm drops those warnings, not others."""
    import logging

    with caplog.at_level(logging.WARNING, logger="absl"):
        sigma = noise_multiplier_for(target_epsilon=8.0, delta=4.7e-5, sampling_rate=0.03,
                                     steps=250)  # fmt: skip
        logging.getLogger("absl").warning("another warning")
    assert sigma == pytest.approx(0.685, abs=0.01)
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
