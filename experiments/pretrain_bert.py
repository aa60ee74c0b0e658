"""Pre-train a BERT by masked-word prediction on a corpus, with a WordPiece tokenizer trained
on it, and show what it fills in for a masked sentence.

    python experiments/pretrain_bert.py --help
    python experiments/pretrain_bert.py --name bert-pydoc --loop.num-steps 2000
    python experiments/pretrain_bert.py --data.corpus shakespeare --model.n-layer 6
    python experiments/pretrain_bert.py --name bert-pydoc --loop.num-steps 4000 --resume
    python experiments/pretrain_bert.py --parallel.mode pmap --model.dtype bfloat16
    python experiments/pretrain_bert.py --masking.whole-word              # whole-word masking

Writes runs/<name>/: config.json, tokenizer.json, hf_tokenizer.json, metrics.jsonl, loss.png,
tensorboard/, checkpoints/, summary.json; ``jaxllm.recipes.mlm.load_mlm_run`` reads the
pre-trained encoder back.
"""

from __future__ import annotations

import sys

import jax
import tyro

from jaxllm.recipes.errors import report_error
from jaxllm.recipes.mlm import MLMConfig, fill_mask, train_mlm
from jaxllm.runtime import configure_cpu

PROBE = "the [MASK] of the function is returned."


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(MLMConfig, args=argv, description=__doc__)
    try:
        run = train_mlm(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    if jax.process_index() == 0:  # in a multi-process run, process 0 speaks for all
        params = jax.device_get(run.state.params)
        guesses = fill_mask(run.model, params, run.tokenizer, PROBE)[0]
        listing = ", ".join(f"{piece} ({p:.2f})" for piece, p in guesses)
        print(f"--- {PROBE!r}: {listing} ---")
        print(f"--- run folder: {run.run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
