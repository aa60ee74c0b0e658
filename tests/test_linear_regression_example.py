"""The design document's seed (Keras linear regression) as pure JAX: ``fit_epochs`` equals Keras
3 step for step, and its epochs batch, shuffle and weight the ragged last batch as Keras does."""

import json
import os
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scripts import load_script

from jaxllm.train.epochs import batch_sizes, epoch_orders, fit_epochs

ROOT = Path(__file__).resolve().parents[1]


lr = load_script("experiments/linear_regression.py")


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is first imported
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


def tiny_problem(n=10, features=3, seed=0):
    rng = np.random.default_rng(seed)
    data = {
        "x": rng.normal(size=(n, features)).astype(np.float32),
        "y": rng.normal(size=(n, 1)).astype(np.float32),
    }
    return data, lr.init_params(jax.random.key(seed), features, 1)


def test_fit_epochs_equals_keras_fit_on_the_same_batches(keras):
    """The seed: 100 rows, Dense(1), SGD 0.01, MSE, 100 epochs of batch 32, same init and order."""
    epochs, batch_size = 100, 32
    data = lr.make_data(42)
    init_key, shuffle_key = lr.seed_keys(42)
    params = lr.init_params(init_key)
    order = np.asarray(epoch_orders(shuffle_key, len(data["x"]), epochs))
    ours = fit_epochs(
        lr.mse_loss,
        params,
        optax.sgd(0.01),
        data,
        batch_size=batch_size,
        epochs=epochs,
        order=order,
    )

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    model.set_weights([np.asarray(params["kernel"]), np.asarray(params["bias"])])
    history = []
    for rows in order:  # Keras's own fit on arrays, fed our per-epoch order
        history += model.fit(
            data["x"][rows],
            data["y"][rows],
            epochs=1,
            batch_size=batch_size,
            shuffle=False,
            verbose=0,
        ).history["loss"]
    kernel, bias = model.get_weights()

    np.testing.assert_allclose(np.asarray(ours.params["kernel"]), kernel, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.params["bias"]), bias, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.losses), history, atol=1e-6)
    ours_mse = float(lr.mse_loss(ours.params, data))
    assert (
        abs(ours_mse - model.evaluate(data["x"], data["y"], batch_size=batch_size, verbose=0))
        < 1e-5
    )
    np.testing.assert_allclose(
        np.asarray(lr.predict(ours.params, data["x"])),
        model.predict(data["x"], verbose=0),
        atol=1e-5,
    )
    assert ours_mse < history[0]  # it learned something


def numpy_sgd(data, params, order, batch_size, learning_rate):
    """Hand-written minibatch SGD on MSE in float64; per-epoch losses weighted by rows (Keras)
    and, for contrast, the plain mean of the batch losses."""
    w, b = np.asarray(params["kernel"], np.float64), np.asarray(params["bias"], np.float64)
    weighted, plain = [], []
    for rows in order:
        losses, sizes = [], []
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            x, y = data["x"][idx].astype(np.float64), data["y"][idx].astype(np.float64)
            residual = x @ w + b - y  # (batch, 1)
            losses.append(np.mean(residual**2))
            sizes.append(len(idx))
            w = w - learning_rate * 2 * x.T @ residual / residual.size
            b = b - learning_rate * 2 * residual.sum(0) / residual.size
        weighted.append(np.dot(losses, sizes) / np.sum(sizes))
        plain.append(np.mean(losses))
    return {"kernel": w, "bias": b}, np.array(weighted), np.array(plain)


def test_ragged_last_batch_is_weighted_like_keras():
    data, params = tiny_problem(n=10)  # batches of 4, 4, 2
    order = np.asarray(epoch_orders(jax.random.key(3), 10, 3))
    result = fit_epochs(
        lr.mse_loss, params, optax.sgd(0.1), data, batch_size=4, epochs=3, order=order
    )
    expected, weighted, plain = numpy_sgd(data, params, order, 4, 0.1)
    chex.assert_trees_all_close(jax.tree.map(np.asarray, result.params), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(result.losses), weighted, rtol=1e-5)
    assert not np.allclose(weighted, plain, rtol=1e-3)  # the weighting is really being tested


def test_jit_equals_no_jit():
    data, params = tiny_problem(n=7)

    def run():
        return fit_epochs(
            lr.mse_loss,
            params,
            optax.sgd(0.05, momentum=0.9),
            data,
            batch_size=3,
            epochs=2,
            key=jax.random.key(1),
        )

    jitted = run()
    with jax.disable_jit():
        eager = run()
    chex.assert_trees_all_close(jitted, eager, atol=1e-6)


def test_every_epoch_batches_a_fresh_permutation_of_all_rows():
    n, batch_size, epochs = 100, 32, 3
    seen = []

    def loss_fn(params, batch):
        jax.debug.callback(lambda rows: seen.append(np.asarray(rows)), batch["row"], ordered=True)
        return jnp.mean(jnp.square(params * batch["value"]))

    data = {"row": np.arange(n, dtype=np.int32), "value": np.ones(n, np.float32)}
    key = jax.random.key(7)
    result = fit_epochs(
        loss_fn,
        jnp.float32(1.0),
        optax.sgd(0.01),
        data,
        batch_size=batch_size,
        epochs=epochs,
        key=key,
    )
    jax.block_until_ready(result)
    jax.effects_barrier()
    assert (
        [len(rows) for rows in seen] == batch_sizes(n, batch_size) * epochs == [32, 32, 32, 4] * 3
    )
    per_epoch = np.concatenate(seen).reshape(epochs, n)
    for rows in per_epoch:
        np.testing.assert_array_equal(np.sort(rows), np.arange(n))  # every row exactly once
    np.testing.assert_array_equal(per_epoch, np.asarray(epoch_orders(key, n, epochs)))
    assert len({tuple(rows) for rows in per_epoch}) == epochs  # a fresh order each epoch


def test_orders_key_shuffle_and_resuming_agree():
    data, params = tiny_problem(n=10)
    opt = optax.sgd(0.05, momentum=0.9)  # state that must carry over when resuming
    fit = lambda p, **kw: fit_epochs(lr.mse_loss, p, opt, data, batch_size=4, **kw)  # noqa: E731
    key = jax.random.key(5)
    by_key = fit(params, epochs=4, key=key)
    by_order = fit(params, epochs=4, order=epoch_orders(key, 10, 4))
    chex.assert_trees_all_close(by_key, by_order)

    order = np.asarray(epoch_orders(key, 10, 4))
    first = fit(params, epochs=2, order=order[:2])
    resumed = fit_epochs(
        lr.mse_loss,
        first.params,
        opt,
        data,
        batch_size=4,
        epochs=2,
        order=order[2:],
        opt_state=first.opt_state,
    )
    chex.assert_trees_all_close(resumed.params, by_key.params, atol=1e-6)
    np.testing.assert_allclose(
        np.concatenate([first.losses, resumed.losses]), by_key.losses, atol=1e-6
    )

    unshuffled = fit(params, epochs=2, shuffle=False)
    chex.assert_trees_all_close(
        unshuffled, fit(params, epochs=2, order=np.tile(np.arange(10), (2, 1)))
    )


def test_fit_epochs_rejects_bad_arguments():
    data, params = tiny_problem(n=10)
    fit = lambda **kw: fit_epochs(lr.mse_loss, params, optax.sgd(0.1), data, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="key"):
        fit(batch_size=4, epochs=1)
    with pytest.raises(ValueError, match="order"):
        fit(batch_size=4, epochs=2, order=np.zeros((1, 10), np.int32))
    with pytest.raises(ValueError, match="batch_size"):
        fit(batch_size=0, epochs=1, shuffle=False)
    with pytest.raises(ValueError, match="rows"):
        fit_epochs(
            lr.mse_loss,
            params,
            optax.sgd(0.1),
            {"x": data["x"], "y": data["y"][:9]},
            batch_size=4,
            epochs=1,
            shuffle=False,
        )


def test_experiment_script_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert lr.main(["--epochs", "3", "--batch-size", "16", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "least-squares optimum" in text and "predict, first 5" in text
    assert (out / "loss.png").stat().st_size > 1000
    # The figures against float64 NumPy: minibatch SGD by hand on the script's data, initial
    # weights and shuffles, and the least-squares optimum from numpy.linalg.lstsq.
    summary = json.loads((out / "summary.json").read_text())
    data = lr.make_data(42)
    init_key, shuffle_key = lr.seed_keys(42)
    order = np.asarray(epoch_orders(shuffle_key, 100, 3))
    params, weighted, _ = numpy_sgd(data, lr.init_params(init_key), order, 16, 0.01)
    np.testing.assert_allclose(summary["losses"], weighted, rtol=1e-5)
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    final_mse = np.mean((x @ params["kernel"] + params["bias"] - y) ** 2)
    assert summary["final_mse"] == pytest.approx(final_mse, rel=1e-5)
    design = np.concatenate([x, np.ones((100, 1))], axis=1)
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    optimum = np.mean((design @ solution - y) ** 2)
    assert summary["least_squares_mse"] == pytest.approx(optimum, rel=1e-4)
    assert summary["least_squares_mse"] < summary["final_mse"] < summary["losses"][0]


def test_sgd_approaches_the_least_squares_optimum():
    """Given time, gradient descent on the seed's data reaches the closed-form optimum: exactly
    with full batches, to within its noise with minibatches of 32 at a small learning rate."""
    data = lr.make_data(42)
    optimum = float(lr.least_squares_mse(data["x"], data["y"]))
    for batch_size, learning_rate, tolerance in ((100, 0.1, 1e-4), (32, 0.02, 5e-3)):
        result = fit_epochs(
            lr.mse_loss,
            lr.init_params(jax.random.key(42)),
            optax.sgd(learning_rate),
            data,
            batch_size=batch_size,
            epochs=2000,
            key=jax.random.key(0),
        )
        assert optimum - 1e-6 <= float(lr.mse_loss(result.params, data)) < optimum + tolerance
