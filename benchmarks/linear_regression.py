"""The design document's seed, timed: Keras 3's ``fit`` against jaxllm's ``fit_epochs``.

    python benchmarks/linear_regression.py                 # ~5 s on 2 CPU cores
    python benchmarks/linear_regression.py --repeats 20 --json-only

The whole training of the seed -- 100 rows by 10 features, one ``Dense(1)`` layer, SGD at
learning rate 0.01, mean squared error, 100 epochs of batch 32 shuffled every epoch (400
updates) -- warm, i.e. after one untimed call that compiles. Keras runs
``model.fit(x, y, epochs=100, batch_size=32, verbose=0)`` on its JAX backend (a jitted step per
batch, driven from Python); jaxllm runs :func:`jaxllm.train.epochs.fit_epochs`, the whole
training as one compiled call, timed to ``block_until_ready``. Both start every timed call
from the same initial weights. Reported: the median (and fastest) seconds per training of each
side, jaxllm's time as a fraction of Keras's (target: under 0.1), each side's final MSE on the
data and the closed-form least-squares optimum. The last line printed is one JSON object with
every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from harness import (
    Timing,
    cpu_snapshot,
    load_warning,
    print_report,
    run_record,
    time_fn,
)
from jaxllm.runtime import configure_cpu
from jaxllm.train.epochs import fit_epochs


def _load_experiment():
    """experiments/linear_regression.py: the seed's data, model and loss, shared, not copied
    (loaded by path: this file has the same module name)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / "linear_regression.py"
    spec = importlib.util.spec_from_file_location("experiments_linear_regression", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_experiment()

TARGET_RATIO = 0.1  # jaxllm should need under a tenth of Keras's time


def keras_available() -> bool:
    return importlib.util.find_spec("keras") is not None


def jax_side(
    data: dict,
    params: dict,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    repeats: int,
) -> tuple[Timing, float]:
    """Warm seconds per ``fit_epochs`` training and the final MSE."""
    optimizer = optax.sgd(learning_rate)  # one object, so every call reuses the compiled program
    data = jax.device_put(data)
    key = example.seed_keys(seed)[1]

    def train():
        return fit_epochs(
            example.mse_loss, params, optimizer, data, batch_size=batch_size, epochs=epochs, key=key
        )

    timing = time_fn(train, warmup=1, repeats=repeats)
    return timing, float(example.mse_loss(train().params, data))


def keras_side(
    data: dict,
    params: dict,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    repeats: int,
) -> tuple[Timing, float, str]:
    """Warm seconds per Keras ``fit`` and the final MSE (``evaluate``). Each fit restarts from
    ``params`` (reset outside the timing) on the one compiled model."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"keras runs the {keras.backend.backend()} backend; set KERAS_BACKEND=jax"
        )
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((data["x"].shape[1],)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    weights = [np.asarray(params["kernel"]), np.asarray(params["bias"])]

    seconds = []
    for _ in range(1 + repeats):  # the first fit compiles; not timed
        model.set_weights(weights)
        start = time.perf_counter()
        model.fit(
            data["x"],
            data["y"],
            epochs=epochs,
            batch_size=batch_size,
            # Keras takes "auto", 0, 1 or 2; pyright infers str from the unannotated "auto".
            verbose=0,  # pyright: ignore[reportArgumentType]
        )
        seconds.append(time.perf_counter() - start)  # fit returns when its last loss is on the host
    return (
        Timing.from_seconds(seconds[1:]),
        float(
            model.evaluate(data["x"], data["y"], verbose=0)  # pyright: ignore[reportArgumentType]
        ),
        keras.__version__,
    )


def run_benchmark(
    *,
    epochs: int = 100,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    seed: int = 42,
    repeats: int = 10,
) -> dict[str, Any]:
    """Time both sides on the seed's data; every figure as one flat dict."""
    start = cpu_snapshot()
    data = example.make_data(seed)
    params = jax.device_get(example.init_params(example.seed_keys(seed)[0]))  # the experiment's run
    args = (data, params, epochs, batch_size, learning_rate, seed, repeats)
    keras_timing, keras_mse, keras_version = keras_side(*args)
    ours, our_mse = jax_side(*args)
    ratio = ours.median_s / keras_timing.median_s
    return {
        "benchmark": "linear_regression",
        "rows": int(data["x"].shape[0]),
        "features": int(data["x"].shape[1]),
        "epochs": epochs,
        "batch_size": batch_size,
        "updates": epochs * -(-data["x"].shape[0] // batch_size),
        "learning_rate": learning_rate,
        "repeats": repeats,
        "fit_s": ours.median_s,
        "fit_min_s": ours.min_s,
        "keras_fit_s": keras_timing.median_s,
        "keras_fit_min_s": keras_timing.min_s,
        "ratio_vs_keras": ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio < TARGET_RATIO,
        "final_mse": our_mse,
        "keras_final_mse": keras_mse,
        "least_squares_mse": float(example.least_squares_mse(data["x"], data["y"])),
        "keras_version": keras_version,
        "jax_version": jax.__version__,
        **run_record(start),
    }


def report_lines(r: dict) -> list[str]:
    """The human-readable summary printed above the JSON line."""
    lines = [
        f"linear_regression: {r['rows']} rows x {r['features']} features, Dense(1), SGD lr "
        f"{r['learning_rate']}, MSE, {r['epochs']} epochs of batch {r['batch_size']} "
        f"({r['updates']} updates); warm, median of {r['repeats']}",
        f"keras  {1e3 * r['keras_fit_s']:8.1f} ms per fit (min {1e3 * r['keras_fit_min_s']:.1f})  "
        f"final MSE {r['keras_final_mse']:.4f}  (keras {r['keras_version']}, JAX backend)",
        f"jaxllm {1e3 * r['fit_s']:8.1f} ms per fit (min {1e3 * r['fit_min_s']:.1f})  "
        f"final MSE {r['final_mse']:.4f}",
        f"jaxllm / keras time: {r['ratio_vs_keras']:.4f}  ({1 / r['ratio_vs_keras']:.0f}x faster; "
        f"target < {r['target_ratio']}: {'met' if r['meets_target'] else 'NOT met'})",
        f"least-squares optimum MSE {r['least_squares_mse']:.4f} (the two final MSEs differ "
        "only by their shuffles)",
    ]
    warning = load_warning(r["background_cpu_load"], r["machine"]["cpu_count"])
    return lines + ([warning] if warning else [])


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed calls per side, after one warm-up"
    )
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if not keras_available():
        print(
            "keras is not installed: this benchmark's reference is Keras 3 on its JAX backend "
            "(pip install keras)",
            file=sys.stderr,
        )
        return 2
    result = run_benchmark(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        repeats=args.repeats,
    )
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
