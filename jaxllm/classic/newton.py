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
    """Where a Newton solve stands: the parameters, their scores, the gradient and the
    loss's curvature there, and the steps taken. Arrays are class-major (a row per column of
    ``W``), so element-wise work runs along the long axis (3x faster than along ``K``)."""

    kernel: Array  # float32[K, d]
    bias: Array  # float32[K]
    scores: Array  # float32[K, n]: (X kernel + bias)ᵀ
    g_kernel: Array  # float32[K, d]: the gradient
    g_bias: Array  # float32[K]
    curvature: Array  # float32[K, n]: D's diagonal over n, at these scores
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
    products = _products(X)

    def derivatives(scores: Array) -> tuple[Array, Array]:  # scores: float32[K, n]
        first = jax.grad(lambda z: jnp.sum(score_losses(z.T)))
        slope, curvature = jax.jvp(first, (scores,), (jnp.ones_like(scores),))
        return weights * slope / count, weights * curvature / count

    def point_at(kernel: Array, bias: Array, scores: Array, step: Array) -> _Point:
        slope, curvature = derivatives(scores)
        g_kernel = products[1](slope) + kernel / (C * count)
        g_bias = jnp.sum(slope, 1) * bias_mask
        return _Point(kernel, bias, scores, g_kernel, g_bias, curvature, step)

    def newton_step(point: _Point) -> _Point:
        p_kernel, p_bias, p_scores = _conjugate_gradients(
            products, point.curvature, C * count, bias_mask, (point.g_kernel, point.g_bias)
        )

        def slope_along(size: Array) -> Array:  # float32[K]: dF(point + size p) / dsize
            slope, _ = derivatives(point.scores + size[:, None] * p_scores)
            penalty = jnp.sum((point.kernel + size[:, None] * p_kernel) * p_kernel, 1)
            return jnp.sum(slope * p_scores, axis=1) + penalty / (C * count)

        size = _line_search(slope_along, num_outputs)
        return point_at(point.kernel + size[:, None] * p_kernel, point.bias + size * p_bias,
                        point.scores + size[:, None] * p_scores, point.step + 1)  # fmt: skip

    def keep_going(point: _Point) -> Array:
        largest = jnp.maximum(jnp.max(jnp.abs(point.g_kernel)), jnp.max(jnp.abs(point.g_bias)))
        return (point.step < max_iter) & (largest > tol)

    zeros = jnp.zeros(num_outputs)
    start = point_at(jnp.zeros((num_outputs, d)), zeros, jnp.zeros((num_outputs, n)), jnp.int32(0))
    solved = jax.lax.while_loop(keep_going, newton_step, start)
    return {"kernel": solved.kernel.T, "bias": solved.bias}, solved.step


def _products(X: Array | sparse.BCOO) -> tuple[Callable, Callable, Callable]:
    """``V -> (X Vᵀ)ᵀ``, ``U -> (Xᵀ Uᵀ)ᵀ`` and ``U -> ((X∘X)ᵀ Uᵀ)ᵀ`` (for the Hessian's
    diagonal), on class-major ``V: float32[K, d]`` and ``U: float32[K, n]``. A sparse ``X``'s
    are a gather and a segment sum over its stored values, which XLA runs in about 0.6x the
    time of ``BCOO``'s own products."""
    if not isinstance(X, sparse.BCOO):
        return (lambda V: V @ X.T), (lambda U: U @ X), (lambda U: U @ (X * X))
    n, d = X.shape
    rows, columns, values = X.indices[:, 0], X.indices[:, 1], X.data

    def gathered_sum(values: Array, U: Array, read: Array, write: Array, size: int) -> Array:
        return jax.ops.segment_sum((values * U[:, read]).T, write, size).T

    return (
        lambda V: gathered_sum(values, V, columns, rows, n),
        lambda U: gathered_sum(values, U, rows, columns, d),
        lambda U: gathered_sum(values**2, U, rows, columns, d),
    )


def _conjugate_gradients(
    products: tuple[Callable, Callable, Callable],
    curvature: Array,
    c_count: Array,
    bias_mask: float,
    gradient: tuple[Array, Array],
) -> tuple[Array, Array, Array]:
    """``p ≈ -H⁻¹ g`` for every column at once by conjugate gradients preconditioned with
    ``H``'s diagonal (as liblinear's), and ``X p`` (the step's change of scores).
    ``products``: :func:`_products`; ``curvature: float32[K, n]`` is ``D``'s diagonal (divided
    by ``n``); ``gradient``: ``(g_kernel, g_bias)``; all class-major (:class:`_Point`)."""
    times, transposed_times, squared_times = products
    diagonal_k = squared_times(curvature) + 1.0 / c_count  # float32[K, d]
    bias_curvature = jnp.sum(curvature, 1) * bias_mask  # float32[K]
    # A class with no curvature (every row past its margin) has no bias step: divide by 1, not 0.
    diagonal_b = jnp.where(bias_curvature > 0, bias_curvature, 1.0)

    def hessian_times(d_kernel: Array, d_bias: Array) -> tuple[Array, Array, Array]:
        d_scores = times(d_kernel) + d_bias[:, None]
        weighted = curvature * d_scores
        h_kernel = transposed_times(weighted) + d_kernel / c_count
        return h_kernel, jnp.sum(weighted, 1) * bias_mask, d_scores

    def dot(a: tuple[Array, Array], b: tuple[Array, Array]) -> Array:  # float32[K]
        return jnp.sum(a[0] * b[0], axis=1) + a[1] * b[1]

    limit = (CG_FRACTION**2) * dot(gradient, gradient)

    def iteration(state: tuple) -> tuple:
        p_k, p_b, p_z, r_k, r_b, d_k, d_b, rz, rr, i = state
        h_k, h_b, d_z = hessian_times(d_k, d_b)
        along = dot((d_k, d_b), (h_k, h_b))
        alpha = jnp.where((rr > limit) & (along > 0), rz / along, 0.0)
        column = alpha[:, None]
        p_k, p_b, p_z = p_k + column * d_k, p_b + alpha * d_b, p_z + column * d_z
        r_k, r_b = r_k - column * h_k, r_b - alpha * h_b
        z_k, z_b = r_k / diagonal_k, r_b / diagonal_b
        new_rz = dot((r_k, r_b), (z_k, z_b))
        beta = jnp.where(rz > 0, new_rz / rz, 0.0)
        d_k, d_b = z_k + beta[:, None] * d_k, z_b + beta * d_b
        return p_k, p_b, p_z, r_k, r_b, d_k, d_b, new_rz, dot((r_k, r_b), (r_k, r_b)), i + 1

    def unfinished(state: tuple) -> Array:
        return (state[-1] < MAX_CG) & jnp.any(state[-2] > limit)

    r_k, r_b = -gradient[0], -gradient[1]
    z_k, z_b = r_k / diagonal_k, r_b / diagonal_b
    zeros = (jnp.zeros_like(r_k), jnp.zeros_like(r_b), jnp.zeros_like(curvature))
    start = (*zeros, r_k, r_b, z_k, z_b, dot((r_k, r_b), (z_k, z_b)), dot(gradient, gradient),
             jnp.int32(0))  # fmt: skip
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
