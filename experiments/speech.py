"""Train a speech recogniser (an acoustic model over log-mel features, trained with CTC on
characters) and transcribe WAV files with it.

    python experiments/speech.py train --help
    python experiments/speech.py train --name speech-bilstm                    # needs make data
    python experiments/speech.py train --name speech-transformer --model.encoder transformer
    python experiments/speech.py train --name speech-bilstm --num-steps 9000 --resume
    python experiments/speech.py transcribe runs/speech-bilstm recording.wav another.wav
    python experiments/speech.py transcribe runs/speech-bilstm recording.wav --beam-size 1
    python experiments/speech.py transcribe runs/speech-bilstm recording.wav --no-lm
    python experiments/speech.py evaluate runs/speech-bilstm --lm.order 9 --beam-size 16
    python experiments/speech.py evaluate runs/speech-bilstm --select-by cer --average 5

``train`` reads the synthetic speech set ``make data`` builds with espeak-ng (or ``--data``, a
folder of the same layout) and writes runs/<name>/ (config.json, metrics.jsonl, loss.png,
tensorboard/, checkpoints/, summary.json with CER and WER per noise level, transcripts.tsv,
alignment.png, char_lm.npz: the character language model fused into the beam search).
``transcribe`` prints one line per WAV file: a file at another sample rate is resampled and a
stereo one mixed down; a silent, empty, corrupt or too long file is an error. ``evaluate``
scores a finished run's test split again with a language model counted and tuned anew, and
may average the run's best checkpoints into the scored model.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Literal

import tyro

from jaxllm.recipes.errors import run_command
from jaxllm.recipes.speech import (
    SpeechRunConfig,
    evaluate_speech_run,
    load_transcriber,
    train_speech_recognizer,
)
from jaxllm.recipes.speech_lm import SpeechLMConfig


@dataclasses.dataclass(frozen=True)
class TranscribeArgs:
    """Transcribe WAV files with a trained run.

    Attributes:
      run: the run folder (``runs/<name>``).
      wavs: the WAV files, each transcribed on its own line.
      beam_size: the CTC prefix beam search's beams (1: the best path).
      step: the checkpoint to use (default: the one the run scored, or the average of those,
        or the newest).
      no_lm: search without the run's language model.
    """

    run: tyro.conf.Positional[str]
    wavs: tyro.conf.Positional[tuple[str, ...]]
    beam_size: int = 8
    step: int | None = None
    no_lm: bool = False


def transcribe(args: TranscribeArgs) -> None:
    transcriber = load_transcriber(args.run, args.step)
    for path in args.wavs:
        text = transcriber.transcribe_file(path, beam_size=args.beam_size, use_lm=not args.no_lm)
        print(text)


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Score a finished run's test split again, with a character language model counted and
    its fusion tuned anew (rewrites the run's summary.json and transcripts.tsv).

    Attributes:
      run: the run folder (``runs/<name>``).
      lm: the language model (``--lm.order 0``: none).
      beam_size: the beam search's beams (default: the run's).
      select_by: the validation figure whose best checkpoint is scored, ``loss`` or ``cer``
        (default: the run's).
      average: score the average of the kept checkpoints with the lowest ``select_by``, this
        many of them (default: the run's; 1: the best alone).
    """

    run: tyro.conf.Positional[str]
    lm: SpeechLMConfig = SpeechLMConfig()
    beam_size: int | None = None
    select_by: Literal["loss", "cer"] | None = None
    average: int | None = None


def evaluate(args: EvaluateArgs) -> None:
    run = evaluate_speech_run(args.run, args.lm, args.beam_size, args.select_by, args.average)
    print(f"--- summary: {run.config.run_dir / 'summary.json'} ---")


def train(config: SpeechRunConfig) -> None:
    run = train_speech_recognizer(config)
    print(f"--- run folder: {run.config.run_dir} ---")


COMMANDS = {
    "train": (SpeechRunConfig, train),
    "transcribe": (TranscribeArgs, transcribe),
    "evaluate": (EvaluateArgs, evaluate),
}


def main(argv: list[str] | None = None) -> int:
    return run_command(
        COMMANDS, argv, __doc__ or "", "speech.py", tyro_config=(tyro.conf.AvoidSubcommands,)
    )


if __name__ == "__main__":
    sys.exit(main())
