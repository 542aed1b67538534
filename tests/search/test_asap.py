"""ASAP: its schedules and final-cell rule on small inputs, and whole searches on the smoke profile
(real CIFAR-10 images) run as users run them, killed and resumed."""
import csv
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import QUIET, ROOT, run_cli, smoke_search
from nasflow.search.asap import Asap, exponential_temperature, pac_schedule, zhu_gupta_sparsity
from nasflow.search.supernet import SpaceConfig, Supernet

ASAP_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def _net(**kw):
    torch.manual_seed(0)
    return Supernet(SpaceConfig(ops=kw.pop("ops", ASAP_OPS), channels=4, layers=3, **kw))


def test_asap_final_cell_keeps_the_clearest_winners():
    net = _net()
    s = {"t0": 1.0, "beta": 0.9, "grace_temperature": 1.0, "threshold_factor": 0.4, "schedule": "exponential",
         "pruning": "threshold"}
    policy = Asap(s, net)
    policy.begin_epoch(10)
    g = net.groups["normal"]
    with torch.no_grad():
        g.alpha.zero_()
        # node 1 (edges 2, 3, 4): the survivor of edge 4 won by far, edge 2 narrowly, edge 3 moderately
        g.alpha[2, 3], g.alpha[3, 4], g.alpha[4, 5] = 0.1, 1.0, 3.0
    for e in range(14):
        keep = int(g.alpha[e].argmax())
        for slot in range(7):
            if slot != keep:
                net.prune("normal", e, slot)
    assert policy.finished(net) is False  # the reduce group still mixes everything
    geno = policy.derive(net)
    node1 = geno.cells[0].nodes[1]
    assert [(e.input, e.op.name) for e in node1] == [(1, "sep_conv_5x5"), (2, "dil_conv_3x3")]


def test_asap_temperature_indexing_matches_the_paper():
    # epochs counted from 1: five grace epochs (T >= 1) and T(50) = 0.1
    temps = [exponential_temperature(1.3, 0.95, e) for e in range(1, 51)]
    assert sum(t >= 1.0 for t in temps) == 5
    assert temps[-1] == pytest.approx(0.1, abs=0.001)
    assert sum(exponential_temperature(1.6, 0.95, e) >= 1.0 for e in range(1, 51)) == 9


def test_pac_schedule_and_zhu_gupta():
    t1, th1 = pac_schedule(1, 7, 1e-3, 1.0, 0.1, 0.1)
    t9, th9 = pac_schedule(9, 7, 1e-3, 1.0, 0.1, 0.1)
    assert 0 < t9 < t1 and th9 < th1 and th1 == pytest.approx(0.1 * math.exp(-1))
    assert zhu_gupta_sparsity(5, 20, 50, 0.857, 1) == 0.0
    assert zhu_gupta_sparsity(50, 20, 50, 0.857, 3) == pytest.approx(0.857)
    mid1, mid3 = zhu_gupta_sparsity(35, 20, 50, 0.8, 1), zhu_gupta_sparsity(35, 20, 50, 0.8, 3)
    assert mid1 == pytest.approx(0.4) and mid3 == pytest.approx(0.7)  # p=3 prunes early, then slows


def _history(out):
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def asap_run(smoke_params, tmp_path_factory):
    out = tmp_path_factory.mktemp("asap") / "seed0"
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, *QUIET)
    assert res.returncode == 0, res.stderr
    return out, res


@smoke_search
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


@smoke_search
def test_asap_temperature_follows_t0_beta_power_epoch(asap_run):
    rows = _history(asap_run[0])
    for row in rows:
        assert float(row["temperature"]) == pytest.approx(1.6 * 0.7 ** int(row["epoch"]))


@smoke_search
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


@smoke_search
def test_asap_epochs_get_cheaper_as_ops_are_pruned(asap_run):
    rows = _history(asap_run[0])
    total = 2 * 14 * 7
    pruned = [r for r in rows if int(r["alive_candidates"]) < total]
    ratio = float(pruned[0]["epoch_seconds"]) / float(pruned[-1]["epoch_seconds"])
    assert ratio > 1.5, f"first pruned epoch / last epoch = {ratio:.2f}"


@smoke_search
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


@smoke_search
def test_resuming_a_finished_search_rewrites_the_same_results(asap_run, smoke_params, tmp_path):
    import shutil

    out = tmp_path / "finished"
    shutil.copytree(asap_run[0], out)
    (out / "genotype.json").unlink()
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, "--resume", *QUIET)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "genotype.json").read_text()) == json.loads((asap_run[0] / "genotype.json").read_text())


@smoke_search
def test_resume_refuses_a_checkpoint_from_other_settings(asap_run, smoke_params):
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", asap_run[0], "--resume",
                  "--set", "search.asap.beta=0.8", *QUIET)
    assert res.returncode == 2 and "other settings" in res.stderr
