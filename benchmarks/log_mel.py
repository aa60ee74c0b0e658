"""Log-mel feature throughput: jaxllm's jitted ``log_mel`` against librosa, in one process.

    python benchmarks/log_mel.py                        # 32 utterances of 4 s at 16 kHz
    python benchmarks/log_mel.py --batch 4 --seconds 0.5 --repeats 2 --json-only

The same features on both sides: a periodic Hann window of ``--n-fft`` samples, a hop of
``--hop`` samples, centre padding by reflection, the power spectrum, ``--mels`` Slaney mel
bands (Slaney-normalised) and the natural log of ``max(mel, 1e-10)``, on a fixed batch of random
noise, float32. Five ways:

- ``jaxllm jit_log_mel``: ``jit_log_mel`` on the batch as one ``float32[batch, samples]``
  NumPy array (the copy to the device is timed), the whole batch in one step;
- ``jaxllm batched_log_mel``: ``batched_log_mel``, the same array 8 utterances at a time;
- ``jaxllm log_mel_batch``: ``log_mel_batch`` on the batch as a list of utterances (each
  centre-padded on the host, padded to a bucket of 32 frames, then one jitted call: 4 s,
  401 frames, computes 416);
- ``librosa loop``: ``librosa.feature.melspectrogram`` and ``np.log``, one utterance at a time;
- ``librosa batch``: the same on the whole ``[batch, samples]`` array (librosa's multichannel
  input).

Per way: the first call (jaxllm's split into trace, compile and run by JAX's events) and the
median of ``--repeats`` timed calls after it (the ways' timed calls alternate, so a change in
the machine's load hits all alike), in seconds of audio per second. ``configure_cpu`` applies
to the whole process, librosa's NumPy allocations included. Target: jaxllm's batch >= 3x
librosa's. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from harness import call_stages, cpu_snapshot, print_report, run_record, timed_call
from jaxllm.data.log_mel import MelConfig, batched_log_mel, jit_log_mel, log_mel_batch
from jaxllm.runtime import configure_cpu

SEED = 0
TARGET = 3.0  # jaxllm's batch throughput over librosa's, on CPU


def random_audio(args: argparse.Namespace) -> np.ndarray:
    """``float32[batch, samples]`` of Gaussian noise at a speech-like level (0.1 RMS)."""
    samples = round(args.seconds * args.sample_rate)
    rng = np.random.default_rng(SEED)
    return (0.1 * rng.standard_normal((args.batch, samples))).astype(np.float32)


def mel_config(args: argparse.Namespace) -> MelConfig:
    return MelConfig(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop,
                     n_mels=args.mels, pad_mode="reflect")  # fmt: skip


def jaxllm_runners(audio: np.ndarray, config: MelConfig) -> dict[str, Callable[[], Any]]:
    """jaxllm's three ways, each returning ``float32[batch, frames, mels]``."""
    utterances = list(audio)
    return {
        "jaxllm jit_log_mel": lambda: jit_log_mel(audio, config),
        "jaxllm batched_log_mel": lambda: batched_log_mel(audio, config),
        "jaxllm log_mel_batch": lambda: log_mel_batch(utterances, config).features,
    }


def librosa_runners(audio: np.ndarray, config: MelConfig) -> dict[str, Callable[[], Any]]:
    """librosa's two ways, each returning ``[batch, frames, mels]`` (test-only reference)."""
    import librosa  # pyright: ignore[reportMissingImports]

    def features(signal: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=signal, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            window="hann", center=True, pad_mode=config.pad_mode, power=2.0,
            n_mels=config.n_mels, htk=False, norm="slaney",
        )  # fmt: skip
        return np.swapaxes(np.log(np.maximum(mel, config.log_floor)), -1, -2)

    return {
        "librosa loop": lambda: np.stack([features(utterance) for utterance in audio]),
        "librosa batch": lambda: features(audio),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Per way: the first call, the warm median and seconds of audio per second; the largest
    difference of jaxllm's features from librosa's."""
    audio, config = random_audio(args), mel_config(args)
    ways = jaxllm_runners(audio, config)
    if args.reference:
        ways |= librosa_runners(audio, config)
    rows: dict[str, dict[str, Any]] = {name: {"way": name} for name in ways}
    outputs = {}
    for name, run in ways.items():
        stages, outputs[name] = call_stages(run)
        rows[name] |= {f"first_{stage}": seconds for stage, seconds in stages.items()}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, run in ways.items():
            seconds[name].append(timed_call(run)[0])
    audio_seconds = audio.size / args.sample_rate
    for name, times in seconds.items():
        rows[name]["warm_s"] = float(np.median(times))
        rows[name]["audio_s_per_s"] = audio_seconds / rows[name]["warm_s"]
    result: dict[str, Any] = {"rows": list(rows.values())}
    if args.reference:
        reference = outputs["librosa batch"]
        frames = reference.shape[1]  # log_mel_batch pads to a bucket of frames
        result["max_abs_log_difference"] = max(
            float(np.abs(np.asarray(out)[:, :frames] - reference).max()) for out in outputs.values()
        )
        result["ratios"] = {
            f"{ours} vs {theirs}": rows[ours]["audio_s_per_s"] / rows[theirs]["audio_s_per_s"]
            for ours in rows
            if ours.startswith("jaxllm")
            for theirs in ("librosa loop", "librosa batch")
        }
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    a = result["args"]
    lines = [
        f"Log-mel features: {a['batch']} utterances of {a['seconds']} s at {a['sample_rate']} Hz, "
        f"n_fft {a['n_fft']}, hop {a['hop']}, {a['mels']} mels; median of {a['repeats']}",
        "",
        "| way | first call (trace/compile/run) | warm | audio s/s |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        first = f"{r['first_total_s'] * 1e3:.1f} ms"
        if r["way"].startswith("jaxllm"):
            first += (f" ({r['first_trace_s'] * 1e3:.0f}/{r['first_compile_s'] * 1e3:.0f}/"
                      f"{r['first_run_s'] * 1e3:.0f})")  # fmt: skip
        lines.append(f"| {r['way']} | {first} | {r['warm_s'] * 1e3:.2f} ms | "
                     f"{r['audio_s_per_s']:,.0f} |")  # fmt: skip
    if "ratios" in result:
        lines.append("")
        lines += [f"- {pair}: **{ratio:.2f}x** (target >= {TARGET}x for the batch)"
                  for pair, ratio in result["ratios"].items()]  # fmt: skip
        lines.append(f"- largest |log-mel difference| from librosa: "
                     f"{result['max_abs_log_difference']:.2e}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--n-fft", type=int, default=400)
    parser.add_argument("--hop", type=int, default=160)
    parser.add_argument("--mels", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    start = cpu_snapshot()
    result = {"benchmark": "log_mel", "args": vars(args), **measure(args), "target": TARGET}
    result |= run_record(start)
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
