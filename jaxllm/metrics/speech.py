"""Speech-recognition metrics: character and word error rates, by jiwer (``jaxllm[speech]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def require_jiwer() -> Any:
    """The ``jiwer`` module.

    Raises:
      ImportError: it is not installed (naming the install command).
    """
    try:
        import jiwer
    except ImportError as error:
        raise ImportError(
            "error_rates needs jiwer, an optional dependency: pip install 'jaxllm[speech]'"
        ) from error
    return jiwer


def _check_transcripts(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    """Raise ``ValueError`` naming what is wrong with a pair of transcript lists."""
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise ValueError("references and hypotheses must be lists of strings, not one string")
    if len(references) != len(hypotheses):
        raise ValueError(
            f"got {len(references)} references but {len(hypotheses)} hypotheses: pass one "
            "hypothesis per reference, in the same order"
        )
    if not references:
        raise ValueError("no references: error rates of no utterances are undefined")
    for index, reference in enumerate(references):
        if not reference.strip():
            raise ValueError(
                f"reference {index} is empty (or only spaces), so its error rate is undefined: "
                "drop the utterance (and its hypothesis) before scoring"
            )


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int]:
    """Corpus-level character and word error rates, as jiwer computes them.

    ``cer = (S + D + I) / N`` summed over all utterances, with ``S, D, I`` the substitutions,
    deletions and insertions of a minimal (Levenshtein) alignment of each hypothesis to its
    reference and ``N`` the reference characters (or words): a total over the corpus, not a
    mean of per-utterance rates, so long utterances weigh more. Either can exceed 1.

    jiwer's default transforms apply: words are split on whitespace; characters are counted
    after stripping leading and trailing whitespace, spaces between words included. Nothing
    else is normalised (case, punctuation): do that before calling.

    Args:
      references: the true transcripts, none empty.
      hypotheses: the recognised transcripts, one per reference (may be empty).

    Returns:
      ``{"cer", "wer"}`` (floats) and the integer counts ``reference_chars``, ``char_errors``,
      ``reference_words``, ``word_errors``, ``word_substitutions``, ``word_deletions``,
      ``word_insertions``.
    """
    _check_transcripts(references, hypotheses)
    jiwer = require_jiwer()
    chars = jiwer.process_characters(list(references), list(hypotheses))
    words = jiwer.process_words(list(references), list(hypotheses))
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    word_errors = words.substitutions + words.deletions + words.insertions
    return {
        "cer": float(chars.cer),
        "wer": float(words.wer),
        "reference_chars": chars.hits + chars.substitutions + chars.deletions,
        "char_errors": char_errors,
        "reference_words": words.hits + words.substitutions + words.deletions,
        "word_errors": word_errors,
        "word_substitutions": words.substitutions,
        "word_deletions": words.deletions,
        "word_insertions": words.insertions,
    }
