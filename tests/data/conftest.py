"""Shared, session-scoped data fixtures: the default corpus and tokenizers trained once."""

import pytest

from jaxllm.data import (
    BPETokenizer,
    CharTokenizer,
    WordPieceTokenizer,
    clean_corpus,
    load_default_corpus,
)


@pytest.fixture(scope="session")
def pydoc_docs() -> list[str]:
    return clean_corpus(load_default_corpus())


@pytest.fixture(scope="session")
def char_tokenizer(pydoc_docs) -> CharTokenizer:
    return CharTokenizer.train(pydoc_docs)


@pytest.fixture(scope="session")
def bpe_tokenizer(pydoc_docs) -> BPETokenizer:
    return BPETokenizer.train(pydoc_docs, vocab_size=512)


@pytest.fixture(scope="session")
def wordpiece_tokenizer(pydoc_docs) -> WordPieceTokenizer:
    return WordPieceTokenizer.train(pydoc_docs, vocab_size=1000)
