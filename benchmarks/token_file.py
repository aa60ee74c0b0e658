"""Tokenising a large corpus into memory-mapped token files, against tokenising it in memory.

    python benchmarks/token_file.py                  # a 1 GB synthetic corpus, ~2 min on 2 cores
    python benchmarks/token_file.py --gigabytes 0.05 --json-only

A synthetic English-like corpus (words of a fixed list, lines of 4 to 20 words, seeded) is
written to a file of ``--gigabytes``. Each side does what ``train_lm`` does with it, in a
fresh process, so its peak resident memory is its own:

* **token files** (``--token-cache``): :class:`jaxllm.data.file_corpus.FileCorpus` reads the
  text in pieces, cleans them, counts the clean text's characters and gathers its alphabet
  (one pass), builds the char tokenizer, then cuts the text into train / validation / test and
  appends each split's ids (``uint16``) to its ``.bin`` file (a second pass); then it is asked
  again and finds them by the file's fingerprint (what every later run does);
* **in memory** (the default): ``load_splits``, the char tokenizer, and ``encode_corpus`` per
  split (the whole text as strings and its ids as ``int32``), on a smaller corpus of the same
  kind (``--in-memory-gigabytes``): it needs about 30 bytes of memory per character.

Reported: seconds and MB/s of text tokenised, peak resident memory while tokenising, whether
both ways give the same streams (on the smaller corpus), and the token files' peak over their
size (target: under 2). (Reading the maps later adds the files' pages to the resident set:
clean pages of the page cache, which the kernel drops when memory is short.) The last line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import machine_info, max_rss_mb, print_report, run_in_fresh_process

WORDS = (
    "the of and to in a is that for it as was with be by on not he I this are or his from at "
    "which but have an they you were her she there one all we their can has been if more when "
    "will would who so no time river garden letter morning question answer people history "
    'Mr. Holmes said, quietly; (perhaps) "never" again: 1890 42.'
).split()


def write_corpus(path: Path, size_bytes: int, seed: int = 0) -> None:
    """A synthetic text file of about ``size_bytes``: words of :data:`WORDS`, a line end after
    one in twelve on average, written a block of a million words at a time."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS, dtype=object)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size_bytes:
            chosen = words[rng.integers(0, len(words), 1_000_000)]
            ends = np.where(rng.random(chosen.size) < 1 / 12, "\n", " ").astype(object)
            block = "".join(chosen + ends)
            out.write(block)
            written += len(block)


def checksum(streams: list[np.ndarray]) -> list[int]:
    """A cheap fingerprint of token streams: each one's length and a sample's sum."""
    return [int(len(t)) + int(t[:: max(1, t.size // 1000)].astype(np.int64).sum()) for t in streams]


def token_files_side(path: str, cache: str) -> dict[str, Any]:
    """Make the token files, then find them again: seconds, and the process's peak RSS."""
    from jaxllm.data import DataConfig
    from jaxllm.data.file_corpus import FileCorpus

    start = time.perf_counter()
    corpus = FileCorpus.open(DataConfig(corpus=path), cache)
    made = corpus.token_files(corpus.tokenizer())
    seconds = time.perf_counter() - start
    peak = max_rss_mb()  # before reading the maps: their pages are the files', clean and shared
    start = time.perf_counter()
    again = FileCorpus.open(DataConfig(corpus=path), cache)
    assert again.token_files(again.tokenizer()) == made
    reuse = time.perf_counter() - start
    return {
        "seconds": seconds,
        "reuse_seconds": reuse,
        "peak_rss_mb": peak,
        "file_mb": sum(file.path.stat().st_size for file in made) / 2**20,
        "tokens": sum(file.count for file in made),
        "checksum": checksum([file.tokens() for file in made]),
    }


def in_memory_side(path: str) -> dict[str, Any]:
    """The recipe's in-memory way: clean splits, a char tokenizer, one ``int32`` stream each."""
    from jaxllm.data import DataConfig, encode_corpus, load_splits, train_tokenizer

    start = time.perf_counter()
    splits = load_splits(DataConfig(corpus=path))
    tokenizer = train_tokenizer("char", [doc for split in splits for doc in split])
    streams = [encode_corpus(tokenizer, split) for split in splits]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": max_rss_mb(),
            "tokens": sum(int(t.size) for t in streams), "checksum": checksum(streams)}  # fmt: skip


def run(gigabytes: float, folder: Path, in_memory_gigabytes: float) -> dict[str, Any]:
    corpus = folder / "corpus.txt"
    write_corpus(corpus, int(gigabytes * 1e9))
    text_mb = corpus.stat().st_size / 2**20
    streamed = run_in_fresh_process(token_files_side, str(corpus), str(folder / "cache"))
    result: dict[str, Any] = {
        "text_mb": text_mb,
        "token_files": streamed,
        "token_files_mb_per_s": text_mb / streamed["seconds"],
        "rss_over_file": streamed["peak_rss_mb"] / streamed["file_mb"],
        "machine": machine_info(),
    }
    if in_memory_gigabytes > 0:
        smaller = folder / "smaller.txt"
        write_corpus(smaller, int(min(in_memory_gigabytes, gigabytes) * 1e9))
        small_mb = smaller.stat().st_size / 2**20
        whole = run_in_fresh_process(in_memory_side, str(smaller))
        check = run_in_fresh_process(token_files_side, str(smaller), str(folder / "cache"))
        result["in_memory"] = whole | {"text_mb": small_mb}
        result["in_memory_mb_per_s"] = small_mb / whole["seconds"]
        result["same_tokens"] = (whole["tokens"], whole["checksum"]) == (
            check["tokens"],
            check["checksum"],
        )
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    streamed = result["token_files"]
    lines = [
        f"corpus: {result['text_mb']:,.0f} MiB of text; token files {streamed['file_mb']:,.0f} "
        f"MiB ({streamed['tokens']:,} uint16 tokens)",
        "",
        "| way | seconds | MB/s of text | peak RSS (MiB) |",
        "|---|---|---|---|",
        f"| token files (`FileCorpus`) | {streamed['seconds']:.1f} | "
        f"{result['token_files_mb_per_s']:.0f} | {streamed['peak_rss_mb']:,.0f} |",
    ]
    if "in_memory" in result:
        whole = result["in_memory"]
        lines.append(
            f"| in memory (`load_splits` + `encode_corpus`), on {whole['text_mb']:,.0f} MiB of "
            f"the same text | {whole['seconds']:.1f} | {result['in_memory_mb_per_s']:.0f} | "
            f"{whole['peak_rss_mb']:,.0f} |"
        )
        lines.append(f"\nsame tokens both ways (on the smaller corpus): {result['same_tokens']}")
    lines.append(
        f"token files: peak RSS / their size = {result['rss_over_file']:.2f} (target < 2); "
        f"found again by the text's fingerprint in {streamed['reuse_seconds']:.1f} s"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the corpus")
    parser.add_argument(
        "--in-memory-gigabytes",
        type=float,
        default=0.1,
        help="corpus size for the in-memory side, which needs ~30 bytes of memory per "
        "character (0: skip it)",
    )
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jaxllm-token-file-") as folder:
        result = run(args.gigabytes, Path(folder), args.in_memory_gigabytes)
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
