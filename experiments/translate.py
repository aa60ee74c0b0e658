"""Train an English -> Spanish translator on the Bible, translate with it, and score it.

    python experiments/translate.py train --help
    python experiments/translate.py train --name bible-transformer
    python experiments/translate.py train --name bible-lstm --model-kind lstm
    python experiments/translate.py train --data pairs.tsv --name mine   # source<TAB>target
    python experiments/translate.py train --name bible-transformer --loop.num-steps 9000 --resume
    echo "The Lord is my shepherd." | python experiments/translate.py translate runs/bible-lstm
    python experiments/translate.py translate runs/bible-lstm --input verses.txt --beam-size 1
    python experiments/translate.py evaluate runs/bible-transformer --beam-size 8

``train`` needs the Bibles (``make data``) unless ``--data`` names a file; it writes
runs/<name>/ (config.json, tokenizer.json, metrics.jsonl, loss.png, tensorboard/,
checkpoints/, summary.json with BLEU and chrF, translations.tsv, attention.png).
``translate`` reads one sentence per line (stdin or ``--input``) and prints one translation per
line. ``evaluate`` scores a run on its test pairs by greedy and beam search.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import tyro

from jaxllm.recipes.errors import run_command
from jaxllm.recipes.translate import (
    TranslateConfig,
    load_test_pairs,
    load_translator,
    score_translations,
    train_translator,
)


@dataclasses.dataclass(frozen=True)
class TranslateArgs:
    """Translate sentences, one per line, with a trained run.

    Attributes:
      run: the run folder (``runs/<name>``).
      input: a UTF-8 text file of sentences, one per line (``-``: standard input).
      beam_size: beams per sentence (1: greedy search).
      length_penalty: exponent of the length normalisation of beam scores.
      batch_size: sentences decoded together.
      truncate: cut a sentence longer than the model's sources (with a warning) instead of
        stopping with an error.
      step: the checkpoint to use (default: the newest).
    """

    run: tyro.conf.Positional[str]
    input: str = "-"
    beam_size: int = 4
    length_penalty: float = 1.0
    batch_size: int = 32
    truncate: bool = False
    step: int | None = None


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Score a trained run on its test pairs: BLEU and chrF by greedy and beam search.

    Attributes:
      run: the run folder.
      beam_size, length_penalty: the beam search.
      test_sentences: how many test pairs to translate (0: all).
      step: the checkpoint to use (default: the newest).
    """

    run: tyro.conf.Positional[str]
    beam_size: int = 4
    length_penalty: float = 1.0
    test_sentences: int = 0
    step: int | None = None


def _read_lines(source: str) -> list[str]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return text.splitlines()


def translate(args: TranslateArgs) -> None:
    translator = load_translator(args.run, args.step)
    outputs = translator.translate(
        _read_lines(args.input), beam_size=args.beam_size, length_penalty=args.length_penalty,
        batch_size=args.batch_size, truncate=args.truncate,
    )  # fmt: skip
    for line in outputs:
        print(line)


def evaluate(args: EvaluateArgs) -> None:
    translator = load_translator(args.run, args.step)  # first: says if the folder is no run
    pairs = load_test_pairs(args.run)
    pairs = pairs[: args.test_sentences] if args.test_sentences else pairs
    scores, _ = score_translations(
        translator, pairs, beam_size=args.beam_size, length_penalty=args.length_penalty
    )
    print(json.dumps({"test_sentences": len(pairs), **scores}))


def train(config: TranslateConfig) -> None:
    run = train_translator(config)
    print(f"--- run folder: {run.run_dir} ---")


COMMANDS = {"train": (TranslateConfig, train), "translate": (TranslateArgs, translate),
            "evaluate": (EvaluateArgs, evaluate)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMANDS, argv, __doc__ or "", "translate.py")


if __name__ == "__main__":
    sys.exit(main())
