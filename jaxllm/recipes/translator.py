"""Translating with a trained encoder-decoder: batches of sentences through greedy or beam
search, one compiled program per batch shape, and corpus BLEU and chrF (sacrebleu).

:class:`Translator` is what :func:`jaxllm.recipes.load_translator` returns and what
``experiments/translate.py translate`` runs::

    translator = load_translator("runs/bible")
    translator.translate(["In the beginning God created the heaven and the earth."])
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxllm.data.buckets import padded_length
from jaxllm.data.tokenizers import Tokenizer
from jaxllm.data.vocab import PAD_ID
from jaxllm.explain.attention import attention_maps
from jaxllm.seq2seq_decode import (
    DecodeResult,
    Seq2SeqDecoding,
    beam_search,
    greedy_search,
)

SACREBLEU_INSTALL = "pip install 'jaxllm[translate]'"


class TranslationInputError(ValueError):
    """A sentence can't be translated as given (the message names it and the fix)."""


class SourceTooLongError(TranslationInputError):
    """A sentence is longer than the model's longest source."""


@dataclasses.dataclass(frozen=True, eq=False)
class Translator:
    """A trained encoder-decoder with its tokenizer, ready to translate.

    Attributes:
      model: a :class:`~jaxllm.models.seq2seq.Seq2SeqTransformer` or
        :class:`~jaxllm.models.lstm_seq2seq.LSTMSeq2Seq`.
      params: its parameters.
      tokenizer: the shared source/target tokenizer; its end token also starts a target.
      decoding: the model's :class:`~jaxllm.seq2seq_decode.Seq2SeqDecoding`.
      max_len: the longest source and target the model takes, in tokens.
    """

    model: Any
    params: Any
    tokenizer: Tokenizer
    decoding: Seq2SeqDecoding
    max_len: int

    @property
    def end_id(self) -> int:
        end = self.tokenizer.eos_id
        if end is None:
            raise ValueError(
                f"a {self.tokenizer.kind} tokenizer has no end token to translate with"
            )
        return end

    def encode_sources(self, texts: Sequence[str], *, truncate: bool = False) -> list[np.ndarray]:
        """Each text's ids and the end token: one int32[len] array per text.

        Raises:
          TypeError: ``texts`` is one string rather than a sequence of them.
          TranslationInputError: an empty text (naming it).
          SourceTooLongError: a text longer than the model's sources, unless ``truncate``
            (then it is cut, keeping its end token, with a warning naming how many were).
        """
        _require_sequence(texts, "texts")
        rows, cut = [], []
        for number, text in enumerate(texts, 1):
            if not text.strip():
                raise TranslationInputError(f"sentence {number} is empty: give each line some text")
            ids = np.append(self.tokenizer.encode(text), self.end_id).astype(np.int32)
            if len(ids) > self.max_len:
                if not truncate:
                    raise SourceTooLongError(
                        f"sentence {number} has {len(ids)} tokens, more than the model's "
                        f"{self.max_len}; split it, or pass truncate=True (--truncate) to cut it"
                    )
                cut.append(number)
                ids = np.append(ids[: self.max_len - 1], self.end_id)
            rows.append(ids)
        if cut:
            warnings.warn(
                f"{len(cut)} sentence(s) cut to {self.max_len} tokens: {cut[:10]}", stacklevel=2
            )
        return rows

    def translate(
        self,
        texts: Sequence[str],
        *,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        batch_size: int = 32,
        truncate: bool = False,
    ) -> list[str]:
        """Translations of ``texts``, in order (``beam_size=1``: greedy search)."""
        return [self.tokenizer.decode(ids) for ids in self.translate_ids(
            self.encode_sources(texts, truncate=truncate), beam_size=beam_size,
            length_penalty=length_penalty, batch_size=batch_size,
        )]  # fmt: skip

    def translate_ids(
        self,
        sources: Sequence[np.ndarray],
        *,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        batch_size: int = 32,
    ) -> list[list[int]]:
        """Output ids (without the end token) for encoded sources (:meth:`encode_sources`),
        decoded in batches of up to ``batch_size`` sentences of similar lengths. An output
        still unfinished at the length cap (see :meth:`max_new_tokens`) is returned as it is,
        with a warning counting them."""
        outputs, unfinished = self.search_ids(
            sources, beam_size=beam_size, length_penalty=length_penalty, batch_size=batch_size
        )
        if unfinished:
            warnings.warn(f"{unfinished} output(s) reached the length cap unfinished", stacklevel=2)
        return outputs

    def search_ids(
        self,
        sources: Sequence[np.ndarray],
        *,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        batch_size: int = 32,
    ) -> tuple[list[list[int]], int]:
        """(:meth:`translate_ids`'s outputs, how many of them reached the length cap
        unfinished), without a warning."""
        _require_sequence(sources, "sources")
        if beam_size < 1 or batch_size < 1 or not np.isfinite(length_penalty):
            raise TranslationInputError(
                f"beam_size and batch_size must be >= 1 and length_penalty finite, got "
                f"{beam_size}, {batch_size}, {length_penalty}"
            )
        order = np.argsort([len(s) for s in sources], kind="stable")
        outputs: list[list[int]] = [[] for _ in sources]
        unfinished = 0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            source, mask = _padded_batch([sources[i] for i in index], batch_size, self.max_len)
            search = self._search(source.shape[1], beam_size, length_penalty)
            result: DecodeResult = search(self.params, source, mask)
            unfinished += int(np.sum(~np.asarray(result.ended)[: len(index)]))
            for i, ids in zip(index, result.to_lists()[: len(index)], strict=True):
                outputs[i] = ids
        return outputs, unfinished

    def max_new_tokens(self, source_len: int) -> int:
        """The longest output made for sources padded to ``source_len`` tokens: 1.5 times
        that plus 8, rounded up to a multiple of 16, at most the model's ``max_len``."""
        return min(self.max_len, padded_length(source_len * 3 // 2 + 8, self.max_len))

    def _search(self, source_len: int, beam_size: int, length_penalty: float) -> Callable:
        """The compiled search for sources padded to ``source_len`` tokens."""
        new_tokens = self.max_new_tokens(source_len)
        return _compiled_search(
            self.decoding, beam_size, new_tokens, self.end_id, float(length_penalty)
        )

    def cross_attention(self, source: str, output: Sequence[int]) -> np.ndarray:
        """What the decoder attends to in the source as it writes each token of ``output``
        (teacher-forced), averaged over the last decoder layer's heads: float32[len(output) +
        1, source tokens + 1]; row ``i`` is the step that writes ``output[i]`` (the last row
        writes the end token), the last column is the source's end token. ``output``: ids
        without the end token, at most ``max_len - 1``."""
        src = self.encode_sources([source])[0][None]
        if len(output) >= self.max_len:
            raise ValueError(f"an output of {len(output)} ids is longer than the model's targets")
        tgt = np.append(self.end_id, np.asarray(output, np.int32))[None].astype(np.int32)
        maps = attention_maps(self.model, self.params, src, np.ones_like(src, bool), tgt)
        cross = [name for name in maps if name.endswith("cross_attn") or name == "attention"]
        return np.asarray(maps[cross[-1]][0].mean(axis=0))


@functools.lru_cache(maxsize=32)
def _compiled_search(
    decoding: Seq2SeqDecoding, beam_size: int, new_tokens: int, end_id: int, length_penalty: float
) -> Callable:
    settings = {"max_new_tokens": new_tokens, "start_id": end_id, "end_id": end_id}
    if beam_size == 1:
        return jax.jit(functools.partial(greedy_search, decoding, **settings))
    return jax.jit(functools.partial(
        beam_search, decoding, beam_size=beam_size, length_penalty=length_penalty, **settings
    ))  # fmt: skip


def _padded_batch(
    sources: Sequence[np.ndarray], batch_size: int, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int32[rows, L], mask bool[rows, L])``: the sources padded to their bucket's
    length ``L``, in ``rows`` (the next power of two, at most ``batch_size``) rows; the rows
    past them repeat the last source (so they end with it) and are discarded."""
    rows = min(batch_size, 1 << (len(sources) - 1).bit_length())
    length = padded_length(max(len(s) for s in sources), max_len)
    ids = np.full((rows, length), PAD_ID, np.int32)
    mask = np.zeros((rows, length), bool)
    for row in range(rows):
        source = sources[min(row, len(sources) - 1)]
        ids[row, : len(source)] = source
        mask[row, : len(source)] = True
    return ids, mask


def _require_sequence(values: Any, name: str) -> None:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of sentences, got one string; write [text]")


def require_sacrebleu() -> Any:
    """The ``sacrebleu`` module.

    Raises:
      ImportError: it is not installed (naming the install command).
    """
    try:
        import sacrebleu
    except ImportError as error:
        raise ImportError(f"BLEU and chrF need sacrebleu: {SACREBLEU_INSTALL}") from error
    return sacrebleu


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU (sacrebleu's defaults: 13a tokenisation, exponential smoothing) and chrF
    of ``hypotheses`` against one reference each.

    Raises:
      ImportError: sacrebleu is not installed (naming the install command).
      ValueError: the two lists differ in length.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} references: give one each"
        )
    sacrebleu = require_sacrebleu()
    refs = [list(references)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(hypotheses), refs).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hypotheses), refs).score),
    }
