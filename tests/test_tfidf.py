"""TF-IDF and counts against scikit-learn's vectorisers on the same settings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.classic import TfidfConfig, fit_transform, fit_vectorizer

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")

DOCS = [
    "The cat sat on the mat.",
    "The dog ate my homework!",
    "A cat and a dog: friends?",
    "Über-cool café déjà vu, the CAT returns",
    "",
    "numbers 42 and 3.14 count as words 42",
    "the the the the end",
    "Mat, mat, MAT -- the cat's mat",
]
WORDS = [
    "cat",
    "dog",
    "mat",
    "the",
    "sat",
    "ate",
    "über",
    "café",
    "x1",
    "jax",
    "jit",
    "vmap",
    "A",
    "Be",
]


def reference(config: TfidfConfig, docs):
    return sklearn_text.TfidfVectorizer(
        lowercase=config.lowercase,
        token_pattern=config.token_pattern,
        ngram_range=config.ngram_range,
        stop_words=list(config.stop_words) if config.stop_words else None,
        min_df=config.min_df,
        max_df=config.max_df,
        max_features=config.max_features,
        binary=config.binary,
        use_idf=config.use_idf,
        smooth_idf=config.smooth_idf,
        sublinear_tf=config.sublinear_tf,
        norm=config.norm,
    ).fit(docs)


def assert_matches_sklearn(config: TfidfConfig, docs, new_docs=None):
    ref = reference(config, docs)
    vectorizer, X = fit_transform(docs, config)
    assert list(vectorizer.terms) == list(ref.get_feature_names_out())
    np.testing.assert_allclose(
        np.asarray(X.todense()), ref.transform(docs).toarray(), atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(vectorizer.idf, ref.idf_ if config.use_idf else 1.0, rtol=1e-12)
    if new_docs is not None:
        np.testing.assert_allclose(
            np.asarray(vectorizer.transform(new_docs).todense()),
            ref.transform(new_docs).toarray(),
            atol=1e-6,
            rtol=1e-6,
        )


@pytest.mark.parametrize(
    "config",
    [
        TfidfConfig(),
        TfidfConfig(ngram_range=(1, 2)),
        TfidfConfig(ngram_range=(2, 3), sublinear_tf=True, norm="l1"),
        TfidfConfig(ngram_range=(3, 3)),
        TfidfConfig(
            ngram_range=(1, 2), token_pattern=r"[^,]+", min_df=0.0
        ),  # "a b"+"c" = "a"+"b c"
        TfidfConfig(ngram_range=(1, 3), stop_words=("the", "on"), min_df=2, lowercase=False),
        TfidfConfig(min_df=2, max_df=0.9),
        TfidfConfig(max_features=5),
        TfidfConfig(max_features=4, binary=True, smooth_idf=False),
        TfidfConfig(use_idf=False, norm=None),  # CountVectorizer
        TfidfConfig(lowercase=False, token_pattern=r"(?u)\b\w+\b", stop_words=("the", "a")),
        TfidfConfig(min_df=0.25, max_df=3),
    ],
    ids=str,
)
def test_equals_sklearn_tfidf_vectorizer(config):
    assert_matches_sklearn(
        config, DOCS, new_docs=["the unknown cat", "nothing known here", "mat mat"]
    )


@settings(max_examples=25, deadline=None)
@given(
    docs=st.lists(
        st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), min_size=2, max_size=12
    ),
    ngram_max=st.integers(1, 3),
    sublinear=st.booleans(),
    binary=st.booleans(),
    max_features=st.one_of(st.none(), st.integers(1, 8)),
)
def test_equals_sklearn_on_random_corpora(docs, ngram_max, sublinear, binary, max_features):
    docs = docs + ["cat dog"]  # at least one token
    config = TfidfConfig(
        ngram_range=(1, ngram_max), sublinear_tf=sublinear, binary=binary, max_features=max_features
    )
    assert_matches_sklearn(config, docs, new_docs=docs[::-1])


def test_rows_are_unit_l2_and_sparse():
    vectorizer, X = fit_transform(DOCS)
    dense = np.asarray(X.todense())
    norms = np.linalg.norm(dense, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-6)
    assert norms[4] == 0  # the empty document
    assert X.nse == np.count_nonzero(dense) and X.shape == (len(DOCS), vectorizer.num_features)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no documents"):
        fit_vectorizer([])
    with pytest.raises(ValueError, match="one string"):
        fit_vectorizer("a single document")
    with pytest.raises(ValueError, match="document 1 is a NoneType"):
        fit_vectorizer(["fine", None])
    with pytest.raises(ValueError, match="empty vocabulary: none of the 2 documents"):
        fit_vectorizer(["", "? !"])
    with pytest.raises(ValueError, match="empty vocabulary: no term occurs in at least min_df=7"):
        fit_vectorizer(DOCS, TfidfConfig(min_df=7, max_df=1.0))
    with pytest.raises(ValueError, match="max_df=1 allows fewer documents"):
        fit_vectorizer(DOCS, TfidfConfig(min_df=2, max_df=1))
    with pytest.raises(ValueError, match="not a valid regular expression"):
        TfidfConfig(token_pattern="(")


def test_documents_without_a_known_term_are_zero_rows():
    vectorizer = fit_vectorizer(DOCS)
    X = vectorizer.transform(["zzz qqq", "", "!!"])
    assert X.shape == (3, vectorizer.num_features) and X.nse == 0


UNICODE = "abcXYZ_09 .,;–“”½²٣éÉßİΣσςñ\u0301\u200b\t\n-'’ǅ"


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.text(alphabet=UNICODE, max_size=40), min_size=1, max_size=8))
def test_default_pattern_fast_path_equals_sklearn_on_unicode(docs):
    """The default pattern is tokenised without a regular expression; Python's Unicode \\w,
    lower-casing (dotted İ, final sigma) and word boundaries must come out the same."""
    docs = docs + ["plain words here"]
    assert_matches_sklearn(TfidfConfig(), docs, new_docs=docs[::-1])
    assert_matches_sklearn(TfidfConfig(lowercase=False, norm=None, use_idf=False), docs)


def test_documents_holding_nul_take_the_general_path():
    docs = ["a\x00b cat\x00dog", "cat dog dog", "x\x00"]
    assert_matches_sklearn(TfidfConfig(), docs)


def test_top_terms_refuses_a_negative_k():
    from jaxllm.classic import top_terms

    vectorizer = fit_vectorizer(["good film", "bad film"], TfidfConfig())
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        top_terms(vectorizer, np.ones(vectorizer.num_features), k=-1)
    assert top_terms(vectorizer, np.ones(vectorizer.num_features), k=0) == []
