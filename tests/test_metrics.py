"""Classification metrics against scikit-learn, under jit and eagerly, and their input errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from jaxllm.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    f1_score,
    format_report,
    precision,
    recall,
)

METRICS = {
    "precision": (precision, skm.precision_score),
    "recall": (recall, skm.recall_score),
    "f1": (f1_score, skm.f1_score),
}
# sklearn's default zero_division="warn" scores ill-defined ratios 0.0 and warns; we match it
# silently, so the warning is expected noise here.
# sklearn's confusion_matrix also warns about a single label even when `labels` names them all.
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:A single label was found:UserWarning"),
]


@st.composite
def label_pairs(draw, num_classes=None):
    """``(y_true, y_pred, k)``: int arrays over ``[0, k)`` in which some classes may never occur
    (a narrowed range) and the predictions may all be one class."""
    k = draw(st.integers(1, 5) if num_classes is None else num_classes)
    n = draw(st.sampled_from([1, 2, 5, 12]))  # few shapes: each new one costs an XLA compile
    top = draw(st.integers(0, k - 1))  # y_true only uses 0..top: classes above never occur
    y_true = draw(st.lists(st.integers(0, top), min_size=n, max_size=n))
    y_pred = draw(
        st.one_of(
            st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
            st.integers(0, k - 1).map(lambda c: [c] * n),
        )
    )
    return np.array(y_true), np.array(y_pred), k


@settings(max_examples=40, deadline=None)
@given(label_pairs())
def test_confusion_matrix_and_accuracy_match_sklearn(pair):
    y_true, y_pred, k = pair
    got = confusion_matrix(y_true, y_pred, k)
    assert got.dtype == jnp.int32 and got.shape == (k, k)
    np.testing.assert_array_equal(got, skm.confusion_matrix(y_true, y_pred, labels=range(k)))
    np.testing.assert_allclose(
        accuracy(y_true, y_pred), skm.accuracy_score(y_true, y_pred), rtol=1e-6
    )


@settings(max_examples=40, deadline=None)
@given(label_pairs())
def test_precision_recall_f1_match_sklearn_for_every_average(pair):
    y_true, y_pred, k = pair
    for name, (ours, theirs) in METRICS.items():
        for average in ("macro", "micro", "weighted", None):
            expected = theirs(y_true, y_pred, labels=range(k), average=average)
            got = ours(y_true, y_pred, average=average, num_classes=k)
            assert got.shape == np.shape(expected), (name, average)
            np.testing.assert_allclose(
                got, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {average}"
            )


@settings(max_examples=40, deadline=None)
@given(label_pairs(num_classes=st.just(2)), st.sampled_from([0, 1]))
def test_binary_matches_sklearn_for_both_positive_labels(pair, pos_label):
    y_true, y_pred, _ = pair
    for name, (ours, theirs) in METRICS.items():
        expected = theirs(y_true, y_pred, pos_label=pos_label)
        got = ours(y_true, y_pred, pos_label=pos_label)  # average="binary" is the default
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=name)


@settings(max_examples=15, deadline=None)
@given(label_pairs())
def test_classification_report_matches_sklearn_output_dict(pair):
    y_true, y_pred, k = pair
    names = [f"class {c}" for c in range(k)]
    got = classification_report(y_true, y_pred, names)
    expected = skm.classification_report(
        y_true, y_pred, labels=range(k), target_names=names, output_dict=True
    )
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert list(got[key]) == list(value)
            assert all(type(v) is float for v in got[key].values())
            np.testing.assert_allclose(
                [got[key][m] for m in value],
                list(value.values()),
                rtol=1e-6,
                atol=1e-7,
                err_msg=key,
            )
        else:
            assert type(got[key]) is float
            np.testing.assert_allclose(got[key], value, rtol=1e-6)


def test_metrics_under_jit_match_sklearn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 50), rng.integers(0, 3, 50)  # class 3 never predicted
    for average in ("macro", "micro", "weighted", None):
        for name, (ours, theirs) in METRICS.items():
            fn = functools.partial(ours, average=average, num_classes=4)
            np.testing.assert_allclose(
                jax.jit(fn)(y_true, y_pred),
                theirs(y_true, y_pred, labels=range(4), average=average),
                rtol=1e-6,
                atol=1e-7,
                err_msg=f"{name} {average}",
            )
    binary = functools.partial(f1_score, pos_label=0)
    np.testing.assert_allclose(
        jax.jit(binary)(y_true % 2, y_pred % 2),
        skm.f1_score(y_true % 2, y_pred % 2, pos_label=0),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        jax.jit(confusion_matrix, static_argnums=2)(y_true, y_pred, 4),
        skm.confusion_matrix(y_true, y_pred, labels=range(4)),
    )
    np.testing.assert_allclose(
        jax.jit(accuracy)(y_true, y_pred), np.mean(y_true == y_pred), rtol=1e-6
    )


def test_num_classes_is_inferred_from_concrete_labels_but_required_under_jit():
    np.testing.assert_array_equal(
        confusion_matrix([0, 2], [1, 1]), [[0, 1, 0], [0, 0, 0], [0, 1, 0]]
    )
    np.testing.assert_allclose(recall([0, 2, 1], [1, 1, 1], average=None), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="num_classes cannot be inferred under jit.*static"):
        jax.jit(functools.partial(recall, average="macro"))(jnp.array([0, 1]), jnp.array([1, 1]))


def test_under_jit_out_of_range_labels_are_left_out_of_the_counts():
    counts = jax.jit(confusion_matrix, static_argnums=2)(
        jnp.array([0, 1, 5, -1]), jnp.array([0, -1, 1, 1]), 2
    )
    np.testing.assert_array_equal(counts, [[1, 0], [0, 0]])


def test_bool_labels_count_as_zero_and_one():
    y_true, y_pred = np.array([True, False, True]), np.array([True, True, False])
    np.testing.assert_allclose(precision(y_true, y_pred), 0.5)


def test_format_report_is_a_markdown_table():
    report = classification_report([0, 1, 1, 2], [0, 1, 0, 2], ["cat", "dog", "a|b"])
    assert format_report(report, digits=2).splitlines() == [
        "| class | precision | recall | f1-score | support |",
        "|---|---:|---:|---:|---:|",
        "| cat | 0.50 | 1.00 | 0.67 | 1 |",
        "| dog | 1.00 | 0.50 | 0.67 | 2 |",
        "| a\\|b | 1.00 | 1.00 | 1.00 | 1 |",
        "| accuracy |  |  | 0.75 | 4 |",
        "| macro avg | 0.83 | 0.83 | 0.78 | 4 |",
        "| weighted avg | 0.88 | 0.75 | 0.75 | 4 |",
    ]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: accuracy([0, 1, 1], [0, 1]), r"same length, got 3 and 2.*one prediction per"),
        (
            lambda: accuracy([0.0, 1.0], [0, 1]),
            r"y_true must hold integer class ids.*astype\(int\)",
        ),
        (lambda: recall(["a", "b"], ["a", "b"], average="macro"), r"integer class ids.*np.unique"),
        (
            lambda: confusion_matrix([0, 3], [0, 1], 3),
            r"y_true holds labels outside \[0, 3\): 3; pass",
        ),
        (
            lambda: f1_score([0, 1], [-1, 1], average="macro", num_classes=2),
            r"y_pred .*outside.*: -1",
        ),
        (lambda: precision([0, 2], [0, 1]), r"average='binary' needs labels in \{0, 1\}.*'macro'"),
        (lambda: precision([0, 1], [0, 1], num_classes=3), r"binary' is for two classes.*'macro'"),
        (lambda: precision([0, 1], [0, 1], pos_label=2), r"pos_label must be 0 or 1"),
        (lambda: precision([0, 1], [0, 1], average="samples"), r"average must be one of"),
        (lambda: accuracy([], []), r"y_true is empty.*evaluation split"),
        (lambda: accuracy(np.zeros((2, 3), int), np.zeros((2, 3), int)), r"must be 1-D.*reshape"),
        (lambda: confusion_matrix([0, 1], [0, 1], 0), r"num_classes must be a positive"),
        (
            lambda: classification_report([0, 1], [0, 1], ["x", "x"]),
            r"label_names must be distinct",
        ),
        (lambda: classification_report([0, 2], [0, 1], ["x", "y"]), r"outside \[0, 2\)"),
        # shape and dtype checks are static, so they hold under jit as well
        (lambda: jax.jit(accuracy)(jnp.zeros((2, 2), int), jnp.zeros((2, 2), int)), r"must be 1-D"),
        (lambda: jax.jit(accuracy)(jnp.zeros(3, int), jnp.zeros(2, int)), r"same length"),
        (lambda: jax.jit(accuracy)(jnp.zeros(3), jnp.zeros(3, int)), r"integer class ids"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_problem_and_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
