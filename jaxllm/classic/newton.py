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
features, than a quasi-Newton method's gradient evaluations. With fewer rows than features
(``n < d``, as with a few thousand documents' n-grams) the system is solved in the rows' space
instead (:func:`_step_in_rows`): the same products, but conjugate gradients over ``n``
numbers, not ``d``. The solve stops when the largest entry of ``∇F`` is at most ``tol`` (as
the L-BFGS solver does) or after ``max_iter`` Newton steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.experimental import sparse

# Conjugate gradients stop at this fraction of the gradient's norm (liblinear's 0.1), or
# after MAX_CG iterations; a step shorter than a full one is found by BISECTIONS halvings.
# In the rows' space the residual is measured in other units: 0.1 there stops too early
# (three times the Newton steps on a 6-class TF-IDF task), 0.01 takes ~25% fewer conjugate
# gradient iterations in all than the features' space.
CG_FRACTION = 0.1
ROW_CG_FRACTION = 0.01
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
    space: Literal["auto", "features", "rows"] = "auto",
) -> tuple[dict, Array]:
    """Minimise the objective above from zero weights.

    Args:
      X: ``[n, d]`` features, dense or ``BCOO``.
      weights: ``float32[n]`` row weights (0 for padding).
      score_losses: ``scores float32[n, K] -> losses float32[n, K]``, convex in each score
        and independent across scores.
      space: where each Newton step's system is solved: over the ``d`` features, over the
        ``n`` rows, or (``"auto"``) over the fewer of the two. The minimum is the same.

    Returns:
      ``({"kernel": float32[d, K], "bias": float32[K]}, Newton steps taken)``.
    """
    n, d = X.shape
    count = jnp.sum(weights)
    bias_mask = 1.0 if fit_intercept else 0.0
    products = _products(X)
    in_rows = n < d if space == "auto" else space == "rows"
    solve_step = _step_in_rows if in_rows else _step_in_features

    def derivatives(scores: Array) -> tuple[Array, Array]:  # scores: float32[K, n]
        first = jax.grad(lambda z: jnp.sum(score_losses(z.T)))
        slope, curvature = jax.jvp(first, (scores,), (jnp.ones_like(scores),))
        return weights * slope / count, weights * curvature / count

    def point_at(kernel: Array, bias: Array, scores: Array, step: Array) -> _Point:
        slope, curvature = derivatives(scores)
        g_kernel = products.transposed_times(slope) + kernel / (C * count)
        g_bias = jnp.sum(slope, 1) * bias_mask
        return _Point(kernel, bias, scores, g_kernel, g_bias, curvature, step)

    def newton_step(point: _Point) -> _Point:
        p_kernel, p_bias, p_scores = solve_step(
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


class _Products(NamedTuple):
    """Products with ``X`` on class-major arrays (``V: float32[K, d]``, ``U: float32[K, n]``),
    and its rows' squared norms."""

    times: Callable[[Array], Array]  # V -> (X Vᵀ)ᵀ: float32[K, n]
    transposed_times: Callable[[Array], Array]  # U -> (Xᵀ Uᵀ)ᵀ: float32[K, d]
    squared_times: Callable[[Array], Array]  # U -> ((X∘X)ᵀ Uᵀ)ᵀ, for H's diagonal
    row_norms: Array  # float32[n]: ‖x_i‖²


def _products(X: Array | sparse.BCOO) -> _Products:
    """:class:`_Products` of ``X``. A sparse ``X``'s are a gather and a segment sum over its
    stored values, which XLA runs in about 0.6x the time of ``BCOO``'s own products."""
    if not isinstance(X, sparse.BCOO):
        squares = X * X
        return _Products(lambda V: V @ X.T, lambda U: U @ X, lambda U: U @ squares,
                         jnp.sum(squares, 1))  # fmt: skip
    n, d = X.shape
    rows, columns, values = X.indices[:, 0], X.indices[:, 1], X.data

    def gathered_sum(values: Array, U: Array, read: Array, write: Array, size: int) -> Array:
        return jax.ops.segment_sum((values * U[:, read]).T, write, size).T

    return _Products(
        lambda V: gathered_sum(values, V, columns, rows, n),
        lambda U: gathered_sum(values, U, rows, columns, d),
        lambda U: gathered_sum(values**2, U, rows, columns, d),
        jax.ops.segment_sum(values**2, rows, n),
    )


def _step_in_features(
    products: _Products, curvature: Array, c_count: Array, bias_mask: float, gradient: tuple
) -> tuple[Array, Array, Array]:
    """``p ≈ -H⁻¹ g`` by conjugate gradients over the ``d + 1`` parameters, preconditioned
    with ``H``'s diagonal (as liblinear's), and ``X p`` (the step's change of scores).
    ``curvature: float32[K, n]`` is ``D``'s diagonal (divided by ``n``); ``c_count``: ``C n``;
    ``gradient``: ``(g_kernel, g_bias)``; all class-major (:class:`_Point`)."""
    diagonal = (
        products.squared_times(curvature) + 1.0 / c_count,  # float32[K, d]
        jnp.sum(curvature, 1) * bias_mask + (1.0 - bias_mask),  # float32[K]
    )

    def hessian_times(direction: tuple[Array, Array]) -> tuple[tuple[Array, Array], Array]:
        d_kernel, d_bias = direction
        d_scores = products.times(d_kernel) + d_bias[:, None]
        weighted = curvature * d_scores
        h_kernel = products.transposed_times(weighted) + d_kernel / c_count
        return (h_kernel, jnp.sum(weighted, 1) * bias_mask), d_scores

    rhs = (-gradient[0], -gradient[1])
    (p_kernel, p_bias), p_scores = _conjugate_gradients(hessian_times, rhs, diagonal, CG_FRACTION)
    return p_kernel, p_bias, p_scores


def _step_in_rows(
    products: _Products, curvature: Array, c_count: Array, bias_mask: float, gradient: tuple
) -> tuple[Array, Array, Array]:
    """:func:`_step_in_features`'s step found in the space of the rows, for ``n < d``.

    The bias is eliminated first (its Schur complement): the kernel's system is then
    ``(λ I + Aᵀ A) p = r`` with ``λ = 1 / (C n)``, ``A = Π √D X`` and ``Π`` the projection that
    removes the direction of ``√D 1`` (without an intercept, ``Π = I``). By the Woodbury
    identity ``p = (r - Aᵀ q) / λ``, where ``(λ I + A Aᵀ) q = A r``: ``n`` unknowns, solved by
    conjugate gradients preconditioned with ``λ + D_i ‖x_i‖²`` (the diagonal, ``Π`` aside). An
    iteration costs the same two sparse products as over the features, but its vectors have
    ``n`` entries, not ``d``; the bias's step follows from the kernel's."""
    lam = 1.0 / c_count
    total = jnp.sum(curvature, 1)  # float32[K]: 1ᵀ D 1 / n, the bias's curvature
    with_bias = (total > 0) & (bias_mask > 0)
    safe_total = jnp.where(with_bias, total, 1.0)
    root = jnp.sqrt(curvature)  # float32[K, n]
    unit = jnp.where(with_bias[:, None], root / jnp.sqrt(safe_total)[:, None], 0.0)

    def project(v: Array) -> Array:  # Π v, v: float32[K, n]
        return v - unit * jnp.sum(unit * v, 1, keepdims=True)

    def rows_times(v: Array) -> tuple[Array, Array]:  # ((λ I + A Aᵀ) v, X Aᵀ v)
        scores = products.times(products.transposed_times(root * project(v)))
        return lam * v + project(root * scores), scores

    r_kernel, r_bias = -gradient[0], -gradient[1]
    bias_share = jnp.where(with_bias, r_bias / safe_total, 0.0)[:, None]
    reduced = r_kernel - bias_share * products.transposed_times(curvature)  # float32[K, d]
    reduced_scores = products.times(reduced)
    diagonal = lam + curvature * products.row_norms
    rhs = project(root * reduced_scores)
    q, q_scores = _conjugate_gradients(rows_times, rhs, diagonal, ROW_CG_FRACTION)
    p_kernel = (reduced - products.transposed_times(root * project(q))) / lam
    p_scores = (reduced_scores - q_scores) / lam  # X p_kernel
    p_bias = jnp.where(with_bias, (r_bias - jnp.sum(curvature * p_scores, 1)) / safe_total, 0.0)
    return p_kernel, p_bias, p_scores + p_bias[:, None]


def _conjugate_gradients(
    operator: Callable[[Any], tuple[Any, Array]], rhs: Any, diagonal: Any, fraction: float
) -> tuple[Any, Array]:
    """``x ≈ H⁻¹ rhs`` for every class at once, by conjugate gradients preconditioned with
    ``diagonal`` (``H``'s), each class stopping once its residual's norm is ``fraction`` of
    ``rhs``'s (or after ``MAX_CG`` iterations). Vectors are pytrees of class-major arrays
    (``[K, ...]``); ``operator(v) -> (H v, S v)`` for a linear ``S`` (a change of scores),
    whose value at ``x`` is returned too: ``(x, S x)``."""

    def dot(a: Any, b: Any) -> Array:  # float32[K]
        pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        return jnp.sum(
            jnp.stack([jnp.sum(x * y, axis=tuple(range(1, x.ndim))) for x, y in pairs]), 0
        )

    def plus(a: Any, size: Array, b: Any) -> Any:  # a + size b, size: float32[K]
        return jax.tree.map(lambda x, y: x + size.reshape((-1,) + (1,) * (x.ndim - 1)) * y, a, b)

    def preconditioned(r: Any) -> Any:
        return jax.tree.map(jnp.divide, r, diagonal)

    limit = (fraction**2) * dot(rhs, rhs)

    def iteration(state: tuple) -> tuple:
        x, side, r, direction, rz, rr, i = state
        h, h_side = operator(direction)
        along = dot(direction, h)
        alpha = jnp.where((rr > limit) & (along > 0), rz / along, 0.0)
        x, side, r = plus(x, alpha, direction), plus(side, alpha, h_side), plus(r, -alpha, h)
        z = preconditioned(r)
        new_rz = dot(r, z)
        beta = jnp.where(rz > 0, new_rz / rz, 0.0)
        return x, side, r, plus(z, beta, direction), new_rz, dot(r, r), i + 1

    def unfinished(state: tuple) -> Array:
        return (state[-1] < MAX_CG) & jnp.any(state[-2] > limit)

    z = preconditioned(rhs)
    zeros = jax.tree.map(jnp.zeros_like, rhs)
    no_side = jnp.zeros(jax.eval_shape(operator, rhs)[1].shape)
    start = (zeros, no_side, rhs, z, dot(rhs, z), dot(rhs, rhs), jnp.int32(0))
    x, side, *_ = jax.lax.while_loop(unfinished, iteration, start)
    return x, side


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
