"""A word-level vocabulary for classifiers: words seen at least ``min_count`` times in the
training texts get an id; every other word reads as ``<unk>``.

::

    vocab = build_word_vocab(train.texts, min_count=2)
    encoded = vocab.encode(dev.texts, max_len=128)   # ids int32[n, T], lengths int32[n]

Ids: 0 is ``<pad>`` (never a word), 1 is ``<unk>``, then words by descending count (ties in
order of first appearance). Words are the lower-cased runs of letters and digits (keeping
inner apostrophes, ``"don't"``, and a leading one, SST's ``"'s"``) and each punctuation mark
on its own (``"!"`` carries sentiment), see :func:`split_words`.

Behaviour on odd input, all reported by :meth:`WordVocab.encode` in :class:`EncodedTexts`:
a text longer than ``max_len`` words keeps its first ``max_len`` (``truncated`` counts them);
a text of only unknown words is a sequence of ``<unk>``; an empty text (no word at all) is
read as one ``<unk>`` (``empty`` counts them), so that every sequence has a last token.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxllm.data.corpora import EmptyCorpusError
from jaxllm.data.json_files import json_fingerprint, write_json_atomically

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"'?\w+(?:'\w+)*|[^\w\s]")


def split_words(text: str) -> list[str]:
    """The lower-cased words and punctuation marks of ``text``:
    ``"It's GREAT!"`` -> ``["it's", "great", "!"]``; ``"it 's"`` -> ``["it", "'s"]``."""
    return _WORD.findall(text.lower())


@dataclasses.dataclass(frozen=True)
class EncodedTexts:
    """Texts as padded word ids.

    Attributes:
      ids: int32[n, T], ``T`` the longest encoded text (at most ``max_len``); ``PAD_ID`` after
        each text's end.
      lengths: int32[n], words kept per text (>= 1).
      truncated: how many texts were longer than ``max_len`` and lost their tail.
      empty: how many texts had no word (each encoded as one ``<unk>``).
      unknown_fraction: the share of kept words that are ``<unk>``.
    """

    ids: np.ndarray
    lengths: np.ndarray
    truncated: int
    empty: int
    unknown_fraction: float

    def __len__(self) -> int:
        return len(self.lengths)


@dataclasses.dataclass(frozen=True)
class WordVocab:
    """Attributes:
    words: the vocabulary; ``words[i]`` has id ``i`` (``words[0]`` is ``<pad>``,
      ``words[1]`` ``<unk>``).
    counts: occurrences of each word in the texts it was built from (0 for the two specials).
    """

    words: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self):
        if self.words[:2] != (PAD, UNK) or len(self.words) != len(self.counts):
            raise ValueError(
                f"a WordVocab starts with {PAD!r}, {UNK!r} and has one count per word; build one "
                "with build_word_vocab"
            )

    def __len__(self) -> int:
        return len(self.words)

    @property
    def ids(self) -> dict[str, int]:
        """``{word: id}``."""
        return {word: i for i, word in enumerate(self.words)}

    def encode(self, texts: Sequence[str], max_len: int) -> EncodedTexts:
        """``texts`` as :class:`EncodedTexts`, each cut to its first ``max_len`` words."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string; wrap it in a list")
        ids = self.ids
        rows = [[ids.get(w, UNK_ID) for w in split_words(text)] for text in texts]
        empty = sum(1 for row in rows if not row)
        truncated = sum(1 for row in rows if len(row) > max_len)
        rows = [row[:max_len] or [UNK_ID] for row in rows]
        lengths = np.array([len(row) for row in rows], np.int32)
        out = np.full((len(rows), int(lengths.max(initial=1))), PAD_ID, np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        unknown = float(np.sum(out == UNK_ID)) / max(int(lengths.sum()), 1)
        return EncodedTexts(out, lengths, truncated, empty, unknown)

    def fingerprint(self) -> str:
        """A hash of the words in id order: equal for equal vocabularies."""
        return json_fingerprint({"words": list(self.words)})

    def save(self, path: str | Path) -> None:
        write_json_atomically({"words": list(self.words), "counts": list(self.counts)}, path)

    @classmethod
    def load(cls, path: str | Path) -> WordVocab:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no vocabulary at {path}; it is written when a run starts")
        content = json.loads(path.read_text(encoding="utf-8"))
        return cls(tuple(content["words"]), tuple(int(c) for c in content["counts"]))


def build_word_vocab(
    texts: Sequence[str], *, min_count: int = 1, max_size: int | None = None
) -> WordVocab:
    """The words of ``texts`` seen at least ``min_count`` times, most frequent first, at most
    ``max_size`` of them (the two specials not counted).

    Raises:
      EmptyCorpusError: the texts hold no word, or none that reaches ``min_count``.
    """
    if min_count < 1 or (max_size is not None and max_size < 1):
        raise ValueError(f"need min_count >= 1 and max_size >= 1, got {min_count}, {max_size}")
    counts = collections.Counter(w for text in texts for w in split_words(text))
    if not counts:
        raise EmptyCorpusError("the texts hold no word: cannot build a vocabulary from them")
    kept = [(w, c) for w, c in counts.most_common() if c >= min_count][:max_size]
    if not kept:
        raise EmptyCorpusError(
            f"no word occurs {min_count} times (the most frequent occurs "
            f"{counts.most_common(1)[0][1]}); lower min_count"
        )
    return WordVocab((PAD, UNK, *(w for w, _ in kept)), (0, 0, *(c for _, c in kept)))
