"""The character n-gram model against modified interpolated Kneser-Ney written here from its
definition (continuation counts found by scanning the text), distributions that sum to one,
saving and loading, and bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.classic.char_ngram import (
    CharLMError,
    fit_char_ngram,
    load_char_ngram,
)

ALPHABET = "ab c"
SENTENCES = st.lists(st.text(alphabet=ALPHABET, max_size=12), min_size=1, max_size=6)

# ------------------------------------------------------------------------------------------------
# An independent reference: the formula read literally, every count found by scanning the text
# ------------------------------------------------------------------------------------------------

START, END = "<s>", "</s>"


def padded(sentences: list[str], order: int) -> list[list[str]]:
    return [[START] * (order - 1) + list(s) + [END] for s in sentences]


def occurrences(sequences: list[list[str]], gram: tuple[str, ...]) -> int:
    n = len(gram)
    return sum(tuple(seq[i : i + n]) == gram for seq in sequences for i in range(len(seq) - n + 1))


def predecessors(sequences: list[list[str]], gram: tuple[str, ...]) -> int:
    """How many distinct tokens come right before ``gram`` somewhere in the text."""
    n = len(gram)
    return len(
        {seq[i - 1] for seq in sequences for i in range(1, len(seq) - n + 1)
         if tuple(seq[i : i + n]) == gram}
    )  # fmt: skip


def level_count(sequences, gram, order):
    """Occurrences at the highest order and for a gram at a sentence's start (as KenLM);
    below, how many distinct tokens precede it."""
    if len(gram) == order or gram[0] == START:
        return occurrences(sequences, gram)
    return predecessors(sequences, gram)


def reference_discounts(sequences, k, order):
    """Chen and Goodman's D1, D2, D3+ for the k-grams, from their counts counted 1-4 times."""
    grams = {tuple(seq[i - k + 1 : i + 1]) for seq in sequences for i in range(order - 1, len(seq))}
    counts = [level_count(sequences, g, order) for g in grams]
    n = {i: counts.count(i) for i in range(1, 5)}
    y = n[1] / (n[1] + 2 * n[2]) if n[1] + n[2] else 0.5
    discounts = {}
    for i in (1, 2, 3):
        estimate = i - (i + 1) * y * n[i + 1] / n[i] if n[i] and n[i + 1] else i / 2
        discounts[i] = min(max(estimate, 0.05), i - 0.05)
    return discounts


def reference_prob(sentences, order, history: str, symbol: str) -> float:
    sequences = padded(sentences, order)
    symbols = [*ALPHABET, END]
    context = ([START] * (order - 1) + list(history))[len(history) :]
    p = 1.0 / len(symbols)
    for k in range(1, order + 1):
        h = tuple(context[len(context) - (k - 1) :]) if k > 1 else ()
        counts = {w: level_count(sequences, (*h, w), order) for w in symbols}
        total = sum(counts.values())
        if total == 0:
            continue
        d = reference_discounts(sequences, k, order)
        gamma = sum(d[min(c, 3)] for c in counts.values() if c > 0)
        c = counts[symbol]
        p = (max(c - d[min(c, 3)], 0) if c else 0) + gamma * p
        p /= total
    return p


@settings(max_examples=30, deadline=None)
@given(sentences=SENTENCES, order=st.integers(1, 4), history=st.text(alphabet=ALPHABET, max_size=5))
def test_probabilities_equal_kneser_ney_from_its_definition(sentences, order, history):
    lm = fit_char_ngram(sentences, order=order, alphabet=ALPHABET)
    got = np.exp(lm.log_probs(history))
    want = [reference_prob(sentences, order, history, s) for s in [*ALPHABET, END]]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert math.isclose(got.sum(), 1.0, rel_tol=1e-12)


def test_a_text_with_grams_seen_one_to_four_times_uses_three_estimated_discounts():
    sentences = ["ab ba", "abc", "c a b", "ba", "aab", "cab c"] * 2 + ["abc", "ba ab", "a"] * 3
    lm = fit_char_ngram(sentences, order=3, alphabet=ALPHABET)
    sequences = padded(sentences, 3)
    for k in (1, 2, 3):
        assert lm.discounts[k - 1] == pytest.approx(
            tuple(reference_discounts(sequences, k, 3).values()), rel=1e-12
        )
    assert len(set(lm.discounts[2])) == 3  # estimated, not the fallback i / 2
    for history in ("", "a", "ab", "c a", "bb"):
        want = [reference_prob(sentences, 3, history, s) for s in [*ALPHABET, END]]
        np.testing.assert_allclose(np.exp(lm.log_probs(history)), want, rtol=1e-12)


def test_a_text_seen_often_is_likely_and_its_end_predicted():
    lm = fit_char_ngram(["abc"] * 20 + ["cab"], order=3, alphabet="abc")
    assert np.exp(lm.log_probs("ab"))[2] > 0.8  # c after "ab"
    assert np.exp(lm.log_probs("abc"))[3] > 0.8  # then the end
    assert np.all(np.exp(lm.log_probs("cc")) > 0)  # an unseen history still gives every symbol
    assert lm.sentence_log_prob("abc") > lm.sentence_log_prob("acb")


def test_perplexity_is_per_symbol_with_the_end():
    sentences = ["ab ba", "abc", "c a b"]
    lm = fit_char_ngram(sentences, order=3, alphabet=ALPHABET)
    total = sum(
        math.log(reference_prob(sentences, 3, s[:i], sym))
        for s in ["ab", "ca"]
        for i, sym in enumerate([*s, END])
    )
    assert lm.perplexity(["ab", "ca"]) == pytest.approx(math.exp(-total / 6), rel=1e-12)


def test_save_and_load_give_the_same_model(tmp_path):
    lm = fit_char_ngram(
        ["to be or not to be", "that is the question"], order=5, alphabet=" abehinoqrstu"
    )
    loaded = load_char_ngram(lm.save(tmp_path / "lm.npz"))
    assert (loaded.order, loaded.alphabet, loaded.discounts) == (
        lm.order,
        lm.alphabet,
        lm.discounts,
    )
    for history in ("", "to b", "that is th", "zz"[:0]):
        np.testing.assert_array_equal(loaded.log_probs(history), lm.log_probs(history))
    with np.load(tmp_path / "lm.npz") as saved:  # one discount per order: original Kneser-Ney
        arrays = dict(saved) | {"discounts": saved["discounts"][:, 0]}
    np.savez(tmp_path / "one_discount.npz", **arrays)
    original = load_char_ngram(tmp_path / "one_discount.npz")
    assert original.discounts == tuple((d[0],) * 3 for d in lm.discounts)
    assert math.isclose(np.exp(original.log_probs("to b")).sum(), 1.0, rel_tol=1e-12)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(CharLMError, match="not a character n-gram model"):
        load_char_ngram(tmp_path / "bad.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(CharLMError, match="not a character n-gram model"):
        load_char_ngram(tmp_path / "empty.npz")


def test_a_sentence_start_keeps_its_counts_and_callers_cannot_change_the_model():
    lm = fit_char_ngram(["a b"] * 50 + ["b a"], order=3, alphabet="ab ")
    assert lm.counts[1]["\x02a"] == 50 and lm.counts[1]["\x02b"] == 1  # not 1 and 1
    first = lm.log_probs("")
    with pytest.raises(ValueError, match="read-only"):
        first[:] = 0.0
    assert np.exp(first)[0] > 0.9  # "a" starts almost every sentence


def test_bad_input_names_the_problem():
    with pytest.raises(CharLMError, match=r"sentence 1 .*\['X'\].*normalise"):
        fit_char_ngram(["ab", "aXb"], order=2, alphabet="ab")
    with pytest.raises(CharLMError, match="at least one sentence"):
        fit_char_ngram([], order=2, alphabet="ab")
    with pytest.raises(CharLMError, match="order must be >= 1"):
        fit_char_ngram(["ab"], order=0, alphabet="ab")
    with pytest.raises(CharLMError, match="distinct characters"):
        fit_char_ngram(["ab"], order=2, alphabet="aab")
    with pytest.raises(CharLMError, match="marks"):
        fit_char_ngram(["ab"], order=2, alphabet="ab\x03")
    lm = fit_char_ngram(["ab"], order=2, alphabet="ab")
    with pytest.raises(CharLMError, match=r"\['c'\], outside the model's alphabet"):
        lm.log_probs("abc")
    with pytest.raises(CharLMError, match="at least one sentence"):
        lm.perplexity([])
