"""Translation speed: jaxllm's encoder-decoder Transformer against Hugging Face's
``MarianMTModel`` (PyTorch, eager) of the same shape, side by side in one process.

    python benchmarks/translate_throughput.py                   # 6+6 layers, width 256
    python benchmarks/translate_throughput.py --layers 2 --repeats 2 --no-reference

Both models are randomly initialised with the shape of a small Marian model: 6 encoder and 6
decoder layers, width 256, 4 heads, MLP 1024, a vocabulary of 8,000 shared by the two sides and
tied to the output, sinusoidal positions (jaxllm's blocks are pre-LayerNorm, Marian's
post-LayerNorm: the same work). A batch is 16 random sources of 32 tokens.

- **Decoding**: greedy search and beam search (4 beams, length penalty 1), 32 new tokens for
  every sentence (no output ends early: jaxllm is given ``end_id=None``, ``generate``
  ``min_new_tokens=32``), in sentences per second. jaxllm's whole search is
  one compiled ``lax.while_loop``; ``generate`` keeps its KV cache and, for beams, reorders it
  every step as jaxllm does.
- **Training**: one AdamW step on 16 pairs of 32 + 32 tokens (jaxllm's jitted train step;
  PyTorch's forward, backward and ``optimizer.step()``), in target tokens per second.

Every figure is the median of ``--repeats`` timed calls after an untimed first one; jaxllm's
first call (trace + compile + run) is reported too, and so is PyTorch's. Timed calls of the two
sides alternate, so a change in the machine's load hits both alike. Targets: greedy >= 3x,
beam >= 2x, training >= 1.1x. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import call_stages, cpu_snapshot, print_report, run_record, timed_call
from jaxllm.losses import sequence_to_sequence_loss
from jaxllm.models.gpt import count_params
from jaxllm.models.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqTransformer,
    init_seq2seq_params,
    transformer_decoding,
)
from jaxllm.runtime import configure_cpu
from jaxllm.seq2seq_decode import beam_search, greedy_search
from jaxllm.train import create_train_state, jit_train_step, make_train_step

SEED = 0
START = 0  # the decoder's start token (Marian's is its padding token)
TARGETS = {"greedy": 3.0, "beam": 2.0, "train": 1.1}


def random_batch(args: argparse.Namespace) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    shape = (args.batch, args.source_len)
    target = rng.integers(1, args.vocab, (args.batch, args.new_tokens)).astype(np.int32)
    return {
        "source": rng.integers(1, args.vocab, shape).astype(np.int32),
        "source_mask": np.ones(shape, bool),
        "target_in": np.concatenate([np.full((args.batch, 1), START, np.int32), target[:, :-1]], 1),
        "target_out": target,
        "target_mask": np.ones(target.shape, bool),
    }


def jaxllm_runners(args: argparse.Namespace, batch: dict) -> tuple[dict[str, Callable], int]:
    """``{"greedy", "beam", "train"}`` calls of jaxllm, and its parameter count."""
    config = Seq2SeqConfig(
        vocab_size=args.vocab, max_len=max(args.source_len, args.new_tokens),
        n_encoder_layer=args.layers, n_decoder_layer=args.layers, n_head=args.heads,
        n_embd=args.width, dropout=0.0,
    )  # fmt: skip
    model = Seq2SeqTransformer(config)
    params = init_seq2seq_params(config, jax.random.key(SEED))
    decoding = transformer_decoding(model)
    search = {"max_new_tokens": args.new_tokens, "start_id": START, "end_id": None}
    greedy = jax.jit(functools.partial(greedy_search, decoding, **search))
    beam = jax.jit(functools.partial(beam_search, decoding, beam_size=args.beams,
                                     length_penalty=1.0, **search))  # fmt: skip
    source, mask = jnp.asarray(batch["source"]), jnp.asarray(batch["source_mask"])
    optimizer = optax.adamw(1e-4)
    step = jit_train_step(make_train_step(sequence_to_sequence_loss(model), optimizer))
    state = [create_train_state(params, optimizer, jax.random.key(1))]
    device_batch = jax.tree.map(jnp.asarray, batch)

    def train() -> Any:
        state[0], metrics = step(state[0], device_batch)
        return metrics["loss"]

    return {
        "greedy": lambda: greedy(params, source, mask).tokens,
        "beam": lambda: beam(params, source, mask).tokens,
        "train": train,
    }, count_params(params)


def marian_runners(args: argparse.Namespace, batch: dict) -> tuple[dict[str, Callable], int]:
    """The same calls of Hugging Face's ``MarianMTModel`` (default torch threads)."""
    import torch  # pyright: ignore[reportMissingImports]
    from transformers import MarianConfig, MarianMTModel  # pyright: ignore[reportMissingImports]

    torch.manual_seed(SEED)
    config = MarianConfig(
        vocab_size=args.vocab, d_model=args.width, encoder_layers=args.layers,
        decoder_layers=args.layers, encoder_attention_heads=args.heads,
        decoder_attention_heads=args.heads, encoder_ffn_dim=4 * args.width,
        decoder_ffn_dim=4 * args.width,
        max_position_embeddings=max(args.source_len, args.new_tokens) + 1,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        activation_function="gelu_new", pad_token_id=START, decoder_start_token_id=START,
        eos_token_id=1, forced_eos_token_id=None,
    )  # fmt: skip
    model = MarianMTModel(config)
    source = torch.from_numpy(batch["source"]).long()
    mask = torch.ones_like(source)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    decoder_input = torch.from_numpy(batch["target_in"]).long()
    labels = torch.from_numpy(batch["target_out"]).long()

    def generate(beams: int) -> Any:
        model.eval()
        with torch.inference_mode():
            beam_settings = {"early_stopping": True, "length_penalty": 1.0} if beams > 1 else {}
            out = model.generate(  # pyright: ignore[reportAttributeAccessIssue]
                source, attention_mask=mask, num_beams=beams, do_sample=False,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, use_cache=True,
                **beam_settings,
            )  # fmt: skip
        assert out.shape == (args.batch, args.new_tokens + 1), out.shape
        return out

    def train() -> Any:
        model.train()
        optimizer.zero_grad()
        out = model(input_ids=source, attention_mask=mask, decoder_input_ids=decoder_input,
                    labels=labels)  # fmt: skip
        out.loss.backward()
        optimizer.step()
        return out.loss.item()

    count = sum(p.numel() for p in model.parameters())
    return {
        "greedy": lambda: generate(1),
        "beam": lambda: generate(args.beams),
        "train": train,
    }, count


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Per call kind: items per second on each side, first calls, ratios."""
    batch = random_batch(args)
    ours, params = jaxllm_runners(args, batch)
    sides = {"jaxllm": ours}
    counts = {"jaxllm_params": params}
    if args.reference:
        sides["marian"], counts["marian_params"] = marian_runners(args, batch)
    items = {"greedy": args.batch, "beam": args.batch, "train": args.batch * args.new_tokens}
    rows = []
    for kind in ("greedy", "beam", "train"):
        row: dict[str, Any] = {"kind": kind}
        stages, _ = call_stages(ours[kind])
        row |= {f"jaxllm_first_{k}": v for k, v in stages.items()}
        for name, run in sides.items():
            if name != "jaxllm":
                row[f"{name}_first_s"] = timed_call(run[kind])[0]
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, run in sides.items():
                seconds[name].append(timed_call(run[kind])[0])
        for name, times in seconds.items():
            row[f"{name}_per_s"] = items[kind] / float(np.median(times))
        if args.reference:
            row["ratio"] = row["jaxllm_per_s"] / row["marian_per_s"]
            row["target"] = TARGETS[kind]
        rows.append(row)
    return {"rows": rows, **counts}


def report_lines(result: dict[str, Any]) -> list[str]:
    a = result["args"]
    unit = {"greedy": "sentences/s", "beam": "sentences/s", "train": "target tokens/s"}
    lines = [
        f"Encoder-decoder {a['layers']}+{a['layers']} layers, width {a['width']}, vocab "
        f"{a['vocab']}; {a['batch']} sources of {a['source_len']} tokens, {a['new_tokens']} new "
        f"tokens, {a['beams']} beams; median of {a['repeats']}; parameters jaxllm "
        f"{result['jaxllm_params']:,}" + (f", Marian {result['marian_params']:,}"
                                          if "marian_params" in result else ""),
        "",
        "| call | unit | jaxllm | first call (trace/compile/run) | Marian | Marian first "
        "| ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in result["rows"]:
        first = (f"{r['jaxllm_first_total_s']:.2f} s ({r['jaxllm_first_trace_s']:.2f}/"
                 f"{r['jaxllm_first_compile_s']:.2f}/{r['jaxllm_first_run_s']:.2f})")  # fmt: skip
        theirs = (f"{r['marian_per_s']:,.1f} | {r['marian_first_s']:.2f} s | **{r['ratio']:.2f}x**"
                  f" | >= {r['target']}x") if "ratio" in r else "- | - | - | -"  # fmt: skip
        kind = "beam " + str(a["beams"]) if r["kind"] == "beam" else r["kind"]
        lines.append(
            f"| {kind} | {unit[r['kind']]} | {r['jaxllm_per_s']:,.1f} | {first} | {theirs} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--source-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    start = cpu_snapshot()
    result = {"benchmark": "translate_throughput", "args": vars(args), **measure(args),
              **run_record(start)}  # fmt: skip
    ratios = {r["kind"]: r["ratio"] for r in result["rows"] if "ratio" in r}
    result["ratios"] = ratios
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
