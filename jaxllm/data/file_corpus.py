"""A corpus of one text file, cleaned, split and tokenised in pieces into token files.

The recipes' in-memory way (:func:`~jaxllm.data.load_splits`, then
:func:`~jaxllm.data.encode_corpus` per split) holds the whole text and its ids, about 30 bytes
a character. For a corpus that is one text file, :class:`FileCorpus` gives the same three token
streams without holding either, as nanoGPT's ``train.bin``/``val.bin`` do:

1. the file is read in pieces (:func:`~jaxllm.data.token_files.read_text_pieces`) and cleaned
   piece by piece (:func:`~jaxllm.data.clean.normalize_pieces`), which equals cleaning it
   whole;
2. a first pass counts the clean text's characters and gathers its alphabet;
3. the text is cut where :func:`~jaxllm.data.split_corpus` cuts one document: train ends at
   the start of the line holding ``1 - val_fraction - test_fraction`` of the characters,
   validation at the start of the line holding ``1 - test_fraction``;
4. the tokenizer is the in-memory one: a char tokenizer of the alphabet, or BPE / WordPiece
   trained on the training split (streamed to BPE; WordPiece's trainer holds its text);
5. each split's pieces are encoded and appended to its token file
   (:func:`~jaxllm.data.token_files.write_token_file`), mapped back as ``np.memmap``.

Everything is kept under ``cache_dir/<fingerprint of the file's bytes and the fractions>/``,
so later runs on the same file skip straight to the maps:

* ``text.json``: the clean text's length and alphabet;
* ``tokenizer-<kind>-<fingerprint of its settings and trainer>.json``: the tokenizer trained
  on it;
* ``<tokenizer fingerprint>-{train,validation,test}.bin`` (each with a ``.json`` beside it).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from jaxllm.config import ConfigError
from jaxllm.data.clean import normalize_pieces
from jaxllm.data.config import DataConfig
from jaxllm.data.corpora import NAMED_CORPORA, EmptyCorpusError
from jaxllm.data.json_files import write_json_atomically
from jaxllm.data.splits import EmptySplitError, check_fractions
from jaxllm.data.token_files import (
    PIECE_CHARS,
    TokenFile,
    last_piece_end,
    read_text_pieces,
    read_token_file,
    write_token_file,
)
from jaxllm.data.tokenizers import Tokenizer, load_tokenizer, train_tokenizer

SPLIT_NAMES = ("train", "validation", "test")
# Changes when cleaning or splitting changes what a cache folder holds.
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CorpusText:
    """What one pass over a corpus file's clean text finds.

    Attributes:
      chars: its length in characters.
      alphabet: its distinct characters, sorted.
    """

    chars: int
    alphabet: str


@dataclasses.dataclass(frozen=True)
class FileCorpus:
    """A one-file corpus (``data.corpus``) and the folder its token files are kept in.

    Attributes:
      path: the text file.
      data: the corpus's settings (fractions, tokenizer kind and size).
      folder: where this file's clean-text facts, tokenizers and token files are kept.
      piece_chars: characters read at a time.
    """

    path: Path
    data: DataConfig
    folder: Path
    piece_chars: int = PIECE_CHARS

    @classmethod
    def open(
        cls, data: DataConfig, cache_dir: str | os.PathLike[str], piece_chars: int = PIECE_CHARS
    ) -> FileCorpus:
        """The corpus ``data.corpus`` names, which must be one text file, with its cache folder
        under ``cache_dir`` (the file is read once, for its fingerprint).

        Raises:
          ConfigError: ``data.corpus`` is a named corpus or a folder (they are held in memory).
          FileNotFoundError: nothing is at that path.
          EmptySplitError: a validation or test fraction is 0 (every split must hold text).
        """
        path = _corpus_file(data)
        for name, fraction in (("val", data.val_fraction), ("test", data.test_fraction)):
            if fraction <= 0:
                raise EmptySplitError(
                    f"data.{name}_fraction is {fraction}: the {name} split of corpus "
                    f"{data.corpus!r} would be empty; give it a fraction above 0"
                )
        check_fractions(data.val_fraction, data.test_fraction)
        return cls(path, data, Path(cache_dir) / _fingerprint(path, data), piece_chars)

    def pieces(self) -> Iterator[str]:
        """The clean text, in pieces that each end with a non-whitespace character."""
        return normalize_pieces(read_text_pieces(self.path, self.piece_chars))

    def text(self) -> CorpusText:
        """The clean text's length and alphabet (one pass over the file, kept for later).

        Raises:
          EmptyCorpusError: nothing is left of the file after cleaning.
        """
        kept = self.folder / "text.json"
        if kept.is_file():
            return CorpusText(**json.loads(kept.read_text(encoding="utf-8")))
        chars, alphabet = 0, set()
        for piece in self.pieces():
            chars += len(piece)
            alphabet.update(piece)
        if not chars:
            raise EmptyCorpusError(
                f"{str(self.path)!r} holds no text (only whitespace); add some text or point "
                "to another file"
            )
        text = CorpusText(chars, "".join(sorted(alphabet)))
        write_json_atomically(dataclasses.asdict(text), kept)
        return text

    def segments(self) -> Iterator[tuple[int, str]]:
        """The clean text as ``(split, text)`` in order: split 0 (train), 1 (validation), 2
        (test), cut where :func:`~jaxllm.data.split_corpus` cuts one document."""
        chars = self.text().chars
        data = self.data
        targets = (
            round(chars * (1 - data.val_fraction - data.test_fraction)),
            round(chars * (1 - data.test_fraction)),
        )
        return split_segments(self.pieces(), targets)

    def tokenizer(self) -> Tokenizer:
        """The tokenizer the in-memory recipe would train: a char tokenizer of the whole
        text's alphabet, or BPE / WordPiece trained on the training split (kept for later)."""
        data = self.data
        kept = self.folder / f"tokenizer-{data.tokenizer}-{_trainer_fingerprint(data)}.json"
        if kept.is_file():
            return load_tokenizer(kept)
        if data.tokenizer == "char":
            tokenizer = train_tokenizer("char", [self.text().alphabet])
        else:
            train = itertools.takewhile(lambda segment: segment[0] == 0, self.segments())
            texts = (text for _, text in train)
            tokenizer = train_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size)
        tokenizer.save(kept)
        return tokenizer

    def token_files(self, tokenizer: Tokenizer) -> tuple[TokenFile, TokenFile, TokenFile]:
        """The train, validation and test token files of the text under ``tokenizer``: read
        from the folder when an earlier call made them, else made now (one pass).

        Raises:
          EmptySplitError: a split holds no text (the file is too small for the fractions).
          ValueError: a split encodes to fewer than 2 tokens, or holds text ``tokenizer``
            cannot encode (a char tokenizer of another text).
        """
        stem = tokenizer.fingerprint()[:16]
        paths = [self.folder / f"{stem}-{name}.bin" for name in SPLIT_NAMES]
        kept = [read_token_file(path, stem) for path in paths]
        files = [file for file in kept if file is not None]
        if len(files) < len(paths):  # the ones kept stay as they are (a run may map them)
            files = _write_split_files(tokenizer, self.segments(), paths, stem, kept)
        _check_splits(files, self.data.corpus)
        return files[0], files[1], files[2]


def _corpus_file(data: DataConfig) -> Path:
    """``data.corpus`` as the path of one text file."""
    path = Path(data.corpus)
    if data.corpus in NAMED_CORPORA or path.is_dir():
        raise ConfigError(
            f"token files are made from a corpus of one text file; {data.corpus!r} is a "
            f"{'named corpus' if data.corpus in NAMED_CORPORA else 'folder'}. Join its text "
            "into one file (e.g. `cat folder/*.txt > corpus.txt`), or leave the token cache "
            "off to hold the corpus in memory"
        )
    if not path.is_file():
        raise FileNotFoundError(f"No text file at {str(path)!r}.")
    return path


def _fingerprint(path: Path, data: DataConfig) -> str:
    """A fingerprint of the bytes of the file at ``path`` and of how it is split."""
    settings = (_FORMAT_VERSION, data.val_fraction, data.test_fraction)
    digest = hashlib.sha256(json.dumps(settings).encode())
    with open(path, "rb") as file:
        while block := file.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()[:32]


def split_segments(pieces: Iterable[str], targets: tuple[int, int]) -> Iterator[tuple[int, str]]:
    """``(split, text)`` pairs that cut the text ``pieces`` join into three splits, as
    :func:`~jaxllm.data.split_corpus` cuts one document: split 0 ends at the start of the line
    holding character ``targets[0]`` (or at the target, in the split's first line), split 1
    at the start of the line holding ``targets[1]`` (if after split 0's end); a target at or
    past the end leaves the later splits empty.

    ``pieces`` must end where whitespace follows a non-whitespace character. Within a split,
    text is yielded up to such a place, where every tokenizer splits anyway: the last one
    before the split's last line end, which is held with what follows it until the next piece
    comes or the split ends (a cut falls back to it), or, while the split has no line end, the
    last one (a cut then falls at its target or after a line end still to come).
    """
    split, offset, held = 0, 0, ""  # offset: where held starts in the whole text
    for piece in pieces:
        text = held + piece
        while split < len(targets) and targets[split] < offset + len(text):
            line_end = text.rfind("\n", 0, targets[split] - offset)
            cut = line_end + 1 if line_end >= 0 else targets[split] - offset
            if cut:
                yield split, text[:cut]
            text, offset, split = text[cut:], offset + cut, split + 1
        keep = _before_last_line_end(text) if "\n" in text else last_piece_end(text)
        if keep:
            yield split, text[:keep]
        held, offset = text[keep:], offset + keep
    if held:
        yield split, held


def _before_last_line_end(text: str) -> int:
    """The start of the whitespace run that holds the last ``\\n`` of ``text``."""
    start = text.rfind("\n")
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return start


def _write_split_files(
    tokenizer: Tokenizer,
    segments: Iterator[tuple[int, str]],
    paths: list[Path],
    stem: str,
    kept: list[TokenFile | None],
) -> list[TokenFile]:
    """Each split's segments encoded into its token file (an empty file for a split with no
    text), but for the splits whose file is ``kept``."""
    files = dict(enumerate(kept))
    for split, group in itertools.groupby(segments, key=lambda segment: segment[0]):
        texts = (text for _, text in group)
        if files[split] is None:
            files[split] = write_token_file(tokenizer, texts, paths[split], stem)
        else:
            collections.deque(texts, maxlen=0)  # read past it
    for split, path in enumerate(paths):
        if files[split] is None:
            files[split] = write_token_file(tokenizer, [], path, stem)
    return [file for file in files.values() if file is not None]


def _trainer_fingerprint(data: DataConfig) -> str:
    """A fingerprint of what a tokenizer trained on a text depends on besides the text: its
    kind and size, and the versions of the code that trains it."""
    import tokenizers

    settings = [data.tokenizer, data.vocab_size, _FORMAT_VERSION, tokenizers.__version__]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]


def _check_splits(files: list[TokenFile], corpus: str) -> None:
    """Every split holds text (checked first, as :func:`~jaxllm.data.load_splits` does) and at
    least 2 tokens."""
    for name, file in zip(SPLIT_NAMES, files, strict=True):
        if file.count == 0:
            raise EmptySplitError(
                f"the {name} split of corpus {corpus!r} is empty; use a larger corpus or other "
                "val/test fractions"
            )
    for name, file in zip(SPLIT_NAMES, files, strict=True):
        if file.count < 2:
            raise ValueError(
                f"The {name} split of corpus {corpus!r} encodes to {file.count} token; a "
                "language model needs at least 2 (an input and its next-token target)."
            )
