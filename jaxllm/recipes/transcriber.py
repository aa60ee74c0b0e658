"""Transcribing audio with a trained acoustic model: WAV files or arrays in, text out.

:class:`Transcriber` holds what a speech run needs at inference: the model and its parameters,
the feature settings and the alphabet. It reads WAV files as :func:`jaxllm.data.read_wav` does
(stereo mixed down, another sample rate resampled), refuses silent audio and audio longer than
the run's ``max_seconds``, and decodes by best path (``beam_size=1``) or CTC prefix beam
search.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxllm.classic.char_ngram import CharLMError, CharNGramLM
from jaxllm.ctc_decode import Fusion, ctc_beam_decode, ctc_greedy_decode, to_lists
from jaxllm.data.audio import AudioError, check_audible, read_wav
from jaxllm.data.buckets import padded_length
from jaxllm.data.log_mel import MelConfig, log_mel_batch
from jaxllm.models.asr import AcousticConfig, AcousticModel

BLANK_ID = 0
FRAME_BUCKET = 64  # batches pad their frames to a multiple of this: few compiled shapes
FEATURE_BATCH = 32  # utterances featurised in one call


class TranscriptError(ValueError):
    """A transcript holds a character the alphabet lacks."""


@dataclasses.dataclass(frozen=True)
class CharacterAlphabet:
    """The characters a speech model writes: id 0 is the CTC blank, ``characters[i]`` id
    ``i + 1``."""

    characters: str

    def __post_init__(self):
        if len(set(self.characters)) != len(self.characters) or not self.characters:
            raise ValueError(f"an alphabet needs distinct characters, got {self.characters!r}")

    @property
    def size(self) -> int:
        """Symbols the model scores: the characters and the blank."""
        return len(self.characters) + 1

    def encode(self, text: str, where: str = "a transcript") -> np.ndarray:
        """int32[len(text)] ids of ``text``'s characters.

        Raises:
          TranscriptError: a character outside the alphabet, named with ``where``.
        """
        index = {c: i + 1 for i, c in enumerate(self.characters)}
        missing = sorted({c for c in text if c not in index})
        if missing:
            raise TranscriptError(
                f"{where} holds {missing}, outside the alphabet {self.characters!r}: normalise "
                "the transcripts (lower case, letters, space and apostrophe) or give the run "
                "an alphabet that has them"
            )
        return np.array([index[c] for c in text], np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (blanks and unknown ids skipped)."""
        return "".join(self.characters[i - 1] for i in ids if 0 < i <= len(self.characters))


@dataclasses.dataclass(eq=False)
class CharLMScorer:
    """A character n-gram model as the beam search's :class:`~jaxllm.ctc_decode.PrefixScorer`
    over an alphabet's ids (id 0, the blank, is never asked for).

    Raises:
      CharLMError: the model lacks a character of the alphabet.
    """

    lm: CharNGramLM
    alphabet: CharacterAlphabet

    def __post_init__(self):
        missing = sorted(set(self.alphabet.characters) - set(self.lm.alphabet))
        if missing:
            raise CharLMError(
                f"the language model cannot write {missing} of the speech alphabet "
                f"{self.alphabet.characters!r}: fit it on text over the same alphabet"
            )
        lm_index = [self.lm.alphabet.index(c) for c in self.alphabet.characters]
        self._index = np.array([0, *lm_index])  # model id -> model symbol (blank: unused)

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        return self.lm.log_probs(self.alphabet.decode(prefix))[self._index]

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        return float(self.lm.log_probs(self.alphabet.decode(prefix))[-1])


def decode_logits(
    logits: np.ndarray,
    lengths: np.ndarray,
    alphabet: CharacterAlphabet,
    beam_size: int,
    fusion: Fusion | None = None,
) -> list[str]:
    """The text of each row of ``logits: float[B, T', vocab]`` (its first ``lengths[b]``
    steps): the best path for ``beam_size=1``, else CTC prefix beam search, fused with
    ``fusion``'s language model if one is given."""
    if beam_size == 1:
        tokens, counts = ctc_greedy_decode(logits, lengths, blank_id=BLANK_ID)
        ids = to_lists(tokens, counts)
    else:
        ids = ctc_beam_decode(
            logits, lengths, beam_size=beam_size, blank_id=BLANK_ID, fusion=fusion
        )
    return [alphabet.decode(row) for row in ids]


def utterance_features(audios: Sequence[np.ndarray], mel: MelConfig) -> list[np.ndarray]:
    """float16[frames_i, n_mels] log-mel features of each utterance ``float[samples_i]``,
    computed :data:`FEATURE_BATCH` at a time by :func:`log_mel_batch`. Training keeps them in
    float16 (half the memory), so transcription reads them the same way."""
    features: list[np.ndarray] = []
    for start in range(0, len(audios), FEATURE_BATCH):
        batch = log_mel_batch(list(audios[start : start + FEATURE_BATCH]), mel)
        host = np.asarray(batch.features).astype(np.float16)
        features += [f[:n] for f, n in zip(host, batch.frame_counts, strict=True)]
    return features


def padded_features(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """float32[B, T, n_mels] features zero-padded to ``T``, the longest rounded up to a
    multiple of :data:`FRAME_BUCKET`, and bool[B, T] ``True`` at real frames."""
    frames = np.array([len(f) for f in features])
    width = padded_length(int(frames.max()), 1 << 30, FRAME_BUCKET)
    out = np.zeros((len(features), width, features[0].shape[1]), np.float32)
    for row, f in enumerate(features):
        out[row, : len(f)] = f
    return out, np.arange(width)[None, :] < frames[:, None]


@functools.lru_cache(maxsize=4)
def jitted_apply(config: AcousticConfig) -> Callable:
    """``apply(params, features, frame_mask) -> (logits, mask)`` of the acoustic model of
    shape ``config``, jitted once per shape."""
    model = AcousticModel(config)
    return jax.jit(lambda p, x, m: model.apply({"params": p}, x, m))


@dataclasses.dataclass
class Transcriber:
    """A trained acoustic model ready to transcribe.

    Attributes:
      model, params: the acoustic model and its parameters.
      mel: the features it was trained on (their ``sample_rate`` is the audio's).
      alphabet: the characters it writes.
      max_seconds: the longest audio it takes.
      fusion: a character language model the beam search fuses (``None``: none).
    """

    model: AcousticModel
    params: Any
    mel: MelConfig
    alphabet: CharacterAlphabet
    max_seconds: float
    fusion: Fusion | None = None

    def logits(self, audios: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """float32[B, T', vocab] scores of utterances ``float[samples]`` at ``mel.sample_rate``,
        and int32[B] the encoder steps of each."""
        features, mask = padded_features(utterance_features(audios, self.mel))
        logits, out_mask = jitted_apply(self.model.config)(self.params, features, mask)
        return np.asarray(logits), np.asarray(out_mask).sum(axis=1).astype(np.int32)

    def transcribe(
        self, audios: Sequence[np.ndarray], *, beam_size: int = 8, use_lm: bool = True
    ) -> list[str]:
        """The text of each utterance ``float[samples]`` (at ``mel.sample_rate``), by CTC
        prefix beam search (``beam_size=1``: the best path), fused with :attr:`fusion`'s
        language model unless ``use_lm=False``.

        Raises:
          AudioError: an utterance longer than ``max_seconds``, or empty.
        """
        if isinstance(audios, np.ndarray) and audios.ndim == 1:
            raise TypeError("transcribe takes a list of utterances; wrap one array in a list")
        for i, audio in enumerate(audios):
            self.check_length(audio, f"utterance {i}")
        logits, lengths = self.logits(audios)
        fusion = self.fusion if use_lm else None
        return decode_logits(logits, lengths, self.alphabet, beam_size, fusion)

    def check_length(self, audio: np.ndarray, name: str) -> None:
        """Raise an :class:`AudioError` for empty audio or audio over ``max_seconds``."""
        seconds = len(audio) / self.mel.sample_rate
        if len(audio) == 0:
            raise AudioError(f"{name} holds no samples: nothing to transcribe")
        if seconds > self.max_seconds:
            raise AudioError(
                f"{name} lasts {seconds:.1f} s, longer than the {self.max_seconds:g} s this model "
                "takes: cut it into shorter pieces (at pauses), e.g. `sox IN.wav OUT.wav trim 0 "
                f"{self.max_seconds:g} : newfile : restart`"
            )

    def transcribe_file(self, path: str | Path, *, beam_size: int = 8, use_lm: bool = True) -> str:
        """The text of a WAV file: mixed down to one channel and resampled to
        ``mel.sample_rate`` if its own differs.

        Raises:
          AudioError: a file that is no readable WAV, holds no samples, is silent, or lasts
            longer than ``max_seconds``.
        """
        audio, _ = read_wav(path, sample_rate=self.mel.sample_rate)
        self.check_length(audio, str(path))
        check_audible(audio, str(path))
        return self.transcribe([audio], beam_size=beam_size, use_lm=use_lm)[0]
