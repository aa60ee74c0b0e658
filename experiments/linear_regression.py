"""The design document's seed: Keras's one-layer linear regression, as pure JAX.

    python experiments/linear_regression.py
    python experiments/linear_regression.py --epochs 500 --learning-rate 0.05 --out-dir runs/lr-500

The Keras original::

    x, y = np.random.rand(100, 10), np.random.rand(100, 1)
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x, y, epochs=100, batch_size=32)   # shuffled every epoch
    model.evaluate(x, y); model.predict(x)

Here: the same data shapes, drawn from ``np.random.default_rng(seed)`` (uniform on [0, 1), as
``np.random.rand``, but NumPy's current generator), one dense layer ``y = x W + b`` with Keras's
defaults (Glorot-uniform kernel, zero bias), ``optax.sgd``, mean squared error, and
:func:`jaxllm.train.epochs.fit_epochs` for Keras's epochs: a fresh permutation each epoch, the last
batch of 4 rows kept, the epoch loss weighted by rows as Keras reports it. The whole training is
one compiled call; ``tests/test_linear_regression_example.py`` checks it equals Keras step for
step. Then evaluate (MSE on the training data), predict, and compare with the closed-form
least-squares optimum.

Writes <out-dir>/loss.png (the loss per epoch, the optimum as a horizontal line) and
<out-dir>/summary.json (the resolved options and the figures printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxllm.losses import mean_squared_error
from jaxllm.plots import save_line_plot, subplots
from jaxllm.runtime import configure_cpu
from jaxllm.train.epochs import fit_epochs


def make_data(seed: int, n: int = 100, features: int = 10) -> dict[str, np.ndarray]:
    """The seed's data: ``x``: float32[n, features], ``y``: float32[n, 1], uniform on [0, 1)."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.random((n, features), dtype=np.float32),
        "y": rng.random((n, 1), dtype=np.float32),
    }


def seed_keys(seed: int) -> tuple[Array, Array]:
    """The PRNG keys of one run: ``(initial weights, epoch shuffles)``."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    return init_key, shuffle_key


def init_params(key: Array, features: int = 10, outputs: int = 1) -> dict[str, Array]:
    """Keras's ``Dense`` defaults: ``kernel``: float32[features, outputs] Glorot-uniform,
    ``bias``: float32[outputs] zeros."""
    kernel = jax.nn.initializers.glorot_uniform()(key, (features, outputs), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((outputs,), jnp.float32)}


def predict(params: dict[str, Array], x: Array) -> Array:
    """``x W + b``: float32[n, features] -> float32[n, outputs]."""
    return x @ params["kernel"] + params["bias"]


def mse_loss(params: dict[str, Array], batch: dict[str, Array]) -> Array:
    """Mean squared error of the batch's predictions; float32[] (Keras's ``loss="mse"``)."""
    return mean_squared_error(predict(params, batch["x"]), batch["y"])


def least_squares_mse(x: Array, y: Array) -> Array:
    """The lowest MSE any ``x W + b`` reaches: least squares on ``[x, 1]``; float32[]."""
    design = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)  # (n, features + 1)
    solution, *_ = jnp.linalg.lstsq(design, y)
    return mean_squared_error(design @ solution, y)


def plot_epochs(losses: np.ndarray, optimum: float, path: Path, *, title: str) -> Path:
    """The training loss per epoch, with the least-squares optimum as a horizontal line."""
    fig, ax = subplots(figsize=(7, 4.2))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=1.5, label="training loss (SGD)")
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"least-squares optimum {optimum:.4f}")
    return save_line_plot(fig, ax, path, xlabel="epoch", ylabel="mean squared error", title=title)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42, help="data, initial weights and shuffles")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/linear_regression"))
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.learning_rate <= 0:
        parser.error("--epochs and --batch-size must be >= 1 and --learning-rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    data = make_data(args.seed)
    init_key, shuffle_key = seed_keys(args.seed)
    params = init_params(init_key, data["x"].shape[1], data["y"].shape[1])
    optimizer = optax.sgd(args.learning_rate)

    def train():
        return fit_epochs(
            mse_loss,
            params,
            optimizer,
            data,
            batch_size=args.batch_size,
            epochs=args.epochs,
            key=shuffle_key,
        )

    jax.block_until_ready(train())  # the first call compiles
    start = time.perf_counter()
    trained, _, losses = jax.block_until_ready(train())
    warm_s = time.perf_counter() - start

    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    final_mse = float(mse_loss(trained, {"x": x, "y": y}))  # evaluate
    predictions = np.asarray(predict(trained, x))  # predict
    optimum = float(least_squares_mse(x, y))
    losses = np.asarray(losses)

    print(
        f"trained {args.epochs} epochs of {-(-len(data['x']) // args.batch_size)} batches "
        f"(batch {args.batch_size}, SGD lr {args.learning_rate}) "
        f"in {1e3 * warm_s:.1f} ms (warm call)"
    )
    print(f"loss per epoch: first {losses[0]:.4f}, last {losses[-1]:.4f}")
    print(f"evaluate: MSE {final_mse:.4f}   least-squares optimum (with intercept) {optimum:.4f}")
    print("predict, first 5:", np.array2string(predictions[:5, 0], precision=4))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_epochs(
        losses,
        optimum,
        args.out_dir / "loss.png",
        title=f"linear regression, SGD lr {args.learning_rate}, batch {args.batch_size}",
    )
    summary = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "final_mse": final_mse,
        "least_squares_mse": optimum,
        "warm_fit_s": warm_s,
        "losses": losses.tolist(),
    }
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"--- loss curve: {plot} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
