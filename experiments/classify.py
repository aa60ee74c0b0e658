"""Train a neural text classifier (bag of embeddings, MLP over TF-IDF, LSTM, BiLSTM, a
Transformer encoder, or a BERT fine-tuned from a pre-training run) with early stopping, and
score it on the test split.

    python experiments/classify.py --help
    python experiments/classify.py --name sst2-bilstm --dataset sst2 --model.encoder bilstm
    python experiments/classify.py --dataset movie-sentences --model.encoder bag --word2vec-init
    python experiments/classify.py --name sst2-bilstm --epochs 12 --resume        # continue a run
    python experiments/classify.py --name sst2-bert --model.encoder bert --pretrained runs/bert \
        --optimizer.learning-rate 2e-4 --optimizer.warmup-steps 100 --epochs 4

Writes runs/<name>/: config.json, vocab.json (BERT: tokenizer.json), metrics.jsonl,
tensorboard/, checkpoints/, loss.png, confusion.png, summary.json.
"""

from __future__ import annotations

import sys

import tyro

from jaxllm.recipes.classify import ClassifyConfig, train_classifier
from jaxllm.recipes.errors import report_error
from jaxllm.runtime import configure_cpu


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    # AvoidSubcommands: model.bert (filled in from --pretrained) takes no flags of its own
    config = tyro.cli(
        ClassifyConfig, args=argv, description=__doc__, config=(tyro.conf.AvoidSubcommands,)
    )
    try:
        run = train_classifier(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    test = run.test
    print(
        f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} "
        f"({run.summary['parameters']:,} parameters, {run.summary['fit_seconds']:.1f} s)"
    )
    print(f"--- run folder: {config.run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
