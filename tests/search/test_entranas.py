"""EnTranNAS and EnTranNAS-DST: what the Transit-cells run, DST's coefficients (eqs. 7-11) and derivation,
the consistency verb (Tables 1 and 2) and the efficiency ladder (Table 3)."""
import copy
import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATASETS, run_cli
from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.search.consistency import child_forward, kendall_tau, slots_from_genotype
from nasflow.search.steps import architecture_step
from nasflow.search.policies.entranas import EnTranNAS, EnTranNASDST, dst_coefficients, engine_cell_indices
from nasflow.catalog.methods.entranas import op_set_ops
from nasflow.search.supernet import SpaceConfig, Supernet, edge_inputs
from nasflow.settings import load_params
from nasflow.space.counting import count_network
from nasflow.space.network import build_network
from nasflow.catalog.ops import DARTS_OPS

SETTINGS = {"engine_cells": "first", "temperature0": 5.0, "temperature_decay": 0.923, "cell_output": "concat",
            "a_lr": 0.05, "a_betas": [0.5, 0.999], "a_weight_decay": 0.0, "lambda": 0.1, "beta_init": 0.0}
HAS_CIFAR = (SHARED_DATASETS / "cifar10-jpeg.npz").is_file()


def tiny(sharing=True, bottleneck=1, ops=DARTS_OPS, layers=5, seed=0):
    torch.manual_seed(seed)
    net = Supernet(SpaceConfig(ops=list(ops), channels=4, layers=layers, feature_sharing=sharing, bottleneck=bottleneck))
    with torch.no_grad():  # a spread of alphas so the derived cells differ between groups and nodes
        for g in net.groups.values():
            g.alpha.normal_(0, 2.0)
    return net


def count_ops_run(net, run):
    """Calls of each candidate module during `run()`: {(cell, source or edge, slot): calls}."""
    calls, handles = {}, []
    for i, cell in enumerate(net.cells):
        sets = cell.sources if cell.sharing else cell.edges
        for where, cs in enumerate(sets):
            for key, module in cs.ops.items():
                tag = (i, where, int(key[1:]))
                handles.append(module.register_forward_hook(lambda *_, tag=tag: calls.__setitem__(tag, calls.get(tag, 0) + 1)))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


def expected_run(net, cell, edge_slots):
    """(source or edge, slot) a cell must run for `edge_slots`: with sharing one per (source state, op)."""
    if cell.sharing:
        return {(cell.inputs[e][1], s) for e, slots in enumerate(edge_slots) for s in slots}
    return {(e, s) for e, slots in enumerate(edge_slots) for s in slots}


# ---- Engine and Transit cells --------------------------------------------------------------------------

@pytest.mark.parametrize("sharing,bottleneck", [(True, 1), (False, 1), (True, 4)])
def test_transit_cells_run_exactly_the_derived_cell_and_engine_cells_the_whole_dag(sharing, bottleneck):
    net = tiny(sharing, bottleneck)
    policy = EnTranNAS(SETTINGS, net)
    policy.begin_epoch(1)
    x = torch.randn(2, 3, 32, 32)
    calls = count_ops_run(net, lambda: policy.forward(net, x, policy.weights(net)))
    choice = policy.choose(net, policy.weights(net))
    n_edges = len(edge_inputs(net.space.nodes))
    assert policy.engine == {0, 1}  # layers=5: cell 0 normal, cell 1 the first reduction cell
    for i, cell in enumerate(net.cells):
        ran = {(w, s) for (c, w, s) in calls if c == i}
        assert all(n == 1 for (c, _, _), n in calls.items() if c == i)  # computed once, reused (eq. 6)
        if i in policy.engine:
            full = [list(range(len(DARTS_OPS)))] * n_edges
            assert ran == expected_run(net, cell, full)
        else:
            edge_slots = [[] for _ in range(n_edges)]
            for node in choice[cell.group]:
                for e, s in node:
                    edge_slots[e].append(s)
            assert ran == expected_run(net, cell, edge_slots)
            # DARTS rule: two inputs per node, never `none`
            assert all(len(node) == 2 for node in choice[cell.group])
            assert all(DARTS_OPS[s] != "none" for node in choice[cell.group] for _, s in node)
    transit_ops = sum(n for (c, _, _), n in calls.items() if c not in policy.engine)
    assert 0 < transit_ops <= 3 * 8  # 3 transit cells, at most 8 (edge, op) pairs each


def test_transit_cells_weigh_every_derived_op_once():
    """The transit cell of eq. (6) sums its ops without coefficients: scaling alpha (which changes the
    engine-cell mixture but not the derived cell) leaves a transit cell's own computation unchanged."""
    net = tiny(layers=5).eval()
    policy = EnTranNAS(SETTINGS, net)
    policy.begin_epoch(1)
    seen = []
    hook = net.cells[4].register_forward_hook(lambda m, inp, out: seen.append((inp[0].clone(), inp[1].clone(), out.clone())))
    with torch.no_grad():
        policy.forward(net, torch.randn(2, 3, 32, 32), policy.weights(net))
    hook.remove()
    s0, s1, out = seen[0]
    edge_slots = [[] for _ in range(14)]
    for node in policy.choose(net, policy.weights(net))[net.cells[4].group]:
        for e, s in node:
            edge_slots[e].append(s)
    ones = torch.ones(14, len(DARTS_OPS))
    with torch.no_grad():
        assert torch.allclose(net.cells[4](s0, s1, ones, edge_slots), out, atol=1e-6)
        assert not torch.allclose(net.cells[4](s0, s1, 0.5 * ones, edge_slots), out, atol=1e-3)


@pytest.mark.parametrize("mode,expected", [("first", {0, 2}), ("last", {7, 5}), ("all", set(range(8))),
                                           ("half", {0, 1, 3, 2})])
def test_engine_cell_choices_of_table1(mode, expected):
    net = Supernet(SpaceConfig(ops=["skip_connect", "max_pool_3x3"], channels=4, layers=8))
    assert engine_cell_indices(net, mode) == expected


# ---- EnTranNAS-DST ----------------------------------------------------------------------------------------

def test_figure3_example_by_hand():
    """Figure 3: node j with three incoming edges, t_j = 0.7."""
    p = torch.full((14, 5), 0.2)
    p[2:5] = torch.tensor([[0.2, 0.1, 0.3, 0.15, 0.25], [0.4, 0.25, 0.15, 0.1, 0.1], [0.5, 0.15, 0.15, 0.1, 0.1]])
    beta = torch.zeros(4)
    beta[1] = math.log(0.7 / 0.3)  # sigmoid(beta) = 0.7
    q_hat = dst_coefficients(p, beta, 4)
    expected = torch.tensor([[0.0] * 5, [1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]])
    assert torch.allclose(q_hat[2:5], expected, atol=1e-6)
    # nodes with all-equal p and t = 0.5: every connection kept, each edge's ops equal
    assert torch.allclose(q_hat[0:2], torch.full((2, 5), 0.2))


def independent_q_hat(p, beta, nodes):
    """Eqs. (7)-(9) written out element by element, to check dst_coefficients against."""
    out = torch.zeros_like(p)
    e0 = 0
    for k in range(nodes):
        t = 1 / (1 + math.exp(-float(beta[k])))
        m = max(float(v) for v in p[e0:e0 + k + 2].flatten())
        for e in range(e0, e0 + k + 2):
            q = [max(0.0, float(v) / m - t) for v in p[e]]
            total = sum(q)
            out[e] = torch.tensor([v / total if total > 0 else 0.0 for v in q])
        e0 += k + 2
    return out


def test_derived_genotype_is_exactly_the_nonzero_coefficients():
    net = tiny(ops=DARTS_OPS[1:], layers=3)
    policy = EnTranNASDST(SETTINGS, net)
    policy.begin_epoch(1)
    with torch.no_grad():
        policy.betas["normal"].copy_(torch.tensor([0.5, 1.0, -0.5, 2.0]))
        policy.betas["reduce"].copy_(torch.tensor([-1.0, 0.0, 1.5, 0.3]))
    weights = policy.weights(net)
    genotype = policy.derive(net)
    inputs = edge_inputs(4)
    for (name, g), cell in zip(net.groups.items(), genotype.cells):
        p = torch.softmax(g.alpha.detach() / policy.temperature, -1)
        q = independent_q_hat(p, policy.betas[name].detach(), 4)
        assert torch.allclose(weights[name].detach(), q, atol=1e-6)
        nonzero = {(inputs[e][0], inputs[e][1], DARTS_OPS[1:][s]) for e, s in torch.nonzero(q > 0).tolist()}
        derived = {(k, edge.input, edge.op.name) for k, node in enumerate(cell.nodes) for edge in node}
        assert derived == nonzero
    counts = [len(node) for cell in genotype.cells for node in cell.nodes]
    assert min(counts) >= 1 and len(set(counts)) > 1  # a learned topology, not two per node


def test_every_node_keeps_an_input_even_when_thresholds_round_to_one():
    p = torch.softmax(torch.randn(14, 7), -1)
    for b in (10.0, 40.0, 80.0):  # sigmoid(40) == 1.0 in float32
        q_hat = dst_coefficients(p, torch.full((4,), b), 4)
        e0 = 0
        for k in range(4):
            assert (q_hat[e0:e0 + k + 2] > 0).any(), (b, k)
            e0 += k + 2


def _node_inputs(weights, nodes=4):
    e0, counts = 0, []
    for k in range(nodes):
        counts.append(int((weights[e0:e0 + k + 2] > 0).sum()))
        e0 += k + 2
    return counts


def test_dst_every_node_keeps_an_input_at_every_step_while_edges_are_cut():
    net = tiny(ops=DARTS_OPS[1:], layers=3)
    s = dict(SETTINGS, a_lr=0.2, **{"lambda": 2.0})
    policy = EnTranNASDST(s, net)
    policy.begin_epoch(1)
    a_opt = policy.make_arch_optimizer(policy.arch_parameters(net))
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    batch = lambda: (torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g))
    first = sum(int((w > 0).sum()) for w in policy.weights(net).values())
    for _ in range(12):
        architecture_step(policy, net, a_opt, batch(), batch(), w_opt)
        x, y = batch()
        weights = {k: w.detach() for k, w in policy.weights(net).items()}
        for w in weights.values():
            assert min(_node_inputs(w)) >= 1
        w_opt.zero_grad()
        F.cross_entropy(policy.forward(net, x, weights), y).backward()
        w_opt.step()
    last = sum(int((w > 0).sum()) for w in policy.weights(net).values())
    assert last < first  # the thresholds did cut connections
    assert all(float(policy.thresholds(k).detach().min()) > 0.5 for k in policy.betas)  # eq. 11 raised every t_j


def test_eq11_is_applied_per_cell_type_with_the_papers_lambda():
    """Eq. (11) is written for one cell: each cell type's thresholds get lambda * mean_j(-log t_j), and the
    types' terms add up (a mean over both types would halve lambda)."""
    net = tiny(ops=DARTS_OPS[1:], layers=3)
    policy = EnTranNASDST(dict(SETTINGS, **{"lambda": 0.3}), net)
    with torch.no_grad():
        policy.betas["normal"].copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
        policy.betas["reduce"].copy_(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    by_hand = {k: sum(-math.log(1 / (1 + math.exp(-b))) for b in policy.betas[k].tolist()) / 4 for k in ("normal", "reduce")}
    value = policy.regulariser(net)
    assert float(value) == pytest.approx(0.3 * (by_hand["normal"] + by_hand["reduce"]), rel=1e-6)
    value.backward()
    for k in ("normal", "reduce"):  # d/d beta of lambda/4 * -log sigmoid(beta) = -lambda/4 * sigmoid(-beta)
        expected = -0.3 / 4 * torch.sigmoid(-policy.betas[k].detach())
        assert torch.allclose(policy.betas[k].grad, expected, atol=1e-7)


def test_larger_lambda_gives_no_more_edges_on_a_scripted_case():
    base = tiny(ops=DARTS_OPS[1:], layers=3, seed=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    edges = []
    # lambdas a decade apart: Adam normalises step sizes, so what lambda changes is the balance against
    # the validation loss's pull on the thresholds, and nearby values can swap by an edge or two. From
    # 2.5 on the count sits at its floor (about 36 here), where one edge more or less is a processor's
    # rounding (AVX2 against AVX-512), so the ladder stops there.
    for lam in (0.0, 0.25, 2.5):
        net = copy.deepcopy(base)
        policy = EnTranNASDST(dict(SETTINGS, a_lr=0.05, **{"lambda": lam}), net)
        policy.begin_epoch(1)
        a_opt = policy.make_arch_optimizer(policy.arch_parameters(net))
        for _ in range(20):
            architecture_step(policy, net, a_opt, None, (x, y), None)
        edges.append(sum(len(node) for cell in policy.derive(net).cells for node in cell.nodes))
    assert edges == sorted(edges, reverse=True), edges
    assert edges[-1] < edges[0], edges


def test_dst_engine_cells_skip_only_what_adds_nothing():
    """Running only the non-zero connections in the Engine-cells gives the same logits and the same
    alpha/beta gradients as running the whole DAG."""
    net = tiny(ops=DARTS_OPS[1:], layers=3).eval()
    policy = EnTranNASDST(SETTINGS, net)
    policy.begin_epoch(1)
    with torch.no_grad():
        policy.betas["normal"].fill_(1.0)
        policy.betas["reduce"].fill_(0.8)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])

    def grads(full: bool):
        for p in policy.arch_parameters(net):
            p.grad = None
        if full:
            policy.engine_slots = lambda net, choice: None
        weights = policy.weights(net)
        F.cross_entropy(policy.forward(net, x, weights), y).backward()
        if full:
            del policy.engine_slots
        return [p.grad.clone() for p in policy.arch_parameters(net)]

    for a, b in zip(grads(False), grads(True)):
        assert torch.allclose(a, b, atol=1e-6)
    calls_sparse = count_ops_run(net, lambda: policy.forward(net, x, policy.weights(net)))
    assert sum(calls_sparse.values()) < len(net.cells) * 5 * len(DARTS_OPS[1:])


# ---- settings ---------------------------------------------------------------------------------------------

def test_space_sizes_of_table8():
    assert len(op_set_ops("standard", True)) == 8 and len(op_set_ops("extended", True)) == 13
    assert len(op_set_ops("standard", False)) == 7 and len(op_set_ops("extended", False)) == 12
    assert "none" not in op_set_ops("extended", False)


def test_paper_settings_and_key_errors(params_file):
    from nasflow.study import method_settings

    for method, n_ops in (("entranas", 8), ("entranas-dst", 7)):
        s = method_settings(load_params(params_file, "paper"), method)
        assert (s["batch_size"], s["w_lr"], s["a_lr"], s["bottleneck"], s["temperature0"], s["temperature_decay"]) == \
            (512, 0.2, 6e-4, 4, 5.0, 0.923)
        assert s["feature_sharing"] and len(s["ops"]) == n_ops
    ext = method_settings(load_params(params_file, "paper", ["search.entranas-dst.op_set=extended"]), "entranas-dst")
    assert len(ext["ops"]) == 12
    with pytest.raises(NasflowError, match=r"search\.entranas-dst\.ops"):
        method_settings(load_params(params_file, None, ["search.entranas-dst.op_set=ops",
                                                        'search.entranas-dst.ops=["none","skip_connect"]']),
                        "entranas-dst")
    with pytest.raises(NasflowError, match=r"search\.entranas\.layout"):
        method_settings(load_params(params_file, None, ["search.entranas.layout=per-position"]), "entranas")
    with pytest.raises(NasflowError, match="engine_cells"):
        load_params(params_file, None, ["search.entranas.engine_cells=middle"])
    with pytest.raises(NasflowError, match="temperature_decay"):
        load_params(params_file, None, ["search.entranas-dst.temperature_decay=1.5"])


# ---- Kendall's tau (Table 2) --------------------------------------------------------------------------------

def test_kendall_tau_by_hand():
    # pairs: (1,2) discordant, the other five concordant: (5 - 1) / 6
    assert kendall_tau([10, 20, 30, 40], [3.0, 2.5, 3.5, 4.0]) == pytest.approx(4 / 6)
    # one tie in x: C = 2, D = 0, n0 = 3 -> 2 / sqrt((3 - 1) * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 1], [1, 2]))


def test_kendall_verb_reads_result_files(tmp_path):
    supernet = [10.0, 20.0, 30.0, 40.0]
    retrained = {0: [3.0], 1: [2.0, 3.0], 2: [3.5], 3: [4.0]}  # seed means 3.0, 2.5, 3.5, 4.0
    dirs = []
    for seed, err in enumerate(supernet):
        d = tmp_path / "search" / "entranas-dst" / f"seed{seed}"
        nio.write_csv(d / "history.csv", [{"epoch": 1, "val_error": 90.0}, {"epoch": 2, "val_error": err}],
                      ["epoch", "val_error"])
        nio.write_json(d / "architectures.json", [{"id": f"entranas-dst-s{seed}-0", "genotype": "genotype.json"}])
        for k, e in enumerate(retrained[seed]):
            nio.write_json(tmp_path / "train" / f"entranas-dst-s{seed}-0" / "cifar10" / f"seed{k}" / "metrics.json",
                           {"top1_error": e})
        dirs += ["--search-dir", d]
    out = tmp_path / "kendall.json"
    res = run_cli("consistency", "kendall", *dirs, "--train-root", tmp_path / "train", "--out", out)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert result["kendall_tau"] == pytest.approx(4 / 6) and result["n"] == 4
    assert result["rows"][1]["retrained_top1_error"] == pytest.approx(2.5) and result["rows"][1]["retrain_seeds"] == 2
    with open(out.with_suffix(".csv")) as fh:
        assert len(list(csv.DictReader(fh))) == 4
    missing = run_cli("consistency", "kendall", *dirs, "--train-root", tmp_path / "nowhere", "--out", out)
    assert missing.returncode == 2 and "metrics.json" in missing.stderr


# ---- the ladder (Table 3) --------------------------------------------------------------------------------

def test_ladder_rungs_run_fewer_ops_in_process():
    from nasflow.search.bench import RUNGS, measure_rung

    rows = [measure_rung(r, channels=4, layers=5, batch=2, steps=1, warmup=0, device="cpu") for r in RUNGS]
    ops = [r["ops_run"] for r in rows]
    assert ops[0] == 5 * 14 * 8  # DARTS: every op on every edge of every cell
    assert ops[1] < ops[0] and ops[2] < ops[1]  # transit cells, then one op per (source, op)
    # in one process the later rungs' RSS peak is the earlier ones' (why bench_search runs each alone)
    assert all(r["step_seconds"] > 0 and math.isfinite(r["peak_MB"]) for r in rows)


@pytest.mark.slow
def test_bench_search_verb_prints_the_ladder_with_ratios_to_darts():
    res = run_cli("bench", "search", "--channels", 8, "--layers", 5, "--batch", 16, "--steps", 1, "--warmup", 0,
                  "--device", "cpu", "--threads", 1)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if " s/step " in line]
    assert [line.split(" s/step")[0].rsplit(None, 1)[0].strip() for line in lines] == \
        ["DARTS (1st order)", "+ Engine & Transit cells", "+ feature sharing", "+ bottleneck"]
    memory = [float(line.split(" MB")[0].split()[-1]) for line in lines]
    assert "x1.00" in lines[0] and memory[3] < memory[0]  # the full EnTranNAS super-net needs less than DARTS


# ---- whole searches ---------------------------------------------------------------------------------------

def _search(smoke_params, method, out, overrides=()):
    from nasflow.search.engine import SearchRun

    params = load_params(smoke_params, None, ["runtime.progress=none", *overrides])
    run = SearchRun(params, method, 0, out, track_runs=False)
    return run, run.run()


@pytest.mark.slow  # about 40 s each on one shared core (the consistency verb runs in a child process)
@pytest.mark.skipif(not HAS_CIFAR, reason="needs ../shared/datasets")
@pytest.mark.parametrize("method", ["entranas", "entranas-dst"])
def test_tiny_search_builds_counts_and_measures_consistency(smoke_params, tmp_path, method):
    from nasflow.search.engine import SearchRun

    seen = []
    original = EnTranNAS.forward

    def watched(self, net, x, weights):  # every forward of the search: the derived cell's node inputs
        seen.append({name: [len(node) for node in c] for name, c in self.choose(net, weights).items()})
        return original(self, net, x, weights)

    EnTranNAS.forward = watched
    try:
        run, result = _search(smoke_params, method, tmp_path / "s")
    finally:
        EnTranNAS.forward = original
    genotype = result["genotype"]
    net = build_network(genotype, "cifar", c=8, layers=5, num_classes=10)
    assert net(torch.zeros(2, 3, 32, 32))[0].shape == (2, 10)
    counts = count_network(genotype, 8, 5)
    assert counts["params_M"] > 0 and counts["macs_M"] > 0
    assert len(seen) > 10 and all(min(c) >= 1 for step in seen for c in step.values())
    if method == "entranas":
        assert all(c == [2, 2, 2, 2] for step in seen for c in step.values())
    history = list(csv.DictReader(open(tmp_path / "s" / "history.csv")))
    assert [float(r["temperature"]) for r in history] == pytest.approx([1.0, 0.5])

    # the genotype the search wrote runs on the supernet as the policy's derived slots
    group_slots = slots_from_genotype(run.net, genotype)
    derived = run.policy.choose(run.net, run.policy.weights(run.net))
    for name, edge_slots in group_slots.items():
        assert sorted((e, s) for e, slots in enumerate(edge_slots) for s in slots) == sorted(sum(derived[name], []))

    # resume restores the DST thresholds and the architecture optimizer's state
    again = SearchRun(load_params(smoke_params, None, ["runtime.progress=none"]), method, 0, tmp_path / "s",
                      track_runs=False)
    again.restore()
    if method == "entranas-dst":
        for k, b in run.policy.betas.items():
            assert torch.equal(again.policy.betas[k].detach(), b.detach()) and float(b.detach().abs().sum()) > 0
        assert any(id(p) in {id(q) for q in again.policy.betas.values()} for p in again.a_opt.param_groups[0]["params"])
        assert len(again.a_opt.state) == len(again.a_opt.param_groups[0]["params"])

    out = tmp_path / "consistency.json"
    res = run_cli("consistency", "supernet", "--no-track", "--method", method, "--search-dir", tmp_path / "s", "--params",
                  smoke_params, "--set", "runtime.progress=none", "--out", out)
    assert res.returncode == 0, res.stderr
    c = json.loads(out.read_text())
    assert c["engine_cells"] == [0, 1] and c["images"] == 80
    assert 0 <= c["child_error"] <= 100 and c["error_gap"] == pytest.approx(c["child_error"] - c["supernet_error"])
    with torch.no_grad():
        run.net.eval()
        x = torch.randn(2, 3, 32, 32)
        assert child_forward(run.net, group_slots, x).shape == (2, 10)


def test_bottleneck_reduces_per_source_and_expands_per_node():
    """Section 2.5: one 1x1 conv into C/4 before a state feeds its candidates, one back to C per node."""
    net = tiny(sharing=True, bottleneck=4)
    cell = net.cells[0]
    assert len(cell.expand) == net.space.nodes and len(cell.sources) == net.space.nodes + 1
    assert all(cs.reduce[1].out_channels == cell.c // 4 for cs in cell.sources)
    assert all(e[0].in_channels == cell.c // 4 and e[0].out_channels == cell.c for e in cell.expand)
    seen = []
    hooks = [e.register_forward_hook(lambda *_: seen.append(1)) for e in cell.expand]
    policy = EnTranNAS(SETTINGS, net)
    policy.begin_epoch(1)
    policy.forward(net, torch.randn(2, 3, 32, 32), policy.weights(net))
    assert len(seen) == net.space.nodes  # once per node, not once per edge
    for h in hooks:
        h.remove()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CIFAR, reason="needs ../shared/datasets")
def test_dst_search_interrupted_after_an_epoch_resumes_to_the_same_result(smoke_params, tmp_path, monkeypatch):
    """The thresholds and their Adam moments survive a resume: an interrupted search ends bit for bit
    where an uninterrupted one does."""
    import numpy as np

    from nasflow.search import engine

    whole, _ = _search(smoke_params, "entranas-dst", tmp_path / "whole")

    def interrupt(self, epoch, **_):
        raise KeyboardInterrupt  # after epoch 1's checkpoint was written

    with monkeypatch.context() as m:
        m.setattr(engine.Progress, "epoch_done", interrupt)
        with pytest.raises(KeyboardInterrupt):
            _search(smoke_params, "entranas-dst", tmp_path / "cut")
    assert not (tmp_path / "cut" / "genotype.json").exists()
    from nasflow.search.engine import SearchRun

    resumed = SearchRun(load_params(smoke_params, None, ["runtime.progress=none"]), "entranas-dst", 0, tmp_path / "cut",
                        track_runs=False)
    resumed.run(resume=True)
    for k, b in whole.policy.betas.items():
        assert torch.equal(resumed.policy.betas[k].detach(), b.detach())
    assert json.loads((tmp_path / "cut" / "genotype.json").read_text()) == \
        json.loads((tmp_path / "whole" / "genotype.json").read_text())
    with np.load(tmp_path / "cut" / "alphas.npz") as a, np.load(tmp_path / "whole" / "alphas.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


# ---- searching directly on ImageNet (section 4.3, appendix A.1) --------------------------------------------

def test_imagenet_block_gives_section_4_3_settings_and_the_split_keys(params_file):
    """The `imagenet_style:` sub-blocks are laid over only on ImageNet-style data; a typo names the bad key, and
    the search fingerprint follows the split settings it reads (the block's fractions, not data.weights_fraction)."""
    from nasflow.study import method_settings, study_of

    expected = {"entranas": (1024, 0.5, 6e-3, 5.0, 0.923), "entranas-dst": (1024, 0.5, 6e-3, 1.0, 0.9)}
    for method, values in expected.items():
        cifar = method_settings(load_params(params_file, "paper"), method)
        assert "weights_fraction" not in cifar and "arch_fraction" not in cifar and cifar["batch_size"] == 512
        for dataset in ("imagenet", "imagenette64"):
            s = method_settings(load_params(params_file, "paper", [f"search.{method}.dataset={dataset}"]), method)
            assert (s["batch_size"], s["w_lr"], s["a_lr"], s["temperature0"], s["temperature_decay"]) == values
            assert (s["weights_fraction"], s["arch_fraction"], s["eval_channels"], s["eval_layers"]) == (0.1, 0.1, 48, 14)
            assert (s["layers"], s["channels"], s["epochs"], s["w_lr_min"]) == (8, 16, 50, 0.0)  # 4.3's super-net
    assert method_settings(load_params(params_file, "paper", ["search.entranas-dst.dataset=imagenet"]),
                           "entranas-dst")["lambda"] == 0.2  # Table 7
    with pytest.raises(NasflowError, match=r"search\.entranas\.imagenet_style\.arch_fracton"):
        load_params(params_file, None, ["search.entranas.imagenet_style.arch_fracton=0.2"])
    with pytest.raises(NasflowError, match="weights_fraction"):
        load_params(params_file, None, ["search.entranas-dst.weights_fraction=0.2"])  # only in the imagenet block
    with pytest.raises(NasflowError, match="add up to more than 1"):
        method_settings(load_params(params_file, None, ["search.entranas.dataset=imagenet",
                                                        "search.entranas.imagenet_style.weights_fraction=0.6",
                                                        "search.entranas.imagenet_style.arch_fraction=0.5"]), "entranas")

    def fingerprint_data(*overrides):
        params = load_params(params_file, None, ["search.entranas.dataset=imagenet", *overrides])
        return study_of(params).search_inputs("entranas", 0)
    base = fingerprint_data()
    assert base["data"] == {"imagenet_classes": None, "imagenet_fraction": None, "split_seed": 0}
    assert fingerprint_data("data.weights_fraction=0.6") == base  # not read on ImageNet
    for changed in ("search.entranas.imagenet_style.arch_fraction=0.2", "search.entranas.imagenet_style.weights_fraction=0.2",
                    "data.split_seed=1", "data.imagenet_classes=10", "data.imagenet_fraction=0.5"):
        assert fingerprint_data(changed) != base, changed
    cifar = study_of(load_params(params_file, None)).search_inputs("entranas", 0)["data"]
    assert cifar["weights_fraction"] == 0.5  # CIFAR-10's halves still read it


def test_stratified_parts_are_disjoint_per_class_draws():
    import numpy as np

    from nasflow.data.folders import stratified_parts

    labels = np.repeat([0, 1, 2], [10, 20, 7])
    w, a = stratified_parts(labels, (0.1, 0.1), seed=0)
    assert np.bincount(labels[w]).tolist() == [1, 2, 1] and np.bincount(labels[a]).tolist() == [1, 2, 1]
    assert not set(w) & set(a)
    w2, rest = stratified_parts(labels, (0.5, None), seed=0)  # None: the rest of every class
    assert sorted([*w2, *rest]) == list(range(len(labels))) and np.bincount(labels[w2]).tolist() == [5, 10, 4]
    assert np.array_equal(stratified_parts(labels, (0.5, None), seed=0)[0], w2)
    assert not np.array_equal(stratified_parts(labels, (0.5, None), seed=1)[0], w2)
    with pytest.raises(NasflowError, match="class 2 has 7 images"):
        stratified_parts(labels, (0.5, 0.5), seed=0)  # rounded per class: 4 + 4 of 7 images
    with pytest.raises(NasflowError, match="at most 1"):
        stratified_parts(labels, (0.6, 0.5), seed=0)


def _imagenet_tree(root, classes=3, train=10, val=2):
    """Class folders in ImageNet's layout (written here, never passed off as ImageNet's images); the val
    folder holds corrupt files, so any read of it fails loudly."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / "imagenet" / "train" / f"n0000000{c}"
        folder.mkdir(parents=True)
        for i in range(train):
            Image.fromarray(rng.integers(0, 255, (24, 28, 3), dtype=np.uint8)).save(
                folder / (f"img{i}.JPEG" if i % 2 else f"img{i}.png"))
        poisoned = root / "imagenet" / "val" / f"n0000000{c}"
        poisoned.mkdir(parents=True)
        for i in range(val):
            (poisoned / f"val{i}.JPEG").write_bytes(b"not an image: the search must never open ImageNet's val split")


@pytest.mark.parametrize("method", ["entranas", "entranas-dst"])
def test_imagenet_search_draws_disjoint_per_class_parts_and_never_opens_val(params_file, tmp_path, monkeypatch, method):
    """Appendix A.1: a part of every class's training images trains the weights and another, disjoint part
    alpha (here 30 % and 20 % of 10 images: 3 and 2 per class), streamed from train/; val/ (ImageNet's
    test set) is neither listed nor opened."""
    from collections import Counter

    import PIL.Image

    from nasflow.data import folders
    from nasflow.search.engine import SearchRun

    _imagenet_tree(tmp_path / "archives")
    listed, opened = [], []
    real_index, real_open = folders.index_split, PIL.Image.open
    monkeypatch.setattr(folders, "index_split", lambda root, split, classes: (listed.append(split),
                                                                               real_index(root, split, classes))[1])
    monkeypatch.setattr(PIL.Image, "open", lambda path, *a, **k: (opened.append(path), real_open(path, *a, **k))[1])
    M = f"search.{method}"
    params = load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'archives'}']", f"{M}.dataset=imagenet",
                                                 f"{M}.imagenet_style.weights_fraction=0.3", f"{M}.imagenet_style.arch_fraction=0.2",
                                                 f"{M}.imagenet_style.batch_size=3", f"{M}.epochs=1", f"{M}.layers=3",
                                                 f"{M}.channels=4", "runtime.progress=none"])
    run = SearchRun(params, method, 0, tmp_path / "out", track_runs=False)
    result = run.run()

    weights, arch = run.train_batches.dataset, run.arch_batches.dataset
    assert Counter(weights.labels.tolist()) == {0: 3, 1: 3, 2: 3}  # every class, its configured size
    assert Counter(arch.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert not set(weights.paths) & set(arch.paths)
    assert all(p.parent.name == f"n0000000{label}" for p, label in zip(weights.paths + arch.paths,
                                                                       [*weights.labels, *arch.labels]))
    assert run.val_batches.dataset.paths == arch.paths and not run.val_batches.train  # alpha's part, unaugmented
    assert run.n_classes == 3 and run.net.space.stem == "imagenet" and run.net.classifier.out_features == 3
    assert set(listed) == {"train"} and opened  # the val split is never even listed
    opened_paths = {str(p) for p in opened}
    assert opened_paths <= {str(p) for p in weights.paths + arch.paths}
    assert {str(p) for p in arch.paths} <= opened_paths  # alpha trained (and was measured) on its own part
    assert all("/val/" not in p for p in opened_paths)
    history = list(csv.DictReader(open(tmp_path / "out" / "history.csv")))
    assert len(history) == 1 and 0 <= float(history[0]["val_error"]) <= 100
    assert result["epochs"] == 1 and (tmp_path / "out" / "genotype.json").is_file()

    # the parts are drawn with data.split_seed: the same seed draws the same images, another seed others
    again = SearchRun(params, method, 0, tmp_path / "again", track_runs=False)
    again._data()
    assert again.train_batches.dataset.paths == weights.paths and again.arch_batches.dataset.paths == arch.paths
    other = SearchRun(load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'archives'}']",
                                                         f"{M}.dataset=imagenet", "data.split_seed=1",
                                                         f"{M}.imagenet_style.weights_fraction=0.3",
                                                         f"{M}.imagenet_style.arch_fraction=0.2"]),
                      method, 0, tmp_path / "other", track_runs=False)
    other._data()
    assert other.train_batches.dataset.paths != weights.paths
    assert Counter(other.train_batches.dataset.labels.tolist()) == {0: 3, 1: 3, 2: 3}


def test_other_bilevel_methods_are_still_refused_on_streamed_imagenet(params_file, tmp_path):
    from nasflow.search.engine import SearchRun

    _imagenet_tree(tmp_path / "archives", train=2)
    params = load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'archives'}']",
                                                 "search.darts.dataset=imagenet"])
    with pytest.raises(NasflowError, match=r"search\.darts: a bi-level search on streamed ImageNet"):
        SearchRun(params, "darts", 0, tmp_path / "out", track_runs=False)._data()


@pytest.mark.skipif(not (SHARED_DATASETS / "imagenette64-subset-jpeg.npz").is_file(),
                    reason="needs ../shared/datasets/imagenette64-subset-jpeg.npz")
def test_imagenet_block_search_on_imagenette64(smoke_params, tmp_path):
    """The `imagenet:` block on the in-memory ImageNet stand-in: the paper's 10 % + 10 % of every class (of
    the smoke profile's 80 images per class: 8 + 8), disjoint, at toy size for one epoch."""
    import numpy as np

    from nasflow.search.engine import SearchRun

    params = load_params(smoke_params, None, ["search.entranas.dataset=imagenette64", "search.entranas.epochs=1",
                                              "runtime.progress=none"])
    run = SearchRun(params, "entranas", 0, tmp_path / "s", track_runs=False)
    assert (run.s["weights_fraction"], run.s["arch_fraction"], run.s["batch_size"]) == (0.1, 0.1, 16)
    result = run.run()
    w, a = run.train_batches, run.arch_batches
    assert np.bincount(w.y.numpy()).tolist() == [8] * 10 and np.bincount(a.y.numpy()).tolist() == [8] * 10
    trained = {x.numpy().tobytes() for x in w.x}
    assert not any(x.numpy().tobytes() in trained for x in a.x)
    assert run.net.space.stem == "imagenet" and run.net.classifier.out_features == 10
    assert result["epochs"] == 1 and (tmp_path / "s" / "genotype.json").is_file()
    history = list(csv.DictReader(open(tmp_path / "s" / "history.csv")))
    assert [float(r["temperature"]) for r in history] == pytest.approx([1.0])
