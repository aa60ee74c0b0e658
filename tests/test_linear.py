"""Linear models against scikit-learn's on the same objective; sparse == dense; vmap == loop."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

from jaxllm.classic import (
    FeaturesError,
    LinearConfig,
    NotProbabilisticError,
    TargetsError,
    decision_function,
    fit_linear,
    fit_regularization_path,
    least_squares,
    predict,
    predict_proba,
)
from jaxllm.config import ConfigError

linear_model = pytest.importorskip("sklearn.linear_model")
svm = pytest.importorskip("sklearn.svm")

TIGHT = dict(max_iter=500, tol=1e-6)


def classification(n=120, d=6, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, k))
    y = (
        np.argmax(X @ W + 0.8 * rng.normal(size=(n, k)), axis=1)
        if k > 2
        else (X @ W[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    )
    return X, y


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("C", [0.1, 1.0])
def test_logistic_regression_equals_sklearn(k, C):
    X, y = classification(k=k)
    ours = fit_linear(X, y, LinearConfig(loss="logistic", C=C, **TIGHT))
    ref = linear_model.LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X, y)
    coef = np.asarray(ours.params["kernel"]).T
    if k == 2:
        np.testing.assert_allclose(coef, ref.coef_, atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(ours.params["bias"], ref.intercept_, atol=2e-3)
    else:  # softmax scores are defined up to a constant per example: compare centred
        np.testing.assert_allclose(
            coef - coef.mean(0), ref.coef_ - ref.coef_.mean(0), atol=2e-3, rtol=2e-3
        )
    np.testing.assert_allclose(predict_proba(ours, X), ref.predict_proba(X), atol=1e-3)
    np.testing.assert_array_equal(predict(ours, X), ref.predict(X))


def test_squared_hinge_svm_equals_linear_svc():
    """liblinear penalises the intercept, so compare without one."""
    X, y = classification(seed=1)
    ours = fit_linear(X, y, LinearConfig(loss="squared_hinge", C=0.5, fit_intercept=False, **TIGHT))
    ref = svm.LinearSVC(C=0.5, fit_intercept=False, tol=1e-8, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(
        np.asarray(ours.params["kernel"])[:, 0], ref.coef_[0], atol=2e-3, rtol=2e-3
    )
    np.testing.assert_array_equal(predict(ours, X), ref.predict(X))


def test_one_vs_rest_svm_on_three_classes_matches_linear_svc_predictions():
    X, y = classification(k=3, seed=2)
    ours = fit_linear(X, y, LinearConfig(loss="squared_hinge", C=1.0, fit_intercept=False, **TIGHT))
    ref = svm.LinearSVC(C=1.0, fit_intercept=False, tol=1e-8, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(np.asarray(ours.params["kernel"]).T, ref.coef_, atol=5e-3, rtol=5e-3)
    assert np.mean(np.asarray(predict(ours, X)) == ref.predict(X)) >= 0.99


def test_hinge_loss_with_adam_separates_separable_data():
    X, y = classification(seed=3)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = fit_linear(X, y, LinearConfig(loss="hinge", C=100.0, max_iter=400, learning_rate=0.05))
    assert model.config.chosen_solver == "adam"
    assert np.mean(np.asarray(predict(model, X)) == y) >= 0.98


@pytest.mark.parametrize("l2", [0.0, 3.0])
def test_least_squares_equals_sklearn_and_gradient_descent(l2):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 5)).astype(np.float32)
    y = (X @ rng.normal(size=5) + 0.3 + 0.1 * rng.normal(size=80)).astype(np.float32)
    ours = least_squares(X, y, l2=l2)
    ref = (linear_model.Ridge(alpha=l2) if l2 else linear_model.LinearRegression()).fit(X, y)
    np.testing.assert_allclose(np.asarray(ours.params["kernel"])[:, 0], ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.params["bias"], [ref.intercept_], atol=1e-4)
    # The same problem by L-BFGS on the squared loss: ½Σ(z-y)² + ½‖w‖²/C, i.e. Ridge(alpha=1/C).
    C = 1.0 / l2 if l2 else 1e6
    gd = fit_linear(X, y, LinearConfig(loss="squared", C=C, **TIGHT))
    np.testing.assert_allclose(decision_function(gd, X), ref.predict(X), atol=2e-3)


def test_sparse_features_give_the_dense_fit():
    X, y = classification(n=60, d=10, k=3, seed=5)
    X[np.abs(X) < 0.8] = 0.0  # mostly zeros
    dense = fit_linear(jnp.asarray(X), y, LinearConfig(**TIGHT))
    sparse_fit = fit_linear(sparse.BCOO.fromdense(jnp.asarray(X)), y, LinearConfig(**TIGHT))
    chex.assert_trees_all_close(sparse_fit.params, dense.params, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])  # L-BFGS, Newton
@pytest.mark.parametrize("n, d", [(120, 6), (30, 70)])  # more rows than features, and fewer
def test_regularization_path_in_one_call_equals_separate_fits(loss, n, d):
    X, y = classification(n=n, d=d, seed=6)
    Cs = [0.01, 0.1, 1.0, 10.0]
    path = fit_regularization_path(X, y, Cs, LinearConfig(loss=loss, **TIGHT))
    for C, model in zip(Cs, path, strict=True):
        alone = fit_linear(X, y, LinearConfig(loss=loss, C=C, **TIGHT))
        assert model.config.C == pytest.approx(C)
        chex.assert_trees_all_close(model.params, alone.params, atol=1e-4, rtol=1e-4)
    norms = [float(jnp.linalg.norm(m.params["kernel"])) for m in path]
    assert norms == sorted(norms)  # less regularisation, larger weights


def test_bad_input_names_the_problem():
    X, y = classification()
    with pytest.raises(TargetsError, match="labels with one class"):
        fit_linear(X, np.zeros(len(X), int))
    with pytest.raises(TargetsError, match="one target per row"):
        fit_linear(X, y[:-1])
    with pytest.raises(TargetsError, match="labels must lie in 0..1"):
        fit_linear(X, y + 1, num_classes=2)
    with pytest.raises(TargetsError, match="must be integers"):
        fit_linear(X, y.astype(float))
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_linear(bad, y)
    model = fit_linear(X, y)
    with pytest.raises(FeaturesError, match="fitted on 6 features, these have 5"):
        predict(model, X[:, :5])
    with pytest.raises(ConfigError, match="L-BFGS needs a smooth loss"):
        LinearConfig(loss="hinge", solver="lbfgs")
    with pytest.raises(ConfigError, match="Newton needs a smooth loss"):
        LinearConfig(loss="hinge", solver="newton")
    with pytest.raises(ConfigError, match="for 3 classes .softmax. use solver='lbfgs'"):
        fit_linear(*classification(k=3), LinearConfig(loss="logistic", solver="newton"))
    with pytest.raises(NotProbabilisticError, match="predict_proba needs a logistic model"):
        predict_proba(fit_linear(X, y, LinearConfig(loss="squared_hinge")), X)


def test_features_without_columns_are_a_clear_error():
    with pytest.raises(FeaturesError, match=r"no columns \(0 features\).*min_df"):
        fit_linear(np.zeros((4, 0), np.float32), [1, 0, 1, 0], LinearConfig(loss="logistic"))


def test_one_compiled_program_serves_every_c_and_problems_of_similar_size():
    from jaxllm.classic import linear

    X, y = classification(n=220, d=9, seed=6)
    fit_linear(X, y, LinearConfig(loss="squared_hinge", C=1.0))
    programs = linear._fit_jit._cache_size()
    fit_linear(X, y, LinearConfig(loss="squared_hinge", C=3.0, max_iter=50, tol=1e-5))
    fit_linear(X[:205], y[:205], LinearConfig(loss="squared_hinge", C=0.1))  # same bucket
    assert linear._fit_jit._cache_size() == programs
    assert [linear.bucket_size(n) for n in (1, 7, 8, 9, 190, 200, 300)] == [
        1,
        7,
        8,
        10,
        192,
        224,
        320,
    ]


@pytest.mark.parametrize("sparse_x", [False, True])
def test_predictions_of_similar_sizes_share_a_program_and_equal_a_plain_product(sparse_x):
    from jaxllm.classic import linear

    X, y = classification(n=120, d=9, k=3, seed=9)
    model = fit_linear(X, y, LinearConfig(loss="squared_hinge"))
    pair = linear._scores_jit
    programs = 0
    for rows in (100, 105, 111):  # one bucket: 112 rows (and 1,024 stored entries)
        part = sparse.BCOO.fromdense(jnp.asarray(X[:rows])) if sparse_x else X[:rows]
        expected = X[:rows] @ np.asarray(model.params["kernel"]) + np.asarray(model.params["bias"])
        chex.assert_trees_all_close(decision_function(model, part), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(predict(model, part), expected.argmax(-1))
        programs = programs or pair._cache_size()
    assert pair._cache_size() == programs


@pytest.mark.parametrize("loss", ["logistic", "squared_hinge", "squared"])
@pytest.mark.parametrize("sparse_x", [False, True])
def test_padding_leaves_the_objective_and_the_fit_unchanged(loss, sparse_x):
    from jaxllm.classic import linear

    X, y = classification(n=37, d=11, k=3 if loss != "squared" else 2, seed=7)
    y = X[:, 0].astype(np.float32) if loss == "squared" else y
    features = sparse.BCOO.fromdense(jnp.asarray(X)) if sparse_x else X
    yy, k, _ = linear._check_problem(features, y, LinearConfig(loss=loss), None)
    padded, padded_y, weights = linear._padded_problem(features, yy)
    assert padded.shape == (40, 12) and float(weights.sum()) == 37
    rng = np.random.default_rng(8)
    params = {"kernel": rng.normal(size=(11, k)).astype(np.float32), "bias": np.ones(k, np.float32)}
    wide = {"kernel": np.concatenate([params["kernel"], np.zeros((1, k), np.float32)]),
            "bias": params["bias"]}  # fmt: skip
    chex.assert_trees_all_close(
        linear.objective(wide, padded, padded_y, loss, 0.7, weights),
        linear.objective(params, jnp.asarray(X), yy, loss, 0.7),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "loss, k", [("squared_hinge", 2), ("squared_hinge", 4), ("logistic", 2), ("squared", 0)]
)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_newton_and_lbfgs_reach_the_same_minimum(loss, k, fit_intercept):
    """Two independent solvers of one objective (the intercept unpenalised) agree."""
    X, y = classification(n=150, d=8, k=max(k, 2), seed=9)
    y = (X @ np.arange(8.0)).astype(np.float32) if loss == "squared" else y
    common = dict(loss=loss, C=0.3, fit_intercept=fit_intercept, tol=1e-6)
    newton = fit_linear(X, y, LinearConfig(solver="newton", max_iter=100, **common))
    lbfgs = fit_linear(X, y, LinearConfig(solver="lbfgs", max_iter=2000, **common))
    assert newton.config.chosen_solver == "newton" and newton.iterations < 30
    chex.assert_trees_all_close(newton.params, lbfgs.params, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("loss, k", [("squared_hinge", 3), ("logistic", 2)])
@pytest.mark.parametrize("C", [0.7, 100.0])
def test_newton_with_fewer_rows_than_features_reaches_the_lbfgs_minimum(loss, k, C):
    """n < d, sparse, separable at a large C (a small penalty): L-BFGS agrees."""
    from jaxllm.classic import linear

    X, y = classification(n=30, d=70, k=k, seed=13)
    X = np.where(np.random.default_rng(14).random(X.shape) < 0.3, X, 0.0).astype(np.float32)
    features = sparse.BCOO.fromdense(jnp.asarray(X))
    common = dict(loss=loss, C=C, tol=1e-6)
    newton = fit_linear(features, y, LinearConfig(solver="newton", max_iter=100, **common))
    lbfgs = fit_linear(X, y, LinearConfig(solver="lbfgs", max_iter=5000, **common))
    assert newton.iterations < 40
    objective = [
        float(linear.objective(m.params, jnp.asarray(X), y, loss, C)) for m in (newton, lbfgs)
    ]
    assert objective[0] <= objective[1] * (1 + 1e-3) + 1e-6


def test_a_newton_step_for_a_class_with_no_curvature_is_the_penalty_alone():
    """Every row past its margin (zero curvature, zero bias gradient): the step solves
    ``(I / (C n)) p = -g`` for the kernel and leaves the bias, where the bias's
    preconditioner once divided 0 by 0."""
    from jaxllm.classic import newton

    rng = np.random.default_rng(16)
    X = rng.normal(size=(8, 5)).astype(np.float32)
    curvature = np.stack([rng.random(8), np.zeros(8)]).astype(np.float32)
    g_kernel = rng.normal(size=(2, 5)).astype(np.float32)
    g_bias = np.array([0.3, 0.0], np.float32)
    c_count = 3.0
    p_kernel, p_bias, p_scores = newton._conjugate_gradients(
        newton._products(jnp.asarray(X)), jnp.asarray(curvature), c_count, 1.0,
        (jnp.asarray(g_kernel), jnp.asarray(g_bias)),
    )  # fmt: skip
    assert np.all(np.isfinite(p_kernel)) and np.all(np.isfinite(p_bias))
    np.testing.assert_allclose(p_kernel[1], -c_count * g_kernel[1], rtol=1e-5)
    assert float(p_bias[1]) == 0.0
    np.testing.assert_allclose(p_scores[1], X @ np.asarray(p_kernel[1]), rtol=1e-4, atol=1e-5)


def test_two_class_logistic_regression_by_newton_equals_sklearn():
    X, y = classification(seed=10)
    ours = fit_linear(X, y, LinearConfig(loss="logistic", C=0.5, solver="newton", **TIGHT))
    ref = linear_model.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(np.asarray(ours.params["kernel"])[:, 0], ref.coef_[0], atol=2e-4)
    np.testing.assert_allclose(ours.params["bias"], ref.intercept_, atol=2e-4)


def test_a_batched_bcoo_fits_and_predicts_as_its_plain_layout():
    X, y = classification(n=60, d=7, k=3, seed=11)
    plain = sparse.BCOO.fromdense(jnp.asarray(X))
    batched = sparse.BCOO.fromdense(jnp.asarray(X), n_batch=1)
    config = LinearConfig(loss="squared_hinge")
    ours, reference = fit_linear(batched, y, config), fit_linear(plain, y, config)
    chex.assert_trees_all_close(ours.params, reference.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(
        decision_function(ours, batched), decision_function(reference, plain), rtol=1e-5, atol=1e-6
    )
