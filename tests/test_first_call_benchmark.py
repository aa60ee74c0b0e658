"""benchmarks/first_call.py in this process, on a tiny synthetic three-class task (the script
itself runs every side in a fresh process, on Shakespeare's speeches)."""

import json
import sys

import numpy as np
import pytest
from scripts import load_script

from jaxllm.data import LabelledTexts, stratified_split

pytest.importorskip("sklearn")

TOPICS = (["sword", "battle", "blood", "war"], ["love", "kiss", "heart", "sweet"],
          ["crown", "king", "throne", "realm"])  # fmt: skip
FILLER = ["the", "my", "lord", "and", "thou", "art", "is", "of", "to", "with", "this"]


@pytest.fixture(scope="module")
def first_call():
    """benchmarks/first_call.py as a module (benchmarks/ is not a package)."""
    yield load_script("benchmarks/first_call.py", name="first_call_benchmark")
    del sys.modules["first_call_benchmark"]


def tiny_task(seed: int = 0):
    """``(train, test)``: 240 texts whose class is told by two of its topic's words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(240):
        label = int(rng.integers(3))
        words = list(rng.choice(FILLER, size=int(rng.integers(4, 10))))
        words += list(rng.choice(TOPICS[label], size=2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    data = LabelledTexts(texts, np.array(labels), ("war", "love", "crown"))
    return stratified_split(data, (0.8, 0.2), seed=0)


def test_sides_agree_and_the_report_shows_every_figure(first_call, monkeypatch, capsys):
    monkeypatch.setattr(first_call, "task_splits", tiny_task)
    result = {"benchmark": "first_call", "repeats": 1}
    for classifier in first_call.C_VALUES:
        ours = first_call.side_figures("jaxllm", classifier, 1, True)
        sides = {"sklearn": first_call.side_figures("sklearn", classifier, 1, False),
                 "jaxllm": ours, "cached": ours}  # fmt: skip
        assert set(ours["first"]) == {*first_call.STAGES, "total"}
        assert ours["first"]["total"] == pytest.approx(
            sum(ours["first"][s] for s in first_call.STAGES)
        )
        assert ours["accuracy"] > 0.9 and sides["sklearn"]["accuracy"] > 0.9
        result.update(first_call.classifier_figures(classifier, sides))
        assert abs(result[f"{classifier}_accuracy_diff_points"]) <= 5  # ~48 test texts
        assert result[f"{classifier}_fit_program_compile_s"] > 0
    result.update(svm_meets_warm_target=False, svm_meets_first_target=False,
                  background_cpu_load=0.0, machine={"cpu_count": 2})  # fmt: skip
    first_call.print_report(first_call.report_lines(result), result)
    printed = capsys.readouterr().out.splitlines()
    assert "| svm | jaxllm, cache warm, first |" in "\n".join(printed)
    assert sum(json.loads(printed[-1])["svm_docs"]) == 240
