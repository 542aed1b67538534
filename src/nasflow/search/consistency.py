"""`nasflow consistency`: how far a super-net's judgement is from the networks it derives (EnTranNAS 4.1).

`supernet` (Table 1). From a search's checkpoint: the error (percent, as everywhere in nasflow; the paper
prints accuracies), on the search's validation half, of the
super-net as the method runs it (`policy.forward`: for EnTranNAS the Engine-cells mix the whole DAG and
the Transit-cells run the derived cell) against the child network, where every cell runs only the derived
architecture, each kept op with coefficient 1. Works for every method (DARTS's super-net is all
Engine-cells). The child shares the super-net's weights and BatchNorm statistics as they are: the drop
is exactly what the paper measures, nothing is re-estimated.

`kendall` (Table 2). Over several searches (seeds): Kendall's tau-b between the super-net's final
validation error (history.csv) and the mean retrained top-1 error of the searched cell
(results/train/<arch_id>/<dataset>/seed*/metrics.json). Both are errors, so +1 means the super-net ranks
the cells exactly as retraining does, as in the paper's accuracy-based score.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.search.supernet import Supernet, edge_inputs


# ---- Table 1 ------------------------------------------------------------------------------------------

def slots_from_genotype(net: Supernet, genotype) -> dict[str, list[list[int]]]:
    """Each group's slots per edge that runs exactly the genotype's cell on the supernet."""
    index = {pair: e for e, pair in enumerate(edge_inputs(net.space.nodes))}
    group_slots = {}
    for (name, g), cell in zip(net.groups.items(), genotype.cells):
        edge_slots = [[] for _ in index]
        for k, node in enumerate(cell.nodes):
            for edge in node:
                e = index[(k, edge.input)]
                labels = [op.to_json() for op in g.pools[e]]
                if edge.op.to_json() not in labels:
                    raise NasflowError(f"genotype op {edge.op.label()} into node {k} is not a candidate of {name}")
                edge_slots[e].append(labels.index(edge.op.to_json()))
        group_slots[name] = edge_slots
    return group_slots


def child_forward(net: Supernet, group_slots: dict[str, list[list[int]]], x) -> torch.Tensor:
    """Every cell runs only its derived slots, each op counted once: the derived network on the
    super-net's weights."""
    every = range(len(net.cells))
    return net(x, {}, cell_slots={i: group_slots[net.cells[i].group] for i in every}, cell_weights={i: None for i in every})


@torch.no_grad()
def accuracies(net: Supernet, policy, batches, derived) -> dict:
    """The super-net as the policy runs it against `derived` (the policy's derived genotype) on its weights."""
    net.eval()
    weights = policy.weights(net)
    group_slots = slots_from_genotype(net, derived)
    right = {"supernet": 0, "child": 0}
    seen = 0
    for x, y in batches.epoch(None):
        right["supernet"] += int((policy.forward(net, x, weights).argmax(1) == y).sum())
        right["child"] += int((child_forward(net, group_slots, x).argmax(1) == y).sum())
        seen += len(y)
    sup, child = 100.0 * right["supernet"] / seen, 100.0 * right["child"] / seen
    return {"supernet_error": 100.0 - sup, "child_error": 100.0 - child, "error_gap": sup - child, "images": seen}


def supernet_vs_child(params, method: str, seed: int, search_dir: str | Path, out: str | Path) -> dict:
    """The checkpoint's super-net against the child it derives, on the search's validation images. The
    child is labelled with the architecture id it is (the search's final cell) or `end state` when the
    search stopped elsewhere (GOLD-NAS: its final cell is the last Pareto point, recorded earlier). A
    search without validation images (a one-level search with val_fraction 0) gets a row that says so:
    the test set is never used instead."""
    from nasflow.layout import final_architecture, read_architectures
    from nasflow.catalog.genotype import load_genotype
    from nasflow.search.engine import SearchRun

    run = SearchRun(params, method, seed, search_dir, track_runs=False)
    ckpt = run.restore()
    final = final_architecture(read_architectures(Path(search_dir) / "architectures.json"))
    derived = run.policy.derive(run.net)
    same = derived == load_genotype(str(Path(search_dir) / final["genotype"]))
    result = {"method": method, "seed": seed, "search_dir": str(search_dir), "epoch": ckpt["epoch"],
              "architecture": final["id"] if same else "end state",
              "engine_cells": sorted(getattr(run.policy, "engine", range(len(run.net.cells))))}
    if run.val_batches is None:
        result.update(supernet_error=None, child_error=None, error_gap=None, images=0,
                      note=f"no validation images: search.{method}.val_fraction is 0 (the test set is never used)")
    else:
        result.update(accuracies(run.net, run.policy, run.val_batches, derived), note="")
    nio.write_json(out, result)
    return result


# ---- Table 2 ------------------------------------------------------------------------------------------

def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), n0 = n(n-1)/2.
    NaN when either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        raise NasflowError(f"Kendall's tau needs two equally long lists of at least 2 values (got {len(x)}, {len(y)})")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            ties_x += dx == 0
            ties_y += dy == 0
            sign = dx * dy
            concordant += sign > 0
            discordant += sign < 0
    n0 = len(x) * (len(x) - 1) // 2
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


def final_val_error(search_dir: Path) -> float:
    path = search_dir / "history.csv"
    if not path.is_file():
        raise NasflowError(f"{path}: missing (is {search_dir} a finished search?)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise NasflowError(f"{path}: no epochs recorded")
    value = float(rows[-1]["val_error"] or "nan")
    if math.isnan(value):
        raise NasflowError(f"{path}: the search measured no validation error (a one-level search with "
                           "val_fraction 0): it cannot be ranked")
    return value


def final_arch_id(search_dir: Path) -> str:
    path = search_dir / "architectures.json"
    if not path.is_file():
        raise NasflowError(f"{path}: missing (is {search_dir} a finished search?)")
    from nasflow.layout import final_architecture, read_architectures

    return final_architecture(read_architectures(path))["id"]


def retrained_error(train_root: Path, arch_id: str, dataset: str) -> tuple[float, int]:
    """Mean top-1 error over the retraining seeds of one architecture, and how many seeds."""
    files = sorted((train_root / arch_id / dataset).glob("seed*/metrics.json"))
    if not files:
        raise NasflowError(f"no retraining of {arch_id} on {dataset}: {train_root / arch_id / dataset}/seed*/metrics.json "
                           "is missing")
    errors = [float(json.loads(f.read_text())["top1_error"]) for f in files]
    return sum(errors) / len(errors), len(errors)


def kendall_table(search_dirs: list[str | Path], train_root: str | Path, dataset: str, out: str | Path) -> dict:
    """Writes `out` (JSON: tau and the rows) and the rows as CSV beside it (same name, .csv)."""
    rows = []
    for d in map(Path, search_dirs):
        arch_id = final_arch_id(d)
        error, seeds = retrained_error(Path(train_root), arch_id, dataset)
        rows.append({"arch_id": arch_id, "search_dir": str(d), "supernet_val_error": final_val_error(d),
                     "retrained_top1_error": error, "retrain_seeds": seeds})
    tau = kendall_tau([r["supernet_val_error"] for r in rows], [r["retrained_top1_error"] for r in rows])
    result = {"kendall_tau": None if math.isnan(tau) else tau, "n": len(rows), "dataset": dataset, "rows": rows}
    nio.write_json(out, result)
    nio.write_csv(Path(out).with_suffix(".csv"), rows, list(rows[0]))
    return result
