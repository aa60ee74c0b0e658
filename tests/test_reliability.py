"""A run survives what goes wrong around it: corrupt checkpoints, a stop by signal, a resume
from an older step with a lower learning rate, a changed corpus, and users' mistakes -- each
ends in a documented recovery or in one line that names the fix (exit status 2)."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import chex
import pytest
from scripts import ROOT, load_script
from test_checkpoint_integrity import flip_a_bit_in_the_largest_array_file
from test_lm import tiny_config
from test_parallel import free_port

from jaxllm.config import load_config
from jaxllm.optim import learning_rate_schedule
from jaxllm.recipes import LMConfig, load_lm_run, prepare_run_dir, train_lm
from jaxllm.recipes.lm import RESUMABLE
from jaxllm.train import Checkpointer, read_metrics

train_lm_script = load_script("experiments/train_lm.py")

TINY_FLAGS = [
    "--model.n-layer", "1", "--model.n-embd", "32", "--model.n-head", "2",
    "--model.block-size", "32", "--batch-size", "8", "--eval-batches", "2",
    "--sample-tokens", "0", "--loop.no-progress", "--loop.log-every", "1",
]  # fmt: skip


def cli(capsys, *args) -> tuple[int, str]:
    """``experiments/train_lm.py`` in this process: (exit status, what it wrote to stderr)."""
    status = train_lm_script.main([*TINY_FLAGS, *map(str, args)])
    return status, capsys.readouterr().err


def steps_logged(run_dir) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")]


def test_resume_falls_back_past_a_corrupt_checkpoint_and_ends_as_if_uninterrupted(tmp_path):
    full = train_lm(tiny_config(tmp_path, name="full", steps=8, eval_every=2))
    train_lm(tiny_config(tmp_path, name="hurt", steps=6, eval_every=2))
    flip_a_bit_in_the_largest_array_file(tmp_path / "hurt" / "checkpoints" / "6")
    resumed = train_lm(tiny_config(tmp_path, name="hurt", steps=8, eval_every=2, resume=True))
    chex.assert_trees_all_equal(resumed.state.params, full.state.params)
    assert (tmp_path / "hurt" / "checkpoints-set-aside" / "6").is_dir()  # kept, out of the way
    assert steps_logged(tmp_path / "hurt") == steps_logged(tmp_path / "full")


def test_resume_step_continues_from_an_older_checkpoint_with_a_lower_learning_rate(
    tmp_path, capsys
):
    common = ["--out-dir", tmp_path, "--name", "run", "--loop.eval-every", 2]
    assert cli(capsys, *common, "--loop.num-steps", 6)[0] == 0
    first = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")}
    status, err = cli(
        capsys, *common, "--loop.num-steps", 8, "--resume", "--resume-step", 2,
        "--resume-learning-rate", "1e-3",
    )  # fmt: skip
    assert status == 0, err
    assert "checkpoint step 6 is newer than step 2" in err
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints-set-aside")) == ["4", "6"]
    assert steps_logged(tmp_path / "run") == list(range(1, 9))  # each step once
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")}
    assert lrs[2] == first[2] and lrs[3] == pytest.approx(first[3] / 2)  # peak 2e-3 -> 1e-3
    recorded = json.loads((tmp_path / "run" / "resume-settings.json").read_text())
    assert recorded == {"learning_rate": 1e-3}  # a later resume goes on with it
    config = load_config(LMConfig, tmp_path / "run" / "config.json")
    assert config.optimizer.learning_rate == 2e-3  # how the run began
    assert cli(capsys, *common, "--loop.num-steps", 9, "--resume")[0] == 0
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")}
    lowered = dataclasses.replace(config.optimizer, learning_rate=1e-3)
    assert lrs[9] == pytest.approx(float(learning_rate_schedule(lowered)(8)))


def test_a_changed_corpus_is_refused_on_resume(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 400)
    common = ["--out-dir", tmp_path, "--name", "run", "--data.corpus", corpus]
    assert cli(capsys, *common, "--loop.num-steps", 2)[0] == 0
    corpus.write_text("the lazy dog sleeps under the quick brown fox.\n" * 400)  # same letters
    status, err = cli(capsys, *common, "--loop.num-steps", 4, "--resume")
    assert status == 2 and err.count("\n") == 1
    assert "the corpus differs from the one the checkpoints" in err
    corpus.write_text("Zebras quietly vex jumpy wolves!\n" * 400)  # letters it never saw
    status, err = cli(capsys, *common, "--loop.num-steps", 4, "--resume")
    assert status == 2 and "the corpus differs" in err and "'Z'" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--name", "../elsewhere"], "must be a plain folder name"),
        (["--name", "notes"], "is not a jaxllm run folder"),
        (["--sample-tokens", 5, "--sample-prompt", "☃"], "--sample-prompt '☃' cannot be encoded"),
        (["--data.corpus", "{tmp}/missing.txt"], "missing.txt"),
        (["--out-dir", "{tmp}/notes/a-file/runs"], "Not a directory"),
        (["--resume"], "no run to resume"),
        (["--optimizer.learning-rate", "1e6"], "training diverged at step"),
    ],
)
def test_expected_failures_are_one_line_with_status_2(tmp_path, capsys, flags, message):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a-file").write_text("a user's file\n")
    flags = [str(f).format(tmp=tmp_path) for f in flags]
    status, err = cli(capsys, "--out-dir", tmp_path, "--loop.num-steps", 20, *flags)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert (tmp_path / "notes" / "a-file").read_text() == "a user's file\n"  # untouched
    assert not (tmp_path.parent / "elsewhere").exists()


def test_a_new_run_may_follow_an_attempt_that_left_only_its_earlier_attempts_or_a_cut_save(
    tmp_path,
):
    config = LMConfig(out_dir=str(tmp_path), name="run")
    (tmp_path / "run" / "earlier-1").mkdir(parents=True)
    (tmp_path / "run" / "earlier-1" / "config.json").write_text("{}\n")
    assert prepare_run_dir(config, RESUMABLE) == config  # failed before its config.json
    (tmp_path / "run" / "config.json").write_text("{}\n")
    (tmp_path / "run" / "checkpoints" / "5.orbax-checkpoint-tmp").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "5.orbax-checkpoint-tmp" / "x").write_text("cut")
    assert prepare_run_dir(config, RESUMABLE) == config  # its first save was cut short
    assert (tmp_path / "run" / "earlier-2" / "checkpoints" / "5.orbax-checkpoint-tmp").is_dir()
    (tmp_path / "run" / "config.json").write_text("{}\n")
    (tmp_path / "run" / "checkpoints" / "5").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        prepare_run_dir(config, RESUMABLE)


def test_debug_variable_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXLLM_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        cli(capsys, "--out-dir", tmp_path, "--resume")


def train_in_subprocess(run_dir, steps, *extra):
    command = [sys.executable, str(ROOT / "experiments" / "train_lm.py"), *TINY_FLAGS]
    command += ["--out-dir", str(run_dir.parent), "--name", run_dir.name]
    command += ["--loop.num-steps", str(steps), "--loop.eval-every", "1000", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)  # fmt: skip


def test_processes_given_different_settings_fail_fast_naming_the_setting(tmp_path):
    coordinator = f"127.0.0.1:{free_port()}"
    flags = ["--parallel.mode", "mesh", "--parallel.coordinator", coordinator,
             "--parallel.num-processes", "2"]  # fmt: skip
    processes = [
        train_in_subprocess(tmp_path / "run", steps, *flags, "--parallel.process-id", str(i))
        for i, steps in enumerate((20, 40))
    ]
    try:
        results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for status, err in results:
        assert status == 2, err[-2000:]
        assert "given different settings: process(es) [1] differ from process 0" in err
    assert "loop.num_steps: process 0 has 20, this one 40" in results[1][1]
    assert not (tmp_path / "run").exists()


def test_a_process_whose_peer_dies_stops_in_seconds_with_one_line(tmp_path):
    coordinator = f"127.0.0.1:{free_port()}"
    flags = ["--parallel.mode", "mesh", "--parallel.coordinator", coordinator,
             "--parallel.num-processes", "2"]  # fmt: skip
    survivor, victim = (
        train_in_subprocess(tmp_path / "run", 3000, *flags, "--parallel.process-id", str(i))
        for i in (0, 1)
    )
    try:
        wait_for_training(survivor, tmp_path / "run")
        victim.kill()
        began = time.perf_counter()
        status = survivor.wait(timeout=120)
        waited = time.perf_counter() - began
    finally:
        survivor.kill()
        victim.kill()
    err = survivor.stderr.read()
    assert status == 2, err[-3000:]
    assert "error: another process of this run stopped or lost its connection" in err
    assert "Check failure stack trace" not in err and "Traceback" not in err
    assert waited < 30


@pytest.mark.slow  # ~20 s: two processes start JAX and compile
def test_two_processes_train_on_the_token_files_process_0_made(tmp_path, capsys):
    from test_lm import corpus_file

    text, cache = corpus_file(tmp_path), tmp_path / "tokens"
    common = ["--data.corpus", str(text), "--token-cache", str(cache), "--seed", "3"]
    flags = ["--parallel.mode", "mesh", "--parallel.coordinator", f"127.0.0.1:{free_port()}",
             "--parallel.num-processes", "2", *common]  # fmt: skip
    processes = [
        train_in_subprocess(tmp_path / "two", 6, *flags, "--parallel.process-id", str(i))
        for i in (0, 1)
    ]
    try:
        results = [(p.wait(timeout=180), p.stderr.read()) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for status, err in results:
        assert status == 0, err[-3000:]
    assert len(list(cache.rglob("*.bin"))) == 3 and not list(cache.rglob("*.partial"))
    one = ["--out-dir", tmp_path, "--name", "one", "--loop.num-steps", 6, "--loop.eval-every",
           1000, "--data.corpus", text, "--seed", 3]  # fmt: skip
    assert cli(capsys, *one)[0] == 0  # one process, the corpus in memory
    summaries = [json.loads((tmp_path / n / "summary.json").read_text()) for n in ("two", "one")]
    assert summaries[0]["test"]["loss"] == pytest.approx(summaries[1]["test"]["loss"], rel=1e-4)


SIGNAL_RUN_STEPS = 1500  # ~3 s of training on 2 cores, for the signal to land in


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("signals") / "reference"
    reference = train_in_subprocess(run_dir, SIGNAL_RUN_STEPS)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    return run_dir


def logged_lines(run_dir) -> int:
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def wait_for_training(process, run_dir, logged_before: int = 0) -> None:
    """Until the run has logged a step beyond the ``logged_before`` records (or ended)."""
    while process.poll() is None and logged_lines(run_dir) <= logged_before:
        time.sleep(0.02)


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGINT, id="SIGINT", marks=pytest.mark.slow),
    ],
)
def test_a_signal_at_a_random_moment_saves_and_the_resume_equals_an_uninterrupted_run(
    tmp_path, uninterrupted, signum
):
    run_dir = tmp_path / "stopped"
    process = train_in_subprocess(run_dir, SIGNAL_RUN_STEPS)
    wait_for_training(process, run_dir)
    time.sleep(random.uniform(0.0, 1.0))
    process.send_signal(signum)
    status = process.wait(timeout=300)
    err = process.stderr.read()
    if status == 0 or (steps_logged(run_dir)[-1:] == [SIGNAL_RUN_STEPS] and "by" not in err):
        pytest.skip("training had finished when the signal arrived")
    assert status == 128 + signum and err.startswith(f"stopped: stopped by {signum.name}"), err
    assert err.count("\n") == 1, err
    resumed = train_in_subprocess(run_dir, SIGNAL_RUN_STEPS, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    chex.assert_trees_all_equal(load_lm_run(run_dir)[2], load_lm_run(uninterrupted)[2])
    assert steps_logged(run_dir) == steps_logged(uninterrupted)


@pytest.fixture
def small_disk(tmp_path):
    """An 800 kB tmpfs, where the machine lets this process mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=800k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_and_keeps_the_checkpoints_already_saved(small_disk, capsys):
    # 0.35 MB of arrays (0.44 MB on disk) a checkpoint: the first one fits, the second not.
    flags = ["--model.n-layer", 2, "--loop.eval-every", 2]
    status, err = cli(capsys, "--out-dir", small_disk, "--name", "run", "--loop.num-steps", 8,
                      *flags)  # fmt: skip
    assert status == 2 and err.count("\n") == 1, err
    assert "was not saved: it needs up to" in err and "MB free" in err
    with Checkpointer(small_disk / "run" / "checkpoints") as checkpoints:
        assert checkpoints.steps() == [2]


@pytest.mark.slow
def test_kill_9_at_random_moments_including_mid_save_then_resume_equals_uninterrupted(
    tmp_path, uninterrupted
):
    """A checkpoint every 5 steps (saving takes about as long as training here), so most
    kills land in a save; after each, the run resumes, and in the end it is the
    uninterrupted run's."""
    run_dir, flags = tmp_path / "killed", ["--loop.checkpoint-every", "5"]
    rng = random.Random(0)
    for _ in range(3):
        resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
        before = logged_lines(run_dir)
        process = train_in_subprocess(run_dir, SIGNAL_RUN_STEPS, *flags, *resume)
        wait_for_training(process, run_dir, before)
        time.sleep(rng.uniform(0.0, 1.0))
        process.kill()
        process.wait(timeout=60)
    resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
    final = train_in_subprocess(run_dir, SIGNAL_RUN_STEPS, *flags, *resume)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    chex.assert_trees_all_equal(load_lm_run(run_dir)[2], load_lm_run(uninterrupted)[2])
    assert steps_logged(run_dir) == steps_logged(uninterrupted)
