"""GOLD-NAS's random-search baseline (appendix B.4): random pruning to a MACs budget, invalid draws
discarded, the best briefly-trained candidate kept."""
import csv
import json

import pytest
import torch

from nasflow.errors import NasflowError
from nasflow.search.flops import fixed_macs, op_macs_table
from nasflow.search.policies.random_prune import genotype_of, node_has_input, random_prune
from nasflow.search.supernet import SpaceConfig, Supernet, edge_inputs
from nasflow.space.counting import count_network


def _tiny():
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=4, layers=3, layout="per-position"))
    return net, op_macs_table(net, 32), fixed_macs(net, 32)


@pytest.mark.parametrize("budget_M", [3.0, 2.0, 1.3])
def test_random_pruning_fits_the_budget_with_every_node_fed(budget_M):
    net, tables, fixed = _tiny()
    inputs = edge_inputs(4)
    for seed in range(5):
        alive, draws, pruned = random_prune(tables, fixed, 4, budget_M * 1e6, torch.Generator().manual_seed(seed), 10_000)
        macs = fixed + sum(float(t[alive[k]].sum()) for k, t in tables.items())
        assert macs <= budget_M * 1e6 and draws >= 1
        assert pruned == sum(int((~m).sum()) for m in alive.values())
        assert all(node_has_input(m, inputs, k) for m in alive.values() for k in range(4))
        # the analytic MACs are the evaluation network's
        assert count_network(genotype_of(net, alive), 4, 3)["macs_M"] == pytest.approx(macs / 1e6, abs=0.05)


def test_random_pruning_stops_as_soon_as_the_budget_is_met():
    net, tables, fixed = _tiny()
    alive, _, _ = random_prune(tables, fixed, 4, 2.0e6, torch.Generator().manual_seed(0), 10_000)
    macs = fixed + sum(float(t[alive[k]].sum()) for k, t in tables.items())
    # putting back any one pruned op that costs something would break the budget, or the run pruned too far
    restored = [macs + float(tables[k][e, s]) for k, m in alive.items() for e, s in torch.nonzero(~m).tolist()
                if float(tables[k][e, s]) > 0]
    assert max(restored) > 2.0e6


def test_tight_budgets_need_redraws_and_impossible_ones_name_the_key():
    net, tables, fixed = _tiny()
    g = torch.Generator().manual_seed(0)
    draws = [random_prune(tables, fixed, 4, 1.2e6, g, 100_000)[1] for _ in range(5)]
    assert max(draws) > 1  # invalid draws were discarded
    with pytest.raises(NasflowError, match="flops_max"):
        random_prune(tables, fixed, 4, 0.5e6, torch.Generator().manual_seed(0), 50)


def test_the_same_seed_draws_the_same_architecture():
    net, tables, fixed = _tiny()
    a = random_prune(tables, fixed, 4, 2.0e6, torch.Generator().manual_seed(3), 1000)[0]
    b = random_prune(tables, fixed, 4, 2.0e6, torch.Generator().manual_seed(3), 1000)[0]
    c = random_prune(tables, fixed, 4, 2.0e6, torch.Generator().manual_seed(4), 1000)[0]
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)


# ---- the tiny baseline, run as a user runs it ------------------------------------------------------------

def _run(smoke_params, *outs):
    """The smoke baseline searched into each of `outs`, side by side (one thread each): their histories."""
    from conftest import SHARED_DATASETS, run_clis_at_once

    if not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file():
        pytest.skip("needs ../shared/datasets")
    results = run_clis_at_once(*[["search", "--method", "gold-nas-random", "--params", smoke_params, "--out", out,
                                  "--no-track", "--set", "runtime.progress=lines"] for out in outs])
    histories = []
    for out, res in zip(outs, results):
        assert res.returncode == 0, res.stderr
        with open(out / "history.csv") as fh:
            histories.append(list(csv.DictReader(fh)))
    return histories


@pytest.mark.slow
def test_smoke_baseline_keeps_the_best_candidate_and_is_reproducible(smoke_params, tmp_path):
    from nasflow.study import method_settings
    from nasflow.settings import load_params

    s = method_settings(load_params(smoke_params), "gold-nas-random")
    rows, again = _run(smoke_params, tmp_path / "a", tmp_path / "b")  # the same search twice
    assert [int(r["candidate"]) for r in rows] == list(range(s["candidates"]))
    for r in rows:
        assert float(r["flops_M"]) <= s["flops_max"] and float(r["macs_M"]) == pytest.approx(float(r["flops_M"]), abs=0.051)
        genotype = json.loads((tmp_path / "a" / "candidates" / f"candidate-{r['candidate']}.json").read_text())
        assert len(genotype["cells"]) == s["layers"]  # GOLD-NAS's per-position space at its smoke size
    best = min(rows, key=lambda r: (float(r["val_error"]), float(r["val_loss"])))
    search = json.loads((tmp_path / "a" / "search.json").read_text())
    assert search["best_candidate"] == int(best["candidate"]) and search["candidates"] == s["candidates"]
    chosen = json.loads((tmp_path / "a" / "genotype.json").read_text())
    drawn = json.loads((tmp_path / "a" / "candidates" / f"candidate-{best['candidate']}.json").read_text())
    assert chosen["cells"] == drawn["cells"]
    [entry] = json.loads((tmp_path / "a" / "architectures.json").read_text())
    assert entry["id"] == "gold-nas-random-s0-0" and entry["candidate"] == int(best["candidate"])
    keep = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert keep(again) == keep(rows)
