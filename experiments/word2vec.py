"""Train word2vec (skip-gram or CBOW, negative sampling) on a corpus; evaluate and plot it.

    python experiments/word2vec.py  # skip-gram on the bundled pydoc
    python experiments/word2vec.py --model cbow --epochs 20 --words list string exception
    python experiments/word2vec.py --corpus shakespeare --min-count 5 --epochs 5  # after make data
    python experiments/word2vec.py --corpus path/to/text_or_folder --name my-vectors

Corpora: ``pydoc`` (the Python reference manual's topics, ~64k words, bundled with CPython),
``shakespeare`` (~900k words, from ``make data``) or the path of a text file or folder. Each is
cut into sentences and lower-cased words by :func:`tokenize`.

Prints the loss and speed of each epoch, then the evaluation table: Spearman ρ (and Pearson r)
with the human judgements of WordSim-353 and SimLex-999, the share of their pairs that are out
of the vocabulary (OOV), and accuracy on Mikolov et al.'s analogy questions — files bundled with
gensim, a test-only dependency: without gensim the evaluation is skipped with a note. A small
corpus covers few of those words, so expect high OOV rates and modest scores on pydoc. Then the
nearest neighbours of ``--words`` (defaults chosen per corpus; words missing from the vocabulary
are skipped with a note).

Writes to ``runs/<name>/``: ``vectors.txt`` (word2vec text format, readable by
``jaxllm.embeddings.load_word2vec_format`` and gensim's ``KeyedVectors.load_word2vec_format``),
``evaluation.md``, ``neighbours.md`` and ``pca.png`` (the query words and their neighbours
projected on the first two principal components of their centred vectors).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from jaxllm.data import load_corpus
from jaxllm.data.corpora import EmptyCorpusError
from jaxllm.embeddings import (
    Word2VecConfig,
    Word2VecModel,
    analogies,
    format_evaluation,
    gensim_test_file,
    save_word2vec_format,
    train_word2vec,
    word_similarity,
)
from jaxllm.runtime import configure_cpu

# Query words per named corpus; for any other text, see default_words.
DEFAULT_WORDS = {
    "pydoc": ("list", "string", "exception", "function", "class", "integer"),
    "shakespeare": ("king", "love", "death", "lord", "night", "sword"),
}
SIMILARITY_FILES = {"WordSim-353": "wordsim353.tsv", "SimLex-999": "simlex999.txt"}
ANALOGY_FILE = "questions-words.txt"

# A sentence ends at . ! or ? followed by whitespace, or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
# A word: a run of letters (any script; no digits or underscores), with inner apostrophes.
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def tokenize(documents: Iterable[str]) -> list[list[str]]:
    """Sentences of lower-cased words: word2vec's input.

    Each document is cut into sentences at ``.``, ``!`` or ``?`` followed by whitespace and at
    blank lines (so headings and code blocks end a sentence too); each sentence is lower-cased
    and its words are the runs of letters, keeping inner apostrophes (``"don't"``, ``"o'er"``).
    Digits, punctuation and underscores separate words (``__init__`` -> ``init``); sentences
    left without a word are dropped. Windows never cross a sentence boundary.
    """
    return [
        words
        for document in documents
        for sentence in _SENTENCE_END.split(document)
        if (words := _WORD.findall(sentence.lower()))
    ]


def default_words(corpus: str, vocabulary: Sequence[str], count: int = 6) -> list[str]:
    """The query words of a named corpus; for other text, ``count`` words of middling frequency
    (ranks 50, 100, 150, ... of the vocabulary: past the function words, still well trained)."""
    if corpus in DEFAULT_WORDS:
        return list(DEFAULT_WORDS[corpus])
    ranks = range(50, 50 * (count + 1), 50)
    picked = [vocabulary[r] for r in ranks if r < len(vocabulary)]
    return picked or list(vocabulary[:count])


def evaluate(model: Word2VecModel) -> tuple[str | None, list[str]]:
    """``(format_evaluation table or None, notes)`` on gensim's bundled evaluation files."""
    words, vectors = list(model.vocab.words), model.vectors
    notes: list[str] = []
    try:
        paths = {name: gensim_test_file(file) for name, file in SIMILARITY_FILES.items()}
        analogy_path = gensim_test_file(ANALOGY_FILE)
    except ImportError:
        return None, [
            "gensim is not installed, so the WordSim-353 / SimLex-999 / analogy files it "
            "bundles are missing: evaluation skipped (`pip install gensim` to run it)"
        ]
    similarity = {}
    for name, path in paths.items():
        try:
            similarity[name] = word_similarity(words, vectors, path)
        except ValueError:  # every pair out of the vocabulary
            notes.append(f"{name}: no pair has both words in the vocabulary; skipped")
    try:
        analogy = analogies(words, vectors, analogy_path)
    except ValueError:
        analogy = None
        notes.append("analogies: no question has all four words in the vocabulary; skipped")
    if not similarity and analogy is None:
        return None, notes
    return format_evaluation(similarity, analogy), notes


def neighbours(
    model: Word2VecModel, queries: Sequence[str], topn: int
) -> tuple[dict[str, list], list[str]]:
    """``({word: [(neighbour, cosine), ...]}, missing words)``."""
    found, missing = {}, []
    for word in queries:
        if word in model.vocab:
            found[word] = model.most_similar(word, topn=topn)
        else:
            missing.append(word)
    return found, missing


def neighbours_markdown(found: dict[str, list]) -> str:
    lines = ["| word | nearest neighbours (cosine) |", "|---|---|"]
    for word, near in found.items():
        lines.append(f"| {word} | " + ", ".join(f"{w} ({c:.2f})" for w, c in near) + " |")
    return "\n".join(lines) + "\n"


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(points float[n, 2], explained variance ratio float[2])``: the rows projected on the
    first two principal components, by an SVD of the centred rows."""
    x = np.asarray(vectors, np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    variance = s**2
    k = min(2, vt.shape[0])
    points = np.zeros((x.shape[0], 2))
    points[:, :k] = x @ vt[:k].T
    ratio = np.zeros(2)
    ratio[:k] = variance[:k] / max(variance.sum(), 1e-30)
    return points, ratio


def pca_plot(model: Word2VecModel, found: dict[str, list], path: Path, title: str) -> None:
    """Scatter of the query words (large, one colour each) and their neighbours on 2 PCs."""
    from matplotlib import colormaps

    from jaxllm.plots import save_figure, subplots

    words, group = [], []
    for i, (word, near) in enumerate(found.items()):
        for w in [word, *(n for n, _ in near)]:
            if w not in words:
                words.append(w)
                group.append(i)
    fig, ax = subplots(figsize=(8, 6.5))
    if len(words) >= 2:
        points, ratio = pca_2d(np.stack([model[w] for w in words]))
        colours = colormaps["tab10"]
        for (x, y), w, g in zip(points, words, group, strict=True):
            query = w in found
            ax.scatter(
                x,
                y,
                s=60 if query else 18,
                color=colours(g % 10),
                zorder=3,
                marker="D" if query else "o",
            )
            ax.annotate(
                w,
                (x, y),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=10 if query else 8,
                fontweight="bold" if query else "normal",
            )
        ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f}% of the variance)")
        ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f}% of the variance)")
    else:
        ax.text(
            0.5,
            0.5,
            "no query word in the vocabulary",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.grid(alpha=0.3)
    ax.set_title(title)
    save_figure(fig, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="pydoc", help="pydoc, shakespeare, or a text file/folder path"
    )
    parser.add_argument("--model", default="skipgram", choices=["skipgram", "cbow"])
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5, help="largest centre-context distance")
    parser.add_argument("--negative", type=int, default=5, help="noise words per positive word")
    parser.add_argument("--min-count", type=int, default=3, help="drop words seen fewer times")
    parser.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (0: off)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.025, help="initial learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--words",
        nargs="+",
        default=None,
        help="query words for neighbours and the plot (default: a few per corpus)",
    )
    parser.add_argument("--topn", type=int, default=8, help="neighbours per query word")
    parser.add_argument(
        "--name", default=None, help="run folder name (default: word2vec-<corpus>-<model>)"
    )
    parser.add_argument("--out-dir", default="runs")
    parser.add_argument(
        "--progress", action="store_true", help="show a progress bar while training"
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Word2VecConfig:
    return Word2VecConfig(
        model=args.model,
        vector_size=args.vector_size,
        window=args.window,
        negative=args.negative,
        min_count=args.min_count,
        sample=args.sample,
        alpha=args.alpha,
        epochs=args.epochs,
        seed=args.seed,
    )


def print_epochs(model: Word2VecModel) -> None:
    """Each epoch's loss and speed."""
    for epoch, (loss, rate, effective) in enumerate(
        zip(
            model.epoch_losses,
            model.words_per_second,
            model.effective_words_per_second,
            strict=True,
        ),
        1,
    ):
        print(
            f"  epoch {epoch:3d}  loss {loss:.4f}  {rate:,.0f} words/s  "
            f"({effective:,.0f} effective)"
        )


def training_summary(args: argparse.Namespace, model: Word2VecModel, seconds: float) -> str:
    """One line: the settings, the vocabulary and the training time."""
    return (
        f"{args.model}, {len(model.vocab):,} words x {args.vector_size} dimensions, window "
        f"{args.window}, negative {args.negative}, min-count {args.min_count}, sample "
        f"{args.sample:g}, alpha {args.alpha:g}, {args.epochs} epochs, seed {args.seed}: "
        f"trained in {seconds:.1f} s (compilation included)"
    )


def print_evaluation(table: str | None, notes: list[str]) -> None:
    print()
    for note in notes:
        print(f"note: {note}")
    if table:
        print(table)


def print_neighbours(found: dict[str, list], missing: list[str], min_count: int) -> None:
    for word in missing:
        print(
            f"note: {word!r} is not in the vocabulary "
            f"(rare words fall below --min-count {min_count}); skipped"
        )
    for word, near in found.items():
        print(f"{word:>14s}: " + ", ".join(f"{w} ({c:.2f})" for w, c in near))


def write_markdown(
    run_dir: Path,
    header: str,
    evaluation: tuple[str | None, list[str]],
    found: dict[str, list],
    missing: list[str],
) -> None:
    """``evaluation.md`` (the table and its notes) and ``neighbours.md``, each after ``header``."""
    table, notes = evaluation
    (run_dir / "evaluation.md").write_text(
        header + (table or "") + "".join(f"\nNote: {n}\n" for n in notes)
    )
    (run_dir / "neighbours.md").write_text(
        header
        + neighbours_markdown(found)
        + "".join(f"\nNot in the vocabulary: {w}\n" for w in missing)
    )


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    args = parse_args(argv)
    corpus_name = args.corpus if args.corpus in DEFAULT_WORDS else Path(args.corpus).stem or "text"
    try:
        documents = load_corpus(args.corpus)
        sentences = tokenize(documents)
    except (FileNotFoundError, ModuleNotFoundError, EmptyCorpusError) as e:
        print(f"cannot load corpus {args.corpus!r}: {e}", file=sys.stderr)
        return 2
    print(
        f"corpus {args.corpus}: {len(documents):,} documents, {len(sentences):,} sentences, "
        f"{sum(map(len, sentences)):,} words"
    )
    config = config_from_args(args)
    start = time.perf_counter()
    try:
        model = train_word2vec(sentences, config, progress=args.progress)
    except EmptyCorpusError as e:
        print(f"nothing to train on: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print_epochs(model)
    summary = training_summary(args, model, seconds)
    print(summary)

    table, notes = evaluate(model)
    print_evaluation(table, notes)

    queries = args.words or default_words(corpus_name, model.vocab.words)
    found, missing = neighbours(model, queries, args.topn)
    print_neighbours(found, missing, args.min_count)

    run_dir = Path(args.out_dir) / (args.name or f"word2vec-{corpus_name}-{args.model}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_word2vec_format(model, run_dir / "vectors.txt")
    header = f"# word2vec on {args.corpus}\n\n{summary}.\n\n"
    write_markdown(run_dir, header, (table, notes), found, missing)
    pca_plot(
        model,
        found,
        run_dir / "pca.png",
        f"word2vec {args.model} on {corpus_name}: query words and their neighbours, 2-D PCA",
    )
    written = ("vectors.txt", "evaluation.md", "neighbours.md", "pca.png")
    print(f"\nWritten: {', '.join(str(run_dir / f) for f in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
