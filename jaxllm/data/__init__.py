"""Data: corpora -> clean documents -> splits -> tokens -> LM batches.

Typical use::

    docs = clean_corpus(load_corpus("pydoc"))
    train, val, test = split_corpus(docs, seed=0)
    tokenizer = train_tokenizer("bpe", train, vocab_size=1024)
    stream = encode_corpus(tokenizer, train)
    batch = lm_batch(stream, seed=0, step=0, batch_size=32, seq_len=128)
"""

from jaxllm.data.batches import encode_corpus, eval_batches, lm_batch, pad_sequences
from jaxllm.data.clean import clean_corpus, deduplicate, normalize_text
from jaxllm.data.corpora import (
    NAMED_CORPORA,
    EmptyCorpusError,
    load_corpus,
    load_default_corpus,
    load_shakespeare,
    load_text,
    strip_gutenberg_boilerplate,
)
from jaxllm.data.splits import split_corpus
from jaxllm.data.tokenizers import (
    DEFAULT_BPE_VOCAB_SIZE,
    DOCUMENT_SEPARATOR,
    EOS_TOKEN,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    check_token_ids,
    load_tokenizer,
    train_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "DEFAULT_BPE_VOCAB_SIZE",
    "DOCUMENT_SEPARATOR",
    "EOS_TOKEN",
    "EmptyCorpusError",
    "NAMED_CORPORA",
    "Tokenizer",
    "check_token_ids",
    "clean_corpus",
    "deduplicate",
    "encode_corpus",
    "eval_batches",
    "lm_batch",
    "load_corpus",
    "load_default_corpus",
    "load_shakespeare",
    "load_text",
    "load_tokenizer",
    "normalize_text",
    "pad_sequences",
    "split_corpus",
    "strip_gutenberg_boilerplate",
    "train_tokenizer",
]
