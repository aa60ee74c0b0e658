"""A corpus tokenised once into a memory-mapped token file (nanoGPT's ``train.bin`` habit).

A text file of any size is read in pieces, each piece encoded and appended to a binary file of
token ids (``uint16`` when the vocabulary fits, else ``uint32``), so neither the text nor its
tokens are ever all in memory; :meth:`TokenFile.tokens` maps the file back as a read-only
``np.memmap`` that batches index like any array, and :func:`read_token_file` finds a finished
one again. :class:`~jaxllm.data.file_corpus.FileCorpus` builds a corpus's splits this way.

Pieces end between a non-whitespace character and a space or line end, where every tokenizer's
pre-tokenisation splits anyway, so the file holds exactly ``tokenizer.encode(whole_text)`` (a
test checks it for each kind).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jaxllm.data.corpora import CorpusEncodingError
from jaxllm.data.json_files import replaced_atomically, write_json_atomically
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
    each ending with a non-whitespace character that whitespace follows
    (:func:`last_piece_end`; the last piece: at the end of the file); together they are the
    whole text.

    Raises:
      CorpusEncodingError: the file is not valid UTF-8 (naming it).
    """
    carry = ""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            while block := file.read(piece_chars):
                text = carry + block
                cut = last_piece_end(text)
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


def last_piece_end(text: str) -> int:
    """Where the last piece of ``text`` may end: at the start of the last run of spaces or line
    ends that follows a non-whitespace character (0: there is none).

    No token of any jaxllm tokenizer holds a non-whitespace character followed by whitespace
    (GPT-2's pattern attaches a space to the word after it; BERT's splits at whitespace), and
    no cleaning step reaches across one, so pieces cut there encode, and clean, to what the
    whole text does.
    """
    end = len(text)
    while (space := max(text.rfind("\n", 0, end), text.rfind(" ", 0, end))) > 0:
        while space > 0 and text[space - 1].isspace():
            space -= 1
        if space:
            return space
        end = space
    return 0


def token_dtype(vocab_size: int) -> str:
    """The narrowest unsigned type that holds every id of a ``vocab_size`` vocabulary."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


def write_token_file(
    tokenizer: Tokenizer, pieces: Iterable[str], path: str | os.PathLike[str], fingerprint: str
) -> TokenFile:
    """Encode each of ``pieces`` in turn and write the ids to ``path`` (through a ``.partial``
    file of its own renamed into place, so a file under ``path`` is always whole, even when
    several processes make it at once), with a ``<path>.json`` beside it describing it
    (written last: a file without one is unfinished)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype, count = token_dtype(tokenizer.vocab_size), 0
    with replaced_atomically(path) as out:
        for piece in pieces:
            ids = tokenizer.encode(piece).astype(dtype)
            out.write(ids.tobytes())
            count += ids.size
    token_file = TokenFile(path, dtype, count, fingerprint)
    description = {"dtype": dtype, "count": count, "fingerprint": fingerprint}
    write_json_atomically(description, path.with_name(path.name + ".json"))
    return token_file


def read_token_file(path: str | os.PathLike[str], fingerprint: str) -> TokenFile | None:
    """The token file at ``path`` if a finished :func:`write_token_file` left it there with
    ``fingerprint`` (else ``None``: absent, unfinished, of another size than described, or
    made from something else)."""
    path = Path(path)
    description = path.with_name(path.name + ".json")
    if not (path.is_file() and description.is_file()):
        return None
    saved = json.loads(description.read_text(encoding="utf-8"))
    if saved.get("fingerprint") != fingerprint:
        return None
    token_file = TokenFile(path, saved["dtype"], int(saved["count"]), fingerprint)
    if path.stat().st_size != token_file.count * np.dtype(token_file.dtype).itemsize:
        return None
    return token_file
