"""A corpus tokenised once into a memory-mapped token file (nanoGPT's ``train.bin`` habit).

A text file of any size is read in pieces, each piece encoded and appended to a binary file of
token ids (``uint16`` when the vocabulary fits, else ``uint32``), so neither the text nor its
tokens are ever all in memory; :meth:`TokenFile.tokens` maps the file back as a read-only
``np.memmap`` that batches index like any array. :func:`cached_token_file` keys the file by a
fingerprint of the text and the tokenizer, so every later run on the same corpus with the same
tokenizer reads it instead of tokenising again.

Pieces end at a line end followed by a character that is not whitespace, where every
tokenizer's pre-tokenisation splits anyway, so the file holds exactly
``tokenizer.encode(whole_text)`` (a test checks it for each kind).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jaxllm.data.corpora import CorpusEncodingError
from jaxllm.data.tokenizers import Tokenizer

# Characters read per piece of text (about 4 MB of ASCII).
PIECE_CHARS = 1 << 22


@dataclasses.dataclass(frozen=True)
class TokenFile:
    """A token file and what it holds.

    Attributes:
      path: the ``.bin`` file of token ids.
      dtype: their type (``"uint16"`` or ``"uint32"``).
      count: the number of tokens.
      fingerprint: of the text and the tokenizer that made it.
    """

    path: Path
    dtype: str
    count: int
    fingerprint: str

    def tokens(self) -> np.ndarray:
        """The token ids, memory-mapped read-only: ``uint16[count]`` or ``uint32[count]``."""
        if self.count == 0:
            return np.zeros(0, self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.count,))


def read_text_pieces(path: str | os.PathLike[str], piece_chars: int = PIECE_CHARS) -> Iterator[str]:
    """The text of the UTF-8 file at ``path`` in pieces of about ``piece_chars`` characters,
    each ending at a line end followed by a non-whitespace character (the last piece: at the
    end of the file); together they are the whole text.

    Raises:
      CorpusEncodingError: the file is not valid UTF-8 (naming it).
    """
    carry = ""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            while block := file.read(piece_chars):
                text = carry + block
                cut = _last_cut(text)
                carry = text[cut:]
                if cut:
                    yield text[:cut]
    except UnicodeDecodeError as e:
        raise CorpusEncodingError(
            f"{str(path)!r} is not valid UTF-8 ({e.reason} at byte {e.start} of a block); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`."
        ) from e
    if carry:
        yield carry


def _last_cut(text: str) -> int:
    """Where the last piece boundary of ``text`` lies: just after a ``\n`` that a
    non-whitespace character follows (0: none)."""
    end = len(text) - 1  # a boundary needs the character after the line end
    while (line_end := text.rfind("\n", 0, end)) >= 0:
        if not text[line_end + 1].isspace():
            return line_end + 1
        end = line_end
    return 0


def token_dtype(vocab_size: int) -> str:
    """The narrowest unsigned type that holds every id of a ``vocab_size`` vocabulary."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


def write_token_file(
    tokenizer: Tokenizer, pieces: Iterable[str], path: str | os.PathLike[str], fingerprint: str
) -> TokenFile:
    """Encode each of ``pieces`` in turn and write the ids to ``path`` (through a
    ``.partial`` file renamed into place, so a file under ``path`` is always whole), with a
    ``<path>.json`` beside it describing it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype, count = token_dtype(tokenizer.vocab_size), 0
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        for piece in pieces:
            ids = tokenizer.encode(piece).astype(dtype)
            out.write(ids.tobytes())
            count += ids.size
    token_file = TokenFile(path, dtype, count, fingerprint)
    os.replace(partial, path)
    description = {"dtype": dtype, "count": count, "fingerprint": fingerprint}
    path.with_name(path.name + ".json").write_text(json.dumps(description) + "\n")
    return token_file


def text_fingerprint(path: str | os.PathLike[str], tokenizer: Tokenizer) -> str:
    """A fingerprint of the bytes of the file at ``path`` and of ``tokenizer`` (read in blocks)."""
    digest = hashlib.sha256(tokenizer.fingerprint().encode())
    with open(path, "rb") as file:
        while block := file.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()[:32]


def cached_token_file(
    text_path: str | os.PathLike[str], tokenizer: Tokenizer, cache_dir: str | os.PathLike[str]
) -> TokenFile:
    """The token file of the text at ``text_path`` under ``tokenizer``: read from
    ``cache_dir/<fingerprint>.bin`` when an earlier call made it, else made there now."""
    fingerprint = text_fingerprint(text_path, tokenizer)
    path = Path(cache_dir) / f"{fingerprint}.bin"
    description = path.with_name(path.name + ".json")
    if path.is_file() and description.is_file():
        saved = json.loads(description.read_text())
        if saved.get("fingerprint") == fingerprint:
            return TokenFile(path, saved["dtype"], int(saved["count"]), fingerprint)
    return write_token_file(tokenizer, read_text_pieces(text_path), path, fingerprint)
