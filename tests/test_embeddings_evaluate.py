"""Word-vector evaluation against gensim's KeyedVectors on its own evaluation files, the
correlations against hand computations and scipy, and the input errors."""

import math
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jaxllm.embeddings.evaluate import (
    analogies,
    average_ranks,
    format_evaluation,
    gensim_test_file,
    nearest_neighbours,
    pearson_correlation,
    spearman_correlation,
    word_similarity,
)

gensim_models = pytest.importorskip("gensim.models")

DIM = 32
# Sections whose answers are built into the vectors (second word = first word + a section
# offset), so that 3CosAdd gets many of them right and some wrong.
STRUCTURED = ("capital-common-countries", "family", "gram3-comparative", "gram8-plural")


def _read_questions():
    sections, current = {}, None
    for line in gensim_test_file("questions-words.txt").read_text().splitlines():
        if line.startswith(": "):
            current = sections.setdefault(line[2:].strip(), [])
        elif line.split():
            current.append(line.split())
    return sections


def _read_pair_words(name):
    words = []
    for line in gensim_test_file(name).read_text().splitlines():
        if not line.startswith("#") and line.count("\t") == 2:
            words += line.split("\t")[:2]
    return words


def _make_embedding():
    """``(words, vectors float32[V, DIM], KeyedVectors)``: part of every gensim evaluation
    file's words, shuffled (so restrict_vocab cuts across them), plus lower- and upper-case
    variants of some of them with vectors of their own (so the first case variant matters)."""
    rng = np.random.default_rng(0)
    sections = _read_questions()
    vectors = {}
    for name in STRUCTURED:
        offset = rng.normal(size=DIM) * 1.5
        for question in sections[name]:
            for first, second in (question[:2], question[2:]):
                vectors.setdefault(first, rng.normal(size=DIM))
                vectors.setdefault(second, vectors[first] + offset + rng.normal(size=DIM) * 0.4)
    others = sorted(
        {w for qs in sections.values() for q in qs for w in q}
        | set(_read_pair_words("wordsim353.tsv"))
        | set(_read_pair_words("simlex999.txt"))
    )
    for word in others:
        if word not in vectors and rng.random() < 0.85:  # the rest are out of vocabulary
            vectors[word] = rng.normal(size=DIM)
    for word in sorted(vectors)[::7]:
        for variant in (word.lower(), word.upper()):
            if variant not in vectors:
                vectors[variant] = rng.normal(size=DIM)
    words = sorted(vectors)
    rng.shuffle(words)
    matrix = np.stack([vectors[w] for w in words]).astype(np.float32)
    kv = gensim_models.KeyedVectors(DIM)
    kv.add_vectors(words, matrix)
    return words, matrix, kv


@pytest.fixture(scope="module")
def embedding():
    return _make_embedding()


OPTIONS = [
    {},
    {"restrict_vocab": 1500},
    {"case_insensitive": False},
    {"dummy4unknown": True, "restrict_vocab": 2000},
]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("dataset", ["wordsim353.tsv", "simlex999.txt"])
def test_word_similarity_matches_gensim(embedding, dataset, options):
    words, vectors, kv = embedding
    path = gensim_test_file(dataset)
    (pearson, pearson_p), (spearman, spearman_p), oov_ratio = kv.evaluate_word_pairs(
        str(path), **options
    )
    result = word_similarity(words, vectors, path, **options)
    assert result["pearson"] == pytest.approx(pearson, abs=1e-6)
    assert result["spearman"] == pytest.approx(spearman, abs=1e-6)
    assert result["pearson_pvalue"] == pytest.approx(pearson_p, rel=1e-4, abs=1e-12)
    assert result["spearman_pvalue"] == pytest.approx(spearman_p, rel=1e-4, abs=1e-12)
    assert result["oov_percent"] == pytest.approx(oov_ratio, abs=1e-9)
    assert result["oov_pairs"] > 0 and result["pairs"] > 100


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_analogies_match_gensim(embedding, options):
    words, vectors, kv = embedding
    path = gensim_test_file("questions-words.txt")
    score, sections = kv.evaluate_word_analogies(str(path), **options)
    result = analogies(words, vectors, path, chunk_size=512, **options)
    ours = [(s["section"], s["correct"], s["incorrect"]) for s in result["sections"]]
    theirs = [(s["section"], len(s["correct"]), len(s["incorrect"])) for s in sections[:-1]]
    assert ours == theirs
    assert (result["correct"], result["incorrect"]) == (
        len(sections[-1]["correct"]),
        len(sections[-1]["incorrect"]),
    )
    assert result["accuracy"] == pytest.approx(score, abs=1e-12)
    # Not a trivial comparison: the structured sections are partly solved, the others hardly.
    assert all(s["correct"] > 0 for s in result["sections"] if s["section"] in STRUCTURED)
    assert 0 < result["correct"] < result["correct"] + result["incorrect"]
    for group, syntactic in (("semantic", False), ("syntactic", True)):  # gensim's, by section name
        mine = [s for s in sections[:-1] if s["section"].startswith("gram") == syntactic]
        assert (result[group]["correct"], result[group]["incorrect"]) == (
            sum(len(s["correct"]) for s in mine),
            sum(len(s["incorrect"]) for s in mine),
        )
    # The questions with a word outside the (restricted, case-folded) vocabulary, counted here.
    fold = str.upper if options.get("case_insensitive", True) else str
    known = {fold(w) for w in words[: options.get("restrict_vocab", len(words))]}
    questions = _read_questions()
    oov = {
        name: sum(not all(fold(w) in known for w in q) for q in qs)
        for name, qs in questions.items()
    }
    assert {s["section"]: s["oov"] for s in result["sections"]} == oov
    assert result["oov_questions"] == sum(oov.values()) > 0
    asked = sum(map(len, questions.values()))
    assert result["oov_percent"] == pytest.approx(100 * sum(oov.values()) / asked)


def test_analogies_chunking_does_not_change_answers(embedding):
    words, vectors, _ = embedding
    path = gensim_test_file("questions-words.txt")
    one = analogies(words, jnp.asarray(vectors), path, chunk_size=100)
    assert one["sections"] == analogies(words, vectors, path, chunk_size=1024)["sections"]


def test_nearest_neighbours_match_gensim(embedding):
    words, vectors, kv = embedding
    for query in ("king", "Athens", words[0], words[-1]):
        ours = nearest_neighbours(words, vectors, query, topn=12)
        theirs = kv.most_similar(positive=[query], topn=12)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([c for _, c in ours], [c for _, c in theirs], atol=1e-5)
    query = vectors[5] * 3 - vectors[9]
    ours = nearest_neighbours(words, jnp.asarray(vectors), jnp.asarray(query), topn=5)
    theirs = kv.most_similar(positive=[query], topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([c for _, c in ours], [c for _, c in theirs], atol=1e-5)


def test_nearest_neighbours_exclude_and_small_vocabulary():
    words, vectors = ["a", "b", "c"], np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    assert [w for w, _ in nearest_neighbours(words, vectors, "a")] == ["b", "c"]
    assert nearest_neighbours(words, vectors, "a", exclude=["b", "zzz"]) == [("c", -1.0)]
    ((word, cosine),) = nearest_neighbours(words, vectors, np.array([2.0, 2.0]), topn=1)
    assert word == "b" and cosine == pytest.approx(1.0)


def test_average_ranks_and_spearman_with_ties_by_hand():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(average_ranks([3, 1, 3, 3, 2]), [4, 1, 4, 4, 2])
    # ranks x: [1, 2.5, 2.5, 4], y: [1, 4, 2.5, 2.5]; centred: [-1.5, 0, 0, 1.5] and
    # [-1.5, 1.5, 0, 0]: rho = 2.25 / sqrt(4.5 * 4.5) = 0.5.
    rho, _ = spearman_correlation([1, 2, 2, 3], [1, 3, 2, 2])
    assert rho == pytest.approx(0.5)
    rho, p_value = spearman_correlation([1, 2, 3], [30, 20, 10])
    assert rho == pytest.approx(-1.0) and p_value == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(pearson_correlation([1, 1, 1], [1, 2, 3])[0])


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in (3, 10, 400):
        x = rng.integers(0, 6, n).astype(float)  # many ties
        y = x + rng.normal(size=n) * 2
        np.testing.assert_allclose(average_ranks(y), stats.rankdata(y))
        np.testing.assert_allclose(
            pearson_correlation(x, y), tuple(stats.pearsonr(x, y)), rtol=1e-9, atol=1e-300
        )
        np.testing.assert_allclose(
            spearman_correlation(x, y), tuple(stats.spearmanr(x, y)), rtol=1e-9, atol=1e-300
        )


def test_format_evaluation(embedding):
    words, vectors, _ = embedding
    similarity = {"wordsim353": word_similarity(words, vectors, gensim_test_file("wordsim353.tsv"))}
    table = format_evaluation(
        similarity, analogies(words, vectors, gensim_test_file("questions-words.txt"))
    )
    lines = table.splitlines()
    assert lines[0] == "| evaluation | metric | score | n | OOV |"
    assert [line.split(" | ")[0:2] for line in lines[2:]] == [
        ["| wordsim353", "Spearman ρ"],
        ["| wordsim353", "Pearson r"],
        ["| analogy (semantic)", "accuracy"],
        ["| analogy (syntactic)", "accuracy"],
        ["| analogy (overall)", "accuracy"],
    ]
    assert f"{similarity['wordsim353']['spearman']:.3f}" in lines[2]
    with pytest.raises(ValueError, match="nothing to format"):
        format_evaluation()


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


def test_unknown_query_word():
    with pytest.raises(KeyError, match="'queen' is not in the vocabulary of 2 words"):
        nearest_neighbours(["king", "man"], np.eye(2), "queen")


def test_words_and_vectors_length_mismatch():
    with pytest.raises(ValueError, match="words has 3 entries but vectors has 2 rows"):
        nearest_neighbours(["a", "b", "c"], np.eye(2), "a")
    with pytest.raises(ValueError, match="must be 2-D"):
        word_similarity(["a"], np.ones(3), "x.tsv")


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(FileNotFoundError, match="nope.tsv' does not exist"):
        word_similarity(["a"], np.eye(1), missing)
    with pytest.raises(FileNotFoundError, match="questions-words.txt"):
        analogies(["a"], np.eye(1), missing)
    with pytest.raises(FileNotFoundError, match="gensim has no test file 'nope.txt'"):
        gensim_test_file("nope.txt")


def test_file_without_usable_pairs(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# a comment\nx\ty\t1.0\nx y 2.0\n")
    with pytest.raises(
        ValueError,
        match=r"no usable word pairs .*1 pairs have a word outside "
        r"the 2 known words and 1 lines",
    ):
        word_similarity(["a", "b"], np.eye(2), pairs)
    questions = tmp_path / "questions.txt"
    questions.write_text(": s\nx y z w\n")
    with pytest.raises(ValueError, match="no usable analogy questions"):
        analogies(["a", "b"], np.eye(2), questions)
    questions.write_text("a b a b\n")
    with pytest.raises(ValueError, match="before the first ': section' header"):
        analogies(["a", "b"], np.eye(2), questions)


def test_gensim_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim.test.utils", None)
    with pytest.raises(ImportError, match="pip install gensim"):
        gensim_test_file("wordsim353.tsv")


def test_analogies_skip_case_variants_of_the_question_words_as_gensim(tmp_path):
    """gensim excludes the rows of a, b, c, then takes the first of its 5 best candidates not
    *spelled* (case-folded) like a, b or c, else the last candidate: with case variants of "man"
    crowding the top 5, "man king woman man" counts as right and "... queen" as wrong."""
    rng = np.random.default_rng(2)
    base = {w: rng.normal(size=8) for w in ("man", "king", "woman", "queen", "x", "y")}
    target = base["king"] - base["man"] + base["woman"]
    variants = ["Man", "MAN", "mAn", "maN", "MAn", "mAN"]
    words = [*base, *variants]
    vectors = np.stack([*base.values(), *(target + rng.normal(size=8) * 0.01 for _ in variants)])
    questions = tmp_path / "questions.txt"
    questions.write_text(": family\nman king woman man\nman king woman queen\n: tiny\nx y x y\n")
    kv = gensim_models.KeyedVectors(8)
    kv.add_vectors(words, vectors.astype(np.float32))
    # With 5 rows there are fewer than 5 candidates once a, b, c are out: queen is the only one.
    for restrict_vocab, expected in ((300000, [(1, 1), (0, 1)]), (5, [(1, 1), (0, 0)])):
        _, sections = kv.evaluate_word_analogies(str(questions), restrict_vocab=restrict_vocab)
        result = analogies(words, vectors, questions, restrict_vocab=restrict_vocab)
        counts = [(s["correct"], s["incorrect"]) for s in result["sections"]]
        assert counts == [(len(s["correct"]), len(s["incorrect"])) for s in sections[:-1]]
        assert counts == expected
