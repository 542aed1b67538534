"""Whole searches on the tiny smoke profile (real CIFAR-10 images), run as users run them."""
import csv
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATASETS, run_cli

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")]

QUIET = ["--no-track", "--set", "runtime.progress=lines"]


def _history(out):
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def asap_run(smoke_params, tmp_path_factory):
    out = tmp_path_factory.mktemp("asap") / "seed0"
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, *QUIET)
    assert res.returncode == 0, res.stderr
    return out, res


def test_asap_writes_every_output(asap_run):
    out, res = asap_run
    for name in ("genotype.json", "architectures.json", "search.json", "history.csv", "alphas.npz", "checkpoint.pt"):
        assert (out / name).is_file(), name
    archs = json.loads((out / "architectures.json").read_text())
    assert len(archs) == 1 and archs[0]["id"] == "asap-s0-0" and archs[0]["params_M"] > 0
    summary = json.loads((out / "search.json").read_text())
    assert summary["method"] == "asap" and summary["seconds"] > 0 and summary["device"].startswith("cpu")
    assert "epoch 1/10" in res.stderr  # progress lines in logs
    genotype = json.loads((out / "genotype.json").read_text())
    assert all(len(node) == 2 for cell in genotype["cells"] for node in cell["nodes"])


def test_asap_temperature_follows_t0_beta_power_epoch(asap_run):
    rows = _history(asap_run[0])
    for row in rows:
        assert float(row["temperature"]) == pytest.approx(1.6 * 0.7 ** int(row["epoch"]))


def test_asap_prunes_nothing_during_grace_and_never_regrows(asap_run):
    out = asap_run[0]
    rows = _history(out)
    total = 2 * 14 * 7
    grace = [r for r in rows if r["phase"] == "grace"]
    assert grace, "the smoke profile must have a grace epoch"
    assert all(float(r["temperature"]) >= 1.0 and int(r["alive_candidates"]) == total for r in grace)
    alive = [int(r["alive_candidates"]) for r in rows]
    assert all(b <= a for a, b in zip(alive, alive[1:]))
    assert alive[-1] == 2 * 14 and int(rows[-1]["mixed_edges"]) == 0  # one op per edge, nothing mixed
    with np.load(out / "alphas.npz") as z:
        for r in grace:
            assert z[f"normal_alive_e{int(r['epoch']):03d}"].all()
        last = int(rows[-1]["epoch"])
        assert (z[f"normal_alive_e{last:03d}"].sum(1) == 1).all()


def test_asap_epochs_get_cheaper_as_ops_are_pruned(asap_run):
    rows = _history(asap_run[0])
    total = 2 * 14 * 7
    pruned = [r for r in rows if int(r["alive_candidates"]) < total]
    ratio = float(pruned[0]["epoch_seconds"]) / float(pruned[-1]["epoch_seconds"])
    assert ratio > 1.5, f"first pruned epoch / last epoch = {ratio:.2f}"


def test_killed_search_resumes_to_the_same_genotype(asap_run, smoke_params, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nasflow.cli", "search", "--method", "asap", "--params", str(smoke_params),
           "--out", str(out), *QUIET]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.csv").is_file() and len(_history(out)) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "genotype.json").exists()
    # without --resume the checkpoint is not silently overwritten
    refused = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, *QUIET)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, "--resume", *QUIET)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "genotype.json").read_text()) == json.loads((asap_run[0] / "genotype.json").read_text())
    with np.load(out / "alphas.npz") as a, np.load(asap_run[0] / "alphas.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert not list(out.glob(".*.tmp"))


def test_resuming_a_finished_search_rewrites_the_same_results(asap_run, smoke_params, tmp_path):
    import shutil

    out = tmp_path / "finished"
    shutil.copytree(asap_run[0], out)
    (out / "genotype.json").unlink()
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, "--resume", *QUIET)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "genotype.json").read_text()) == json.loads((asap_run[0] / "genotype.json").read_text())


def test_resume_refuses_a_checkpoint_from_other_settings(asap_run, smoke_params):
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", asap_run[0], "--resume",
                  "--set", "search.asap.beta=0.8", *QUIET)
    assert res.returncode == 2 and "other settings" in res.stderr


@pytest.mark.parametrize("order", ["first", "second"])
def test_darts_runs_and_derives_a_valid_cell(smoke_params, tmp_path, order):
    out = tmp_path / order
    res = run_cli("search", "--method", "darts", "--params", smoke_params, "--out", out, *QUIET,
                  "--set", f"search.darts.order={order}", "--set", "search.darts.epochs=1")
    assert res.returncode == 0, res.stderr
    genotype = json.loads((out / "genotype.json").read_text())
    for cell in genotype["cells"]:
        assert len(cell["nodes"]) == 4
        for k, node in enumerate(cell["nodes"]):
            assert len(node) == 2 and all(e["op"] != "none" and e["input"] < k + 2 for e in node)
    rows = _history(out)
    assert len(rows) == 1 and rows[0]["phase"] == "search" and math.isfinite(float(rows[0]["val_loss"]))


@pytest.mark.parametrize("override,message", [
    ("search.asap.t0=0", "search.asap.t0"),
    ("search.asap.beta=1.5", "search.asap.beta"),
    ("search.asap.beta=0", "search.asap.beta"),
    ("search.asap.threshold_factor=1", "search.asap.threshold_factor"),
    ("search.asap.ops=[sep_conv_3x3, conv_9x9]", "search.asap.ops.1"),
    ("search.asap.ops=[none, sep_conv_3x3]", "search.asap.ops"),
])
def test_bad_search_settings_are_refused_before_training(smoke_params, tmp_path, override, message):
    out = tmp_path / "bad"
    started = time.time()
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, "--set", override, *QUIET)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and time.time() - started < 30
