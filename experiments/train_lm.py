"""Train a GPT or LSTM language model on a corpus, evaluate it and sample from it.

    python experiments/train_lm.py --help
    python experiments/train_lm.py --name demo --loop.num-steps 600
    python experiments/train_lm.py --data.corpus shakespeare --data.tokenizer bpe --model.n-layer 6
    python experiments/train_lm.py --name lstm --model-kind lstm --lstm.n-layer 2 --lstm.n-embd 256
    python experiments/train_lm.py --name demo --loop.num-steps 1200 --resume      # continue a run
    python experiments/train_lm.py --parallel.mode mesh --parallel.fsdp 2  # shard over devices

``--model.*`` shapes the GPT, ``--lstm.*`` the LSTM, and ``--model-kind`` (gpt, the default, or
lstm) picks which one trains.

Across processes (here two on one machine, each with its own --parallel.process-id):

    python experiments/train_lm.py --parallel.mode mesh --parallel.coordinator 127.0.0.1:12345 \
        --parallel.num-processes 2 --parallel.process-id 0

Writes runs/<name>/: config.json, tokenizer.json, metrics.jsonl, loss.png, tensorboard/,
checkpoints/, sample.txt, summary.json.
"""

from __future__ import annotations

import sys

import jax
import tyro

from jaxllm.recipes import LMConfig, train_lm
from jaxllm.recipes.errors import report_error
from jaxllm.runtime import configure_cpu


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(LMConfig, args=argv, description=__doc__)
    try:
        run = train_lm(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    if jax.process_index() == 0:  # in a multi-process run, process 0 speaks for all
        if run.sample:
            print(
                f"\n--- sample ({run.config.sample_tokens} tokens, "
                f"temperature {run.config.temperature}) ---"
            )
            print((run.config.sample_prompt or "") + run.sample)
        print(f"--- run folder: {run.run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
