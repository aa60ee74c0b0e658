"""A smoke run of benchmarks/classic.py on a tiny synthetic SST-2 folder (never the shared data)."""

import json
import pathlib
import sys
import time

import numpy as np
import pytest
from scripts import load_script

pytest.importorskip("sklearn")

ROOT = pathlib.Path(__file__).resolve().parents[1]

POSITIVE = ["wonderful", "moving", "brilliant", "charming", "delightful", "funny", "warm"]
NEGATIVE = ["dull", "tedious", "awful", "bland", "clumsy", "boring", "lifeless"]
FILLER = [
    "the",
    "film",
    "story",
    "cast",
    "director",
    "plot",
    "is",
    "and",
    "a",
    "very",
    "its",
    "performances",
    "script",
    "ending",
    "it",
    "'s",
    ",",
    ".",
]


@pytest.fixture(scope="module")
def classic():
    """benchmarks/classic.py as a module (benchmarks/ is not a package)."""
    yield load_script("benchmarks/classic.py", name="classic_benchmark")
    del sys.modules["classic_benchmark"]


def write_sst2(folder: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """GLUE SST-2-format train.tsv (300 rows) and dev.tsv (100 rows) of synthetic sentences whose
    label is told by their sentiment words."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for name, n in (("train.tsv", 300), ("dev.tsv", 100)):
        rows = ["label\tsentence"]
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(FILLER, size=int(rng.integers(4, 12))))
            words += list(rng.choice(POSITIVE if label else NEGATIVE, size=2))
            words += list(rng.choice(POSITIVE + NEGATIVE, size=1))  # some noise
            rng.shuffle(words)
            rows.append(f"{label}\t{' '.join(words)}")
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def sklearn_dev_accuracy(sst2, estimator) -> float:
    """scikit-learn alone on the folder: TfidfVectorizer, ``estimator``, dev accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def read(name):
        rows = [line.split("\t") for line in (sst2 / name).read_text().splitlines()[1:]]
        return [text for _, text in rows], np.array([int(label) for label, _ in rows])

    (train_texts, train_labels), (dev_texts, dev_labels) = read("train.tsv"), read("dev.tsv")
    vectorizer = TfidfVectorizer()
    estimator.fit(vectorizer.fit_transform(train_texts), train_labels)
    return float(np.mean(estimator.predict(vectorizer.transform(dev_texts)) == dev_labels))


def test_main_on_tiny_settings_reports_every_figure_and_parity(classic, tmp_path, capsys):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    sst2 = write_sst2(tmp_path / "sst2")
    start = time.perf_counter()
    code = classic.main(["--sst2-dir", str(sst2), "--tfidf-mb", "0.2", "--repeats", "1"])
    wall = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])  # the last line is the JSON object
    assert "| figure | jaxllm | scikit-learn |" in out

    assert result["benchmark"] == "classic" and result["parity_ok"] is True
    assert (
        result["tfidf_bytes"] >= 0.2e6 and result["tfidf_docs"] > 300 and result["tfidf_copies"] > 1
    )
    assert result["tfidf_same_vocab"] is True and result["tfidf_parity_ok"] is True
    assert result["tfidf_vocab_size"] == result["sklearn_tfidf_vocab_size"]
    assert result["tfidf_nnz"] == result["sklearn_tfidf_nnz"]
    assert 0.0 <= result["tfidf_max_abs_diff"] <= 1e-6
    assert result["tfidf_speedup"] == pytest.approx(result["sklearn_tfidf_s"] / result["tfidf_s"])
    speedup, target = result["tfidf_speedup"], result["tfidf_target_speedup"]
    assert result["tfidf_meets_target"] is (speedup >= target)
    assert result["linear_features"] == result["sklearn_linear_features"]
    # One repeat: every timed call ran once, one after another, inside main.
    timed = ["tfidf_s", "sklearn_tfidf_s"]
    references = {"logistic": LogisticRegression(C=1.0), "svm": LinearSVC(C=1.0, random_state=0)}
    for name, estimator in references.items():
        timed += [f"{name}_first_fit_s", f"{name}_fit_s", f"sklearn_{name}_fit_s"]
        sklearn_accuracy = sklearn_dev_accuracy(sst2, estimator)
        assert result[f"sklearn_{name}_accuracy"] == pytest.approx(sklearn_accuracy)
        assert result[f"sklearn_{name}_accuracy"] > 0.8  # the synthetic labels are learnable
        assert result[f"{name}_accuracy"] == pytest.approx(
            result[f"sklearn_{name}_accuracy"] + result[f"{name}_accuracy_diff_points"] / 100
        )
        assert abs(result[f"{name}_accuracy_diff_points"]) <= 5  # a few of 100 dev sentences
        assert result[f"{name}_meets_accuracy_target"] is (
            abs(result[f"{name}_accuracy_diff_points"]) <= result["target_accuracy_points"]
        )
        for key in (f"{name}_macro_f1", f"sklearn_{name}_macro_f1"):
            assert 0.0 <= result[key] <= 1.0
        assert result[f"{name}_fit_ratio"] == pytest.approx(
            result[f"{name}_fit_s"] / result[f"sklearn_{name}_fit_s"]
        )
        assert result[f"{name}_cold_fit_ratio"] == pytest.approx(
            result[f"{name}_first_fit_s"] / result[f"sklearn_{name}_fit_s"]
        )
    assert all(result[key] > 0 for key in timed) and sum(result[key] for key in timed) < wall
    ratio, target = result["logistic_fit_ratio"], result["target_fit_ratio"]
    assert result["logistic_meets_fit_target"] is (ratio <= target)
    assert (result["target_accuracy_points"], result["target_fit_ratio"]) == (0.5, 1.0)
    assert result["machine"]["cpu_count"] >= 1 and "background_cpu_load" in result


def test_skip_flags_leave_their_figures_out(classic, tmp_path, capsys):
    sst2 = write_sst2(tmp_path / "sst2")
    code = classic.main(
        [
            "--sst2-dir",
            str(sst2),
            "--tfidf-mb",
            "0.05",
            "--repeats",
            "1",
            "--skip-linear",
            "--json-only",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 1
    result = json.loads(lines[0])
    assert result["linear_skipped"] is True and "logistic_accuracy" not in result
    assert result["tfidf_parity_ok"] is True


def test_missing_data_exits_2_with_a_message(classic, tmp_path, capsys):
    assert classic.main(["--sst2-dir", str(tmp_path / "nowhere")]) == 2
    assert "--sst2-dir" in capsys.readouterr().err


def test_repeated_corpus_reaches_the_size_with_a_token_per_copy(classic):
    docs, size, copies = classic.repeated_corpus(["ab cd", "ef"], 0.0001)  # 100 bytes
    assert size == sum(len(d.encode()) for d in docs) >= 100
    assert size - len(docs[-1].encode()) < 100  # stops at the first document past the size
    assert docs[:3] == ["ab cd copy0", "ef copy0", "ab cd copy1"]
    assert copies == int(docs[-1].rsplit("copy", 1)[1]) + 1 > 1


def test_compare_tfidf_catches_a_different_vocabulary_or_values(classic):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from jaxllm.classic import TfidfConfig, fit_transform

    docs = ["the cat sat", "the dog sat down", "a cat and a dog"]
    vectorizer, X = fit_transform(docs, TfidfConfig())
    sk = TfidfVectorizer()
    Y = sk.fit_transform(docs)
    terms = sk.get_feature_names_out()
    assert classic.compare_tfidf(vectorizer.terms, X, terms, Y)["tfidf_parity_ok"]

    shifted = Y.copy()
    shifted.data[0] += 1e-3
    figures = classic.compare_tfidf(vectorizer.terms, X, terms, shifted)
    assert not figures["tfidf_parity_ok"] and figures["tfidf_max_abs_diff"] == pytest.approx(
        1e-3, rel=1e-3
    )

    renamed = [*terms[:-1], "zzz"]
    figures = classic.compare_tfidf(vectorizer.terms, X, renamed, Y)
    assert not figures["tfidf_parity_ok"] and not figures["tfidf_same_vocab"]
