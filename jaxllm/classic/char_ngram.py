"""A character n-gram language model with modified interpolated Kneser-Ney smoothing (Kneser
and Ney, 1995; Chen and Goodman, 1998), as KenLM estimates it: the traditional language model,
as a speech recogniser's beam search uses it.

The model reads sentences as characters, each sentence padded with ``order - 1`` start marks
:data:`BOS` before it and one end mark :data:`EOS` after it. It predicts any character of its
``alphabet`` and the end of the sentence (symbol ``len(alphabet)``)::

    lm = fit_char_ngram(["to be or not to be", "that is the question"], order=6,
                        alphabet=" 'abcdefghijklmnopqrstuvwxyz")
    lm.log_probs("to be or no")          # float64[29]: log P(next symbol | the history)
    lm.sentence_log_prob("to be")        # log P(the characters and the end of the sentence)
    lm.perplexity(["not to be"])         # per predicted symbol, the end included
    lm.save("char_lm.npz"); load_char_ngram("char_lm.npz")

The probability of symbol ``w`` after the last ``k - 1`` characters ``h`` interpolates down to
the uniform distribution over the ``V`` symbols::

    P_k(w | h) = (max(c_k(h w) - D_k(c_k(h w)), 0) + gamma_k(h) · P_{k-1}(w | h')) / c_k(h ·)
    gamma_k(h) = D_k1 · N_k1(h ·) + D_k2 · N_k2(h ·) + D_k3 · N_k3+(h ·)
    P_0(w) = 1 / V

``h'`` drops the oldest character of ``h``; ``c_k`` counts occurrences at the highest order
and *continuation counts* below it (how many distinct characters precede the k-gram in the
text; a k-gram at a sentence's start, which only padding precedes, keeps its occurrences, as
in KenLM and SRILM); ``c_k(h ·)`` sums them over ``w``, and ``N_k1(h ·)``, ``N_k2(h ·)`` and
``N_k3+(h ·)`` count the symbols ``w`` seen after ``h`` once, twice and three times or more. A
history never seen at order ``k`` leaves ``P_{k-1}`` as it is. A k-gram counted ``c`` times is
discounted by ``D_k(c) = D_k1, D_k2, D_k3`` for ``c = 1, 2, 3+``, Chen and Goodman's estimates
from the numbers ``n_i`` of k-grams counted ``i`` times::

    Y = n1 / (n1 + 2 n2);  D_ki = i - (i + 1) · Y · n_{i+1} / n_i

each kept within [0.05, i - 0.05] (``i / 2`` when ``n_i`` or ``n_{i+1}`` is 0: too little
text to estimate it). With ``D_k1 = D_k2 = D_k3`` this is the original interpolated
Kneser-Ney. Every symbol has a probability above zero, and each distribution sums to one.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxllm.data.json_files import replaced_atomically

BOS = "\x02"  # pads each sentence's start; never predicted
EOS = "\x03"  # ends each sentence; predicted as symbol len(alphabet)
HISTORY_CACHE = 1 << 16  # distributions kept per model (about 25 MB); then the cache restarts


class CharLMError(ValueError):
    """A bad argument to a character n-gram model; the message names it and the fix."""


@dataclasses.dataclass(eq=False)
class CharNGramLM:
    """An interpolated Kneser-Ney character model (see the module docstring).

    Attributes:
      order: characters in the longest n-gram (the history is ``order - 1`` of them).
      alphabet: the characters it predicts; symbol ``i`` is ``alphabet[i]`` and symbol
        ``len(alphabet)`` the end of a sentence.
      counts: ``counts[k - 1]`` maps each k-gram to its count: occurrences for ``k == order``,
        continuation counts below.
      discounts: ``(D_k1, D_k2, D_k3)`` of each order, ``discounts[k - 1]``.
    """

    order: int
    alphabet: str
    counts: tuple[dict[str, int], ...]
    discounts: tuple[tuple[float, float, float], ...]
    _totals: tuple[dict[str, tuple[int, float]], ...] = dataclasses.field(init=False, repr=False)
    _cache: dict[str, np.ndarray] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        _check_alphabet(self.alphabet)
        if self.order < 1 or len(self.counts) != self.order or len(self.discounts) != self.order:
            raise CharLMError(
                f"order {self.order} needs one count table and one discount per order, got "
                f"{len(self.counts)} and {len(self.discounts)}"
            )
        self._totals = tuple(
            _context_totals(table, d) for table, d in zip(self.counts, self.discounts, strict=True)
        )
        self._cache = {}
        self._symbols = [*self.alphabet, EOS]

    @property
    def vocab_size(self) -> int:
        """Symbols predicted: the alphabet's characters and the end of a sentence."""
        return len(self.alphabet) + 1

    def log_probs(self, history: str) -> np.ndarray:
        """float64[vocab_size]: the natural log-probability of each next symbol after
        ``history``, the sentence so far (its last ``order - 1`` characters are used; a shorter
        one is the sentence's start).

        Raises:
          CharLMError: ``history`` holds a character outside the alphabet.
        """
        self._check_text(history)
        context = (BOS * (self.order - 1) + history)[len(history) :]
        if context not in self._cache:
            if len(self._cache) >= HISTORY_CACHE:
                self._cache.clear()
            log_probs = np.log(self._probs(context))
            log_probs.flags.writeable = False  # shared by every caller of this history
            self._cache[context] = log_probs
        return self._cache[context]

    def _probs(self, context: str) -> np.ndarray:
        """float64[vocab_size] probabilities after the ``order - 1`` characters ``context``,
        interpolated from the uniform distribution up, order by order."""
        probs = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for k in range(1, self.order + 1):
            history = context[len(context) - (k - 1) :] if k > 1 else ""
            total, gamma = self._totals[k - 1].get(history, (0, 0.0))
            if total == 0:
                continue
            table, discounts = self.counts[k - 1], np.array((0.0, *self.discounts[k - 1]))
            counts = np.array([table.get(history + s, 0) for s in self._symbols], np.int64)
            kept = np.maximum(counts - discounts[np.minimum(counts, 3)], 0.0)
            probs = (kept + gamma * probs) / total
        return probs

    def sentence_log_prob(self, text: str) -> float:
        """Natural log-probability of ``text``'s characters and then the sentence's end."""
        self._check_text(text)
        index = {c: i for i, c in enumerate(self.alphabet)}
        symbols = [index[c] for c in text] + [len(self.alphabet)]
        return float(sum(self.log_probs(text[:i])[s] for i, s in enumerate(symbols)))

    def perplexity(self, sentences: Sequence[str]) -> float:
        """``exp`` of the mean negative log-probability per predicted symbol (each sentence's
        characters and its end) over ``sentences``."""
        if not sentences:
            raise CharLMError("perplexity needs at least one sentence")
        total = sum(self.sentence_log_prob(s) for s in sentences)
        return float(np.exp(-total / sum(len(s) + 1 for s in sentences)))

    def _check_text(self, text: str) -> None:
        missing = sorted(set(text) - set(self.alphabet))
        if missing:
            raise CharLMError(
                f"{text[:40]!r} holds {missing}, outside the model's alphabet "
                f"{self.alphabet!r}: normalise it as the training sentences were"
            )

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (a NumPy ``.npz``, no pickles; through a temporary file
        renamed into place, so a crash never leaves a part); :func:`load_char_ngram` reads it
        back."""
        arrays: dict[str, Any] = {
            "order": np.array(self.order),
            "alphabet": np.array(self.alphabet),
            "discounts": np.array(self.discounts, np.float64),
        }
        for k, table in enumerate(self.counts, start=1):
            arrays[f"grams_{k}"] = np.array(list(table), dtype=f"<U{k}")
            arrays[f"counts_{k}"] = np.array(list(table.values()), np.int64)
        path = Path(path)
        with replaced_atomically(path) as out:
            np.savez_compressed(out, **arrays)
        return path


def _check_alphabet(alphabet: str) -> None:
    if not alphabet or len(set(alphabet)) != len(alphabet) or {BOS, EOS} & set(alphabet):
        raise CharLMError(
            f"the alphabet must be distinct characters without the marks \\x02 and \\x03, got "
            f"{alphabet!r}"
        )


def _context_totals(
    table: dict[str, int], discounts: tuple[float, float, float]
) -> dict[str, tuple[int, float]]:
    """``{history: (c(history ·), gamma(history))}``: the sum of the counts of each
    ``history + w`` and the probability mass their discounts leave to the lower order."""
    totals: dict[str, list[Any]] = {}
    for gram, count in table.items():
        entry = totals.setdefault(gram[:-1], [0, 0.0])
        entry[0] += count
        entry[1] += discounts[min(count, 3) - 1]
    return {history: (total, gamma) for history, (total, gamma) in totals.items()}


def _discounts(table: dict[str, int]) -> tuple[float, float, float]:
    """Chen and Goodman's ``(D1, D2, D3+)`` from how many grams were counted 1 to 4 times,
    each kept in [0.05, i - 0.05]; ``i / 2`` where a count it needs is 0."""
    times = Counter(table.values())
    n = [times.get(i, 0) for i in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] else 0.5
    discounts = []
    for i in (1, 2, 3):
        if n[i - 1] == 0 or n[i] == 0:
            discounts.append(i / 2)
        else:
            estimate = i - (i + 1) * y * n[i] / n[i - 1]
            discounts.append(min(max(estimate, 0.05), i - 0.05))
    return (discounts[0], discounts[1], discounts[2])


def fit_char_ngram(sentences: Iterable[str], *, order: int, alphabet: str) -> CharNGramLM:
    """Count ``sentences`` into an interpolated Kneser-Ney model of ``order`` characters.

    Args:
      sentences: the training text, one sentence (or line) each, over ``alphabet``.
      order: characters per n-gram (history ``order - 1``), at least 1.
      alphabet: the characters the model predicts (the end of a sentence is added).

    Raises:
      CharLMError: a bad order or alphabet, no sentence, or a character outside the alphabet
        (the message names the sentence).
    """
    _check_alphabet(alphabet)
    if order < 1:
        raise CharLMError(f"order must be >= 1, got {order}")
    allowed, occurrences, sentence_count = set(alphabet), Counter(), 0
    for sentence in sentences:
        if set(sentence) - allowed:
            raise CharLMError(
                f"sentence {sentence_count} ({sentence[:40]!r}) holds "
                f"{sorted(set(sentence) - allowed)}, outside the alphabet {alphabet!r}: "
                "normalise the text first"
            )
        padded = BOS * (order - 1) + sentence + EOS
        occurrences.update(padded[i : i + order] for i in range(len(padded) - order + 1))
        sentence_count += 1
    if not sentence_count:
        raise CharLMError("fit_char_ngram needs at least one sentence")
    tables: list[dict[str, int]] = [dict(occurrences)]
    for _ in range(order - 1):
        tables.insert(0, _lower_order_counts(tables[0], occurrences, order))
    return CharNGramLM(order, alphabet, tuple(tables), tuple(_discounts(t) for t in tables))


def _lower_order_counts(
    higher: dict[str, int], occurrences: Counter[str], order: int
) -> dict[str, int]:
    """The counts of the k-grams one character shorter than ``higher``'s: continuation counts
    (how many distinct characters come before each), except for a k-gram at a sentence's start
    (beginning with :data:`BOS`), which only padding precedes: its occurrences, as KenLM and
    SRILM count them, read from the ``order``-gram ``occurrences`` that end where it ends."""
    counts = Counter(gram[1:] for gram in higher)
    for gram in counts:
        if gram[0] == BOS:
            counts[gram] = occurrences[BOS * (order - len(gram)) + gram]
    return dict(counts)


def load_char_ngram(path: str | Path) -> CharNGramLM:
    """The model :meth:`CharNGramLM.save` wrote to ``path``.

    Raises:
      CharLMError: ``path`` is not such a file.
    """
    try:
        with np.load(path, allow_pickle=False) as saved:
            order = int(saved["order"])
            tables = tuple(
                dict(zip(saved[f"grams_{k}"].tolist(), saved[f"counts_{k}"].tolist(), strict=True))
                for k in range(1, order + 1)
            )
            alphabet, discounts = str(saved["alphabet"]), _read_discounts(saved["discounts"])
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CharLMError(
            f"{path} is not a character n-gram model saved by CharNGramLM.save ({error}); "
            "fit it again"
        ) from None
    return CharNGramLM(order, alphabet, tables, discounts)


def _read_discounts(saved: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    """``(D_k1, D_k2, D_k3)`` per order from a saved ``float64[order, 3]``; a file of one
    discount per order (``float64[order]``, the original Kneser-Ney) gives each three times."""
    rows = saved.reshape(len(saved), -1)
    if rows.shape[1] == 1:
        rows = np.repeat(rows, 3, axis=1)
    if rows.shape[1] != 3:
        raise ValueError(f"discounts of shape {saved.shape}")
    return tuple((float(a), float(b), float(c)) for a, b, c in rows.tolist())
