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
from nasflow.search.policies.asap import Asap, exponential_temperature, pac_schedule, zhu_gupta_sparsity
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
    assert 0 < t9 < t1 and th9 < th1 and th1 == pytest.approx(math.log(0.1 * math.exp(-1)))  # log theta
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


# ---- Algorithm 1 on a tiny supernet: frozen survivors, the stop, Theorem 2's t -----------------------------

def _settings(params_file, *overrides):
    from nasflow.study import method_settings
    from nasflow.settings import load_params

    return method_settings(load_params(params_file, "smoke", ["runtime.progress=none", *overrides]), "asap")


def _tiny(params_file, *overrides):
    s = _settings(params_file, *overrides)
    torch.manual_seed(0)
    net = Supernet(SpaceConfig(ops=list(s["ops"]), channels=4, layers=3, nodes=s["nodes"], cell_output=s["cell_output"]))
    return s, net, Asap(s, net)


def _step(policy, net, a_opt, batch):
    """The engine's alpha update and the pruning after it (Algorithm 1, lines 6-8)."""
    from nasflow.search.steps import architecture_step

    architecture_step(policy, net, a_opt, None, batch, None)
    pruned = policy.prune_after_step(net)
    for p in pruned:
        net.prune(*p)
    return pruned


def _node_choice(policy, net, node):
    cell = policy.derive(net).cells[0]  # the normal cell
    return [(e.input, e.op.name) for e in cell.nodes[node]]


def test_a_settled_edge_keeps_its_alpha_and_the_cell_ignores_later_epochs(params_file):
    # A lone op weighs 1 whatever its alpha, so Adam's weight decay alone would move
    # that alpha (towards 0), and an edge that settled early would lose ground to one that settled late.
    s, net, policy = _tiny(params_file)
    a_opt = policy.make_arch_optimizer(net.arch_parameters())
    batch = (torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    g = net.groups["normal"]
    # node 1 reads edges 2, 3, 4; each is made to win clearly in its own epoch, the clearest first
    plan = {2: (2, 3, 4.0), 3: (3, 4, 3.0), 4: (4, 5, 2.0)}  # edge: (epoch, winning slot, lead)
    kept, choices = {}, []
    for epoch in range(2, 12):
        policy.begin_epoch(epoch)
        assert policy.updates_alpha()
        for step in range(5):
            for e, (when, slot, lead) in plan.items():
                if when == epoch and step == 0:
                    with torch.no_grad():
                        g.alpha[e] = 0.0
                        g.alpha[e, slot] = lead
            _step(policy, net, a_opt, batch)
            for e, (when, slot, _) in plan.items():
                if e not in kept and int(g.alive[e].sum()) == 1:
                    assert (epoch, step, int(g.alive[e].nonzero())) == (when, 0, slot)  # settled as planned
                    kept[e] = float(g.alpha.detach()[e, slot])
        if len(kept) == len(plan):
            choices.append(_node_choice(policy, net, 1))
    assert len(kept) == len(plan) and len(choices) == 8
    for e, (_, slot, _) in plan.items():
        assert float(g.alpha.detach()[e, slot]) == kept[e]  # exactly the alpha it settled with, 7 to 9 epochs on
    assert all(c == choices[0] for c in choices)  # the cell does not depend on how long the search ran on
    assert choices[0] == [(0, "sep_conv_3x3"), (1, "sep_conv_5x5")]  # the two clearest winners


def test_pac_schedule_counts_alpha_updates_and_survives_a_resume(params_file):
    # Theorem 2's t is the number of alpha updates (eq. 15 sums t of them), not the epoch.
    s, net, policy = _tiny(params_file, "search.asap.schedule=pac")
    pac, n = s["pac"], len(s["ops"])
    at = lambda t: pac_schedule(t, n, s["a_lr"], pac["grad_bound"], pac["delta"], pac["nu"])
    a_opt = policy.make_arch_optimizer(net.arch_parameters())
    batch = (torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    policy.begin_epoch(1)
    seen = []
    for _ in range(3):
        seen.append((policy.temperature, policy.log_threshold))  # what the step's update and pruning use
        _step(policy, net, a_opt, batch)
    assert seen == [at(1), at(2), at(3)]
    policy.begin_epoch(2)  # a new epoch does not restart t
    assert (policy.temperature, policy.log_threshold) == at(4)
    resumed = Asap(s, net)
    resumed.load_state_dict(policy.state_dict())
    resumed.begin_epoch(2)  # what the engine does after loading a checkpoint
    assert (resumed.temperature, resumed.log_threshold) == at(4) and resumed.record()["alpha_updates"] == 3


def test_pac_schedule_is_theorem_2_with_t_the_update_count():
    n, eta, L, delta, nu = 7, 1e-3, 1.0, 0.1, 0.1
    for t in (1, 100, 10_000):
        rho = t / (t + math.log(1 / (n * nu)))
        T = eta * L * rho * math.sqrt(8 / t * math.log(math.pi ** 2 * n * t ** 2 / (3 * delta)))
        assert pac_schedule(t, n, eta, L, delta, nu) == pytest.approx((T, math.log(nu) - t))  # log theta_t
    temps = [pac_schedule(t, n, eta, L, delta, nu)[0] for t in (1, 10, 100, 1000, 10_000)]
    assert all(b < a for a, b in zip(temps, temps[1:]))


def _synthetic_run(params_file, tmp_path, overrides, images=64, batch=8, size=8):
    """A SearchRun on 8x8 images whose class is their colour, under noise (weights and alpha halves of
    `images` each), built as the engine builds it; `run.prunes` logs what each call to prune removed."""
    from nasflow.data.loader import Batches
    from nasflow.search.engine import SearchRun
    from nasflow.settings import load_params

    params = load_params(params_file, "smoke", ["runtime.progress=none", *overrides])
    run = SearchRun(params, "asap", 0, tmp_path / "out", track_runs=False)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2 * images)
    colour = rng.integers(0, 256, (10, 3))[y][:, None, None, :]
    x = np.clip(colour + rng.normal(0, 40, (2 * images, size, size, 3)), 0, 255).astype(np.uint8)
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)

    def data():
        run.train_batches = Batches(x[:images], y[:images], batch, mean, std, True, run.device, drop_last=True)
        run.arch_batches = Batches(x[images:], y[images:], batch, mean, std, True, run.device, drop_last=True)
        run.val_batches = Batches(x[images:], y[images:], batch, mean, std, False, run.device)
        run.n_classes = 10

    run._data = data
    run.prunes = []
    apply = run._apply_prunes

    def logged(prunes):
        run.prunes.append((run.epoch, list(prunes)))
        apply(prunes)

    run._apply_prunes = logged
    return run


def _rows(out):
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


def test_the_search_stops_at_the_step_where_every_edge_holds_one_op(params_file, tmp_path):
    # Algorithm 1, line 3: the while loop ends at the step that leaves one op per edge,
    # not at the end of that step's epoch; the partial epoch is a row of history.csv.
    run = _synthetic_run(params_file, tmp_path, [])
    build = run._build

    def nearly_settled():  # every edge but one holds one op; that one's rival is far below the threshold
        build()
        for name, g in run.net.groups.items():
            n_edges, n_ops = g.alive.shape
            for e in range(n_edges):
                keep = {0, 1} if (name, e) == ("normal", 0) else {n_ops - 1}
                for slot in set(range(n_ops)) - keep:
                    run.net.prune(name, e, slot)
        with torch.no_grad():
            run.net.groups["normal"].alpha[0, 1] = -100.0

    run._build = nearly_settled
    result = run.run()
    rows = _rows(run.out)
    steps = len(run.train_batches)
    assert steps == 8 and [r["phase"] for r in rows] == ["grace", "search"]  # epoch 2 updates alpha first
    pruning_calls = [p for epoch, p in run.prunes if epoch == 2]  # after each step, and at the epoch's end
    assert pruning_calls == [[("normal", 0, 1)], []], "steps ran after every edge held one op"
    assert [int(r["steps"]) for r in rows] == [steps, 1]  # the partial epoch is recorded as such
    assert int(rows[-1]["mixed_edges"]) == 0 and result["stopped"] == "one op per edge" and result["epochs"] == 2


def test_pac_defaults_prune_gradually_on_a_tiny_search(params_file, tmp_path):
    # With params.yaml's pac settings (no profile lays over them) the pruning neither
    # waits for ever nor removes everything at once. Theorem 2's theta_t = nu e^-t leaves it the first
    # updates only (asap.py), so five epochs of four updates see all of it.
    run = _synthetic_run(params_file, tmp_path, ["search.asap.schedule=pac", "search.asap.epochs=5"], images=32)
    assert run.s["pac"] == _settings(params_file, "search.asap.schedule=pac")["pac"]
    run.run()
    rows = _rows(run.out)
    assert [r["phase"] for r in rows] == ["search"] * 5 and int(rows[-1]["alpha_updates"]) == 20  # no grace
    per_step = [len(p) for _, p in run.prunes if p]
    pruned, prunable = sum(per_step), 2 * 14 * 6  # every op but one per edge
    assert 0 < pruned < prunable
    assert len(per_step) >= 3 and max(per_step) <= pruned / 2, per_step


def test_an_interrupted_pac_search_resumes_where_its_alpha_updates_left_off(params_file, tmp_path, monkeypatch):
    # Theorem 2's t lives in the policy's checkpoint state: a resumed search goes on at the same T_t and theta_t.
    from nasflow import track

    overrides = ["search.asap.schedule=pac", "search.asap.epochs=4"]
    whole = _synthetic_run(params_file, tmp_path / "whole", overrides, images=32)
    whole.run()

    class Stop(Exception):
        pass

    def stop_after_epoch_2(self, metrics, step=None):
        if step == 2:  # epoch 2's checkpoint is written
            raise Stop

    with monkeypatch.context() as m:
        m.setattr(track.NullRun, "log_metrics", stop_after_epoch_2)
        with pytest.raises(Stop):
            _synthetic_run(params_file, tmp_path / "cut", overrides, images=32).run()
    resumed = _synthetic_run(params_file, tmp_path / "cut", overrides, images=32)
    resumed.run(resume=True)
    timing = ("epoch_seconds", "val_seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert strip(_rows(resumed.out)) == strip(_rows(whole.out))
    assert [int(r["alpha_updates"]) for r in _rows(resumed.out)] == [4, 8, 12, 16]
    for name, g in resumed.net.groups.items():
        assert torch.equal(g.alpha.detach(), whole.net.groups[name].alpha.detach())
