"""experiments/word2vec.py end to end on a small generated text."""

import random
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scripts import load_script

from jaxllm.embeddings import load_word2vec_format

ROOT = Path(__file__).resolve().parents[1]


def generated_text(sentences: int = 300, seed: int = 0) -> str:
    """Sentences from a tiny grammar: royals and animals doing things in places."""
    rng = random.Random(seed)
    subjects = [
        "the king",
        "the queen",
        "a man",
        "a woman",
        "the dog",
        "the cat",
        "a horse",
        "the bird",
    ]
    verbs = ["walks", "runs", "sleeps", "eats", "sings", "waits", "sits"]
    places = ["in the castle", "in the garden", "by the river", "near the house", "under the tree"]
    times = ["at night", "in the morning", "every day", "today"]
    return "\n".join(
        f"{rng.choice(subjects).capitalize()} {rng.choice(verbs)} {rng.choice(places)} "
        f"{rng.choice(times)}{rng.choice('.!?')}"
        for _ in range(sentences)
    )


def test_tokenize_splits_sentences_and_lowercases_words():
    script = load_script("experiments/word2vec.py")
    sentences = script.tokenize(
        ["The King's dog runs. It sleeps!\n\nCall __init__() 42 times?", "  "]
    )
    assert sentences == [
        ["the", "king's", "dog", "runs"],
        ["it", "sleeps"],
        ["call", "init", "times"],
    ]


def test_main_writes_vectors_tables_and_plot(tmp_path, capsys):
    text = tmp_path / "generated.txt"
    text.write_text(generated_text())
    code = load_script("experiments/word2vec.py").main(
        [
            "--corpus",
            str(text),
            "--epochs",
            "2",
            "--vector-size",
            "16",
            "--min-count",
            "1",
            "--words",
            "king",
            "dog",
            "unicorn",
            "--topn",
            "4",
            "--name",
            "tiny",
            "--out-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "'unicorn' is not in the vocabulary" in out  # reported, not a crash
    assert "king:" in out and "dog:" in out

    run_dir = tmp_path / "runs" / "tiny"
    for name in ("vectors.txt", "evaluation.md", "neighbours.md", "pca.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "pca.png").stat().st_size > 5_000
    words, vectors = load_word2vec_format(run_dir / "vectors.txt")
    assert vectors.shape == (len(words), 16) and np.isfinite(vectors).all()
    assert {"king", "queen", "dog", "castle"} <= set(words)
    table = (run_dir / "neighbours.md").read_text()
    assert "unicorn" in table
    # Each query's row: its 4 nearest words by cosine, recomputed from the saved vectors.
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for query in ("king", "dog"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {query} |"))
        listed = re.findall(r"(\S+) \((-?[0-9.]+)\)", row)
        cosines = unit @ unit[words.index(query)]
        cosines[words.index(query)] = -np.inf
        top = np.argsort(-cosines, kind="stable")[:4]
        assert [w for w, _ in listed] == [words[i] for i in top]
        np.testing.assert_allclose([float(c) for _, c in listed], cosines[top], atol=0.006)


def test_evaluation_is_skipped_with_a_note_without_gensim(monkeypatch):
    script = load_script("experiments/word2vec.py")
    monkeypatch.setitem(sys.modules, "gensim.test.utils", None)  # importing it raises ImportError
    fake = SimpleNamespace(
        vocab=SimpleNamespace(words=("a", "b")), vectors=np.eye(2, dtype=np.float32)
    )
    table, notes = script.evaluate(fake)
    assert table is None
    assert len(notes) == 1 and "gensim is not installed" in notes[0]


def test_pca_projects_on_the_two_largest_directions():
    script = load_script("experiments/word2vec.py")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    points, ratio = script.pca_2d(x)
    # Against the eigenvectors of the covariance matrix (up to each axis's sign).
    centred = x - x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    top = eigenvectors[:, ::-1][:, :2]
    expected = centred @ top
    signs = np.sign(np.sum(points * expected, axis=0))
    np.testing.assert_allclose(points * signs, expected, atol=1e-9)
    np.testing.assert_allclose(ratio, eigenvalues[::-1][:2] / eigenvalues.sum(), rtol=1e-9)
    assert ratio[0] > ratio[1] > 0 and ratio.sum() > 0.99
