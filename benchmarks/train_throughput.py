"""Training throughput of jaxllm's GPT against a nanoGPT-style PyTorch GPT, on this machine.

    python benchmarks/train_throughput.py --config small            # ~30 s on 2 CPU cores
    python benchmarks/train_throughput.py --config large --steps 5
    python benchmarks/train_throughput.py --config small --no-torch --json-only
    python benchmarks/train_throughput.py --config small --rounds 5  # alternate the sides 5 times
    python benchmarks/train_throughput.py --no-torch --compilation-cache /tmp/xla  # twice: warm
    python benchmarks/train_throughput.py --config gpt2 --batch 32  # GPT-2 small, bf16 (a GPU)

One training step -- forward, cross-entropy, backward, gradient clipping to norm 1.0, AdamW
(lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices and embeddings only) -- in float32
(``gpt2``: bfloat16 compute, float32 parameters) on a fixed random batch (made before timing,
so data loading is not measured). jaxllm runs its own jitted, state-donating train step;
PyTorch runs the same architecture eagerly, as nanoGPT trains it without ``torch.compile``
(float32 configs only).

Reported per side: tokens/s and ms/step (median over the timed steps, after the first step
and ``--warmup`` more), the first step's time (for JAX also split into tracing, compilation or
a cache load, and the rest: :func:`harness.call_stages`), model FLOPs per token (nanoGPT's
count), MFU against the matmul peak measured in the same run (in the model's
compute dtype), and the peak resident memory. Each side runs in its own fresh process, so its
peak memory and thread pools are its own (``--same-process`` runs both here and reports no
memory). The jaxllm side runs
with jaxllm's memory settings (``jaxllm.runtime.configure_cpu``); the PyTorch side with
glibc's defaults, as nanoGPT runs, unless ``--torch-reuse-memory`` gives it the same settings.
The speed of a shared machine drifts by several percent between runs: ``--rounds N`` runs the
two sides alternately N times and reports the round with the median ratio, with every round's.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import re
from typing import Any

import jax
import numpy as np

from harness import (
    call_stages,
    cpu_snapshot,
    gpt_flops_per_token,
    load_warning,
    matmul_flops,
    max_rss_mb,
    measure_matmul_peak,
    mfu,
    print_report,
    random_lm_batch,
    run_in_fresh_process,
    run_record,
    time_fn,
    time_steps,
    timed_call,
)
from jaxllm.losses import language_model_loss
from jaxllm.models.gpt import (
    GPT,
    MLP_OUTPUT_KERNEL_LAYOUT,
    GPTConfig,
    count_params,
    init_params,
    with_cpu_tuned_attention,
)
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.runtime import OPT_OUT_ENV as REUSE_MEMORY_ENV
from jaxllm.runtime import configure_cpu, use_compilation_cache
from jaxllm.train import create_train_state, jit_train_step, make_train_step


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """A model shape with the batch size and number of timed steps it is benchmarked at."""

    model: GPTConfig
    batch_size: int
    steps: int


CONFIGS = {
    "small": BenchConfig(
        GPTConfig(
            vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=256, dropout=0.0, bias=False
        ),
        batch_size=16,
        steps=10,
    ),
    "large": BenchConfig(
        GPTConfig(
            vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.0, bias=False
        ),
        batch_size=8,
        steps=5,
    ),
    # GPT-2 small in bfloat16 with float32 master weights, for accelerators (--batch to fill one).
    "gpt2": BenchConfig(
        GPTConfig(
            vocab_size=50257,
            block_size=1024,
            n_layer=12,
            n_head=12,
            n_embd=768,
            dropout=0.0,
            bias=False,
            dtype="bfloat16",
        ),
        batch_size=16,
        steps=10,
    ),
}

# nanoGPT's shakespeare_char recipe; its warm-up/cosine schedule is left out, as it costs
# nothing per step on either side.
OPTIMIZER = OptimizerConfig(
    name="adamw", learning_rate=1e-3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1, grad_clip=1.0
)


def jax_side(
    config: GPTConfig,
    initial_params: dict,
    batch_size: int,
    steps: int,
    warmup: int,
    seed: int,
    compilation_cache: str | None = None,
) -> dict:
    """Time jaxllm's jitted, state-donating train step on one fixed batch; raw seconds and losses.

    With ``compilation_cache`` (a folder), compiled programs are kept there and loaded by later
    runs, so the first step measures a cache load once the folder holds this step.
    """
    if compilation_cache:
        use_compilation_cache(compilation_cache)
    jax.devices()  # start the backend first, so its memory is not counted as training memory
    batch = jax.device_put(random_lm_batch(config, batch_size, seed))
    rss_before = max_rss_mb()

    n_params = count_params(initial_params)
    optimizer = make_optimizer(OPTIMIZER)
    state = create_train_state(initial_params, optimizer, jax.random.key(seed + 1))  # on device
    step = jit_train_step(make_train_step(language_model_loss(GPT(config)), optimizer))

    first, (state, first_metrics) = call_stages(step, state, batch)
    timing, (state, last_metrics) = time_steps(step, state, batch, warmup=warmup, repeats=steps)
    return {
        "n_params": n_params,
        "first_step_s": first["total_s"],
        "first_step_stages": first,
        "step_s": timing.median_s,
        "step_min_s": timing.min_s,
        "loss_first": float(first_metrics["loss"]),
        "loss_last": float(last_metrics["loss"]),
        "rss_before_mb": rss_before,
        "max_rss_mb": max_rss_mb(),
        "reuse_step_memory": reuse_step_memory_applied(),
    }


def reuse_step_memory_applied() -> bool:
    """Whether this process runs with jaxllm's memory settings: ``jaxllm.runtime.configure_cpu``
    applies them together with inline CPU dispatch, which is what this reads."""
    return not jax.config.read("jax_cpu_enable_async_dispatch")


def torch_attention(config: GPTConfig):
    """nanoGPT's ``CausalSelfAttention``: fused ``c_attn``, causal
    ``F.scaled_dot_product_attention``, ``c_proj``. Built in a function so torch is imported
    only when used."""
    from torch import nn  # pyright: ignore[reportMissingImports]
    from torch.nn import functional as F  # pyright: ignore[reportMissingImports]

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(C, dim=2)

            def heads(t):
                return t.view(B, T, config.n_head, C // config.n_head).transpose(1, 2)

            q, k, v = heads(q), heads(k), heads(v)  # (B, nh, T, hs)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=config.dropout, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
            return self.c_proj(y)

    return CausalSelfAttention()


def torch_block(config: GPTConfig):
    """nanoGPT's pre-LN ``Block``: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` with a
    tanh-GELU MLP."""
    from torch import nn  # pyright: ignore[reportMissingImports]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.attn = torch_attention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = nn.Sequential(
                collections.OrderedDict(
                    c_fc=nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias),
                    gelu=nn.GELU(approximate="tanh"),
                    c_proj=nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
                )
            )

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    return Block()


def torch_gpt(config: GPTConfig):
    """nanoGPT's ``model.py`` GPT, trimmed to training: the same architecture as jaxllm's GPT.

    Pre-LN blocks (:func:`torch_block`), LayerNorm with optional bias, fused ``c_attn``, causal
    ``F.scaled_dot_product_attention``, tanh-GELU MLP, learned positions, the output
    projection tied to the token embedding. Its weights are loaded from jaxllm's (GPT-2's
    init, as nanoGPT's) by :func:`torch_state_dict`, so nanoGPT's init code is left out.
    Built in a function so torch is imported only when used.
    """
    import torch  # pyright: ignore[reportMissingImports]
    from torch import nn  # pyright: ignore[reportMissingImports]
    from torch.nn import functional as F  # pyright: ignore[reportMissingImports]

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
            self.h = nn.ModuleList([torch_block(config) for _ in range(config.n_layer)])
            self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight  # weight tying

        def forward(self, tokens, targets):
            positions = torch.arange(tokens.size(1), device=tokens.device)
            x = self.wte(tokens) + self.wpe(positions)  # (B, T, C)
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))  # (B, T, V)
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return TorchGPT()


def torch_side(
    config: GPTConfig,
    initial_params: dict,
    batch_size: int,
    steps: int,
    warmup: int,
    seed: int,
    matmul_n: int,
) -> dict:
    """Time the PyTorch GPT's eager train step, the way nanoGPT's ``train.py`` runs it on a CPU."""
    import torch  # pyright: ignore[reportMissingImports]

    batch = {
        k: torch.from_numpy(v.astype(np.int64))
        for k, v in random_lm_batch(config, batch_size, seed).items()
    }
    torch.manual_seed(seed)
    rss_before = max_rss_mb()

    model = torch_gpt(config)
    # The same starting weights as jaxllm, so the two loss curves must agree: a parity check
    # that the two sides compute the same thing. Strict: every parameter name must match.
    model.load_state_dict(
        {name: torch.from_numpy(value) for name, value in torch_state_dict(initial_params).items()}
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch_adamw(params)

    def step(model, batch):
        loss = model(batch["inputs"], batch["targets"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIMIZER.grad_clip)
        optimizer.step()
        return model, loss.item()

    first_s, (model, loss_first) = timed_call(step, model, batch)
    timing, (model, loss_last) = time_steps(step, model, batch, warmup=warmup, repeats=steps)
    return {
        "n_params": sum(p.numel() for p in params),
        "first_step_s": first_s,
        "step_s": timing.median_s,
        "step_min_s": timing.min_s,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "rss_before_mb": rss_before,
        "max_rss_mb": max_rss_mb(),
        "matmul_flops": torch_matmul_peak(matmul_n),
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "reuse_step_memory": reuse_step_memory_applied(),
    }


def torch_adamw(params: list):
    """nanoGPT's ``configure_optimizers``: AdamW decaying matrices and embeddings, not norms and
    biases; on a CPU it passes no fused/foreach flag, so torch picks its default implementation."""
    import torch  # pyright: ignore[reportMissingImports]

    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": OPTIMIZER.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=OPTIMIZER.learning_rate,
        betas=(OPTIMIZER.b1, OPTIMIZER.b2),
        eps=OPTIMIZER.eps,
    )


def torch_state_dict(params: dict) -> dict[str, np.ndarray]:
    """jaxllm GPT parameters under the PyTorch GPT's names (``h_0/attn/c_attn/kernel`` ->
    ``h.0.attn.c_attn.weight``), Dense kernels transposed from (in, out) to torch's (out, in)
    (the MLP output projection's is stored (out, in) already: ``MLP_OUTPUT_KERNEL_LAYOUT``)."""
    state = {}
    for path, value in jax.tree_util.tree_leaves_with_path(params):
        *module, leaf = [key.key for key in path]
        value = np.array(value)  # a writable copy: torch.from_numpy shares memory
        out_in = module[-2:] == ["mlp", "c_proj"] and MLP_OUTPUT_KERNEL_LAYOUT == "out_in"
        if leaf == "kernel" and not out_in:
            value = np.ascontiguousarray(value.T)
        name = ".".join([*module, "bias" if leaf == "bias" else "weight"])
        state[re.sub(r"^h_(\d+)", r"h.\1", name)] = value
    state["lm_head.weight"] = state["wte.weight"]  # tied
    return state


def torch_matmul_peak(n: int, repeats: int = 10) -> float:
    """FLOP/s of PyTorch's float32 ``(n, n) @ (n, n)``: how fast its BLAS is next to XLA's."""
    import torch  # pyright: ignore[reportMissingImports]

    timing = time_fn(torch.matmul, torch.randn(n, n), torch.randn(n, n), warmup=1, repeats=repeats)
    return matmul_flops(n) / timing.median_s


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def resolve(
    config: str | GPTConfig, batch_size: int | None, steps: int | None
) -> tuple[str, BenchConfig]:
    """A named config (``"small"``, ``"large"``) or a custom ``GPTConfig`` (named ``"custom"``).

    A named config gets the attention measured fastest on this machine: on a CPU, the
    query-blocked ``"cpu_blocked"`` one (in two row groups on a single device); a custom
    config is benchmarked as given.
    """
    if isinstance(config, GPTConfig):
        name, bench = "custom", BenchConfig(config, batch_size or 1, steps or 1)
    elif config in CONFIGS:
        name, bench = config, CONFIGS[config]
        bench = dataclasses.replace(
            bench,
            model=with_cpu_tuned_attention(bench.model, jax.default_backend(), jax.device_count()),
        )
    else:
        raise ValueError(
            f"unknown benchmark config {config!r}; choose one of {sorted(CONFIGS)} "
            "or pass a GPTConfig"
        )
    return name, dataclasses.replace(
        bench, batch_size=batch_size or bench.batch_size, steps=steps or bench.steps
    )


def side_figures(
    side: dict, tokens_per_step: int, flops_per_token: int, peak_flops: float, isolated: bool
) -> dict:
    """Throughput, MFU and memory of one side's raw timings."""
    tokens_per_s = tokens_per_step / side["step_s"]
    return {
        "tokens_per_s": tokens_per_s,
        "ms_per_step": 1e3 * side["step_s"],
        "ms_per_step_min": 1e3 * side["step_min_s"],
        "mfu": mfu(flops_per_token, tokens_per_s, peak_flops),
        "first_step_s": side["first_step_s"],
        "loss_first": side["loss_first"],
        "loss_last": side["loss_last"],
        # In one shared process the high-water mark mixes both sides, so it is not reported.
        "max_rss_mb": side["max_rss_mb"] if isolated else None,
        "train_rss_mb": side["max_rss_mb"] - side["rss_before_mb"] if isolated else None,
    }


def run_benchmark(
    config: str | GPTConfig,
    batch: int | None = None,
    steps: int | None = None,
    with_torch: bool = False,
    *,
    warmup: int = 1,
    seed: int = 0,
    peak_n: int | None = None,
    isolate: bool = False,
    torch_reuse_memory: bool = False,
    rounds: int = 1,
    compilation_cache: str | None = None,
) -> dict[str, Any]:
    """Benchmark one training step of ``config``; every figure as one flat dict.

    Args:
      config: ``"small"``, ``"large"`` or any ``GPTConfig`` (float32 is what CPUs should run).
      batch, steps: sequences per batch and timed steps (default: the named config's).
      with_torch: also time the PyTorch reference (needs torch) and report the ratio.
      warmup: untimed steps after the first (compiling) one.
      peak_n: size of the square matmul (in the model's compute dtype) whose FLOP/s is the MFU
        denominator; default 2048 on a CPU, 8192 on accelerators, which need larger products
        to reach their peak.
      isolate: run each side in a fresh process and report its peak memory.
      torch_reuse_memory: run the isolated PyTorch side with jaxllm's memory settings too
        (a shared process always has them).
      rounds: run the two sides one after the other this many times. The step figures are those
        of the round with the median ratio (with the median tokens/s without PyTorch), every
        round's ratio and tokens/s are listed, and peak memory is the highest of the rounds:
        the machine's speed drifts between runs, and back-to-back pairs share the drift.
      compilation_cache: a folder for JAX's persistent compilation cache on the jaxllm side
        (default: none, so the first step measures a full compilation).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    name, bench = resolve(config, batch, steps)
    start = cpu_snapshot()
    peak_n = peak_n or (2048 if jax.default_backend() == "cpu" else 8192)
    peak_flops, pairs = _measure(
        bench,
        with_torch,
        warmup=warmup,
        seed=seed,
        peak_n=peak_n,
        isolate=isolate,
        torch_reuse_memory=torch_reuse_memory,
        rounds=rounds,
        compilation_cache=compilation_cache,
    )
    return {
        "benchmark": "train_throughput",
        "config": name,
        **_figures(bench, warmup, pairs, peak_flops, peak_n, isolate),
        "isolated_processes": isolate,
        "compilation_cache": compilation_cache,
        **run_record(start),
    }


def _measure(
    bench: BenchConfig,
    with_torch: bool,
    *,
    warmup: int,
    seed: int,
    peak_n: int,
    isolate: bool,
    torch_reuse_memory: bool,
    rounds: int,
    compilation_cache: str | None,
) -> tuple[float, list[tuple[dict, dict | None]]]:
    """The matmul peak (FLOP/s) of ``bench``'s dtype, then ``rounds`` rounds of
    :func:`run_round` from the same initial parameters (arguments as :func:`run_benchmark`)."""
    model = bench.model
    if with_torch:
        check_torch_can_run(model)
    peak_flops = measure_matmul_peak(model.dtype, n=peak_n)
    initial_params = jax.device_get(init_params(model, jax.random.key(seed)))
    side_args = (model, initial_params, bench.batch_size, bench.steps, warmup, seed)
    pairs = [
        run_round(
            side_args,
            with_torch,
            peak_n=peak_n,
            isolate=isolate,
            torch_reuse_memory=torch_reuse_memory,
            compilation_cache=compilation_cache,
        )
        for _ in range(rounds)
    ]
    return peak_flops, pairs


def _figures(
    bench: BenchConfig,
    warmup: int,
    pairs: list[tuple[dict, dict | None]],
    peak_flops: float,
    peak_n: int,
    isolate: bool,
) -> dict[str, Any]:
    """The workload, and the step figures of the median round of ``pairs`` on both sides."""
    model = bench.model
    ours, theirs = _median_round(pairs)
    tokens_per_step = bench.batch_size * model.block_size
    flops_per_token = gpt_flops_per_token(model, ours["n_params"])
    return {
        "model": dataclasses.asdict(model),
        "batch_size": bench.batch_size,
        "tokens_per_step": tokens_per_step,
        "steps": bench.steps,
        "warmup": warmup,
        "n_params": ours["n_params"],
        "flops_per_token": flops_per_token,
        "peak_flops": peak_flops,
        "peak_matmul_n": peak_n,
        "peak_dtype": model.dtype,
        **_throughput_figures(ours, theirs, tokens_per_step, flops_per_token, peak_flops, isolate),
        **_round_figures(pairs, tokens_per_step),
        **_side_details(ours, theirs),
    }


def check_torch_can_run(model: GPTConfig) -> None:
    """Raise ``ValueError`` unless the PyTorch reference can run ``model``: it has learned
    positions only and runs in float32 only."""
    if model.positions != "learned":
        raise ValueError("the PyTorch reference GPT has learned positions only")
    if model.dtype != "float32":
        raise ValueError(
            f"the PyTorch reference runs in float32 only, the model in {model.dtype}; "
            "benchmark it without the reference (--no-torch)"
        )


def run_side(side, *args, isolate: bool, reuse_memory: bool = True) -> dict:
    """``side(*args)`` (:func:`jax_side` or :func:`torch_side`) here, or with ``isolate`` in a
    fresh process, with (``reuse_memory``) or without jaxllm's memory settings."""
    if not isolate:
        return side(*args)
    return run_in_fresh_process(
        side, *args, environment={REUSE_MEMORY_ENV: "1" if reuse_memory else "0"}
    )


def run_round(
    side_args: tuple,
    with_torch: bool,
    *,
    peak_n: int,
    isolate: bool,
    torch_reuse_memory: bool,
    compilation_cache: str | None,
) -> tuple[dict, dict | None]:
    """One round: jaxllm's side, then (``with_torch``) PyTorch's, on the same ``side_args``
    (config, initial params, batch size, steps, warmup, seed): ``(ours, theirs or None)``.

    Raises:
      RuntimeError: the two GPTs have different parameter counts.
    """
    ours = run_side(jax_side, *side_args, compilation_cache, isolate=isolate)
    theirs = (
        run_side(torch_side, *side_args, peak_n, isolate=isolate, reuse_memory=torch_reuse_memory)
        if with_torch
        else None
    )
    if theirs is not None and theirs["n_params"] != ours["n_params"]:
        raise RuntimeError(
            f"the PyTorch GPT has {theirs['n_params']} parameters, jaxllm's "
            f"{ours['n_params']}: the two architectures differ"
        )
    return ours, theirs


def _round_speed(pair: tuple[dict, dict | None]) -> float:
    """How fast a round ran: with PyTorch, its step time over ours (our tokens/s over its);
    without, our steps per second."""
    ours, theirs = pair
    return theirs["step_s"] / ours["step_s"] if theirs is not None else 1.0 / ours["step_s"]


def _median_round(pairs: list[tuple[dict, dict | None]]) -> tuple[dict, dict | None]:
    """The round of median speed (the slower of the two middle ones), each side with the
    memory figures of its round that peaked highest."""
    ours, theirs = sorted(pairs, key=_round_speed)[(len(pairs) - 1) // 2]
    ours = _with_highest_memory(ours, [pair[0] for pair in pairs])
    if theirs is not None:
        theirs = _with_highest_memory(theirs, [t for _, t in pairs if t is not None])
    return ours, theirs


def _throughput_figures(
    ours: dict,
    theirs: dict | None,
    tokens_per_step: int,
    flops_per_token: int,
    peak_flops: float,
    isolate: bool,
) -> dict:
    """jaxllm's :func:`side_figures` (its first step as ``compile_s``), PyTorch's prefixed
    ``torch_`` (None without it), and the ratio of their tokens/s."""
    figures = side_figures(ours, tokens_per_step, flops_per_token, peak_flops, isolate)
    torch_figures = (
        side_figures(theirs, tokens_per_step, flops_per_token, peak_flops, isolate)
        if theirs
        else dict.fromkeys(figures)
    )
    ratio = figures["tokens_per_s"] / torch_figures["tokens_per_s"] if theirs else None
    stages = ours["first_step_stages"]
    return {
        **{k: v for k, v in figures.items() if k != "first_step_s"},
        "compile_s": figures["first_step_s"],
        **{f"first_step_{stage}": stages[stage] for stage in ("trace_s", "compile_s", "run_s")},
        **{f"torch_{k}": v for k, v in torch_figures.items()},
        "ratio_vs_torch": ratio,
    }


def _round_figures(pairs: list[tuple[dict, dict | None]], tokens_per_step: int) -> dict:
    """The number of rounds and each round's tokens/s on both sides and ratio (None without
    PyTorch)."""
    theirs = [t for _, t in pairs if t is not None]  # every round ran PyTorch, or none did
    with_torch = bool(theirs)
    return {
        "rounds": len(pairs),
        "rounds_tokens_per_s": [tokens_per_step / pair[0]["step_s"] for pair in pairs],
        "rounds_torch_tokens_per_s": (
            [tokens_per_step / t["step_s"] for t in theirs] if with_torch else None
        ),
        "rounds_ratio_vs_torch": [_round_speed(pair) for pair in pairs] if with_torch else None,
    }


def _side_details(ours: dict, theirs: dict | None) -> dict:
    """PyTorch's matmul speed, version and threads, and which memory settings each side ran
    with (None for PyTorch without it)."""
    return {
        "torch_matmul_flops": theirs["matmul_flops"] if theirs else None,
        "torch_version": theirs["version"] if theirs else None,
        "torch_threads": theirs["threads"] if theirs else None,
        "reuse_step_memory": ours["reuse_step_memory"],
        "torch_reuse_step_memory": theirs["reuse_step_memory"] if theirs else None,
    }


def _with_highest_memory(side: dict, rounds: list[dict]) -> dict:
    """``side`` with the memory figures of the round of ``rounds`` that peaked highest."""
    highest = max(rounds, key=lambda r: r["max_rss_mb"])
    return {**side, "max_rss_mb": highest["max_rss_mb"], "rss_before_mb": highest["rss_before_mb"]}


def report_lines(result: dict) -> list[str]:
    """The human-readable summary printed above the JSON line."""

    def side(prefix: str, label: str) -> list[str]:
        memory = (
            ""
            if result[f"{prefix}max_rss_mb"] is None
            else f", peak RSS {result[f'{prefix}max_rss_mb']:.0f} MiB "
            f"(+{result[f'{prefix}train_rss_mb']:.0f} training)"
        )
        first = result["compile_s"] if prefix == "" else result["torch_first_step_s"]
        if prefix == "":
            first_stages = (
                f" (trace {result['first_step_trace_s']:.2f}, compile "
                f"{result['first_step_compile_s']:.2f}, run {result['first_step_run_s']:.2f})"
            )
        else:
            first_stages = ""
        return [
            f"{label:8s} {result[f'{prefix}tokens_per_s']:9.0f} tokens/s  "
            f"{result[f'{prefix}ms_per_step']:8.1f} ms/step  MFU {result[f'{prefix}mfu']:6.1%}  "
            f"first step {first:.2f} s{first_stages}  loss {result[f'{prefix}loss_first']:.3f} -> "
            f"{result[f'{prefix}loss_last']:.3f}{memory}"
        ]

    m = result["model"]
    lines = [
        f"train_throughput/{result['config']}: {m['n_layer']} layers, {m['n_head']} heads, "
        f"width {m['n_embd']}, context {m['block_size']}, batch {result['batch_size']}, "
        f"{result['n_params']:,} params, {m['dtype']}; {result['steps']} timed steps",
        f"model FLOPs/token {result['flops_per_token'] / 1e6:.1f} M (nanoGPT's 6N + 12LHQT); "
        f"measured {result['peak_dtype']} matmul peak {result['peak_flops'] / 1e9:.1f} GFLOP/s "
        f"(XLA, n={result['peak_matmul_n']})",
    ]
    lines += side("", "jaxllm")
    if result["torch_tokens_per_s"] is not None:
        lines += side("torch_", "torch")
        malloc = "jaxllm's" if result["torch_reuse_step_memory"] else "glibc's default"
        lines.append(
            f"jaxllm / torch tokens/s: {result['ratio_vs_torch']:.2f}x  "
            f"(torch {result['torch_version']}, {result['torch_threads']} threads, "
            f"its matmul {result['torch_matmul_flops'] / 1e9:.1f} GFLOP/s, "
            f"{malloc} malloc settings)"
        )
        if result["rounds"] > 1:
            ratios = ", ".join(f"{ratio:.2f}" for ratio in sorted(result["rounds_ratio_vs_torch"]))
            lines.append(
                f"ratio in each of {result['rounds']} rounds: {ratios}x (the median round is shown)"
            )
    warning = load_warning(result["background_cpu_load"], result["machine"]["cpu_count"])
    return lines + ([warning] if warning else [])


def main() -> None:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default: 10 small and gpt2, 5 large)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="sequences per step (default: the config's)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run both sides in this process (no memory figures)",
    )
    parser.add_argument(
        "--torch-reuse-memory",
        action="store_true",
        help="give the PyTorch process jaxllm's memory settings (jaxllm.runtime)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run both sides this many times, alternately; report the median round",
    )
    parser.add_argument(
        "--compilation-cache",
        metavar="DIR",
        default=None,
        help=(
            "keep jaxllm's compiled step in DIR; a second run loads it (first step = a cache load)"
        ),
    )
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    float32 = CONFIGS[args.config].model.dtype == "float32"
    with_torch = not args.no_torch and torch_available() and float32
    result = run_benchmark(
        args.config,
        batch=args.batch,
        steps=args.steps,
        with_torch=with_torch,
        warmup=args.warmup,
        isolate=not args.same_process,
        torch_reuse_memory=args.torch_reuse_memory,
        rounds=args.rounds,
        compilation_cache=args.compilation_cache,
    )
    if not args.json_only and not args.no_torch and not with_torch:
        print(
            "torch is not installed (pip install -e '.[bench]'): no reference figures"
            if float32
            else "the PyTorch reference runs in float32 only: no reference figures"
        )
    print_report(report_lines(result), result, json_only=args.json_only)


if __name__ == "__main__":
    main()
