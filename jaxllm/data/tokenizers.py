"""Tokenizers: text <-> int32 token ids, behind one small interface.

Two kinds share the :class:`Tokenizer` protocol:

- :class:`CharTokenizer`: one id per character of a fixed alphabet (the
  characters of the training text), ids in sorted character order.
- :class:`BPETokenizer`: byte-level BPE trained with Hugging Face
  ``tokenizers``; any string round-trips, since every byte has a token.

Each saves to one JSON file read back by :func:`load_tokenizer`, and has a
``fingerprint`` (sha256 of its canonical JSON) that a run stores beside its
checkpoint to check it is decoding with the tokenizer it was trained with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jaxllm.data.json_files import json_fingerprint, write_json_atomically

# Documents are joined with this for tokenizers without an end-of-text token,
# so the character alphabet always contains it.
DOCUMENT_SEPARATOR = "\n\n"
EOS_TOKEN = "<|endoftext|>"
DEFAULT_BPE_VOCAB_SIZE = 1024
_BYTE_ALPHABET_SIZE = 256
_FORMAT_VERSION = 1


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer offers the rest of jaxllm."""

    @property
    def kind(self) -> str:
        """``"char"`` or ``"bpe"``; the ``kind`` field of the saved file."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of ids; every id is in ``[0, vocab_size)``."""
        ...

    @property
    def eos_id(self) -> int | None:
        """Id of the end-of-text token that separates documents, if any."""
        ...

    def encode(self, text: str) -> np.ndarray:
        """``text`` as token ids: int32[num_tokens]."""
        ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ``ids`` (int[num_tokens])."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable content of the tokenizer's file."""
        ...

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer to one JSON file."""
        ...

    def fingerprint(self) -> str:
        """sha256 hex digest of the canonical JSON of :meth:`to_dict`."""
        ...


def check_token_ids(tokens: np.ndarray | Sequence[int], vocab_size: int) -> None:
    """Raise ValueError naming the first id outside ``[0, vocab_size)``.

    Args:
        tokens: int[...] of any shape.
    """
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"Token ids must be integers, got dtype {tokens.dtype}.")
    bad = np.flatnonzero((tokens < 0) | (tokens >= vocab_size))
    if bad.size:
        position = np.unravel_index(bad[0], tokens.shape)
        where = position[0] if tokens.ndim == 1 else tuple(int(i) for i in position)
        raise ValueError(
            f"Token id {int(tokens[position])} at position {where} is outside the "
            f"vocabulary [0, {vocab_size}) ({bad.size} such ids in all); were these "
            "tokens made by a different tokenizer?"
        )


def _as_token_ids(ids: Sequence[int] | np.ndarray, vocab_size: int) -> np.ndarray:
    """``ids`` as a checked 1-D int64 array."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"decode takes a 1-D sequence of ids, got shape {array.shape}.")
    check_token_ids(array, vocab_size)
    return array.astype(np.int64)


def _code_points(text: str) -> np.ndarray:
    """Unicode code points of ``text``: uint32[len(text)] (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer:
    """One id per character; id ``i`` is the ``i``-th character of the sorted alphabet."""

    kind = "char"
    eos_id = None

    def __init__(self, alphabet: Iterable[str]):
        characters = set(alphabet)
        if not characters or not all(isinstance(c, str) and len(c) == 1 for c in characters):
            raise ValueError("A CharTokenizer's alphabet must be a non-empty set of characters.")
        self.alphabet = "".join(sorted(characters))
        self._alphabet_code_points = _code_points(self.alphabet)

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The tokenizer whose alphabet is every character in ``texts``.

        The document separator's characters are always included so that
        documents can be joined after encoding.
        """
        characters = set(DOCUMENT_SEPARATOR)
        for text in texts:
            characters.update(text)
        return cls(characters)

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> np.ndarray:
        """int32[len(text)]; ValueError naming characters outside the alphabet."""
        points = _code_points(text)
        ids = np.searchsorted(self._alphabet_code_points, points)
        clipped = np.minimum(ids, self.vocab_size - 1)
        unknown = self._alphabet_code_points[clipped] != points
        if unknown.any():
            first = int(np.argmax(unknown))
            missing = sorted(set(text[i] for i in np.flatnonzero(unknown)))
            shown = ", ".join(repr(c) for c in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise ValueError(
                f"Characters not in the tokenizer's {self.vocab_size}-character alphabet: "
                f"{shown}{more} (first at position {first}). Build the char tokenizer from a "
                "corpus that contains them, or use a byte-level BPE tokenizer ('bpe'), "
                "which encodes any text."
            )
        return ids.astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        points = self._alphabet_code_points[_as_token_ids(ids, self.vocab_size)]
        return points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format_version": _FORMAT_VERSION,
            "alphabet": list(self.alphabet),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomically(self.to_dict(), path)

    def fingerprint(self) -> str:
        return json_fingerprint(self.to_dict())

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) on Hugging Face ``tokenizers``.

    No normaliser and no prefix space: the byte-level pre-tokenizer maps each
    UTF-8 byte to a printable stand-in and the decoder maps it back, so
    ``decode(encode(s)) == s`` for every ``str`` without lone surrogates. The
    text ``"<|endoftext|>"`` inside a document encodes to ``eos_id`` (and
    decodes back to itself).
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any):
        """Wrap a ``tokenizers.Tokenizer`` that has an ``<|endoftext|>`` token."""
        self.hf_tokenizer = hf_tokenizer
        eos_id = hf_tokenizer.token_to_id(EOS_TOKEN)
        if eos_id is None:
            raise ValueError(f"The BPE tokenizer has no {EOS_TOKEN!r} token.")
        self._eos_id = int(eos_id)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = DEFAULT_BPE_VOCAB_SIZE,
        min_frequency: int = 2,
    ) -> BPETokenizer:
        """Learn merges on ``texts`` until ``vocab_size`` ids (or no pair is frequent enough).

        The vocabulary is ``<|endoftext|>`` (id 0), the 256 byte tokens, then
        the merges; training is deterministic.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size <= _BYTE_ALPHABET_SIZE:
            raise ValueError(
                f"vocab_size must exceed the {_BYTE_ALPHABET_SIZE} byte tokens plus "
                f"{EOS_TOKEN!r}, i.e. be >= {_BYTE_ALPHABET_SIZE + 1}; got {vocab_size}."
            )
        hf_tokenizer = HFTokenizer(models.BPE())
        hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf_tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[EOS_TOKEN],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf_tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(hf_tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.hf_tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def eos_id(self) -> int:
        return self._eos_id

    def encode(self, text: str) -> np.ndarray:
        """int32[num_tokens]."""
        try:
            encoding = self.hf_tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            # The Rust side rejects strings that are not valid Unicode (lone
            # surrogates) with a vague TypeError; UTF-8 encoding names the culprit.
            if isinstance(text, str):
                text.encode("utf-8")
            raise
        return np.asarray(encoding.ids, dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        # skip_special_tokens=False: "<|endoftext|>" must survive a round trip.
        ids = _as_token_ids(ids, self.vocab_size)
        return self.hf_tokenizer.decode(ids.tolist(), skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format_version": _FORMAT_VERSION,
            "hf_tokenizer": json.loads(self.hf_tokenizer.to_str()),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomically(self.to_dict(), path)

    def fingerprint(self) -> str:
        return json_fingerprint(self.to_dict())

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _char_from_dict(content: dict[str, Any]) -> CharTokenizer:
    return CharTokenizer(content["alphabet"])


def _bpe_from_dict(content: dict[str, Any]) -> BPETokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    return BPETokenizer(HFTokenizer.from_str(json.dumps(content["hf_tokenizer"])))


_FROM_DICT = {"char": _char_from_dict, "bpe": _bpe_from_dict}


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a tokenizer written by ``save``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a jaxllm tokenizer (corrupt, truncated,
            unknown kind).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No tokenizer file at {str(path)!r}.")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        kind = content["kind"]
        from_dict = _FROM_DICT[kind]
        return from_dict(content)
    except Exception as err:  # every failure here means the file is not a tokenizer
        raise ValueError(
            f"{str(path)!r} is not a readable jaxllm tokenizer file ({type(err).__name__}: "
            f"{err}); re-create it with `tokenizer.save(path)`. Known kinds: "
            f"{', '.join(_FROM_DICT)}."
        ) from err


_TRAINERS = ("char", "bpe")


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"char"`` or ``"bpe"``) on ``texts``.

    ``vocab_size`` is for BPE (default ``DEFAULT_BPE_VOCAB_SIZE``); a char
    tokenizer's vocabulary is its alphabet, so it must be None there.
    """
    if kind == "char":
        if vocab_size is not None:
            raise ValueError(
                "A char tokenizer's vocabulary is the corpus alphabet; leave vocab_size=None "
                "or use kind='bpe'."
            )
        return CharTokenizer.train(texts)
    if kind == "bpe":
        if vocab_size is None:
            vocab_size = DEFAULT_BPE_VOCAB_SIZE
        return BPETokenizer.train(texts, vocab_size=vocab_size)
    raise ValueError(f"Unknown tokenizer kind {kind!r}; use one of {', '.join(_TRAINERS)}.")
