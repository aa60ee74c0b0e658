"""Newton's method with conjugate gradients for linear models whose loss is a sum over scores
(liblinear's primal solver for the squared hinge and logistic losses, with a line search in
place of its trust region).

The objective, per column ``k`` of ``W`` (each one-vs-rest class is its own problem, and all
are solved at once), is ``F(w, b) = (1/n) Σ_i v_i ℓ(z_i, y_i) + ‖w‖² / (2 C n)`` with
``z = X w + b``, ``v_i`` the row weights and ``n = Σ_i v_i``. Each Newton step solves
``H p = -∇F`` by conjugate gradients, using only products with the (generalised) Hessian
``H = Xᵀ D X / n + I / (C n)``, ``D = diag(v_i ℓ''(z_i))`` (the bias row and column have no
penalty), then moves along ``p`` a full step, or less where ``F`` would rise again. A product
costs two sparse matrix products and the step's new scores are carried along, so a step costs
``2 m + 1`` sparse products for ``m`` conjugate-gradient iterations: far fewer, on text
features, than a quasi-Newton method's gradient evaluations. The solve stops when the largest
entry of ``∇F`` is at most ``tol`` (as the L-BFGS solver does) or after ``max_iter`` Newton
steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.experimental import sparse

# Conjugate gradients stop at this fraction of the gradient's norm (liblinear's 0.1), or
# after MAX_CG iterations; a step shorter than a full one is found by BISECTIONS halvings.
CG_FRACTION = 0.1
MAX_CG = 100
BISECTIONS = 20


class _Point(NamedTuple):
    """Where a Newton solve stands: the parameters, their scores and gradient, the steps."""

    kernel: Array  # float32[d, K]
    bias: Array  # float32[K]
    scores: Array  # float32[n, K]: X kernel + bias
    g_kernel: Array  # float32[d, K]: the gradient
    g_bias: Array  # float32[K]
    step: Array  # int32[]


def newton_cg(
    X: Array | sparse.BCOO,
    weights: Array,
    C: Array,
    score_losses: Callable[[Array], Array],
    *,
    num_outputs: int,
    fit_intercept: bool,
    max_iter: Array,
    tol: Array,
) -> tuple[dict, Array]:
    """Minimise the objective above from zero weights.

    Args:
      X: ``[n, d]`` features, dense or ``BCOO``.
      weights: ``float32[n]`` row weights (0 for padding).
      score_losses: ``scores float32[n, K] -> losses float32[n, K]``, convex in each score
        and independent across scores.

    Returns:
      ``({"kernel": float32[d, K], "bias": float32[K]}, Newton steps taken)``.
    """
    n, d = X.shape
    count = jnp.sum(weights)
    bias_mask = 1.0 if fit_intercept else 0.0

    def derivatives(scores: Array) -> tuple[Array, Array]:
        first = jax.grad(lambda z: jnp.sum(score_losses(z)))
        slope, curvature = jax.jvp(first, (scores,), (jnp.ones_like(scores),))
        return weights[:, None] * slope / count, weights[:, None] * curvature / count

    def point_at(kernel: Array, bias: Array, scores: Array, step: Array) -> _Point:
        slope, _ = derivatives(scores)
        g_kernel = X.transpose() @ slope + kernel / (C * count)
        return _Point(kernel, bias, scores, g_kernel, jnp.sum(slope, 0) * bias_mask, step)

    def newton_step(point: _Point) -> _Point:
        _, curvature = derivatives(point.scores)
        p_kernel, p_bias, p_scores = _conjugate_gradients(
            X, curvature, C * count, bias_mask, point.g_kernel, point.g_bias
        )

        def slope_along(size: Array) -> Array:  # float32[K]: dF(point + size p) / dsize
            slope, _ = derivatives(point.scores + size * p_scores)
            data = jnp.sum(slope * p_scores, axis=0)
            return data + jnp.sum((point.kernel + size * p_kernel) * p_kernel, 0) / (C * count)

        size = _line_search(slope_along, num_outputs)
        return point_at(point.kernel + size * p_kernel, point.bias + size * p_bias,
                        point.scores + size * p_scores, point.step + 1)  # fmt: skip

    def keep_going(point: _Point) -> Array:
        largest = jnp.maximum(jnp.max(jnp.abs(point.g_kernel)), jnp.max(jnp.abs(point.g_bias)))
        return (point.step < max_iter) & (largest > tol)

    zeros = jnp.zeros(num_outputs)
    start = point_at(jnp.zeros((d, num_outputs)), zeros, jnp.zeros((n, num_outputs)), jnp.int32(0))
    solved = jax.lax.while_loop(keep_going, newton_step, start)
    return {"kernel": solved.kernel, "bias": solved.bias}, solved.step


def _conjugate_gradients(
    X: Array | sparse.BCOO,
    curvature: Array,
    c_count: Array,
    bias_mask: float,
    g_kernel: Array,
    g_bias: Array,
) -> tuple[Array, Array, Array]:
    """``p ≈ -H⁻¹ g`` for every column at once, and ``X p`` (the step's change of scores).
    ``curvature: float32[n, K]`` is ``D``'s diagonal (divided by ``n``)."""

    def hessian_times(d_kernel: Array, d_bias: Array) -> tuple[Array, Array, Array]:
        d_scores = X @ d_kernel + d_bias
        weighted = curvature * d_scores
        return (
            X.transpose() @ weighted + d_kernel / c_count,
            jnp.sum(weighted, 0) * bias_mask,
            d_scores,
        )

    def norms(kernel: Array, bias: Array) -> Array:  # float32[K]: squared, per column
        return jnp.sum(kernel**2, axis=0) + bias**2

    limit = (CG_FRACTION**2) * norms(g_kernel, g_bias)

    def iteration(state: tuple) -> tuple:
        p_k, p_b, p_z, r_k, r_b, d_k, d_b, rr, i = state
        h_k, h_b, d_z = hessian_times(d_k, d_b)
        curvature_along = jnp.sum(d_k * h_k, axis=0) + d_b * h_b
        alpha = jnp.where((rr > limit) & (curvature_along > 0), rr / curvature_along, 0.0)
        p_k, p_b, p_z = p_k + alpha * d_k, p_b + alpha * d_b, p_z + alpha * d_z
        r_k, r_b = r_k - alpha * h_k, r_b - alpha * h_b
        new_rr = norms(r_k, r_b)
        beta = jnp.where(rr > 0, new_rr / rr, 0.0)
        return p_k, p_b, p_z, r_k, r_b, r_k + beta * d_k, r_b + beta * d_b, new_rr, i + 1

    def unfinished(state: tuple) -> Array:
        return (state[-1] < MAX_CG) & jnp.any(state[-2] > limit)

    zeros_k, zeros_b = jnp.zeros_like(g_kernel), jnp.zeros_like(g_bias)
    zeros_z = jnp.zeros((X.shape[0], g_kernel.shape[1]))
    r_k, r_b = -g_kernel, -g_bias
    start = (zeros_k, zeros_b, zeros_z, r_k, r_b, r_k, r_b, norms(r_k, r_b), jnp.int32(0))
    p_k, p_b, p_z, *_ = jax.lax.while_loop(unfinished, iteration, start)
    return p_k, p_b, p_z


def _line_search(slope_along: Callable[[Array], Array], num_outputs: int) -> Array:
    """The step size per column ``float32[K]`` along a descent direction of a convex
    objective, whose derivative along it is ``slope_along(size)``: 1 if the objective still
    falls there (a full Newton step), else where the derivative changes sign in ``[0, 1]``,
    found by bisection from below (every size returned lowers the objective). Derivatives,
    not values, are compared: near the minimum a value's change is below float32's
    resolution, a derivative's sign is not."""

    def bisect(state: tuple, _) -> tuple:
        low, high = state
        middle = (low + high) / 2
        falling = slope_along(middle) <= 0
        return (jnp.where(falling, middle, low), jnp.where(falling, high, middle)), None

    def shorter() -> Array:
        start = (jnp.zeros(num_outputs), jnp.ones(num_outputs))
        (low, _), _ = jax.lax.scan(bisect, start, None, length=BISECTIONS)
        return jnp.where(full, 1.0, low)

    full = slope_along(jnp.ones(num_outputs)) <= 0
    return jax.lax.cond(jnp.all(full), lambda: jnp.ones(num_outputs), shorter)
