"""Faults injected on purpose: kills at seeded moments, diverging losses, bad inputs, a second pipeline,
two writers on one run. Each test states what a user is promised (README, "What is guaranteed")."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import QUIET, ROOT, SHARED_DATASETS, TRAIN, run_cli, run_clis_at_once
from nasflow.locks import executes_jobs

needs_shared = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
# Three epochs (TRAIN's too, conftest.py): a kill after the first checkpoint lands in one of two more epochs,
# their checkpoints' writes or the result files'; a SIGTERM in epoch 2 leaves that epoch and one more to resume.
EPOCHS = 3
SEARCH = ["search", "--method", "darts", "--set", f"search.darts.epochs={EPOCHS}"]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _cmd(*args):
    return [sys.executable, "-m", "nasflow.cli", *map(str, args)]


def _one_clear_line(res, message):
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("nasflow")]
    assert len(lines) == 1 and message in lines[0], res.stderr


def _wait_for(proc, ready, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the fault could be injected"


def _checkpointed(out):
    return lambda: (out / "checkpoint.pt").is_file()


def _kill(proc, group=False):
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def _no_half_written_files(root: Path):
    assert not [p for p in root.rglob("*.tmp")], "a temporary file of a killed write was left behind"
    for path in root.rglob("*.json"):
        json.loads(path.read_text())  # every JSON output parses: none was cut short


def _history(out):
    import csv

    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


def _history_without_timing(out):
    return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in _history(out)]


# ---- locks: the operating system drops them with their process ---------------------------------------

@pytest.mark.parametrize("argv,executes", [
    (["--cores", "all", "results/table1.csv"], True),
    (["-n", "results/table1.csv"], False),
    (["-np", "--cores", "2"], False),
    (["--dry-run"], False),
    (["--list"], False),
    (["--report", "report.html"], False),
    (["-p", "--cores", "1"], True),
    (["--touch", "--cores", "1"], True),
])
def test_which_snakemake_invocations_run_jobs(argv, executes):
    assert executes_jobs(argv) == executes


def _holder(code: str, cwd: Path) -> subprocess.Popen:
    """A process that takes a lock and keeps it until killed."""
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nprint('held', flush=True)\nimport time; time.sleep(600)"],
                            cwd=cwd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_of_one_run_directory_is_refused(cli, params_file, tmp_path):
    out = tmp_path / "run"
    holder = _holder(f"from pathlib import Path; from nasflow.locks import hold_run_dir; hold_run_dir(Path({str(out)!r}), 'search')",
                     tmp_path)
    try:
        _one_clear_line(cli(*SEARCH, "--params", params_file, "--out", out, *QUIET),
                        "is being written by another search")
    finally:
        _kill(holder)
    # the holder died without cleaning up: its lock went with it
    from nasflow.locks import hold_run_dir, release
    hold_run_dir(out, "search")
    release(out / ".lock")


def test_a_second_pipeline_in_one_directory_is_refused_and_a_dead_ones_locks_are_cleared(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    snakemake = lambda *a: subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "1", *a], cwd=work,
                                          capture_output=True, text=True, timeout=300)
    holder = _holder("from pathlib import Path; from nasflow.locks import hold_pipeline; "
                     "hold_pipeline(Path.cwd(), ['--cores', '1'])", work)
    try:
        res = snakemake("data/fashion-mnist.npz")
        assert res.returncode != 0 and "another pipeline is running in" in res.stdout + res.stderr
        assert f"pid {holder.pid}" in res.stdout + res.stderr
        assert snakemake("-n", "data/fashion-mnist.npz").returncode == 0  # looking is always allowed
    finally:
        _kill(holder)
    # what SIGKILL leaves of Snakemake's own lock is recognised as stale and removed: no --unlock step
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text(str(work / "data" / "fashion-mnist.npz"))
    res = snakemake("-n", "data/fashion-mnist.npz")
    assert res.returncode == 0 and not list(locks.glob("*.lock")), res.stderr


# ---- bad input: refused before work starts, one line, non-zero exit -----------------------------------

def test_settings_errors_name_the_key(cli, params_file, tmp_path):
    _one_clear_line(cli(*SEARCH, "--params", params_file, "--out", tmp_path / "a", "--set", "search.epoch=3", *QUIET),
                    "search.epoch")
    _one_clear_line(cli(*SEARCH, "--params", params_file, "--out", tmp_path / "b", "--set", "search.batch_size=0", *QUIET),
                    "search.batch_size")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_corrupt_checkpoint_is_refused_and_left_as_it_was(cli, params_file, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    garbage = b"PK\x03\x04 not a checkpoint" * 10
    (out / "checkpoint.pt").write_bytes(garbage)
    _one_clear_line(cli(*SEARCH, "--params", params_file, "--out", out, "--resume", *QUIET), "corrupt checkpoint")
    assert (out / "checkpoint.pt").read_bytes() == garbage


def test_truncated_and_absent_datasets_are_refused(cli, params_file, tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / "cifar10-jpeg.npz").write_bytes((SHARED_DATASETS / "cifar10-jpeg.npz").read_bytes()[:4096]
                                               if (SHARED_DATASETS / "cifar10-jpeg.npz").is_file() else b"PK\x03\x04")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_clear_line(cli("data", "prepare", "cifar10", "--params", params_file, "--no-download", "--no-track",
                        "--set", f"data.archive_dirs=[{archives}]"), "truncated or corrupt")
    _one_clear_line(cli("data", "prepare", "svhn", "--params", params_file, "--no-download", "--no-track",
                        "--set", f"data.archive_dirs=[{empty}]"), "dataset svhn not found")


# ---- kills at seeded moments: the rerun finishes as if nothing happened ---------------------------------

def _uninterrupted(verb_args, smoke_params, out):
    res = run_cli(*verb_args, "--params", smoke_params, "--out", out, *QUIET)
    assert res.returncode == 0, res.stderr
    return out


def _seeded_moment(seed):
    """A seeded moment after the first checkpoint, in epochs: 0 to 0.95 * (EPOCHS - 1), so it falls in a later
    epoch, in a checkpoint's write or in the result files' on any machine, however fast."""
    return random.Random(seed).uniform(0.0, 0.95 * (EPOCHS - 1))


def _kill_and_resume(verb_args, smoke_params, out, moment):
    """Start the run, SIGKILL it `moment` epochs after its first checkpoint (the fraction of an epoch timed by
    the epoch the run finished last), then resume it."""
    args = [*verb_args, "--params", smoke_params, "--out", out, *QUIET]
    proc = subprocess.Popen(_cmd(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    whole = int(moment)
    _wait_for(proc, lambda: _checkpointed(out)() and len(_history(out)) >= 1 + whole)
    last = _history(out)[-1]
    delay = (moment - whole) * (float(last["epoch_seconds"]) + float(last.get("val_seconds") or 0.0))
    time.sleep(delay)
    assert proc.poll() is None, f"the run finished within {moment:.2f} epochs ({delay:.1f} s) of its first checkpoint"
    _kill(proc)
    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr
    _no_half_written_files(out)


@pytest.fixture(scope="module")
def reference_search(smoke_params, tmp_path_factory):
    return _uninterrupted(SEARCH, smoke_params, tmp_path_factory.mktemp("ref") / "search")


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_killed_at_a_seeded_moment_resumes_to_the_same_result(reference_search, smoke_params, tmp_path, seed):
    out = tmp_path / "killed"
    # any moment after the first checkpoint: mid-epoch, mid-write of a checkpoint or a result file
    _kill_and_resume(SEARCH, smoke_params, out, _seeded_moment(seed))
    for name in ("genotype.json", "architectures.json"):
        assert json.loads((out / name).read_text()) == json.loads((reference_search / name).read_text())
    with np.load(out / "alphas.npz") as a, np.load(reference_search / "alphas.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert _history_without_timing(out) == _history_without_timing(reference_search)


@pytest.fixture(scope="module")
def one_epoch_search(smoke_params, tmp_path_factory):
    """SEARCH cut to its first epoch: that epoch's checkpoint, and a seed-0 run to tell a seed-1 one from."""
    return _uninterrupted([*SEARCH, "--set", "search.darts.epochs=1"], smoke_params, tmp_path_factory.mktemp("one") / "s0")


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("seed", [1, 2])
def test_training_killed_at_a_seeded_moment_resumes_bit_for_bit(reference_training, smoke_params, tmp_path, seed):
    out = tmp_path / "killed"
    _kill_and_resume(TRAIN, smoke_params, out, _seeded_moment(100 + seed))
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(reference_training / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    error = lambda d: json.loads((d / "metrics.json").read_text())["top1_error"]
    assert error(out) == error(reference_training)
    _no_half_written_files(out)


# ---- determinism ---------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_shared
def test_same_seed_same_search_and_other_seeds_are_recorded(reference_search, one_epoch_search, smoke_params,
                                                            tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "seed1"
    # another seed on the one-epoch search: its one row differs from seed 0's under the same settings
    same, seed1 = run_clis_at_once([*SEARCH, "--params", smoke_params, "--out", again, *QUIET],
                                   [*SEARCH, "--set", "search.darts.epochs=1", "--seed", 1, "--params", smoke_params,
                                    "--out", other, *QUIET])
    assert same.returncode == 0, same.stderr
    assert seed1.returncode == 0, seed1.stderr
    assert _history_without_timing(again) == _history_without_timing(reference_search)
    assert (again / "genotype.json").read_text() == (reference_search / "genotype.json").read_text()
    assert json.loads((other / "search.json").read_text())["seed"] == 1
    assert json.loads((one_epoch_search / "search.json").read_text())["seed"] == 0
    assert len(_history(other)) == len(_history(one_epoch_search)) == 1
    assert _history_without_timing(other) != _history_without_timing(one_epoch_search)


# ---- numerical faults ----------------------------------------------------------------------------------

def _mlflow_statuses(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [row[0] for row in con.execute("select status from runs")]


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("verb", ["search", "train"])
def test_a_nan_loss_stops_the_run_fails_its_mlflow_run_and_keeps_the_last_checkpoint(smoke_params, tmp_path, verb):
    out, db = tmp_path / "run", tmp_path / "mlflow.db"
    # two epochs: the NaN in epoch 2, and the resumed run still has that whole epoch to train
    short = "search.darts.epochs=2" if verb == "search" else "train.recipes.tiny.epochs=2"
    args = (SEARCH if verb == "search" else TRAIN) + ["--set", short, "--params", smoke_params, "--out", out,
                                                      "--set", "runtime.progress=lines",
                                                      "--set", f"tracking.uri=sqlite:///{db}"]
    res = run_cli(*args, env={"NASFLOW_FAULT": "nan-loss@2"})
    _one_clear_line(res, "epoch 2 step 1: the loss became nan; the last good checkpoint")
    assert _mlflow_statuses(db) == ["FAILED"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # the fault gone, the same command with --resume goes on from epoch 2 in the same MLflow run
    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr
    assert _mlflow_statuses(db) == ["FINISHED"]


# ---- SIGTERM: what SLURM sends at a time limit or preemption --------------------------------------------

@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("verb", ["search", "train"])
def test_sigterm_mid_epoch_stops_cleanly_marks_the_run_killed_and_resume_finishes(reference_search, reference_training,
                                                                                  smoke_params, tmp_path, verb):
    out, db = tmp_path / "run", tmp_path / "mlflow.db"
    args = [*(SEARCH if verb == "search" else TRAIN), "--params", smoke_params, "--out", out,
            "--set", "runtime.progress=lines", "--set", f"tracking.uri=sqlite:///{db}"]
    proc = subprocess.Popen(_cmd(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, _checkpointed(out))
    time.sleep(0.3)  # into the next epoch
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM); rerun with --resume" in err and "Traceback" not in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] >= 1
    assert _mlflow_statuses(db) == ["KILLED"]
    _no_half_written_files(out)
    res = run_cli(*args, "--resume")  # a requeued job: the same command
    assert res.returncode == 0, res.stderr
    assert _mlflow_statuses(db) == ["FINISHED"]  # the same run, reopened
    reference = reference_search if verb == "search" else reference_training
    name = "genotype.json" if verb == "search" else "metrics.json"
    strip = lambda d: {k: v for k, v in json.loads((d / name).read_text()).items() if "seconds" not in k}
    assert strip(out) == strip(reference)


# ---- a whole Snakemake run killed at two points --------------------------------------------------------

SMALL_PIPELINE = ["--config", "search={names: [darts], darts: {epochs: 2}}",
                  "train={recipes: {tiny: {epochs: 2}}, transfer: {datasets: []}}", "tracking={enabled: false}"]


def _pipeline(work: Path) -> subprocess.Popen:
    log = open(work / "snakemake.log", "a")  # a file, not a pipe nobody reads while we wait
    return subprocess.Popen([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "2", "results/table1.csv",
                             *SMALL_PIPELINE], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: the kill takes its jobs too


def _finish(proc, work):
    proc.wait(timeout=1500)
    assert proc.returncode == 0, (work / "snakemake.log").read_text()[-3000:]


def _pipeline_dir(tmp_path, name):
    work = tmp_path / name
    work.mkdir()
    text = (ROOT / "params.yaml").read_text().replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    (work / "params.yaml").write_text(text)
    return work


@pytest.mark.slow
@needs_shared
def test_a_killed_pipeline_reruns_with_the_same_command_to_the_same_results(tmp_path):
    ref = _pipeline_dir(tmp_path, "ref")
    _finish(_pipeline(ref), ref)

    work = _pipeline_dir(tmp_path, "killed")
    search = work / "results/search/darts/seed0"
    for ready in (lambda: (search / "checkpoint.pt").is_file(),                       # during the search
                  lambda: any(work.glob("results/train/*/cifar10/seed0/checkpoint.pt"))):  # during a training
        proc = _pipeline(work)
        _wait_for(proc, ready, timeout=1200)
        _kill(proc, group=True)
        assert list((work / ".snakemake" / "locks").glob("*.lock")), "Snakemake's lock should be left stale"
    _finish(_pipeline(work), work)  # the same command: no --unlock, no --rerun-incomplete to remember
    import pandas as pd

    table = lambda d: pd.read_csv(d / "results/table1.csv").drop(columns=["search_gpu_days"])  # measured time
    pd.testing.assert_frame_equal(table(work), table(ref))
    assert (search / "genotype.json").read_text() == (ref / "results/search/darts/seed0/genotype.json").read_text()
    _no_half_written_files(work / "results")


# ---- a disk that fills up: the write fails, the last good checkpoint survives ----------------------------

def _file_size_limit(limit: int):
    """For the child only: writes past `limit` bytes fail with EFBIG (Python ignores SIGXFSZ), as they would
    on a full disk or an exhausted quota."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
@needs_shared
def test_a_failed_checkpoint_write_keeps_the_last_good_one_and_resume_finishes_the_search(
        reference_search, one_epoch_search, smoke_params, tmp_path):
    # The first checkpoint's size, from a one-epoch run of the same search (the same tensors and keys).
    limit = (one_epoch_search / "checkpoint.pt").stat().st_size + 32  # epoch 2's checkpoint holds one more epoch of alphas
    out = tmp_path / "full"
    args = [*SEARCH, "--params", smoke_params, "--out", out, *QUIET]
    res = subprocess.run(_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=600,
                         preexec_fn=_file_size_limit(limit))
    _one_clear_line(res, f"{out / 'checkpoint.pt'}: could not be written (File too large)")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the previous file, intact
    assert not list(out.glob(".*.tmp"))
    res = run_cli(*args, "--resume")
    assert res.returncode == 0, res.stderr
    for name in ("genotype.json", "architectures.json"):
        assert json.loads((out / name).read_text()) == json.loads((reference_search / name).read_text())
    assert _history_without_timing(out) == _history_without_timing(reference_search)
