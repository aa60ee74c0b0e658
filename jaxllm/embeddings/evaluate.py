"""Intrinsic evaluation of word vectors: nearest neighbours, word-pair similarity (WordSim-353,
SimLex-999) and word analogies (Mikolov et al.'s ``questions-words.txt``), as gensim computes them.

Word vectors come as ``words: Sequence[str]``, the vocabulary in row order (most frequent first,
as word2vec sorts it), and ``vectors: float[V, d]`` (NumPy or JAX). Similarity is the cosine
``cos(u, v) = u·v / (‖u‖ ‖v‖)``, computed as dot products of unit-normalised rows.

The rules are those of gensim 4's ``KeyedVectors.evaluate_word_pairs`` and
``evaluate_word_analogies``, which the tests compare against:

- Only the ``restrict_vocab`` most frequent words (the first rows) count as known.
- ``case_insensitive=True`` upper-cases the file's words and the vocabulary; a word with several
  case variants takes the vector of its first (most frequent) one.
- A pair or question with a word outside that vocabulary is out-of-vocabulary (OOV): skipped, or
  with ``dummy4unknown=True`` scored as similarity 0 / a wrong answer. The OOV percentage is over
  every well-formed line either way.
- A malformed line (not three ``delimiter``-separated fields with a numeric score, not four
  words) is skipped and not counted at all; ``#`` lines of a pair file are comments.
- The analogy ``a : b :: c : ?`` is answered by 3CosAdd,
  ``argmax_w cos(w, â_b - â_a + â_c)`` over the restricted vocabulary minus ``a, b, c`` (``x̂`` the
  unit vector of ``x``). As gensim, the answer is the first of the 5 best candidates whose
  (upper-cased) spelling is not one of ``a, b, c``, and the last of them if all are.
- Overall accuracy pools the questions of every section. Sections whose names start with
  ``gram`` are *syntactic*, the others *semantic* (the split of the original file).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

GENSIM_TEST_FILES = ("wordsim353.tsv", "simlex999.txt", "questions-words.txt")
SYNTACTIC_PREFIX = "gram"
# gensim reads its analogy answer off the 5 most similar words; matching that matters only when
# case variants of a, b, c rank among them (they are skipped, not excluded beforehand).
ANALOGY_CANDIDATES = 5


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _checked_vectors(words: Sequence[str], vectors: Any) -> tuple[list[str], Array]:
    """``(words, vectors)`` as a list and a float JAX array, or an error naming the mismatch."""
    vectors = jnp.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(
            f"vectors must be 2-D float[V, d] (one row per word), got shape {tuple(vectors.shape)}"
        )
    if isinstance(words, str):
        raise TypeError(
            "words must be a sequence of words, got one string: pass a list, e.g. `words.split()`"
        )
    words = list(words)
    if len(words) != vectors.shape[0]:
        raise ValueError(
            f"words has {len(words)} entries but vectors has {vectors.shape[0]} rows: pass one "
            "word per row, in row order (the vocabulary the vectors were trained with)"
        )
    if not words:
        raise ValueError("the vocabulary is empty: there is nothing to evaluate")
    if not jnp.issubdtype(vectors.dtype, jnp.floating):
        vectors = vectors.astype(jnp.float32)
    return words, vectors


def _unit_rows(x: Array) -> Array:
    """Rows of ``x: float[..., d]`` scaled to unit length; an all-zero row stays zero (cosine 0
    with everything, where gensim would divide by zero)."""
    norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norms > 0, norms, 1)


def _restricted_size(restrict_vocab: int | None, vocab_size: int) -> int:
    if restrict_vocab is None:
        return vocab_size
    if not isinstance(restrict_vocab, int | np.integer) or restrict_vocab < 1:
        raise ValueError(
            f"restrict_vocab must be a positive int (how many of the most frequent "
            f"words count as known) or None for all, got {restrict_vocab!r}"
        )
    return min(int(restrict_vocab), vocab_size)


def _known_words(words: Sequence[str], size: int, case_insensitive: bool) -> dict[str, int]:
    """``{key: row}`` over the first ``size`` words, keys upper-cased when ``case_insensitive``;
    a key shared by several words maps to the first (most frequent) one's row, as in gensim."""
    known: dict[str, int] = {}
    for row, word in enumerate(words[:size]):
        known.setdefault(word.upper() if case_insensitive else word, row)
    return known


def _existing_file(path: str | Path, what: str, example: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} file {str(path)!r} does not exist: pass the path of an existing file, e.g. "
            f"`gensim_test_file({example!r})`"
        )
    return path


def gensim_test_file(name: str) -> Path:
    """Path of an evaluation file bundled with gensim: one of :data:`GENSIM_TEST_FILES`
    (``wordsim353.tsv``, ``simlex999.txt``, ``questions-words.txt``).

    Raises:
      ImportError: gensim is not installed (it is a test-only dependency of jaxllm).
      FileNotFoundError: gensim has no such file.
    """
    try:
        from gensim.test.utils import datapath  # lazily: gensim is not a runtime dependency
    except ImportError as error:
        raise ImportError(
            f"gensim_test_file({name!r}) reads the evaluation files bundled with gensim, which is "
            "not installed: `pip install gensim` (or pass the path of your own copy of the file)"
        ) from error
    path = Path(datapath(name))
    if not path.is_file():
        raise FileNotFoundError(
            f"gensim has no test file {name!r} (looked for {path}); its word "
            f"vector evaluation files are {', '.join(GENSIM_TEST_FILES)}"
        )
    return path


# ------------------------------------------------------------------------------------------------
# Correlations (NumPy, float64; scipy is not a runtime dependency)
# ------------------------------------------------------------------------------------------------


def average_ranks(x: Any) -> np.ndarray:
    """1-based ranks ``float64[n]`` of ``x: float[n]``, tied values sharing the mean of the ranks
    they span (``scipy.stats.rankdata(x, method="average")``): ``[10, 20, 20, 30] → [1, 2.5, 2.5,
    4]``."""
    x = np.asarray(x).reshape(-1)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts_run = np.r_[True, ordered[1:] != ordered[:-1]]
    run = np.cumsum(starts_run) - 1
    starts = np.flatnonzero(starts_run)
    ends = np.r_[starts[1:], x.size]  # exclusive; a run covers 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = ((starts + 1 + ends) / 2)[run]
    return ranks


def _regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, by the continued fraction of Numerical Recipes (§6.4), Lentz's method."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _regularized_incomplete_beta(b, a, 1.0 - x)
    tiny = 1e-300

    def guarded(v: float) -> float:
        return tiny if abs(v) < tiny else v

    c, d = 1.0, 1.0 / guarded(1.0 - (a + b) * x / (a + 1))
    fraction = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 / guarded(1.0 + numerator * d)
            c = guarded(1.0 + numerator / c)
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    return math.exp(log_front) * fraction / a


def pearson_correlation(x: Any, y: Any) -> tuple[float, float]:
    """Pearson's ``r = Σ (x-x̄)(y-ȳ) / √(Σ (x-x̄)² Σ (y-ȳ)²)`` of ``x, y: float[n]`` and its
    two-sided p-value under independence (``r`` is Beta(n/2-1, n/2-1) on [-1, 1]), as
    ``scipy.stats.pearsonr``. Both are NaN for a constant input; the p-value is NaN for n < 3."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape}, {y.shape}")
    dx, dy = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(dx), np.linalg.norm(dy)
    if nx == 0 or ny == 0:
        return math.nan, math.nan
    r = float(np.clip(np.dot(dx / nx, dy / ny), -1.0, 1.0))
    n = x.size
    if n < 3:
        return r, math.nan
    half = n / 2 - 1
    return r, min(1.0, 2 * _regularized_incomplete_beta(half, half, (1 - abs(r)) / 2))


def spearman_correlation(x: Any, y: Any) -> tuple[float, float]:
    """Spearman's ``ρ``: Pearson's r of the average ranks (:func:`average_ranks`) of
    ``x, y: float[n]``, and its two-sided p-value from Student's t with ``n - 2`` degrees of
    freedom, ``t = ρ √((n-2) / (1-ρ²))``, as ``scipy.stats.spearmanr``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape}, {y.shape}")
    rho, _ = pearson_correlation(average_ranks(x), average_ranks(y))
    dof = x.size - 2
    if math.isnan(rho) or dof < 1:
        return rho, math.nan
    if abs(rho) == 1.0:
        return rho, 0.0
    t_squared = rho * rho * dof / ((1 - rho) * (1 + rho))
    return rho, _regularized_incomplete_beta(dof / 2, 0.5, dof / (dof + t_squared))


# ------------------------------------------------------------------------------------------------
# Nearest neighbours
# ------------------------------------------------------------------------------------------------


def nearest_neighbours(
    words: Sequence[str],
    vectors: Any,
    query: str | Any,
    topn: int = 10,
    exclude: Sequence[str] = (),
) -> list[tuple[str, float]]:
    """The ``topn`` words most cosine-similar to ``query``, most similar first.

    Args:
      words: the vocabulary, ``V`` words in row order.
      vectors: float[V, d].
      query: a word of ``words`` (left out of the answer, as in gensim's ``most_similar``), or a
        vector float[d].
      topn: how many neighbours (fewer when the vocabulary is smaller).
      exclude: words also left out of the answer (unknown ones are ignored).

    Returns:
      ``[(word, cosine), ...]``: at most ``topn`` pairs, cosines in [-1, 1] decreasing.
    """
    words, vectors = _checked_vectors(words, vectors)
    if isinstance(query, str):
        rows = _known_words(words, len(words), case_insensitive=False)
        if query not in rows:
            raise KeyError(
                f"{query!r} is not in the vocabulary of {len(words)} words (lookup is "
                "case-sensitive): check its spelling and case, or pass a vector"
            )
        target, left_out = vectors[rows[query]], {query, *exclude}
    else:
        target, left_out = jnp.asarray(query), set(exclude)
        if target.shape != vectors.shape[1:]:
            raise ValueError(
                f"a query vector must have shape ({vectors.shape[1]},) like the rows "
                f"of vectors, got {tuple(target.shape)}"
            )
    # One matrix-vector product scores the whole vocabulary.
    cosines = _unit_rows(vectors) @ _unit_rows(target.astype(vectors.dtype))
    mask = np.fromiter((word in left_out for word in words), bool, len(words))
    cosines = jnp.where(jnp.asarray(mask), -jnp.inf, cosines)
    k = max(0, min(int(topn), len(words) - int(mask.sum())))
    best_cosines, best_rows = jax.lax.top_k(cosines, k)
    return [
        (words[row], float(cos))
        for row, cos in zip(
            np.asarray(best_rows).tolist(), np.asarray(best_cosines).tolist(), strict=True
        )
    ]


# ------------------------------------------------------------------------------------------------
# Word-pair similarity
# ------------------------------------------------------------------------------------------------


def _parse_pair_line(line: str, delimiter: str) -> tuple[str, str, float] | None:
    """``(word1, word2, score)`` of a ``word1<delimiter>word2<delimiter>score`` line, or None if
    it is malformed. Words are not stripped, exactly as in gensim."""
    fields = line.split(delimiter)
    if len(fields) != 3:
        return None
    first, second, score = fields
    try:
        return first, second, float(score)
    except ValueError:
        return None


def _read_word_pairs(
    path: Path,
    known: Mapping[str, int],
    *,
    case_insensitive: bool,
    delimiter: str,
    dummy4unknown: bool,
    encoding: str,
) -> tuple[list[float], list[tuple[int, int]], int, int]:
    """The pairs of a word-pair file, against the ``known`` words' rows.

    Returns:
      ``(gold scores, (row, row) of each scored pair, OOV pairs, malformed lines)``; an OOV
      pair is skipped, or with ``dummy4unknown`` kept as rows ``(-1, -1)``.
    """
    gold, rows, oov, invalid = [], [], 0, 0
    with open(path, encoding=encoding) as lines:
        for line in lines:
            if line.startswith("#"):
                continue
            pair = _parse_pair_line(line, delimiter)
            if pair is None:
                invalid += 1
                continue
            first, second, score = pair
            if case_insensitive:
                first, second = first.upper(), second.upper()
            if first in known and second in known:
                gold.append(score)
                rows.append((known[first], known[second]))
            else:
                oov += 1
                if dummy4unknown:
                    gold.append(score)
                    rows.append((-1, -1))  # scored 0 by _pair_cosines
    return gold, rows, oov, invalid


def _pair_cosines(vectors: Array, rows: np.ndarray) -> np.ndarray:
    """Cosine similarity ``float64[n]`` of each pair of ``rows: int32[n, 2]``; 0 for a pair of
    rows -1 (an OOV pair scored with ``dummy4unknown``)."""
    unit = _unit_rows(vectors)
    cosines = np.asarray(jnp.sum(unit[rows[:, 0]] * unit[rows[:, 1]], axis=-1), np.float64)
    return np.where(rows[:, 0] >= 0, cosines, 0.0)


def word_similarity(
    words: Sequence[str],
    vectors: Any,
    pairs_path: str | Path,
    *,
    case_insensitive: bool = True,
    delimiter: str = "\t",
    restrict_vocab: int | None = 300000,
    dummy4unknown: bool = False,
    encoding: str = "utf8",
) -> dict[str, Any]:
    """Correlation of the vectors' cosine similarities with human similarity judgements, as
    gensim's ``KeyedVectors.evaluate_word_pairs``.

    Args:
      words: the vocabulary, ``V`` words in row order, most frequent first.
      vectors: float[V, d].
      pairs_path: a text file of ``word1<delimiter>word2<delimiter>score`` lines; lines starting
        with ``#`` are comments (e.g. ``gensim_test_file("wordsim353.tsv")``).
      case_insensitive: compare upper-cased words (module docstring).
      delimiter: the field separator.
      restrict_vocab: only the first ``restrict_vocab`` words are known (None: all).
      dummy4unknown: score an OOV pair as similarity 0 instead of skipping it.
      encoding: of the file.

    Returns:
      ``{"pearson", "pearson_pvalue", "spearman", "spearman_pvalue"}`` (floats), ``"pairs"`` (the
      number of pairs correlated), ``"oov_pairs"`` and ``"oov_percent"`` (``100 · oov_pairs /
      well-formed lines``: gensim's ``oov_ratio``), and ``"invalid_lines"`` (malformed, skipped).
    """
    words, vectors = _checked_vectors(words, vectors)
    path = _existing_file(pairs_path, "word-pair", "wordsim353.tsv")
    known = _known_words(words, _restricted_size(restrict_vocab, len(words)), case_insensitive)
    gold, rows, oov, invalid = _read_word_pairs(
        path,
        known,
        case_insensitive=case_insensitive,
        delimiter=delimiter,
        dummy4unknown=dummy4unknown,
        encoding=encoding,
    )
    if not gold:
        raise _no_usable_pairs(path, oov, len(known), invalid, delimiter)
    model = _pair_cosines(vectors, np.asarray(rows, np.int32))
    pearson, pearson_p = pearson_correlation(gold, model)
    spearman, spearman_p = spearman_correlation(gold, model)
    well_formed = len(gold) + (0 if dummy4unknown else oov)
    return {
        "pearson": pearson,
        "pearson_pvalue": pearson_p,
        "spearman": spearman,
        "spearman_pvalue": spearman_p,
        "pairs": len(gold),
        "oov_pairs": oov,
        "oov_percent": 100.0 * oov / well_formed,
        "invalid_lines": invalid,
    }


def _no_usable_pairs(path: Path, oov: int, known: int, invalid: int, delimiter: str) -> ValueError:
    """The error of a word-pair file none of whose pairs can be scored, saying why."""
    return ValueError(
        f"no usable word pairs in {str(path)!r}: {oov} pairs have a word outside the "
        f"{known} known words and {invalid} lines are not "
        f"'word1{delimiter}word2{delimiter}score' (with delimiter={delimiter!r}); check the "
        "delimiter and case_insensitive, and that the vectors cover the dataset's words"
    )


# ------------------------------------------------------------------------------------------------
# Analogies
# ------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames="k")
def _analogy_candidates(unit: Array, questions: Array, k: int) -> tuple[Array, Array]:
    """The ``k`` best 3CosAdd answers of each question, ``a, b, c`` excluded.

    Args:
      unit: float[R, d] unit rows of the restricted vocabulary.
      questions: int32[q, 3] rows of ``a, b, c``.

    Returns:
      ``(cosines float[q, k], rows int32[q, k])``, best first; excluded rows score ``-inf``.
    """
    a, b, c = (unit[questions[:, i]] for i in range(3))
    target = _unit_rows(b + c - a)  # gensim's (b̂ + ĉ - â) / 3, normalised
    # Full float32 precision: a TF32/bf16 product on an accelerator would reorder close answers.
    cosines = jnp.matmul(target, unit.T, precision=jax.lax.Precision.HIGHEST)
    cosines = cosines.at[jnp.arange(questions.shape[0])[:, None], questions].set(-jnp.inf)
    return jax.lax.top_k(cosines, k)


def _answers_correct(
    unit: Array, same_key: np.ndarray, questions: np.ndarray, chunk_size: int
) -> np.ndarray:
    """Whether each question ``int[q, 4]`` (rows of a, b, c, expected) is answered right.

    ``same_key[row]`` is the row of the first word spelled like ``row`` (case folded or not),
    so comparing it compares spellings, which is what gensim compares.
    """
    k = min(ANALOGY_CANDIDATES, unit.shape[0])
    correct = []
    for start in range(0, len(questions), chunk_size):
        chunk = questions[start : start + chunk_size]
        # Pad to a power of two (at most chunk_size) so that few shapes are ever compiled.
        padded = min(chunk_size, 1 << max(0, len(chunk) - 1).bit_length())
        abc = np.zeros((padded, 3), np.int32)
        abc[: len(chunk)] = chunk[:, :3]
        cosines, rows = _analogy_candidates(unit, jnp.asarray(abc), k)
        cosines, rows = np.asarray(cosines)[: len(chunk)], np.asarray(rows)[: len(chunk)]
        valid = np.isfinite(cosines)  # fewer than k candidates in a tiny vocabulary
        spelled = same_key[rows]
        usable = valid & np.all(spelled[:, :, None] != chunk[:, None, :3], axis=-1)
        # gensim takes the first candidate not spelled like a, b or c, else the last one.
        pick = np.where(usable.any(axis=1), usable.argmax(axis=1), valid.sum(axis=1) - 1)
        predicted = spelled[np.arange(len(chunk)), np.maximum(pick, 0)]
        correct.append(valid.any(axis=1) & (predicted == chunk[:, 3]))
    return np.concatenate(correct) if correct else np.zeros(0, bool)


def _accuracy(correct: int, incorrect: int) -> float:
    return correct / (correct + incorrect) if correct + incorrect else 0.0  # gensim's 0.0


def _tally(name: str, sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    correct = sum(s["correct"] for s in sections)
    incorrect = sum(s["incorrect"] for s in sections)
    return {
        "section": name,
        "correct": correct,
        "incorrect": incorrect,
        "questions": sum(s["questions"] for s in sections),
        "oov": sum(s["oov"] for s in sections),
        "accuracy": _accuracy(correct, incorrect),
    }


class _AnalogyQuestions(NamedTuple):
    """An analogy file read against a vocabulary.

    Attributes:
      sections: the section names, in file order.
      oov: per section, its questions with a word outside the vocabulary.
      rows: the answerable questions, as the rows of ``a, b, c, expected``: int32[q, 4].
      section_of: the section of each answerable question: int64[q].
    """

    sections: list[str]
    oov: list[int]
    rows: np.ndarray
    section_of: np.ndarray


def _read_analogy_questions(
    path: Path, known: Mapping[str, int], case_insensitive: bool, encoding: str
) -> _AnalogyQuestions:
    """The sections and questions of an analogy file; a malformed (or blank) line is skipped
    and not counted, as in gensim.

    Raises:
      ValueError: a question comes before the first ``: section`` header.
    """
    names: list[str] = []
    oov: list[int] = []
    section_of: list[int] = []
    questions: list[list[int]] = []
    with open(path, encoding=encoding) as lines:
        for line_no, line in enumerate(lines, 1):
            if line.startswith(": "):
                names.append(line.lstrip(": ").strip())
                oov.append(0)
                continue
            if not names:
                raise ValueError(
                    f"{str(path)!r} line {line_no}: {line.strip()!r} comes before "
                    "the first ': section' header; an analogy file starts with one"
                )
            tokens = line.split()
            if len(tokens) != 4:
                continue
            if case_insensitive:
                tokens = [token.upper() for token in tokens]
            if all(token in known for token in tokens):
                questions.append([known[token] for token in tokens])
                section_of.append(len(names) - 1)
            else:
                oov[-1] += 1
    return _AnalogyQuestions(
        names, oov, np.asarray(questions, np.int32).reshape(-1, 4), np.asarray(section_of, np.int64)
    )


def _section_results(
    questions: _AnalogyQuestions, correct: np.ndarray, dummy4unknown: bool
) -> list[dict[str, Any]]:
    """Per section, in file order: ``{"section", "correct", "incorrect", "questions", "oov",
    "accuracy"}`` from ``correct: bool[q]`` over the answerable questions; with
    ``dummy4unknown`` an OOV question counts as wrong."""
    names, oov = questions.sections, questions.oov
    right = np.bincount(questions.section_of[correct], minlength=len(names))
    answered = np.bincount(questions.section_of, minlength=len(names))
    sections = []
    for i, name in enumerate(names):
        wrong = int(answered[i] - right[i]) + (oov[i] if dummy4unknown else 0)
        sections.append(
            {
                "section": name,
                "correct": int(right[i]),
                "incorrect": wrong,
                "questions": int(answered[i]) + oov[i],
                "oov": oov[i],
                "accuracy": _accuracy(int(right[i]), wrong),
            }
        )
    return sections


def _analogy_summary(sections: list[dict[str, Any]], asked: int) -> dict[str, Any]:
    """The result of :func:`analogies`: the totals over all ``sections``, over the semantic and
    the syntactic ones, and the sections themselves; ``asked`` counts the well-formed lines."""
    total = _tally("total", sections)
    return {
        "accuracy": total["accuracy"],
        "correct": total["correct"],
        "incorrect": total["incorrect"],
        "sections": sections,
        "semantic": _tally(
            "semantic", [s for s in sections if not s["section"].startswith(SYNTACTIC_PREFIX)]
        ),
        "syntactic": _tally(
            "syntactic", [s for s in sections if s["section"].startswith(SYNTACTIC_PREFIX)]
        ),
        "questions": asked,
        "oov_questions": total["oov"],
        "oov_percent": 100.0 * total["oov"] / asked,
    }


def analogies(
    words: Sequence[str],
    vectors: Any,
    questions_path: str | Path,
    *,
    restrict_vocab: int | None = 300000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    chunk_size: int = 256,
    encoding: str = "utf8",
) -> dict[str, Any]:
    """Word-analogy accuracy by 3CosAdd, as gensim's ``KeyedVectors.evaluate_word_analogies``
    (rules in the module docstring).

    Every answerable question is scored by batched matrix products, ``chunk_size`` questions at
    a time: a chunk holds ``chunk_size · restrict_vocab`` cosines in memory.

    Args:
      words: the vocabulary, ``V`` words in row order, most frequent first.
      vectors: float[V, d].
      questions_path: ``: section`` header lines, then ``a b c d`` lines meaning ``a : b :: c :
        d`` (e.g. ``gensim_test_file("questions-words.txt")``).
      restrict_vocab: only the first ``restrict_vocab`` words are known and can be answers.
      case_insensitive: compare upper-cased words.
      dummy4unknown: count an OOV question as answered wrong instead of skipping it.
      chunk_size: questions scored at once.
      encoding: of the file.

    Returns:
      ``{"accuracy", "correct", "incorrect"}`` over all sections; ``"sections"``: per section
      ``{"section", "correct", "incorrect", "questions", "oov", "accuracy"}`` in file order;
      ``"semantic"`` and ``"syntactic"``: the same totals over those groups; ``"questions"``
      (well-formed lines), ``"oov_questions"`` and ``"oov_percent"`` (of the questions: gensim's
      logged ratio).
    """
    words, vectors = _checked_vectors(words, vectors)
    path = _existing_file(questions_path, "analogy", "questions-words.txt")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    size = _restricted_size(restrict_vocab, len(words))
    known = _known_words(words, size, case_insensitive)
    questions = _read_analogy_questions(path, known, case_insensitive, encoding)
    asked = len(questions.rows) + sum(questions.oov)
    if asked == 0 or (len(questions.rows) == 0 and not dummy4unknown):
        raise ValueError(
            f"no usable analogy questions in {str(path)!r}: {asked} 'a b c d' lines, "
            f"{sum(questions.oov)} of them with a word outside the {len(known)} known words; "
            "check case_insensitive and restrict_vocab, and that the vectors cover the "
            "dataset's words"
        )
    same_key = np.asarray([known[w.upper() if case_insensitive else w] for w in words[:size]])
    correct = _answers_correct(_unit_rows(vectors[:size]), same_key, questions.rows, chunk_size)
    return _analogy_summary(_section_results(questions, correct, dummy4unknown), asked)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def format_evaluation(
    similarity: Mapping[str, Mapping[str, Any]] | None = None,
    analogy: Mapping[str, Any] | None = None,
    *,
    digits: int = 3,
) -> str:
    """A Markdown table of evaluation results.

    Args:
      similarity: ``{dataset name: word_similarity(...) result}``: Spearman ρ and Pearson r.
      analogy: an :func:`analogies` result: accuracy over the semantic and syntactic sections and
        overall.
      digits: decimals of correlations (accuracies are percentages with one decimal).

    Returns:
      Lines ``| evaluation | metric | score | n | OOV |``; ``n`` counts the pairs or questions
      scored.
    """
    if not similarity and analogy is None:
        raise ValueError(
            "nothing to format: pass similarity={name: word_similarity(...)} "
            "and/or analogy=analogies(...)"
        )
    rows = ["| evaluation | metric | score | n | OOV |", "|---|---|---:|---:|---:|"]
    for name, result in (similarity or {}).items():
        oov = f"{result['oov_percent']:.1f}%"
        rows.append(
            f"| {name} | Spearman ρ | {result['spearman']:.{digits}f} | {result['pairs']} | {oov} |"
        )
        rows.append(
            f"| {name} | Pearson r | {result['pearson']:.{digits}f} | {result['pairs']} | {oov} |"
        )
    if analogy is not None:
        groups = (
            analogy["semantic"],
            analogy["syntactic"],
            {**_tally("overall", analogy["sections"]), "section": "overall"},
        )
        for group in groups:
            scored = group["correct"] + group["incorrect"]
            oov = 100.0 * group["oov"] / group["questions"] if group["questions"] else 0.0
            rows.append(
                f"| analogy ({group['section']}) | accuracy | "
                f"{100 * group['accuracy']:.1f}% | {scored} | {oov:.1f}% |"
            )
    return "\n".join(rows) + "\n"
