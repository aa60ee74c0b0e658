"""Tokenizers: text <-> int32 token ids, behind one small interface.

Three kinds share the :class:`Tokenizer` protocol:

- :class:`CharTokenizer`: one id per character of a fixed alphabet (the
  characters of the training text), ids in sorted character order.
- :class:`BPETokenizer`: byte-level BPE trained with Hugging Face
  ``tokenizers``; any string round-trips, since every byte has a token.
- :class:`WordPieceTokenizer`: BERT's WordPiece trained with ``tokenizers``,
  with BERT's special tokens.

Hugging Face's own ``tokenizer.json`` (GPT-2's BPE, BERT's WordPiece) is read
by :func:`load_hf_tokenizer`.

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
DEFAULT_WORDPIECE_VOCAB_SIZE = 8192
WORDPIECE_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
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


class _HuggingFaceTokenizer:
    """What every tokenizer on a Hugging Face ``tokenizers.Tokenizer`` shares: encoding
    without special tokens, decoding, and saving the wrapped tokenizer inside jaxllm's JSON."""

    kind = ""

    def __init__(self, hf_tokenizer: Any):
        self.hf_tokenizer = hf_tokenizer

    @property
    def vocab_size(self) -> int:
        return self.hf_tokenizer.get_vocab_size(with_added_tokens=True)

    def _required_id(self, token: str) -> int:
        token_id = self.hf_tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"The {self.kind} tokenizer has no {token!r} token.")
        return int(token_id)

    def encode(self, text: str) -> np.ndarray:
        """int32[num_tokens], without special tokens."""
        return np.asarray(self._encoding(text).ids, dtype=np.int32)

    def _encoding(self, text: str) -> Any:
        try:
            return self.hf_tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            # The Rust side rejects strings that are not valid Unicode (lone
            # surrogates) with a vague TypeError; UTF-8 encoding names the culprit.
            if isinstance(text, str):
                text.encode("utf-8")
            raise

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        # skip_special_tokens=False: special tokens in the ids are shown, not dropped.
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

    def save_hf(self, path: str | os.PathLike[str]) -> None:
        """Write Hugging Face's own ``tokenizer.json`` (what ``tokenizers`` and
        ``transformers``' fast tokenizers read); its folder is created."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.hf_tokenizer.save(str(path))

    def fingerprint(self) -> str:
        return json_fingerprint(self.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class BPETokenizer(_HuggingFaceTokenizer):
    """Byte-level BPE (GPT-2 style) on Hugging Face ``tokenizers``.

    No normaliser and no prefix space: the byte-level pre-tokenizer maps each
    UTF-8 byte to a printable stand-in and the decoder maps it back, so
    ``decode(encode(s)) == s`` for every ``str`` without lone surrogates. The
    text ``"<|endoftext|>"`` inside a document encodes to ``eos_id`` (and
    decodes back to itself). GPT-2's own ``tokenizer.json`` is of this kind
    (:func:`load_hf_tokenizer`).
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any):
        """Wrap a ``tokenizers.Tokenizer`` that has an ``<|endoftext|>`` token."""
        super().__init__(hf_tokenizer)
        self._eos_id = self._required_id(EOS_TOKEN)

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
    def eos_id(self) -> int:
        return self._eos_id


class WordPieceTokenizer(_HuggingFaceTokenizer):
    """BERT's WordPiece on Hugging Face ``tokenizers``.

    Text is normalised as BERT's (lower-cased and accents stripped, unless trained with
    ``lowercase=False``), split on whitespace and punctuation, and each word is cut into the
    longest pieces of the vocabulary; a piece inside a word is spelled with a leading ``##``,
    and a word with no spelling becomes ``[UNK]``. The special tokens ``[PAD]``, ``[UNK]``,
    ``[CLS]``, ``[SEP]`` and ``[MASK]`` have ids of their own. ``encode`` adds none of them;
    :meth:`with_specials` frames a sequence as BERT reads it (``[CLS] ... [SEP]``).
    ``eos_id`` is ``[SEP]``'s, so :func:`~jaxllm.data.encode_corpus` separates documents with
    it. A BERT checkpoint's ``tokenizer.json`` is of this kind (:func:`load_hf_tokenizer`).
    """

    kind = "wordpiece"

    def __init__(self, hf_tokenizer: Any):
        """Wrap a ``tokenizers.Tokenizer`` with a WordPiece model and BERT's special tokens."""
        super().__init__(hf_tokenizer)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self._required_id(token) for token in WORDPIECE_SPECIAL_TOKENS
        )
        vocab = hf_tokenizer.get_vocab(with_added_tokens=True)
        prefix = getattr(hf_tokenizer.model, "continuing_subword_prefix", "##")
        continues = np.zeros(self.vocab_size, dtype=bool)
        for piece, index in vocab.items():
            continues[index] = piece.startswith(prefix)
        self._continues_word = continues

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = DEFAULT_WORDPIECE_VOCAB_SIZE,
        min_frequency: int = 2,
        lowercase: bool = True,
    ) -> WordPieceTokenizer:
        """Learn a vocabulary of (at most) ``vocab_size`` pieces on ``texts``, deterministically.

        The special tokens take ids 0-4 (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``,
        ``[MASK]``), then a continuing piece (``##e``) for every character of the (normalised)
        text, the characters themselves, then the learned pieces.
        """
        from tokenizers import normalizers

        if vocab_size <= len(WORDPIECE_SPECIAL_TOKENS):
            raise ValueError(
                f"vocab_size must exceed the {len(WORDPIECE_SPECIAL_TOKENS)} special tokens; "
                f"got {vocab_size}."
            )
        texts = list(texts)
        normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        chars = sorted({c for text in texts for c in normalizer.normalize_str(text)})
        vocab = _learn_wordpieces(texts, normalizer, chars, vocab_size, min_frequency)
        return cls(_bert_wordpiece(vocab, normalizer))

    @property
    def eos_id(self) -> int:
        return self.sep_id

    @property
    def special_ids(self) -> np.ndarray:
        """int32[5]: the ids of ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]`` and ``[MASK]``."""
        ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)
        return np.array(ids, dtype=np.int32)

    @property
    def continues_word(self) -> np.ndarray:
        """bool[vocab_size]: ``True`` at pieces that continue a word (``##...``), for
        whole-word masking (:func:`word_starts`)."""
        return self._continues_word

    def with_specials(self, ids: np.ndarray, max_len: int) -> np.ndarray:
        """``[CLS] ids [SEP]``, ``ids`` cut to fit ``max_len`` tokens: int32[<= max_len]."""
        if max_len < 3:
            raise ValueError(f"max_len must leave room for [CLS], a token and [SEP]; got {max_len}")
        body = np.asarray(ids, dtype=np.int32)[: max_len - 2]
        return np.concatenate([[self.cls_id], body, [self.sep_id]]).astype(np.int32)


def _learn_wordpieces(
    texts: list[str], normalizer: Any, chars: list[str], vocab_size: int, min_frequency: int
) -> dict[str, int]:
    """The vocabulary ``tokenizers``' WordPiece trainer learns on ``texts``, made deterministic.

    The trainer numbers each continuing piece (``##e``) when it first meets it while walking
    a hash map of words, and breaks ties between equally frequent merges by those numbers, so
    two trainings could learn different vocabularies (huggingface/tokenizers#1794). Declaring
    every ``##<char>`` up front (as special tokens, which take their ids first) fixes them.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    hf_tokenizer = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    hf_tokenizer.normalizer = normalizer
    hf_tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    continuing = [f"##{c}" for c in chars if not c.isspace()]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*WORDPIECE_SPECIAL_TOKENS, *continuing],
        initial_alphabet=[c for c in chars if not c.isspace()],
        show_progress=False,
    )
    hf_tokenizer.train_from_iterator(texts, trainer=trainer)
    return hf_tokenizer.get_vocab(with_added_tokens=False)


def _bert_wordpiece(vocab: dict[str, int], normalizer: Any) -> Any:
    """A ``tokenizers.Tokenizer`` laid out as BERT's: WordPiece over ``vocab``, BERT's
    normaliser and pre-tokenizer, ``[CLS] A [SEP]`` framing when special tokens are asked for,
    and only the five special tokens marked special."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, processors

    hf_tokenizer = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    hf_tokenizer.normalizer = normalizer
    hf_tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf_tokenizer.decoder = decoders.WordPiece()
    hf_tokenizer.add_special_tokens(list(WORDPIECE_SPECIAL_TOKENS))
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    hf_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return hf_tokenizer


def _char_from_dict(content: dict[str, Any]) -> CharTokenizer:
    return CharTokenizer(content["alphabet"])


def _hf_from_dict(cls: type[_HuggingFaceTokenizer]) -> Any:
    def from_dict(content: dict[str, Any]) -> _HuggingFaceTokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(json.dumps(content["hf_tokenizer"])))

    return from_dict


_FROM_DICT = {
    "char": _char_from_dict,
    "bpe": _hf_from_dict(BPETokenizer),
    "wordpiece": _hf_from_dict(WordPieceTokenizer),
}


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


# Hugging Face tokenizer models jaxllm wraps, by the "type" of tokenizer.json's "model".
_HF_MODELS: dict[str, type[BPETokenizer] | type[WordPieceTokenizer]] = {
    "BPE": BPETokenizer,
    "WordPiece": WordPieceTokenizer,
}


def load_hf_tokenizer(path: str | os.PathLike[str]) -> BPETokenizer | WordPieceTokenizer:
    """Read a Hugging Face ``tokenizer.json`` (a file, or the checkpoint folder holding one):
    a WordPiece one (BERT's) as a :class:`WordPieceTokenizer`, a byte-level BPE one (GPT-2's)
    as a :class:`BPETokenizer`.

    Raises:
        FileNotFoundError: no ``tokenizer.json`` there.
        ValueError: the file is not a tokenizer ``tokenizers`` reads, its model is of another
            kind, or it lacks the special tokens its kind needs.
    """
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"No Hugging Face tokenizer at {str(file)!r}; a fast tokenizer's "
            "`save_pretrained(folder)` writes folder/tokenizer.json."
        )
    try:
        kind = json.loads(file.read_text(encoding="utf-8"))["model"]["type"]
        hf_tokenizer = HFTokenizer.from_file(str(file))
    except Exception as err:
        raise ValueError(
            f"{str(file)!r} is not a Hugging Face tokenizer.json ({type(err).__name__}: {err})"
        ) from err
    if kind not in _HF_MODELS:
        raise ValueError(
            f"{str(file)!r} holds a {kind} tokenizer; jaxllm reads {' and '.join(_HF_MODELS)} "
            "(GPT-2's byte-level BPE, BERT's WordPiece)."
        )
    return _HF_MODELS[kind](hf_tokenizer)


def check_tokenizer_fits(tokenizer: Tokenizer, vocab_size: int, model: str = "the model") -> None:
    """Raise ``ValueError`` unless ``tokenizer`` has exactly ``vocab_size`` tokens (the rows of
    ``model``'s token embedding): with fewer, some rows would never be used; with more, some
    ids would index past the table."""
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(
            f"the {tokenizer.kind} tokenizer has {tokenizer.vocab_size} tokens but {model} "
            f"has a {vocab_size}-token vocabulary; use the tokenizer the model was trained with"
        )


_TRAINERS = ("char", "bpe", "wordpiece")


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"char"``, ``"bpe"`` or ``"wordpiece"``) on ``texts``.

    ``vocab_size`` is for BPE and WordPiece (default ``DEFAULT_BPE_VOCAB_SIZE`` /
    ``DEFAULT_WORDPIECE_VOCAB_SIZE``); a char tokenizer's vocabulary is its alphabet, so it
    must be None there.
    """
    if kind == "char":
        if vocab_size is not None:
            raise ValueError(
                "A char tokenizer's vocabulary is the corpus alphabet; leave vocab_size=None "
                "or use kind='bpe'."
            )
        return CharTokenizer.train(texts)
    if kind == "bpe":
        size = DEFAULT_BPE_VOCAB_SIZE if vocab_size is None else vocab_size
        return BPETokenizer.train(texts, vocab_size=size)
    if kind == "wordpiece":
        size = DEFAULT_WORDPIECE_VOCAB_SIZE if vocab_size is None else vocab_size
        return WordPieceTokenizer.train(texts, vocab_size=size)
    raise ValueError(f"Unknown tokenizer kind {kind!r}; use one of {', '.join(_TRAINERS)}.")
