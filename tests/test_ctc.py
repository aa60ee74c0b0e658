"""CTC: the loss against a brute-force sum over every alignment and against PyTorch, greedy and
prefix-beam decoding against plain-Python references, and error rates against a Levenshtein
distance written here."""

import itertools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.ctc_decode import (
    PAD,
    Fusion,
    ctc_beam_decode,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
    to_lists,
)
from jaxllm.losses import check_ctc_feasible, ctc_feasible, ctc_loss
from jaxllm.metrics import error_rates

SEEDS = st.integers(0, 2**32 - 1)

# ------------------------------------------------------------------------------------------------
# Independent references
# ------------------------------------------------------------------------------------------------


def collapse(path: tuple[int, ...] | list[int], blank: int) -> tuple[int, ...]:
    """Merge runs of a symbol, then drop blanks."""
    return tuple(symbol for symbol, _ in itertools.groupby(path) if symbol != blank)


def labelling_probabilities(probs: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """p(labelling) for every labelling, by summing all ``vocab ** frames`` paths."""
    frames, vocab = probs.shape
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        p = math.prod(probs[t, s] for t, s in enumerate(path))
        key = collapse(path, blank)
        totals[key] = totals.get(key, 0.0) + p
    return totals


def softmax64(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    return np.exp(shifted) / np.sum(np.exp(shifted), axis=-1, keepdims=True)


def random_batch(seed: int, batch: int, frames: int, vocab: int, label_len: int, blank: int):
    """Logits, lengths and left-aligned labels of a random batch; labels are never blank, and
    the padding after them holds symbol ids too (one equal to the last label is no repeat)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, frames, vocab)).astype(np.float32) * 2
    frame_lengths = rng.integers(0, frames + 1, batch)
    label_lengths = rng.integers(0, label_len + 1, batch)
    symbols = np.array([s for s in range(vocab) if s != blank])
    labels = rng.choice(symbols, size=(batch, label_len))
    label_mask = np.arange(label_len)[None, :] < label_lengths[:, None]
    frame_mask = np.arange(frames)[None, :] < frame_lengths[:, None]
    return logits, frame_mask, frame_lengths, labels, label_mask, label_lengths


# ------------------------------------------------------------------------------------------------
# ctc_loss and ctc_feasible
# ------------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, blank=st.integers(0, 2))
def test_ctc_loss_equals_brute_force_sum_over_alignments(seed: int, blank: int) -> None:
    logits, frame_mask, frame_lengths, labels, label_mask, label_lengths = random_batch(
        seed, batch=4, frames=5, vocab=3, label_len=3, blank=blank
    )
    mean, per_utterance = ctc_loss(
        jnp.asarray(logits), jnp.asarray(frame_mask), jnp.asarray(labels),
        jnp.asarray(label_mask), blank_id=blank,
    )  # fmt: skip
    feasible = np.asarray(ctc_feasible(frame_lengths, labels, label_lengths))
    expected_nll = []
    for b in range(4):
        probs = softmax64(logits[b, : frame_lengths[b]])
        target = tuple(labels[b, : label_lengths[b]].tolist())
        p = labelling_probabilities(probs, blank).get(target, 0.0)
        assert feasible[b] == (p > 0)  # feasibility is exactly "some alignment exists"
        if p > 0:
            expected_nll.append(-math.log(p))
            np.testing.assert_allclose(per_utterance[b], -math.log(p), rtol=1e-4, atol=1e-4)
        else:
            assert per_utterance[b] > 9e4  # optax's stand-in for log 0 is -1e5
            expected_nll.append(float(per_utterance[b]))
    expected_mean = np.mean(np.array(expected_nll) / np.maximum(label_lengths, 1))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, blank=st.integers(0, 5))
def test_ctc_loss_matches_torch_mean_reduction(seed: int, blank: int) -> None:
    logits, frame_mask, frame_lengths, labels, label_mask, label_lengths = random_batch(
        seed, batch=5, frames=12, vocab=6, label_len=5, blank=blank
    )
    keep = np.asarray(ctc_feasible(frame_lengths, labels, label_lengths))  # torch: inf otherwise
    logits, frame_mask, frame_lengths = logits[keep], frame_mask[keep], frame_lengths[keep]
    labels, label_mask, label_lengths = labels[keep], label_mask[keep], label_lengths[keep]
    mean, per_utterance = ctc_loss(
        jnp.asarray(logits), jnp.asarray(frame_mask), jnp.asarray(labels),
        jnp.asarray(label_mask), blank_id=blank,
    )  # fmt: skip
    log_probs = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1).transpose(0, 1)
    args = (log_probs, torch.tensor(labels), torch.tensor(frame_lengths),
            torch.tensor(label_lengths))  # fmt: skip
    torch_mean = torch.nn.functional.ctc_loss(*args, blank=blank, reduction="mean")
    torch_each = torch.nn.functional.ctc_loss(*args, blank=blank, reduction="none")
    np.testing.assert_allclose(per_utterance, torch_each.numpy(), rtol=1e-4, atol=1e-4)
    if keep.any():
        np.testing.assert_allclose(mean, torch_mean.item(), rtol=1e-4, atol=1e-5)


def test_ctc_loss_gradients_match_torch() -> None:
    logits, frame_mask, frame_lengths, labels, label_mask, label_lengths = random_batch(
        3, batch=4, frames=10, vocab=5, label_len=3, blank=0
    )
    keep = np.asarray(ctc_feasible(frame_lengths, labels, label_lengths))
    labels = np.where(keep[:, None], labels, 7)
    label_lengths, label_mask = label_lengths * keep, label_mask & keep[:, None]

    def loss(x: jax.Array) -> jax.Array:
        return ctc_loss(x, jnp.asarray(frame_mask), jnp.asarray(labels), jnp.asarray(label_mask))[0]

    grad = jax.grad(loss)(jnp.asarray(logits))
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.ctc_loss(
        torch.log_softmax(x, -1).transpose(0, 1), torch.tensor(labels),
        torch.tensor(frame_lengths), torch.tensor(label_lengths), reduction="mean",
    ).backward()  # fmt: skip
    assert x.grad is not None
    np.testing.assert_allclose(grad, x.grad.numpy(), atol=1e-5)


def test_ctc_feasible_counts_adjacent_repeats_of_real_labels_only() -> None:
    labels = jnp.array([[1, 1, 2, 2], [1, 2, 1, 2], [1, 1, 1, 1], [3, 3, 3, 3]])
    label_lengths = jnp.array([4, 4, 2, 1])
    # needs: 4 + 2, 4 + 0, 2 + 1, 1 + 0 frames
    assert ctc_feasible(jnp.array([6, 4, 3, 1]), labels, label_lengths).tolist() == [True] * 4
    assert ctc_feasible(jnp.array([5, 3, 2, 0]), labels, label_lengths).tolist() == [False] * 4
    assert jax.jit(ctc_feasible)(jnp.array([6, 3, 3, 0]), labels, label_lengths).tolist() == [
        True, False, True, False,
    ]  # fmt: skip


def test_check_ctc_feasible_names_the_utterances_and_the_fix() -> None:
    labels = np.array([[1, 1], [1, 2], [2, 2]])
    check_ctc_feasible(np.array([3, 2, 3]), labels, np.array([2, 2, 2]))
    with pytest.raises(ValueError, match=r"\(0, 2\).*drop them.*sub-sample"):
        check_ctc_feasible(np.array([2, 2, 2]), labels, np.array([2, 2, 2]))


def test_ctc_loss_rejects_mismatched_shapes() -> None:
    logits = jnp.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="frame_mask bool"):
        ctc_loss(logits, jnp.ones((2, 4), bool), jnp.ones((2, 2), int), jnp.ones((2, 2), bool))
    with pytest.raises(ValueError, match="labels and label_mask"):
        ctc_loss(logits, jnp.ones((2, 5), bool), jnp.ones((3, 2), int), jnp.ones((3, 2), bool))


# ------------------------------------------------------------------------------------------------
# Greedy decoding
# ------------------------------------------------------------------------------------------------


def best_path(logits: np.ndarray, length: int, blank: int) -> list[int]:
    return list(collapse(np.argmax(logits[:length], axis=-1).tolist(), blank))


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, blank=st.integers(0, 3))
def test_greedy_decode_is_the_collapsed_best_path(seed: int, blank: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(4, 9, 4)).astype(np.float32)
    logits[:, :, blank] += rng.uniform(-1, 1)  # vary how often the blank wins
    lengths = rng.integers(0, 10, 4)
    tokens, found = ctc_greedy_decode(jnp.asarray(logits), jnp.asarray(lengths), blank_id=blank)
    expected = [best_path(logits[b], int(lengths[b]), blank) for b in range(4)]
    assert to_lists(tokens, found) == expected
    assert tokens.dtype == jnp.int32 and tokens.shape == (4, 9)
    assert all((np.asarray(tokens[b, found[b] :]) == PAD).all() for b in range(4))
    jitted = jax.jit(ctc_greedy_decode, static_argnames="blank_id")
    jit_tokens, jit_found = jitted(jnp.asarray(logits), jnp.asarray(lengths), blank_id=blank)
    np.testing.assert_array_equal(jit_tokens, tokens)
    np.testing.assert_array_equal(jit_found, found)
    beyond = np.arange(9)[None, :, None] >= lengths[:, None, None]
    noisy = np.where(beyond, rng.normal(size=logits.shape) * 10, logits).astype(np.float32)
    noisy_tokens, _ = jitted(jnp.asarray(noisy), jnp.asarray(lengths), blank_id=blank)
    np.testing.assert_array_equal(noisy_tokens, tokens)


def test_greedy_decode_merges_repeats_but_not_across_a_blank() -> None:
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2, 3]  # 'a a _ a b b _ _ b c' -> a a b b c
    logits = jax.nn.one_hot(jnp.array([path]), 4) * 5.0
    tokens, lengths = ctc_greedy_decode(logits, jnp.array([10]))
    assert to_lists(tokens, lengths) == [[1, 1, 2, 2, 3]]


def test_decoders_want_a_batch_axis() -> None:
    with pytest.raises(ValueError, match="add a batch axis"):
        ctc_greedy_decode(jnp.zeros((5, 3)), jnp.array([5]))
    with pytest.raises(ValueError, match="add a batch axis"):
        ctc_beam_decode(np.zeros((5, 3)), np.array([5]))


# ------------------------------------------------------------------------------------------------
# Prefix beam search
# ------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, frames=st.integers(1, 5), vocab=st.integers(2, 3), blank=st.integers(0, 2))
def test_prefix_beam_search_with_a_full_beam_is_exact(
    seed: int, frames: int, vocab: int, blank: int
) -> None:
    blank = blank % vocab
    logits = np.random.default_rng(seed).normal(size=(frames, vocab)) * 2
    probs = softmax64(logits)
    exact = labelling_probabilities(probs, blank)
    results = ctc_prefix_beam_search(np.log(probs), beam_size=100, blank_id=blank)
    # Every labelling, each scored by the sum over its alignments.
    assert {tuple(labels) for labels, _ in results} == set(exact)
    for labels, score in results:
        np.testing.assert_allclose(score, math.log(exact[tuple(labels)]), atol=1e-5)
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    best = max(exact.values())
    assert math.isclose(math.exp(scores[0]), best, rel_tol=1e-9)
    one = ctc_prefix_beam_search(np.log(probs), beam_size=1, blank_id=blank)
    assert len(one) == 1 and exact[tuple(one[0][0])] <= best * (1 + 1e-9)
    narrow = ctc_prefix_beam_search(np.log(probs), beam_size=3, blank_id=blank)
    assert len(narrow) <= 3 and [s for _, s in narrow] == sorted([s for _, s in narrow])[::-1]


class BigramScorer:
    """A language model over label ids whose next-label distribution depends on the last label
    only: random, normalised over the labels and the end, drawn from ``seed``."""

    def __init__(self, seed: int, vocab: int, blank: int):
        rng = np.random.default_rng(seed)
        self.blank = blank
        logits = rng.normal(size=(vocab + 1, vocab + 1)) * 2  # row: last label (vocab: none)
        logits[:, blank] = -np.inf  # the blank is never a label
        self.table = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    def row(self, prefix: tuple[int, ...]) -> np.ndarray:
        return self.table[prefix[-1] if prefix else -1]

    def next_log_probs(self, prefix: tuple[int, ...]) -> np.ndarray:
        return self.row(prefix)[:-1]

    def end_log_prob(self, prefix: tuple[int, ...]) -> float:
        return float(self.row(prefix)[-1])

    def log_prob(self, labels: tuple[int, ...]) -> float:
        """log P(labels, then the end), label by label."""
        steps = [self.row(labels[:i])[label] for i, label in enumerate(labels)]
        return float(sum(steps) + self.end_log_prob(labels))


@settings(max_examples=25, deadline=None)
@given(
    seed=SEEDS, frames=st.integers(1, 4), vocab=st.integers(2, 3), blank=st.integers(0, 2),
    weight=st.floats(0.1, 2.0), bonus=st.floats(-1.0, 2.0),
)  # fmt: skip
def test_fused_beam_search_with_a_full_beam_ranks_every_labelling_exactly(
    seed: int, frames: int, vocab: int, blank: int, weight: float, bonus: float
) -> None:
    blank = blank % vocab
    probs = softmax64(np.random.default_rng(seed).normal(size=(frames, vocab)) * 2)
    lm = BigramScorer(seed + 1, vocab, blank)
    exact = {
        labels: math.log(p) + weight * lm.log_prob(labels) + bonus * len(labels)
        for labels, p in labelling_probabilities(probs, blank).items()
    }
    fusion = Fusion(lm, weight, bonus)
    results = ctc_prefix_beam_search(np.log(probs), beam_size=100, blank_id=blank, fusion=fusion)
    assert {tuple(labels) for labels, _ in results} == set(exact)
    for labels, score in results:
        np.testing.assert_allclose(score, exact[tuple(labels)], atol=1e-6)
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)


def test_fusion_of_weight_zero_is_the_plain_search_and_a_language_model_breaks_a_tie() -> None:
    log_probs = np.asarray(jax.nn.log_softmax(jax.random.normal(jax.random.key(1), (9, 4)) * 3))
    lm = BigramScorer(0, 4, 0)
    plain = ctc_prefix_beam_search(log_probs, beam_size=5)
    assert ctc_prefix_beam_search(log_probs, beam_size=5, fusion=Fusion(lm, 0.0, 0.0)) == plain
    # One frame, "a" and "b" equally likely: the language model decides.
    tie = np.log(np.array([[0.1, 0.45, 0.45]]))
    prefers_b = BigramScorer(0, 3, 0)
    prefers_b.table[-1, 1:3] = np.log([0.1, 0.8])
    (labels, _), *_ = ctc_prefix_beam_search(tie, beam_size=3, fusion=Fusion(prefers_b, 1.0))
    assert labels == [2]
    decoded = ctc_beam_decode(tie[None], np.array([1]), beam_size=3, fusion=Fusion(prefers_b, 1.0))
    assert decoded == [[2]]


def test_prefix_beam_search_beats_greedy_where_alignments_add_up() -> None:
    # Best path: blank, blank (0.6 · 0.6 = 0.36 for the empty labelling); but "a" has
    # 1 - 0.36 - p(b-paths) = 0.4 · 0.4 + 2 · 0.6 · 0.4 = 0.64 over three alignments.
    probs = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]]) + 1e-12
    probs /= probs.sum(axis=1, keepdims=True)
    (labels, score), *_ = ctc_prefix_beam_search(np.log(probs), beam_size=4)
    assert labels == [1] and math.isclose(math.exp(score), 0.64, rel_tol=1e-6)
    tokens, lengths = ctc_greedy_decode(jnp.log(jnp.asarray(probs))[None], jnp.array([2]))
    assert to_lists(tokens, lengths) == [[]]


def test_pruning_to_all_symbols_changes_nothing_and_keeps_the_blank() -> None:
    log_probs = np.asarray(jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (8, 5)) * 3))
    full = ctc_prefix_beam_search(log_probs, beam_size=4)
    assert ctc_prefix_beam_search(log_probs, beam_size=4, prune_top_k=5) == full
    # Only each frame's likeliest symbol and the blank: the empty labelling (blank at every
    # frame) is still found, and nothing but those symbols appears.
    pruned = ctc_prefix_beam_search(log_probs, beam_size=1000, prune_top_k=1, blank_id=4)
    found = {tuple(labels) for labels, _ in pruned}
    assert () in found
    assert set(itertools.chain(*found)) <= set(np.argmax(log_probs, axis=1).tolist()) - {4}


def test_beam_decode_searches_each_row_up_to_its_length() -> None:
    logits = jax.random.normal(jax.random.key(1), (3, 7, 4)) * 3
    lengths = np.array([7, 3, 0])
    decoded = ctc_beam_decode(logits, lengths, beam_size=5)
    log_probs = np.asarray(jax.nn.log_softmax(logits))
    for row, n, labels in zip(log_probs, lengths, decoded, strict=True):
        assert labels == ctc_prefix_beam_search(row[:n], beam_size=5)[0][0]
    assert decoded[2] == []
    noisy = jnp.where(jnp.arange(7)[None, :, None] >= lengths[:, None, None], -logits, logits)
    assert ctc_beam_decode(noisy, lengths, beam_size=5) == decoded


def test_beam_search_rejects_logits_and_batches() -> None:
    with pytest.raises(ValueError, match="log_softmax"):
        ctc_prefix_beam_search(np.ones((4, 3)))
    with pytest.raises(ValueError, match="ctc_beam_decode"):
        ctc_prefix_beam_search(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="blank_id"):
        ctc_prefix_beam_search(np.log(np.full((4, 3), 1 / 3)), blank_id=3)


# ------------------------------------------------------------------------------------------------
# Error rates
# ------------------------------------------------------------------------------------------------


def levenshtein(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


TEXT = st.text(alphabet="ab c ", max_size=12)


@settings(max_examples=50, deadline=None)
@given(pairs=st.lists(st.tuples(TEXT.filter(str.strip), TEXT), min_size=1, max_size=5))
def test_error_rates_are_total_edits_over_total_reference_length(
    pairs: list[tuple[str, str]],
) -> None:
    references, hypotheses = [r for r, _ in pairs], [h for _, h in pairs]
    char_edits = sum(levenshtein(list(r.strip()), list(h.strip())) for r, h in pairs)
    word_edits = sum(levenshtein(r.split(), h.split()) for r, h in pairs)
    chars, words = sum(len(r.strip()) for r in references), sum(len(r.split()) for r in references)
    rates = error_rates(references, hypotheses)
    assert (rates["char_errors"], rates["reference_chars"]) == (char_edits, chars)
    assert (rates["word_errors"], rates["reference_words"]) == (word_edits, words)
    assert math.isclose(rates["cer"], char_edits / chars)
    assert math.isclose(rates["wer"], word_edits / words)
    assert rates["word_errors"] == sum(
        rates[f"word_{kind}"] for kind in ("substitutions", "deletions", "insertions")
    )


def test_error_rates_by_hand() -> None:
    assert error_rates(["kitten"], ["sitting"])["cer"] == 0.5  # k->s, e->i, +g: 3 / 6
    rates = error_rates(["the cat sat"], ["the cat sat down"])
    assert rates["wer"] == 1 / 3 and rates["word_insertions"] == 1
    # Corpus level: 1 error in 5 words, not the mean of 1.0 and 0.0.
    assert error_rates(["a", "b c d e"], ["x", "b c d e"])["wer"] == 0.2
    assert error_rates(["ab"], [""])["cer"] == 1.0 and error_rates(["a"], ["a b c"])["wer"] == 2.0


def test_error_rates_name_the_problem() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="reference 1 is empty.*drop the utterance"):
        error_rates(["a", "  ", "c"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="lists of strings"):
        error_rates("abc", "abd")  # type: ignore[arg-type]


def test_error_rates_without_jiwer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jiwer", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxllm\[speech\]'"):
        error_rates(["a"], ["a"])
