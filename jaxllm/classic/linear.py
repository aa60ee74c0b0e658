"""Linear models as pure losses minimised by optax: least squares, logistic regression (binary
and multinomial), linear SVMs (hinge and squared hinge, one-vs-rest), on dense or sparse features.

Every model scores ``z = X W + b`` with ``W: float32[n_features, k]``. A fit minimises
scikit-learn's objective ``C · Σ_i loss_i + ½ ‖W‖²`` (the intercept is not penalised), written
as the equivalent mean ``(1/n) Σ_i loss_i + ‖W‖² / (2 C n)`` so that optimisers see a well
scaled problem. ``X`` may be a dense array or a ``jax.experimental.sparse.BCOO`` matrix (e.g.
TF-IDF features): ``X @ W`` is then a sparse product and ``X`` is never densified.

Losses (``t = ±1`` the target of a binary score):
  squared        ½ (z - y)²
  logistic       ln(1 + e^{-t z}) (two classes), or softmax cross-entropy (more)
  hinge          Σ_k max(0, 1 - t_k z_k)   (one-vs-rest over the k classes; one score for two)
  squared_hinge  Σ_k max(0, 1 - t_k z_k)²

Solvers: ``"lbfgs"`` (optax's L-BFGS with a zoom line search; for the smooth losses), and
``"adam"`` / ``"sgd"`` (full-batch; the hinge loss's default). Everything runs in one
``jax.jit``-compiled ``lax.while_loop``, and :func:`fit_regularization_path` trains every value
of ``C`` at once with ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax import Array
from jax.experimental import sparse

from jaxllm.config import require


class TargetsError(ValueError):
    """Targets or class labels a linear model cannot be fitted to."""


class FeaturesError(ValueError):
    """Features that are not a non-empty 2-D matrix (of the width the model was fitted on)."""


class NotProbabilisticError(ValueError):
    """Class probabilities asked of a model whose loss defines none (only logistic does)."""


Loss = Literal["squared", "logistic", "hinge", "squared_hinge"]
Solver = Literal["lbfgs", "adam", "sgd"]
LOSSES = get_args(Loss)
SOLVERS = get_args(Solver)

Features = Array | sparse.BCOO


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """Attributes:
    loss: one of :data:`LOSSES`.
    C: inverse regularisation strength, as in scikit-learn (larger: less regularisation).
    fit_intercept: learn a bias ``b``.
    solver: ``"lbfgs"`` (smooth losses), ``"adam"`` or ``"sgd"``; ``None`` picks L-BFGS for
      the smooth losses and Adam for the hinge.
    max_iter: most optimiser iterations.
    tol: L-BFGS stops once the largest gradient entry of the (mean) objective is below this,
      as scikit-learn's ``LogisticRegression(solver="lbfgs")`` does.
    learning_rate: step size of Adam and SGD.
    """

    loss: Loss = "logistic"
    C: float = 1.0
    fit_intercept: bool = True
    solver: Solver | None = None
    max_iter: int = 100
    tol: float = 1e-4
    learning_rate: float = 0.05

    def __post_init__(self):
        require(
            self.loss in LOSSES, f"LinearConfig.loss must be one of {LOSSES}, got {self.loss!r}"
        )
        require(
            self.solver in (*SOLVERS, None),
            f"LinearConfig.solver must be one of {SOLVERS}, got {self.solver!r}",
        )
        require(
            not (self.loss == "hinge" and self.solver == "lbfgs"),
            "L-BFGS needs a smooth loss; use loss='squared_hinge' or solver='adam' for the hinge",
        )
        require(
            self.C > 0 and self.max_iter > 0 and self.tol >= 0 and self.learning_rate > 0,
            "LinearConfig.C, max_iter and learning_rate must be > 0 and tol >= 0",
        )

    @property
    def chosen_solver(self) -> str:
        return self.solver or ("adam" if self.loss == "hinge" else "lbfgs")


@dataclasses.dataclass(frozen=True)
class LinearModel:
    """A fitted linear model.

    Attributes:
      params: ``{"kernel": float32[n_features, k], "bias": float32[k]}``; ``k`` is 1 for
        regression and two-class models, the number of classes otherwise.
      config: how it was fitted.
      num_classes: classes of a classifier (0 for regression).
      iterations: optimiser iterations run.
    """

    params: dict
    config: LinearConfig
    num_classes: int
    iterations: int = 0

    @property
    def num_features(self) -> int:
        return int(self.params["kernel"].shape[0])


def decision_function(model: LinearModel, X: Features) -> Array:
    """Scores ``float32[n, k]`` (``[n]`` when ``k`` is 1): ``X W + b``."""
    _check_features(X, model.num_features)
    z = scores(model.params, X)
    return z[:, 0] if z.shape[1] == 1 else z


def predict(model: LinearModel, X: Features) -> Array:
    """Regression values ``float32[n]``, or class ids ``int32[n]``."""
    z = decision_function(model, X)
    if model.num_classes == 0:
        return z
    return (z > 0).astype(jnp.int32) if z.ndim == 1 else jnp.argmax(z, axis=-1).astype(jnp.int32)


def predict_proba(model: LinearModel, X: Features) -> Array:
    """Class probabilities ``float32[n, num_classes]`` of a logistic model."""
    require(
        model.config.loss == "logistic",
        f"predict_proba needs a logistic model, this one has loss {model.config.loss!r}",
        NotProbabilisticError,
    )
    z = decision_function(model, X)
    if z.ndim == 1:
        p = jax.nn.sigmoid(z)
        return jnp.stack([1 - p, p], axis=-1)
    return jax.nn.softmax(z, axis=-1)


def scores(params: dict, X: Features) -> Array:
    """``X W + b``: float32[n, k]."""
    return X @ params["kernel"] + params["bias"]


def sample_losses(z: Array, y: Array, loss: str) -> Array:
    """Per-example loss ``float32[n]`` of scores ``z: float32[n, k]`` against targets ``y``
    (``float32[n]`` for squared, ``int32[n]`` class ids otherwise)."""
    if loss == "squared":
        return 0.5 * (z[:, 0] - y) ** 2
    if z.shape[1] == 1:  # two classes, one score: t = +1 for class 1, -1 for class 0
        t = 2.0 * y.astype(z.dtype) - 1.0
        margin = t * z[:, 0]
        if loss == "logistic":
            return jax.nn.softplus(-margin)
        hinge = jnp.maximum(0.0, 1.0 - margin)
        return hinge if loss == "hinge" else hinge**2
    if loss == "logistic":
        return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
    t = 2.0 * jax.nn.one_hot(y, z.shape[1], dtype=z.dtype) - 1.0  # one-vs-rest targets
    hinge = jnp.maximum(0.0, 1.0 - t * z)
    return jnp.sum(hinge if loss == "hinge" else hinge**2, axis=-1)


def objective(params: dict, X: Features, y: Array, loss: str, C: Array | float) -> Array:
    """``(1/n) Σ_i loss_i + ‖W‖² / (2 C n)``: scikit-learn's objective divided by ``C n``."""
    n = X.shape[0]
    data_term = jnp.mean(sample_losses(scores(params, X), y, loss))
    return data_term + jnp.sum(params["kernel"] ** 2) / (2.0 * C * n)


def fit_linear(
    X: Features, y: Any, config: LinearConfig = LinearConfig(), *, num_classes: int | None = None
) -> LinearModel:
    """Fit one model. ``y``: float[n] targets (``loss="squared"``) or int[n] class ids 0..k-1.

    Raises:
      ValueError: features and targets of different lengths, NaN or infinite features or
        targets, labels with one class, or labels outside ``0 .. num_classes - 1``.
    """
    y, k, num_classes = _check_problem(X, y, config, num_classes)
    params, iterations = _fit_jit(X, y, jnp.float32(config.C), config, k)
    return LinearModel(
        params=params, config=config, num_classes=num_classes, iterations=int(iterations)
    )


def fit_regularization_path(
    X: Features,
    y: Any,
    Cs: Any,
    config: LinearConfig = LinearConfig(),
    *,
    num_classes: int | None = None,
) -> list[LinearModel]:
    """One model per value of ``C``, all trained in one compiled call (``jax.vmap`` over ``C``)."""
    Cs = np.asarray(Cs, np.float32)
    require(
        Cs.ndim == 1 and Cs.size > 0 and bool(np.all(Cs > 0)),
        f"Cs must be a non-empty list of positive numbers, got {Cs}",
        ValueError,
    )
    y, k, num_classes = _check_problem(X, y, config, num_classes)
    params, iterations = _fit_path_jit(X, y, jnp.asarray(Cs), config, k)
    return [
        LinearModel(
            params=jax.tree.map(lambda p, i=i: p[i], params),
            config=dataclasses.replace(config, C=float(C)),
            num_classes=num_classes,
            iterations=int(iterations[i]),
        )
        for i, C in enumerate(Cs)
    ]


def least_squares(
    X: Array, y: Array, *, l2: float = 0.0, fit_intercept: bool = True
) -> LinearModel:
    """Closed-form (ridge) regression: ``argmin ‖X W + b - y‖² + l2 ‖W‖²`` by a least-squares
    solve (``l2 = 0``) or the regularised normal equations. Dense ``X: float[n, d]``,
    ``y: float[n]``."""
    X = jnp.asarray(X, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    _check_features(X, None)
    require(
        y.shape == (X.shape[0],),
        f"y must be float[{X.shape[0]}], got shape {y.shape}",
        TargetsError,
    )
    require(
        bool(jnp.all(jnp.isfinite(y))),
        "targets contain NaN or infinite values; drop or impute them first",
        TargetsError,
    )
    x_mean = X.mean(0) if fit_intercept else jnp.zeros(X.shape[1])
    y_mean = y.mean() if fit_intercept else 0.0
    Xc, yc = X - x_mean, y - y_mean
    if l2 == 0.0:
        w = jnp.linalg.lstsq(Xc, yc)[0]
    else:
        w = jnp.linalg.solve(Xc.T @ Xc + l2 * jnp.eye(X.shape[1]), Xc.T @ yc)
    params = {"kernel": w[:, None], "bias": jnp.reshape(y_mean - x_mean @ w, (1,))}
    return LinearModel(
        params=params,
        config=LinearConfig(loss="squared", fit_intercept=fit_intercept),
        num_classes=0,
    )


def _check_problem(X: Features, y: Any, config: LinearConfig, num_classes: int | None):
    _check_features(X, None)
    y = np.asarray(y)
    require(
        y.ndim == 1 and y.shape[0] == X.shape[0],
        f"expected one target per row of X ({X.shape[0]}), got targets of shape {y.shape}",
        TargetsError,
    )
    if config.loss == "squared":
        require(
            np.issubdtype(y.dtype, np.number) and bool(np.all(np.isfinite(y))),
            "targets contain NaN or infinite values; drop or impute them first",
            TargetsError,
        )
        return jnp.asarray(y, jnp.float32), 1, 0
    require(
        np.issubdtype(y.dtype, np.integer),
        f"class labels must be integers 0..k-1, got dtype {y.dtype}",
        TargetsError,
    )
    present = np.unique(y)
    num_classes = int(present.max()) + 1 if num_classes is None else num_classes
    require(
        bool(present.min() >= 0 and present.max() < num_classes),
        f"labels must lie in 0..{num_classes - 1}, "
        f"got values from {present.min()} to {present.max()}",
        TargetsError,
    )
    require(
        present.size >= 2,
        f"labels with one class ({present[0]}): a classifier needs examples of at "
        "least two classes",
        TargetsError,
    )
    return jnp.asarray(y, jnp.int32), (1 if num_classes == 2 else num_classes), num_classes


def _check_features(X: Features, num_features: int | None) -> None:
    if not isinstance(X, sparse.BCOO | jax.Array | np.ndarray):
        raise FeaturesError(
            f"features must be a 2-D array or a BCOO sparse matrix, got {type(X).__name__}"
        )
    require(
        X.ndim == 2,
        f"features must be 2-D [n_examples, n_features], got shape {X.shape}",
        FeaturesError,
    )
    require(X.shape[0] > 0, "features have no rows: pass at least one example", FeaturesError)
    require(
        X.shape[1] > 0,
        "features have no columns (0 features): a vectorizer whose vocabulary came out empty? "
        "Lower min_df or check the texts it was fitted on",
        FeaturesError,
    )
    if num_features is not None and X.shape[1] != num_features:
        raise FeaturesError(
            f"the model was fitted on {num_features} features, these have {X.shape[1]}; "
            "transform them with the same vectorizer the model was trained on"
        )
    values = X.data if isinstance(X, sparse.BCOO) else X
    if not bool(jnp.all(jnp.isfinite(jnp.asarray(values)))):
        raise ValueError("features contain NaN or infinite values; drop or impute them first")


def _init_params(num_features: int, k: int) -> dict:
    return {
        "kernel": jnp.zeros((num_features, k), jnp.float32),
        "bias": jnp.zeros((k,), jnp.float32),
    }


def _minimise(X: Features, y: Array, C: Array, config: LinearConfig, k: int) -> tuple[dict, Array]:
    """``(params, iterations)`` minimising :func:`objective` from zero weights."""

    def value_fn(params):
        if not config.fit_intercept:
            params = {**params, "bias": jnp.zeros_like(params["bias"])}
        return objective(params, X, y, config.loss, C)

    params = _init_params(X.shape[1], k)
    if config.chosen_solver == "lbfgs":
        optimizer = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(value_fn)

        def step(carry):
            params, state, i = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=value_fn
            )
            return optax.apply_updates(params, updates), state, i + 1

        def keep_going(carry):
            _, state, i = carry
            grad = otu.tree_get(state, "grad")
            largest = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grad)]))
            return (i == 0) | ((i < config.max_iter) & (largest > config.tol))
    else:
        optimizer = (
            optax.adam(config.learning_rate)
            if config.chosen_solver == "adam"
            else optax.sgd(config.learning_rate, momentum=0.9)
        )
        grad_fn = jax.value_and_grad(value_fn)

        def step(carry):
            params, state, i = carry
            _, grad = grad_fn(params)
            updates, state = optimizer.update(grad, state, params)
            return optax.apply_updates(params, updates), state, i + 1

        def keep_going(carry):
            return carry[2] < config.max_iter

    final, _, iterations = jax.lax.while_loop(
        keep_going, step, (params, optimizer.init(params), jnp.int32(0))
    )
    params = cast(dict, final)  # optax types its updated params as any pytree: here, a dict
    if not config.fit_intercept:
        params = {**params, "bias": jnp.zeros_like(params["bias"])}
    return params, iterations


_fit_jit = jax.jit(_minimise, static_argnames=("config", "k"))
_fit_path_jit = jax.jit(
    jax.vmap(_minimise, in_axes=(None, None, 0, None, None)), static_argnums=(3, 4)
)
