"""Build the synthetic speech set (used by `make data`): corpus sentences spoken by espeak-ng.

    python tools/make_speech_set.py                       # into <data dir>/speech
    python tools/make_speech_set.py --out /tmp/speech --sentences 100 --no-progress
    python tools/make_speech_set.py --update   # keep a set of these settings, else make it again

Uses an `espeak-ng` on PATH, else the copy `make data` unpacks into <data dir>/espeak-ng; exits
with status 2 and one line saying how to get it when there is neither. See
jaxllm.data.speech_set for what the set holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from jaxllm.data.speech_set import (
    SpeechSetConfig,
    SpeechSetError,
    build_speech_set,
    changed_settings,
    find_espeak,
    load_speech_set,
    made_with,
    speech_data_dir,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = SpeechSetConfig()
    parser = argparse.ArgumentParser(description="Build the synthetic speech set.")
    parser.add_argument("--out", type=Path, default=None, help="default: <data dir>/speech")
    parser.add_argument("--sentences", type=int, default=defaults.sentences)
    parser.add_argument("--train-repeats", type=int, default=defaults.train_repeats)
    parser.add_argument("--eval-repeats", type=int, default=defaults.eval_repeats)
    parser.add_argument("--corpus", default=defaults.corpus, help="corpus name or text path")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=2, help="espeak-ng runs at once")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing set")
    parser.add_argument(
        "--update", action="store_true",
        help="keep a set made with these settings, replace one made with others (make data)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else speech_data_dir()
    try:
        config = dataclasses.replace(
            SpeechSetConfig(),
            sentences=args.sentences,
            train_repeats=args.train_repeats,
            eval_repeats=args.eval_repeats,
            corpus=args.corpus,
            seed=args.seed,
        )
        if args.update and made_with(out, config):
            print(f"Speech set already in {out}")
            return 0
        if args.update and (out / "manifest.jsonl").exists():
            changed = ", ".join(changed_settings(out, config))
            print(f"The speech set in {out} was made with other settings ({changed}): making it "
                  "again")  # fmt: skip
        start = time.perf_counter()
        espeak = find_espeak()
        build_speech_set(
            config,
            out,
            espeak=espeak,
            overwrite=args.overwrite or args.update,
            progress=not args.no_progress,
            workers=args.workers,
        )
    except (SpeechSetError, ValueError, FileNotFoundError, ModuleNotFoundError) as error:
        print(f"make_speech_set: {error}", file=sys.stderr)
        return 2
    splits = load_speech_set(out)
    hours = sum(u.seconds for us in splits.values() for u in us) / 3600
    counts = ", ".join(f"{split} {len(us)}" for split, us in splits.items())
    print(f"speech set in {out}: {counts} utterances, {hours:.2f} h of audio, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
