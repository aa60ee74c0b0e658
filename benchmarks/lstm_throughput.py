"""LSTM throughput of jaxllm's ``jaxllm.nn.LSTM`` against PyTorch's ``nn.LSTM`` on this machine.

    python benchmarks/lstm_throughput.py                       # 1 and 2 layers, hidden 256 and 512
    python benchmarks/lstm_throughput.py --layers 1 --hidden 256 --repeats 3
    python benchmarks/lstm_throughput.py --no-torch --json-only
    python benchmarks/lstm_throughput.py --torch-reuse-memory  # PyTorch with jaxllm's heap settings

Per configuration, on a fixed random batch of ``--batch`` sequences of ``--seq`` steps whose
width equals the hidden size, float32: a training step (forward, the mean square of the
outputs as the loss, backward, Adam with learning rate 1e-3) and an inference forward pass.
jaxllm runs one jitted step; PyTorch runs the same eagerly on its oneDNN LSTM kernels, with
the same weights. Each side runs in a fresh process of its own (:func:`measure` says why):
jaxllm's with jaxllm's memory settings (``jaxllm.runtime.configure_cpu``), PyTorch's with
glibc's defaults, as a PyTorch user runs, unless ``--torch-reuse-memory`` gives it the same
settings. Reported: tokens/s (batch · seq per second, median of ``--repeats`` timed calls
after the first; a side's training and inference calls alternate), the first call (for JAX
trace + compile + run), and the ratio jaxllm / PyTorch. The last line printed is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import (
    Timing,
    background_load,
    cpu_snapshot,
    machine_info,
    print_report,
    run_in_fresh_process,
    timed_call,
)
from jaxllm.nn import LSTM
from jaxllm.runtime import OPT_OUT_ENV as REUSE_MEMORY_ENV
from jaxllm.runtime import configure_cpu

SEED = 0


def random_batch(batch: int, seq: int, width: int) -> np.ndarray:
    """float32[batch, seq, width], the same for both libraries."""
    return np.random.default_rng(SEED).normal(size=(batch, seq, width)).astype(np.float32)


def jaxllm_runners(x: np.ndarray, hidden: int, layers: int) -> tuple[Any, Callable, Callable]:
    """``(params, train, infer)``: each runner makes one call and blocks until it is done."""
    model = LSTM(hidden, num_layers=layers)
    params = model.init(jax.random.key(SEED), x[:1])["params"]
    optimizer = optax.adam(1e-3)
    state = [params, optimizer.init(params)]
    inputs = jnp.asarray(x)

    def loss(p: Any, batch: jax.Array) -> jax.Array:
        return jnp.mean(model.apply({"params": p}, batch)[0] ** 2)

    @jax.jit
    def train_step(p: Any, opt_state: Any, batch: jax.Array):
        value, grads = jax.value_and_grad(loss)(p, batch)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    forward = jax.jit(lambda p, batch: model.apply({"params": p}, batch)[0])

    def train() -> None:
        state[0], state[1], value = train_step(state[0], state[1], inputs)
        value.block_until_ready()

    def infer() -> None:
        forward(state[0], inputs).block_until_ready()

    return params, train, infer


def torch_runners(x: np.ndarray, params: Any, layers: int) -> tuple[Callable, Callable]:
    """PyTorch's ``nn.LSTM`` with jaxllm's initial weights: ``(train, infer)``."""
    import torch  # pyright: ignore[reportMissingImports]

    hidden = params["layer_0_forward"]["recurrent_kernel"].shape[0]
    lstm = torch.nn.LSTM(x.shape[-1], hidden, num_layers=layers, batch_first=True)
    with torch.no_grad():
        for layer in range(layers):
            ours = params[f"layer_{layer}_forward"]
            getattr(lstm, f"weight_ih_l{layer}").copy_(
                torch.from_numpy(np.array(ours["input"]["kernel"]).T)
            )
            getattr(lstm, f"weight_hh_l{layer}").copy_(
                torch.from_numpy(np.array(ours["recurrent_kernel"]).T)
            )
            getattr(lstm, f"bias_ih_l{layer}").copy_(torch.from_numpy(np.array(ours["bias"])))
            getattr(lstm, f"bias_hh_l{layer}").zero_()
    optimizer = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    inputs = torch.from_numpy(x)

    def train() -> None:
        optimizer.zero_grad()
        loss = (lstm(inputs)[0] ** 2).mean()
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.inference_mode():
            lstm(inputs)

    return train, infer


def side_figures(runners: dict[str, Callable[[], None]], tokens: int, repeats: int) -> dict:
    """One side's first call and median tokens/s per kind (``train``, ``infer``); the kinds'
    timed calls alternate."""
    figures: dict[str, Any] = {
        f"first_{kind}_s": timed_call(runner)[0] for kind, runner in runners.items()
    }
    start = cpu_snapshot()
    seconds: dict[str, list[float]] = {kind: [] for kind in runners}
    for _ in range(repeats):
        for kind, runner in runners.items():
            seconds[kind].append(timed_call(runner)[0])
    figures["background_load"] = background_load(start, cpu_snapshot())
    for kind, times in seconds.items():
        figures[f"{kind}_tokens_per_s"] = tokens / Timing.from_seconds(times).median_s
    return figures


def jaxllm_side(x: np.ndarray, hidden: int, layers: int, repeats: int) -> tuple[dict, Any]:
    """jaxllm's figures, and its initial parameters (as NumPy) for PyTorch to start from."""
    params, train, infer = jaxllm_runners(x, hidden, layers)
    figures = side_figures({"train": train, "infer": infer}, x.shape[0] * x.shape[1], repeats)
    return figures, jax.device_get(params)


def torch_side(x: np.ndarray, params: Any, layers: int, repeats: int) -> dict:
    """PyTorch's figures, from jaxllm's initial parameters."""
    train, infer = torch_runners(x, params, layers)
    return side_figures({"train": train, "infer": infer}, x.shape[0] * x.shape[1], repeats)


def measure(
    layers: int,
    hidden: int,
    batch: int,
    seq: int,
    repeats: int,
    with_torch: bool,
    torch_reuse_memory: bool = False,
) -> dict:
    """One configuration's figures. Each side runs in a fresh process of its own: once
    PyTorch's OpenMP threads have started in a process, JAX's calls there run up to 25%
    slower (2 layers, hidden 256, 2 cores), and the two share one heap."""
    x = random_batch(batch, seq, hidden)
    ours, params = run_in_fresh_process(jaxllm_side, x, hidden, layers, repeats)
    row: dict[str, Any] = {"layers": layers, "hidden": hidden, "batch": batch, "seq": seq}
    row.update(ours)
    if with_torch:
        memory = {REUSE_MEMORY_ENV: "1" if torch_reuse_memory else "0"}
        theirs = run_in_fresh_process(torch_side, x, params, layers, repeats, environment=memory)
        row.update({f"torch_{name}": value for name, value in theirs.items()})
        for kind in ("train", "infer"):
            row[f"{kind}_ratio_vs_torch"] = (
                row[f"{kind}_tokens_per_s"] / row[f"torch_{kind}_tokens_per_s"]
            )
    return row


def report_lines(result: dict) -> list[str]:
    """A Markdown table: one row per configuration."""
    lines = [
        f"LSTM, batch {result['batch']} x seq {result['seq']}, float32, median of "
        f"{result['repeats']} calls; tokens/s (first call, s)",
        "",
        "| layers | hidden | train jaxllm | train torch | ratio "
        "| infer jaxllm | infer torch | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [str(row["layers"]), str(row["hidden"])]
        for kind in ("train", "infer"):
            cells.append(f"{row[f'{kind}_tokens_per_s']:,.0f} ({row[f'first_{kind}_s']:.2f})")
            if "torch_train_tokens_per_s" in row:
                cells.append(f"{row[f'torch_{kind}_tokens_per_s']:,.0f}")
                cells.append(f"**{row[f'{kind}_ratio_vs_torch']:.2f}x**")
            else:
                cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def torch_available() -> bool:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument(
        "--torch-reuse-memory",
        action="store_true",
        help="run PyTorch with jaxllm's memory settings too (default: glibc's defaults)",
    )
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    with_torch = not args.no_torch and torch_available()
    if not args.no_torch and not with_torch and not args.json_only:
        print("torch is not installed (pip install -e '.[bench]'): no reference figures")
    rows = [
        measure(
            layers, hidden, args.batch, args.seq, args.repeats, with_torch, args.torch_reuse_memory
        )
        for layers, hidden in itertools.product(args.layers, args.hidden)
    ]
    result = {
        "benchmark": "lstm_throughput",
        "batch": args.batch,
        "seq": args.seq,
        "repeats": args.repeats,
        "torch_reuse_memory": args.torch_reuse_memory,
        "machine": machine_info(),
        "rows": rows,
    }
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
