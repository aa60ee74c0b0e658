"""What a text classifier reads: labelled texts as padded ids, from a word vocabulary, from
TF-IDF features or from a BERT's WordPiece tokenizer, and embedding tables started from
word2vec vectors."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxllm.classic import TfidfConfig, fit_vectorizer
from jaxllm.classic.tfidf import Vectorizer
from jaxllm.data import EncodedTexts, LabelledTexts, WordPieceTokenizer, WordVocab, split_words
from jaxllm.data.json_files import json_fingerprint


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedSplit:
    """A labelled split as a classifier's input.

    Attributes:
      ids: int32[n, T] padded word or feature ids; lengths: int32[n] (>= 1).
      labels: int64[n] class ids.
      weights: float32[n, T] TF-IDF values of the features (``None`` for words).
      truncated, empty, unknown_fraction: see :class:`jaxllm.data.EncodedTexts` (for TF-IDF:
        documents with no known term count as empty).
    """

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None
    truncated: int = 0
    empty: int = 0
    unknown_fraction: float = 0.0

    def __len__(self) -> int:
        return len(self.lengths)

    def report(self) -> dict[str, float]:
        return {
            "examples": len(self),
            "truncated": self.truncated,
            "empty": self.empty,
            "unknown_fraction": round(self.unknown_fraction, 4),
        }


def encode_words(vocab: WordVocab, data: LabelledTexts, max_len: int) -> EncodedSplit:
    """``data``'s texts as word ids of ``vocab``, each cut to ``max_len`` words."""
    encoded: EncodedTexts = vocab.encode(data.texts, max_len)
    return EncodedSplit(
        encoded.ids,
        encoded.lengths,
        data.labels,
        truncated=encoded.truncated,
        empty=encoded.empty,
        unknown_fraction=encoded.unknown_fraction,
    )


def encode_pieces(tokenizer: WordPieceTokenizer, data: LabelledTexts, max_len: int) -> EncodedSplit:
    """``data``'s texts as WordPiece ids framed ``[CLS] ... [SEP]``, each cut to ``max_len``
    ids in all (``truncated`` counts the texts that lost pieces; an ``empty`` text is
    ``[CLS] [SEP]``; ``unknown_fraction`` is the share of ``[UNK]`` among the texts' pieces)."""
    if isinstance(data.texts, str):
        raise TypeError("encode_pieces takes a sequence of texts, not one string")
    encodings = tokenizer.hf_tokenizer.encode_batch(list(data.texts), add_special_tokens=False)
    pieces = [e.ids for e in encodings]
    rows = [tokenizer.with_specials(np.asarray(p, np.int32), max_len) for p in pieces]
    lengths = np.array([len(row) for row in rows], np.int32)
    ids = np.full((len(rows), int(lengths.max(initial=2))), tokenizer.pad_id, np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    kept = int(lengths.sum()) - 2 * len(rows)
    unknown = int(np.sum(ids == tokenizer.unk_id))
    return EncodedSplit(
        ids,
        lengths,
        data.labels,
        truncated=sum(1 for p in pieces if len(p) > max_len - 2),
        empty=sum(1 for p in pieces if not p),
        unknown_fraction=unknown / max(kept, 1),
    )


def tfidf_vectorizer(texts: Sequence[str], *, ngram_max: int, min_df: int) -> Vectorizer:
    """The TF-IDF features of the classification table (sublinear tf, uni- to n-grams)."""
    config = TfidfConfig(ngram_range=(1, ngram_max), min_df=min_df, sublinear_tf=True)
    return fit_vectorizer(texts, config)


def vectorizer_fingerprint(vectorizer: Vectorizer) -> str:
    """A hash of the feature names in column order."""
    return json_fingerprint({"terms": list(vectorizer.terms)})


def encode_tfidf(vectorizer: Vectorizer, data: LabelledTexts) -> EncodedSplit:
    """``data``'s texts as their non-zero TF-IDF features: ids are feature columns (sorted),
    weights their values; a text with no known term is one zero-weight feature."""
    X = vectorizer.transform(data.texts)
    rows, cols = np.asarray(X.indices[:, 0]), np.asarray(X.indices[:, 1])
    values = np.asarray(X.data, np.float32)
    order = np.lexsort((cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    n = len(data)
    counts = np.bincount(rows, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    width = int(max(counts.max(initial=0), 1))
    ids = np.zeros((n, width), np.int32)
    weights = np.zeros((n, width), np.float32)
    slot = np.arange(len(rows)) - starts[rows]
    ids[rows, slot], weights[rows, slot] = cols, values
    empty = int(np.sum(counts == 0))
    return EncodedSplit(ids, np.maximum(counts, 1).astype(np.int32), data.labels, weights, 0, empty)


def word2vec_table(
    vocab: WordVocab, words: Sequence[str], vectors: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, int]:
    """``table`` (float[len(vocab), d], a fresh embedding table) with the rows of the words
    that have a vector replaced by it, all scaled by one factor so that their standard
    deviation is the table's; returns the table and how many words got a vector.

    Args:
      vocab: the classifier's words; words, vectors: float[n, d] word2vec vectors."""
    if vectors.shape[1] != table.shape[1]:
        raise ValueError(
            f"word2vec vectors have {vectors.shape[1]} dimensions but the model's embeddings "
            f"{table.shape[1]}; set the model's embed_dim to {vectors.shape[1]}"
        )
    index = {w: i for i, w in enumerate(words)}
    rows = [(i, index[w]) for i, w in enumerate(vocab.words) if w in index]
    out = np.array(table, np.float32)
    if rows:
        mine, theirs = map(np.array, zip(*rows, strict=True))
        found = vectors[theirs]
        out[mine] = found * (table.std() / max(float(found.std()), 1e-12))
    return out, len(rows)


def word2vec_sentences(texts: Sequence[str]) -> list[list[str]]:
    """The texts as word2vec's input: each text's words (:func:`jaxllm.data.split_words`)."""
    return [words for text in texts if (words := split_words(text))]
