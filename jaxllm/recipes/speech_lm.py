"""The speech recipe's language model: a character n-gram model
(:class:`jaxllm.classic.char_ngram.CharNGramLM`) counted on the corpus the speech set was
spoken from, with every validation and test transcript left out, and fused into the CTC beam
search (:class:`jaxllm.ctc_decode.Fusion`) with the weight and bonus that give the lowest
character error rate on validation utterances.

The acoustic model hears how a sentence sounds; the language model knows how English is
spelled and which words follow which, which is what a model trained on a few hours of speech
lacks most.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from jaxllm.classic.char_ngram import CharLMError, CharNGramLM, fit_char_ngram, load_char_ngram
from jaxllm.config import require
from jaxllm.ctc_decode import Fusion, PrefixScorer
from jaxllm.data import corpora
from jaxllm.data.speech_set import CONFIG_FILE, speech_data_dir, speech_sentences
from jaxllm.metrics import error_rates

LM_FILE = "char_lm.npz"  # in the run folder
UNLIMITED = 1 << 30


@dataclasses.dataclass(frozen=True)
class SpeechLMConfig:
    """The character language model of a speech run.

    Attributes:
      order: characters per n-gram (0: no language model).
      corpus: a corpus name or text file / folder whose sentences it is counted on, normalised
        as the transcripts are; ``""``: the corpus the speech set was made from (its
        ``config.json``; none for a set without one). Every validation and test transcript
        is left out of it.
      weights, bonuses: the grid of :class:`~jaxllm.ctc_decode.Fusion` weights and per-
        character bonuses tried on validation utterances (a weight of 0 lets the grid
        choose no language model).
      tune_utterances: validation utterances the grid is scored on (0: all).
    """

    order: int = 7
    corpus: str = ""
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    bonuses: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    tune_utterances: int = 200

    def __post_init__(self):
        require(self.order >= 0, f"SpeechLMConfig.order must be >= 0, got {self.order}")
        require(
            bool(self.weights) and bool(self.bonuses) and min(self.weights) >= 0,
            "SpeechLMConfig.weights (each >= 0) and bonuses must each hold at least one value",
        )
        require(self.tune_utterances >= 0, "SpeechLMConfig.tune_utterances must be >= 0")


def saved_fusion(
    run_dir: Path, lm_summary: dict[str, Any], scorer: Callable[[CharNGramLM], PrefixScorer]
) -> Fusion | None:
    """The fusion a run's ``summary.json`` (its ``"lm"`` entry) chose, with the model saved in
    ``run_dir`` (``scorer`` wraps it for the beam search); ``None`` when it chose none.

    Raises:
      CharLMError: the summary chose a model whose file is missing or damaged.
    """
    weight = float(lm_summary.get("weight", 0.0))
    if weight <= 0:
        return None
    path = run_dir / LM_FILE
    if not path.is_file():
        raise CharLMError(
            f"{run_dir} was scored with a language model, but {path} is missing: run "
            "`speech.py evaluate` on the run to count it again, or transcribe with --no-lm"
        )
    return Fusion(scorer(load_char_ngram(path)), weight, float(lm_summary["bonus"]))


def set_corpus(data: str) -> str | None:
    """The corpus the speech set ``data`` (``""``: :func:`speech_data_dir`) was spoken from,
    from its ``config.json``; ``None`` when the set does not say."""
    path = Path(data) if data else speech_data_dir()
    try:
        corpus = json.loads((path / CONFIG_FILE).read_text())["config"]["corpus"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return corpus if isinstance(corpus, str) and corpus else None


def lm_sentences(corpus: str, held_out: Iterable[str], alphabet: str) -> tuple[list[str], int]:
    """The sentences of ``corpus`` written as transcripts are (any length) and over
    ``alphabet``, without any that holds a ``held_out`` sentence (whole words: "am i king"
    leaves out "am i king of england" too), and how many were left out for that."""
    sentences = speech_sentences(
        corpora.load_corpus(corpus), min_words=1, max_words=UNLIMITED, max_chars=UNLIMITED
    )
    contains_held_out = _phrase_finder(held_out)
    allowed = set(alphabet)
    kept = [s for s in sentences if not contains_held_out(s)]
    return [s for s in kept if set(s) <= allowed], len(sentences) - len(kept)


def _phrase_finder(phrases: Iterable[str]) -> Callable[[str], bool]:
    """Whether a transcript holds one of ``phrases`` as whole words."""
    longest_first = sorted(set(phrases) - {""}, key=len, reverse=True)
    if not longest_first:
        return lambda text: False
    alternatives = "|".join(re.escape(p) for p in longest_first)
    pattern = re.compile(f"(?<![a-z'])(?:{alternatives})(?![a-z'])")
    return lambda text: pattern.search(text) is not None


def fit_speech_lm(
    config: SpeechLMConfig, corpus: str, alphabet: str, held_out: Iterable[str]
) -> tuple[CharNGramLM, dict[str, Any]]:
    """The model of ``config.order`` counted on the sentences of ``corpus`` that
    :func:`lm_sentences` keeps, and what it was counted on (``corpus``, ``sentences``,
    ``characters``, ``held_out_removed``).

    Raises:
      FileNotFoundError: no such corpus (the message names the fix).
      ConfigError: the corpus has no sentence over ``alphabet``.
    """
    sentences, removed = lm_sentences(corpus, held_out, alphabet)
    require(bool(sentences), f"the corpus {corpus!r} has no sentence for the language model")
    lm = fit_char_ngram(sentences, order=config.order, alphabet=alphabet)
    about = {
        "order": config.order, "corpus": corpus, "sentences": len(sentences),
        "characters": sum(len(s) + 1 for s in sentences), "held_out_removed": removed,
    }  # fmt: skip
    return lm, about


def tune_fusion(
    decode: Callable[[Fusion | None], list[str]],
    references: Sequence[str],
    lm: PrefixScorer,
    config: SpeechLMConfig,
) -> tuple[Fusion | None, list[dict[str, float]]]:
    """The :class:`Fusion` of ``config``'s grid whose transcripts (``decode(fusion)`` of the
    utterances ``references`` belong to) have the lowest character error rate, and every
    grid point's CER. A weight of 0 in the grid is the search without the model (``None``,
    tried once); ties go to the smaller weight, then the smaller bonus."""
    points = [(0.0, 0.0)] if 0.0 in config.weights else []
    points += [(w, b) for w in sorted(set(config.weights) - {0.0}) for b in sorted(config.bonuses)]
    grid = []
    for weight, bonus in points:
        texts = decode(Fusion(lm, weight, bonus) if weight else None)
        cer = error_rates(references, texts)["cer"]
        grid.append({"weight": weight, "bonus": bonus, "cer": cer})
    best = min(grid, key=lambda point: point["cer"])
    return (Fusion(lm, best["weight"], best["bonus"]) if best["weight"] else None), grid
