"""Where a recipe's text comes from and how it becomes tokens: :class:`DataConfig`."""

from __future__ import annotations

import dataclasses
from typing import Literal

from jaxllm.config import require
from jaxllm.data.clean import clean_corpus
from jaxllm.data.corpora import load_corpus
from jaxllm.data.splits import split_corpus


class EmptySplitError(ValueError):
    """A train, validation or test split holds no document."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it becomes tokens.

    Attributes:
      corpus: ``"pydoc"`` (bundled with Python), ``"shakespeare"`` (``make data``), or a path to
        a text file or a folder of text files.
      tokenizer: ``"char"`` or ``"bpe"`` (byte-level BPE).
      bpe_vocab_size: vocabulary size when training a BPE tokenizer.
      val_fraction, test_fraction: share of the corpus held out for validation and test.
    """

    corpus: str = "pydoc"
    tokenizer: Literal["char", "bpe"] = "char"
    bpe_vocab_size: int = 1024
    val_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self):
        require(
            self.tokenizer in ("char", "bpe"),
            f"DataConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}",
        )
        require(
            self.bpe_vocab_size >= 257,
            "DataConfig.bpe_vocab_size must be >= 257 (256 bytes + end of text)",
        )


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
