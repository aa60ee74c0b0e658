"""Where a recipe's text comes from and how it becomes tokens: :class:`DataConfig`."""

from __future__ import annotations

import dataclasses
from typing import Literal

from jaxllm.config import require
from jaxllm.data.clean import clean_corpus
from jaxllm.data.corpora import load_corpus
from jaxllm.data.splits import EmptySplitError, split_corpus


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it becomes tokens.

    Attributes:
      corpus: ``"pydoc"`` (bundled with Python), ``"shakespeare"`` (``make data``), or a path to
        a text file or a folder of text files.
      tokenizer: ``"char"``, ``"bpe"`` (byte-level BPE) or ``"wordpiece"`` (BERT's).
      bpe_vocab_size: vocabulary size when training a BPE tokenizer.
      wordpiece_vocab_size: vocabulary size when training a WordPiece tokenizer.
      val_fraction, test_fraction: share of the corpus held out for validation and test.
    """

    corpus: str = "pydoc"
    tokenizer: Literal["char", "bpe", "wordpiece"] = "char"
    bpe_vocab_size: int = 1024
    wordpiece_vocab_size: int = 8192
    val_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self):
        require(
            self.tokenizer in ("char", "bpe", "wordpiece"),
            f"DataConfig.tokenizer must be 'char', 'bpe' or 'wordpiece', got {self.tokenizer!r}",
        )
        require(
            self.wordpiece_vocab_size > 5,
            "DataConfig.wordpiece_vocab_size must be > 5 (the 5 special tokens and more)",
        )
        require(
            self.bpe_vocab_size >= 257,
            "DataConfig.bpe_vocab_size must be >= 257 (256 bytes + end of text)",
        )

    @property
    def vocab_size(self) -> int | None:
        """The vocabulary size to train ``tokenizer`` with (``None``: a char tokenizer's is its
        alphabet)."""
        sizes = {"bpe": self.bpe_vocab_size, "wordpiece": self.wordpiece_vocab_size}
        return sizes.get(self.tokenizer)


def load_splits(config: DataConfig) -> tuple[list[str], list[str], list[str]]:
    """The corpus as clean documents, split into (train, validation, test).

    Raises:
      EmptySplitError: a split came out empty (the corpus is too small for the fractions).
    """
    docs = clean_corpus(load_corpus(config.corpus))
    splits = split_corpus(
        docs, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=0
    )
    empty = [
        name
        for name, split in zip(("train", "validation", "test"), splits, strict=True)
        if not split
    ]
    if empty:
        raise EmptySplitError(
            f"the {' and '.join(empty)} split of corpus {config.corpus!r} is "
            "empty; use a larger corpus or other val/test fractions"
        )
    return splits
