"""What privacy costs a language model, and what it buys: a character GPT trained by DP-SGD at
several ε beside the same model trained without it, each scored for quality and for how much it
memorised of secrets planted in its training text.

    python experiments/private_lm.py                     # 1M characters of Shakespeare, ~25 min
    python experiments/private_lm.py --epsilons 8 --steps 100
    python experiments/private_lm.py --corpus path/to/text.txt --canary-repeats 1 4 16

1. **Canaries** (Carlini et al., 2019): ``--canary-repeats`` lines such as ``"Anne's vault
   code is qjxv"``, each with its own random 4-letter secret, are written into the training
   part of the corpus as many times as their entry says (``jaxllm.privacy.canaries``). The
   script checks that every copy landed in the training split and none in validation or test.
2. **Runs**: the language-model recipe (``jaxllm.recipes.lm``) with one model, batch, steps
   and optimizer (AdamW):

   - ``ε`` finite: DP-SGD on windows of ``block_size + 1`` tokens drawn by Poisson sampling
     (expected batch ``--batch-size``), σ chosen by the accountant for the planned steps at
     δ = 0.1 / windows;
   - ``ε = ∞``: the same clipping and sampling without noise;
   - ``non-private``: the recipe's ordinary training (random windows, no per-example clipping).

3. **Scores**: test loss and perplexity (bits per character = loss / ln 2), and each canary's
   exposure in bits: log2(26⁴) − log2(rank of its secret among all 456,976 candidates by the
   model's probability). A model that never saw a secret gives 1 bit at the median (1.44 on
   average); 18.8 bits means it ranks the secret first.

The guarantee protects one window; a canary written ``r`` times touches up to ``2r`` windows
(a copy may cross a boundary), and changing its secret is covered only as a group of twice
as many, a far weaker promise. Writes ``<out_dir>/``: the corpus
with its canaries, a folder per run, ``results.json`` and ``private_lm.png``; prints a table and
a JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import tyro

from jaxllm.data import DataConfig, load_corpus, load_splits
from jaxllm.models import GPTConfig
from jaxllm.optim import OptimizerConfig
from jaxllm.plots import save_figure, subplots
from jaxllm.privacy import PrivacySettings
from jaxllm.privacy.canaries import Canary, canary_exposure, insert_canaries, make_canaries
from jaxllm.recipes import LMConfig, train_lm
from jaxllm.recipes.errors import report_error
from jaxllm.runtime import configure_cpu
from jaxllm.train import LoopConfig


@dataclasses.dataclass(frozen=True)
class PrivateLMStudyConfig:
    """The study's settings.

    Attributes:
      out_dir: where the corpus, the runs and the results go.
      corpus: the text (a corpus name or a file; see :class:`jaxllm.data.DataConfig`).
      characters: only the corpus's first this many characters, cut at a line's end (0: all
        of it). The default, about tinyshakespeare's size, lets the non-private model see
        each window ~10 times in the default steps, enough to memorise a repeated canary.
      epsilons: the targets (``inf``: clipping and sampling without noise).
      steps, batch_size: every run's steps and (expected) batch of windows.
      block_size, n_layer, n_embd, n_head: the GPT's shape.
      learning_rate: AdamW's peak (warm-up 20 steps, cosine decay).
      clip_norm: ``C``.
      canary_repeats: one canary per entry, written that many times.
      eval_batches: validation batches per evaluation.
      seed: the runs' and canaries' seed.
    """

    out_dir: str = "runs/private-lm"
    corpus: str = "shakespeare"
    characters: int = 1_000_000
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0, math.inf)
    steps: int = 600
    batch_size: int = 256
    block_size: int = 64
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    learning_rate: float = 3e-3
    clip_norm: float = 1.0
    canary_repeats: tuple[int, ...] = (1, 10, 100)
    eval_batches: int = 20
    seed: int = 0


def corpus_with_canaries(config: PrivateLMStudyConfig) -> tuple[Path, list[Canary]]:
    """The corpus with its canaries written into its training part, as a file; checked.

    Raises:
      ValueError: a copy of a canary fell outside the training split.
    """
    data = DataConfig()
    canaries = make_canaries(config.canary_repeats, seed=config.seed)
    text = "\n\n".join(load_corpus(config.corpus))
    if config.characters and len(text) > config.characters:
        text = text[: config.characters].rsplit("\n", 1)[0]
    train_share = 1 - data.val_fraction - data.test_fraction - 0.02
    path = Path(config.out_dir) / "corpus-with-canaries.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(insert_canaries(text, canaries, seed=config.seed, end_fraction=train_share))
    splits = load_splits(dataclasses.replace(data, corpus=str(path)))
    for canary in canaries:
        found = [sum(doc.count(canary.text) for doc in split) for split in splits]
        if found != [canary.repeats, 0, 0]:
            raise ValueError(
                f"the canary {canary.text!r} is in the train/validation/test splits "
                f"{found} times, not [{canary.repeats}, 0, 0]: the corpus is split by "
                "document; use one text file (split by position)"
            )
    return path, canaries


def run_config(
    config: PrivateLMStudyConfig, name: str, corpus: Path, privacy: PrivacySettings
) -> LMConfig:
    model = GPTConfig(block_size=config.block_size, n_layer=config.n_layer,
                      n_head=config.n_head, n_embd=config.n_embd, dropout=0.0)  # fmt: skip
    return LMConfig(
        name=name,
        out_dir=config.out_dir,
        seed=config.seed,
        batch_size=config.batch_size,
        eval_batches=config.eval_batches,
        sample_tokens=0,
        data=DataConfig(corpus=str(corpus)),
        model=model,
        optimizer=OptimizerConfig(
            learning_rate=config.learning_rate,
            warmup_steps=20,
            decay_steps=-1,
            weight_decay=0.1,
            grad_clip=1.0,
        ),  # fmt: skip
        loop=LoopConfig(
            num_steps=config.steps, log_every=10, eval_every=config.steps, progress=False
        ),  # fmt: skip
        privacy=privacy,
    )


def measure(config: PrivateLMStudyConfig) -> tuple[list[dict[str, Any]], list[Canary]]:
    """One row per run: its ε (reached), σ, test loss and the canaries' exposures."""
    corpus, canaries = corpus_with_canaries(config)
    settings = [
        (f"eps-{eps:g}", PrivacySettings(target_epsilon=eps, clip_norm=config.clip_norm))
        for eps in config.epsilons
    ]
    rows = []
    for name, privacy in [*settings, ("non-private", PrivacySettings())]:
        start = time.perf_counter()
        run = train_lm(run_config(config, name, corpus, privacy))
        seconds = time.perf_counter() - start
        params = jax.device_get(run.state.params)
        report = run.privacy or {}
        rows.append(
            {
                "run": name,
                "epsilon": report.get("epsilon"),
                "delta": report.get("delta"),
                "noise_multiplier": report.get("noise_multiplier"),
                "steps": int(run.state.step),
                "val_loss": run.after["loss"],
                "test_loss": run.test["loss"],
                "test_bits_per_char": run.test["loss"] / math.log(2),
                "exposure": [
                    canary_exposure(run.model, params, run.tokenizer, c) for c in canaries
                ],  # fmt: skip
                "seconds": round(seconds, 1),
            }
        )
    return rows, canaries


def report_lines(rows: list[dict[str, Any]], canaries: list[Canary]) -> list[str]:
    repeats = " | ".join(f"exposure ×{c.repeats}" for c in canaries)
    lines = [
        f"| run | ε reached (δ) | σ | test loss | bits/char | {repeats} | time |",
        "|---|---|---|---|---|" + "---|" * len(canaries) + "---|",
    ]
    for r in rows:
        privacy = "-" if r["epsilon"] is None else f"{r['epsilon']:.3g} ({r['delta']:.1e})"
        sigma = "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
        exposures = " | ".join(f"{bits:.1f}" for bits in r["exposure"])
        lines.append(
            f"| {r['run']} | {privacy} | {sigma} | {r['test_loss']:.3f} | "
            f"{r['test_bits_per_char']:.2f} | {exposures} | {r['seconds']:.0f} s |"
        )
    return lines


def plot(rows: list[dict[str, Any]], canaries: list[Canary], path: Path) -> Path:
    """Test bits per character, and each canary's exposure, against the runs."""
    fig, (quality, memory) = subplots(1, 2, figsize=(11, 4))
    names = [r["run"] for r in rows]
    quality.bar(names, [r["test_bits_per_char"] for r in rows], color="tab:blue")
    quality.set_ylabel("test bits per character (lower is better)")
    quality.set_title("What privacy costs")
    width = 0.8 / len(canaries)
    for i, canary in enumerate(canaries):
        xs = [j + (i - (len(canaries) - 1) / 2) * width for j in range(len(rows))]
        memory.bar(xs, [r["exposure"][i] for r in rows], width, label=f"written {canary.repeats}×")
    memory.axhline(math.log2(canaries[0].candidates), color="grey", linestyle=":",
                   label="secret ranked first")  # fmt: skip
    memory.set_xticks(range(len(rows)), names)
    memory.set_ylabel("canary exposure (bits)")
    memory.set_title("What privacy buys: memorised secrets")
    memory.legend(fontsize=8)
    for ax in (quality, memory):
        ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def _without_infinities(value: Any) -> Any:
    """``value`` with every infinite float written ``"inf"`` (JSON has no infinity)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _without_infinities(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_infinities(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(PrivateLMStudyConfig, args=argv, description=__doc__)
    try:
        rows, canaries = measure(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)
    out = Path(config.out_dir)
    plot(rows, canaries, out / "private_lm.png")
    result = {
        "config": dataclasses.asdict(config),
        "canaries": [dataclasses.asdict(c) for c in canaries],
        "rows": rows,
    }
    result = _without_infinities(result)
    (out / "results.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    print("\n".join(report_lines(rows, canaries)))
    print(json.dumps(result, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
