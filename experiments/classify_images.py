"""Train an image classifier (a CNN or a patch Transformer) with on-device augmentation and
score it on the test split.

    python experiments/classify_images.py --help
    python experiments/classify_images.py --name digits-cnn                    # 8x8 digits
    python experiments/classify_images.py --name digits-vit --model-kind vit
    python experiments/classify_images.py --name pets --data path/to/class/folders \
        --image-size 32 32 --mode RGB --model-kind vit --vit.patch-size 4
    python experiments/classify_images.py --name digits-cnn --epochs 60 --resume   # continue

Writes runs/<name>/: config.json, metrics.jsonl, tensorboard/, checkpoints/, loss.png,
confusion.png, misclassified.png, summary.json.
"""

from __future__ import annotations

import sys

import tyro

from jaxllm.recipes.errors import report_error
from jaxllm.recipes.image_classify import ImageClassifyConfig, train_image_classifier
from jaxllm.runtime import configure_cpu


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    config = tyro.cli(
        ImageClassifyConfig, args=argv, description=__doc__, config=(tyro.conf.AvoidSubcommands,)
    )
    try:
        run = train_image_classifier(config)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e)  # one line and status 2 for the user's errors; bugs re-raise
    summary = run.summary
    print(
        f"test accuracy {summary['test']['accuracy']:.4f}, macro-F1 "
        f"{summary['test']['macro_f1']:.4f} ({summary['parameters']:,} parameters, "
        f"{summary['fit_seconds']:.1f} s)"
    )
    print(f"--- run folder: {config.run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
