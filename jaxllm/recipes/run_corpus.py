"""The corpus a token-stream run (a language model, a masked language model) trains on.

Two ways, one result (a test checks that both give the same streams):

* **in memory** (the default): the corpus's documents are cleaned and split
  (:func:`~jaxllm.data.load_splits`), a tokenizer is trained on them and each split is encoded
  into one ``int32`` stream: about 30 bytes of memory a character;
* **token files** (``token_cache``, a folder): a corpus of one text file is cleaned, split
  and tokenised in pieces into memory-mapped token files there
  (:class:`~jaxllm.data.file_corpus.FileCorpus`), nanoGPT's ``train.bin``: a corpus of any
  size trains in little memory, and later runs on the same file map the files made by the
  first. Process 0 makes them; the other processes then find them (a shared file system) or
  make their own.

A resumed run uses its own ``tokenizer.json``, checked against the fingerprint its checkpoint
recorded, and :func:`run_metadata` checks that the streams are those it trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import jax
import numpy as np

from jaxllm.config import ConfigError
from jaxllm.data import (
    DataConfig,
    Tokenizer,
    encode_corpus,
    load_splits,
    load_tokenizer,
    train_tokenizer,
)
from jaxllm.data.file_corpus import FileCorpus
from jaxllm.recipes.run_folder import RunConfig, on_every_process
from jaxllm.train import Checkpointer, CheckpointError
from jaxllm.train.processes import check_same_settings

T = TypeVar("T")
# Tokens hashed at a time by run_metadata (16 MB of int32).
_HASH_CHUNK = 1 << 22


class TokenStreamConfig(RunConfig, Protocol):
    """What this module needs of a recipe's config besides :class:`RunConfig`'s."""

    @property
    def data(self) -> DataConfig: ...

    @property
    def token_cache(self) -> str: ...


class RunCorpus:
    """The corpus of a run of ``config``: its tokenizer, then its train, validation and test
    token streams.

    Raises (on construction):
      ConfigError: ``token_cache`` is set and the corpus is not one text file.
      FileNotFoundError, EmptyCorpusError, EmptySplitError, CorpusEncodingError: as
        :func:`~jaxllm.data.load_splits` raises them.
    """

    def __init__(self, config: TokenStreamConfig):
        self.config = config
        if config.token_cache:
            self.file: FileCorpus | None = FileCorpus.open(config.data, config.token_cache)
            self.splits: tuple[list[str], ...] = ()
        else:
            self.file, self.splits = None, load_splits(config.data)

    def tokenizer(self, checkpointer: Checkpointer) -> Tokenizer:
        """A new tokenizer of ``data.tokenizer``'s kind, or on resume the run's saved
        ``tokenizer.json``, checked against the fingerprint its checkpoint recorded.

        A character alphabet is built from every split (as nanoGPT's, so no text has a
        character outside it); BPE and WordPiece learn from the training split and encode any
        text.

        Raises:
          CheckpointError: on resume, the tokenizer is not the one the checkpoint was trained
            with.
        """
        config = self.config
        if config.resume:
            return saved_tokenizer(config.run_dir / "tokenizer.json", checkpointer)
        if self.file is not None:
            return _process_0_first(self.file.tokenizer)
        data = config.data
        char = data.tokenizer == "char"
        texts = [doc for split in self.splits for doc in split] if char else self.splits[0]
        return train_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size)

    def tokens(self, tokenizer: Tokenizer) -> list[np.ndarray]:
        """The train, validation and test streams: ``int32[n]`` arrays in memory, or
        ``uint16[n]`` / ``uint32[n]`` maps of token files.

        Raises:
          CheckpointError: on resume, the corpus holds text the run's tokenizer cannot encode
            (characters a character alphabet lacks): it is not the corpus the run was trained
            on.
        """
        try:
            if (file_corpus := self.file) is not None:
                files = _process_0_first(lambda: file_corpus.token_files(tokenizer))
                return [file.tokens() for file in files]
            return [encode_corpus(tokenizer, docs) for docs in self.splits]
        except ValueError as e:
            if not self.config.resume or isinstance(e, ConfigError):  # e.g. another process's
                raise
            raise CheckpointError(
                f"the corpus differs from the one the run in {self.config.run_dir} was trained "
                f"on: {e} Resume with the original text, or start a new run with another --name"
            ) from e


def saved_tokenizer(path: Path, checkpointer: Checkpointer) -> Tokenizer:
    """The tokenizer a resumed run saved at ``path``.

    Raises:
      CheckpointError: it is not the one the newest checkpoint was trained with.
    """
    tokenizer = load_tokenizer(path)
    recorded = checkpointer.newest_readable_metadata().get("tokenizer_fingerprint")
    if recorded != tokenizer.fingerprint():
        raise CheckpointError(
            f"the tokenizer in {path} does not match the one the checkpoint was trained with; "
            "restore the run's original tokenizer.json"
        )
    return tokenizer


def _process_0_first(make: Callable[[], T]) -> T:
    """``make()`` on process 0, then on the others, which then find process 0's files where
    they share its file system rather than make them alongside it. Fails on every process if
    it fails on one."""
    if jax.process_count() == 1:
        return make()
    what = "make the token files"
    if jax.process_index() == 0:
        made = on_every_process(make, what)
        return on_every_process(lambda: made, what)
    on_every_process(lambda: None, what)  # process 0 makes them meanwhile
    return on_every_process(make, what)


def stream_fingerprint(tokens: list[Any]) -> str:
    """A fingerprint of token streams' ids (whatever their integer type), read a chunk at a
    time, so a mapped token file is never copied whole."""
    digest = hashlib.sha256()
    for split in tokens:
        for start in range(0, len(split), _HASH_CHUNK):
            digest.update(np.asarray(split[start : start + _HASH_CHUNK]).astype("<i4").tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:32]


def run_metadata(
    config: RunConfig, checkpointer: Checkpointer, tokenizer: Tokenizer, tokens: list[Any]
) -> dict:
    """What a token-stream run's checkpoints record of its data: the tokenizer's fingerprint,
    the vocabulary size, and a fingerprint of the encoded ``tokens`` (train, validation and
    test), so that a resumed run can tell that its corpus changed.

    Raises:
      CheckpointError: on resume, the corpus is not the one the checkpoints were trained on
        (checkpoints that predate the fingerprint are not checked).
    """
    fingerprint = stream_fingerprint(tokens)
    check_same_settings({"corpus_fingerprint": fingerprint}, "corpora")
    if config.resume:
        recorded = checkpointer.newest_readable_metadata().get("corpus_fingerprint", fingerprint)
        if recorded != fingerprint:
            raise CheckpointError(
                f"the corpus differs from the one the checkpoints in {config.run_dir} were "
                "trained on (same settings, other text); resume with the original text, or "
                "start a new run with another --name"
            )
    return {
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "vocab_size": tokenizer.vocab_size,
        "corpus_fingerprint": fingerprint,
    }
