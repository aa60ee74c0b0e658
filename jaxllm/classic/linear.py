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

Solvers: ``"newton"`` (Newton's method with conjugate gradients, :mod:`jaxllm.classic.newton`;
the squared hinge's default; for the losses that are a sum over scores: squared, squared hinge,
two-class logistic), ``"lbfgs"`` (optax's L-BFGS with a zoom line search; the other smooth
losses' default), and ``"adam"`` / ``"sgd"`` (full-batch; the hinge loss's default). Each
solve is one ``jax.jit``-compiled ``lax.while_loop``, one program for every ``C`` and for
problems of similar sizes (:func:`bucket_size`), and :func:`fit_regularization_path` trains
every value of ``C`` at once with ``jax.vmap``.
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

from jaxllm.classic.newton import newton_cg
from jaxllm.config import ConfigError, require
from jaxllm.device_arrays import to_device


class TargetsError(ValueError):
    """Targets or class labels a linear model cannot be fitted to."""


class FeaturesError(ValueError):
    """Features that are not a non-empty 2-D matrix (of the width the model was fitted on)."""


class NotProbabilisticError(ValueError):
    """Class probabilities asked of a model whose loss defines none (only logistic does)."""


Loss = Literal["squared", "logistic", "hinge", "squared_hinge"]
Solver = Literal["lbfgs", "newton", "adam", "sgd"]
LOSSES = get_args(Loss)
SOLVERS = get_args(Solver)

Features = Array | sparse.BCOO


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """Attributes:
    loss: one of :data:`LOSSES`.
    C: inverse regularisation strength, as in scikit-learn (larger: less regularisation).
    fit_intercept: learn a bias ``b``.
    solver: ``"newton"`` (squared, squared hinge, two-class logistic), ``"lbfgs"`` (smooth
      losses), ``"adam"`` or ``"sgd"``; ``None`` picks Newton for the squared hinge, Adam for
      the hinge and L-BFGS for the others.
    max_iter: most optimiser iterations (Newton steps for ``"newton"``).
    tol: L-BFGS and Newton stop once the largest gradient entry of the (mean) objective is
      below this, as scikit-learn's ``LogisticRegression(solver="lbfgs")`` does.
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
            not (self.loss == "hinge" and self.solver in ("lbfgs", "newton")),
            f"{'L-BFGS' if self.solver == 'lbfgs' else 'Newton'} needs a smooth loss; use "
            "loss='squared_hinge' or solver='adam' for the hinge",
        )
        require(
            self.C > 0 and self.max_iter > 0 and self.tol >= 0 and self.learning_rate > 0,
            "LinearConfig.C, max_iter and learning_rate must be > 0 and tol >= 0",
        )

    @property
    def chosen_solver(self) -> str:
        defaults = {"hinge": "adam", "squared_hinge": "newton"}
        return self.solver or defaults.get(self.loss, "lbfgs")


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
    z = _host_scores(model, X)
    return to_device(z[:, 0] if z.shape[1] == 1 else z)


def predict(model: LinearModel, X: Features) -> Array:
    """Regression values ``float32[n]``, or class ids ``int32[n]``."""
    z = _host_scores(model, X)
    if model.num_classes == 0:
        return to_device(z[:, 0])
    classes = (z[:, 0] > 0) if z.shape[1] == 1 else np.argmax(z, axis=-1)
    return to_device(classes, np.int32)


def predict_proba(model: LinearModel, X: Features) -> Array:
    """Class probabilities ``float32[n, num_classes]`` of a logistic model."""
    require(
        model.config.loss == "logistic",
        f"predict_proba needs a logistic model, this one has loss {model.config.loss!r}",
        NotProbabilisticError,
    )
    z = _host_scores(model, X)  # on the host, as predict's: nothing compiled per shape
    if z.shape[1] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)  # sigmoid(z) = softmax([0, z])[1]
    exp = np.exp(z - z.max(axis=1, keepdims=True))
    return to_device(exp / exp.sum(axis=1, keepdims=True), np.float32)


def scores(params: dict, X: Features) -> Array:
    """``X W + b``: float32[n, k]."""
    return X @ params["kernel"] + params["bias"]


def _host_scores(model: LinearModel, X: Features) -> np.ndarray:
    """:func:`scores` of checked features, as a NumPy array. For host and sparse features one
    compiled program per model serves matrices of similar sizes (rows and stored entries
    padded to :func:`bucket_size`; the padding is cut off on the host, which compiles
    nothing); a dense JAX array is multiplied where it lies, as it is."""
    _check_features(X, model.num_features)
    if isinstance(X, jax.Array):
        return np.asarray(_scores_jit(model.params, X))
    padded = _padded_features(X, bucket_size(X.shape[0]), X.shape[1])
    return np.asarray(_scores_jit(model.params, padded))[: X.shape[0]]


def score_losses(z: Array, y: Array, loss: str) -> Array:
    """The loss of each score ``float32[n, k]`` of scores ``z: float32[n, k]``, for the losses
    that are a sum over scores (all but the multinomial logistic one)."""
    if loss == "squared":
        return 0.5 * (z - y[:, None]) ** 2
    if z.shape[1] == 1:  # two classes, one score: t = +1 for class 1, -1 for class 0
        t = 2.0 * y[:, None].astype(z.dtype) - 1.0
    else:  # one-vs-rest targets
        t = 2.0 * jax.nn.one_hot(y, z.shape[1], dtype=z.dtype) - 1.0
    if loss == "logistic":
        return jax.nn.softplus(-t * z)
    hinge = jnp.maximum(0.0, 1.0 - t * z)
    return hinge if loss == "hinge" else hinge**2


def sample_losses(z: Array, y: Array, loss: str) -> Array:
    """Per-example loss ``float32[n]`` of scores ``z: float32[n, k]`` against targets ``y``
    (``float32[n]`` for squared, ``int32[n]`` class ids otherwise)."""
    if loss == "logistic" and z.shape[1] > 1:  # softmax cross-entropy
        return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
    return jnp.sum(score_losses(z, y, loss), axis=-1)


def objective(
    params: dict, X: Features, y: Array, loss: str, C: Array | float, weights: Array | None = None
) -> Array:
    """``(1/n) Σ_i loss_i + ‖W‖² / (2 C n)``: scikit-learn's objective divided by ``C n``.

    ``weights: float32[n]`` of 0 and 1 leaves out the rows of weight 0 (``n`` counts the
    others): the padding that makes problems of similar sizes one compiled program.
    """
    losses = sample_losses(scores(params, X), y, loss)
    if weights is None:
        n, data_term = X.shape[0], jnp.mean(losses)
    else:
        n = jnp.sum(weights)
        data_term = jnp.sum(weights * losses) / n
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
    padded, y, weights = _padded_problem(X, y)
    params, iterations = _fit_jit(
        padded, y, weights, np.float32(config.C), _settings(config), _program(config), k
    )
    params = _unpadded(params, X.shape[1])
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
    padded, y, weights = _padded_problem(X, y)
    params, iterations = _fit_path_jit(
        padded, y, weights, to_device(Cs), _settings(config), _program(config), k
    )
    params = _unpadded(params, X.shape[1])
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
        return to_device(y, np.float32), 1, 0
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
    k = 1 if num_classes == 2 else num_classes
    require(
        not (config.chosen_solver == "newton" and config.loss == "logistic" and k > 1),
        f"solver='newton' fits two-class logistic regression; for {num_classes} classes "
        "(softmax) use solver='lbfgs'",
        ConfigError,
    )
    return to_device(y, np.int32), k, num_classes


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
    if not np.isfinite(np.asarray(values)).all():  # on the host: no program to compile
        raise ValueError("features contain NaN or infinite values; drop or impute them first")


def _init_params(num_features: int, k: int) -> dict:
    return {
        "kernel": jnp.zeros((num_features, k), jnp.float32),
        "bias": jnp.zeros((k,), jnp.float32),
    }


def bucket_size(size: int) -> int:
    """``size`` rounded up to the next of 4, 5, 6, 7 × 2^e: problems whose sizes round to the
    same values run one compiled program (at most a quarter of it padding)."""
    step = 2 ** max(0, size.bit_length() - 3)
    return -(-size // step) * step


def _padded_problem(X: Features, y: Array) -> tuple[Features, Array, Array]:
    """``X`` (rows, columns and, if sparse, stored entries), ``y`` and row weights (1, and 0
    for padding) padded to :func:`bucket_size`, on the host (no program to compile)."""
    n, d = X.shape
    rows = bucket_size(n)
    weights = np.zeros(rows, np.float32)
    weights[:n] = 1.0
    padded_y = np.zeros(rows, y.dtype)
    padded_y[:n] = np.asarray(y)
    padded = _padded_features(X, rows, bucket_size(d))
    return padded, to_device(padded_y), to_device(weights)


def _padded_features(X: Features, rows: int, columns: int) -> Features:
    """``X`` with zero rows and columns up to ``[rows, columns]`` and, if sparse, stored zeros
    up to :func:`bucket_size` entries, built on the host (no program to compile)."""
    n, d = X.shape
    if not isinstance(X, sparse.BCOO):
        dense = np.zeros((rows, columns), np.float32)
        dense[:n, :d] = np.asarray(X, np.float32)
        return to_device(dense)
    if X.n_batch or X.n_dense:  # e.g. BCOO.fromdense(..., n_batch=1): entries as (row, column)
        X = X.update_layout(n_batch=0, n_dense=0)
    extra = bucket_size(X.nse) - X.nse  # stored zeros at (0, 0), which add nothing
    data = np.concatenate([np.asarray(X.data), np.zeros(extra, X.data.dtype)])
    indices = np.concatenate([np.asarray(X.indices), np.zeros((extra, 2), X.indices.dtype)])
    return sparse.BCOO((to_device(data), to_device(indices)), shape=(rows, columns))


def _unpadded(params: dict, num_features: int) -> dict:
    """``params`` without the padding's features (``kernel``'s second-to-last axis)."""
    kernel = np.asarray(params["kernel"])[..., :num_features, :]  # on the host, as above
    return {"kernel": to_device(kernel), "bias": params["bias"]}


def _settings(config: LinearConfig) -> dict[str, Array]:
    """The numbers of ``config`` a compiled fit takes as arguments, not as constants."""
    return {
        "max_iter": to_device(config.max_iter, np.int32),
        "tol": to_device(config.tol, np.float32),
        "learning_rate": to_device(config.learning_rate, np.float32),
    }


def _program(config: LinearConfig) -> LinearConfig:
    """What of ``config`` shapes the compiled program (its loss, solver and intercept): one
    program serves every value of ``C``, ``max_iter``, ``tol`` and ``learning_rate``."""
    return dataclasses.replace(config, C=1.0, max_iter=1, tol=0.0, learning_rate=1.0)


def _minimise(
    X: Features,
    y: Array,
    weights: Array,
    C: Array,
    settings: dict[str, Array],
    config: LinearConfig,
    k: int,
) -> tuple[dict, Array]:
    """``(params, iterations)`` minimising :func:`objective` from zero weights."""
    if config.chosen_solver == "newton":
        return newton_cg(
            X,
            weights,
            C,
            lambda z: score_losses(z, y, config.loss),
            num_outputs=k,
            fit_intercept=config.fit_intercept,
            max_iter=settings["max_iter"],
            tol=settings["tol"],
        )

    def value_fn(params):
        if not config.fit_intercept:
            params = {**params, "bias": jnp.zeros_like(params["bias"])}
        return objective(params, X, y, config.loss, C, weights)

    loop = _lbfgs_loop if config.chosen_solver == "lbfgs" else _first_order_loop
    optimizer, step, keep_going = loop(value_fn, settings, config.chosen_solver)
    params = _init_params(X.shape[1], k)
    final, _, iterations = jax.lax.while_loop(
        keep_going, step, (params, optimizer.init(params), jnp.int32(0))
    )
    params = cast(dict, final)  # optax types its updated params as any pytree: here, a dict
    if not config.fit_intercept:
        params = {**params, "bias": jnp.zeros_like(params["bias"])}
    return params, iterations


def _lbfgs_loop(value_fn: Any, settings: dict[str, Array], solver: str) -> tuple:
    """``(optimizer, step, keep_going)`` of an L-BFGS solve: it stops when the largest
    gradient entry is at most ``tol``, or after ``max_iter`` iterations."""
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
        return (i == 0) | ((i < settings["max_iter"]) & (largest > settings["tol"]))

    return optimizer, step, keep_going


def _first_order_loop(value_fn: Any, settings: dict[str, Array], solver: str) -> tuple:
    """``(optimizer, step, keep_going)`` of ``max_iter`` full-batch Adam or SGD steps."""
    rate = settings["learning_rate"]
    optimizer = optax.adam(rate) if solver == "adam" else optax.sgd(rate, momentum=0.9)
    grad_fn = jax.value_and_grad(value_fn)

    def step(carry):
        params, state, i = carry
        _, grad = grad_fn(params)
        updates, state = optimizer.update(grad, state, params)
        return optax.apply_updates(params, updates), state, i + 1

    def keep_going(carry):
        return carry[2] < settings["max_iter"]

    return optimizer, step, keep_going


_scores_jit = jax.jit(scores)
_fit_jit = jax.jit(_minimise, static_argnames=("config", "k"))
_fit_path_jit = jax.jit(
    jax.vmap(_minimise, in_axes=(None, None, None, 0, None, None, None)), static_argnums=(5, 6)
)
