"""Train a GPT language model on a corpus, evaluate it and sample from it.

    python experiments/train_lm.py --help
    python experiments/train_lm.py --name demo --steps 600
    python experiments/train_lm.py --data.corpus shakespeare --data.tokenizer bpe --model.n-layer 6
    python experiments/train_lm.py --name demo --steps 1200 --resume      # continue a run

Writes runs/<name>/: config.json, tokenizer.json, metrics.jsonl, loss.png, tensorboard/,
checkpoints/, sample.txt, summary.json.
"""

from __future__ import annotations

import sys

import tyro

from jaxllm.config import ConfigError
from jaxllm.lm import LMConfig, train_lm


def main(argv: list[str] | None = None) -> int:
    config = tyro.cli(LMConfig, args=argv, description=__doc__)
    try:
        run = train_lm(config)
    except (ConfigError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n--- sample ({run.config.sample_tokens} tokens, temperature {run.config.temperature}) ---")
    print((run.config.sample_prompt or "") + run.sample)
    print(f"--- run folder: {run.run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
