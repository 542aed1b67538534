"""The papers' tables and figures, built from result files only (never from live objects).

table1.csv  architecture, method, seeds, test_error_mean, test_error_std, params_M, macs_M,
            search_gpu_days, search_device                      (retraining on train.dataset)
table2.csv  architecture, <dataset>_error for each transfer dataset       (ASAP Table 2's layout)
table3.csv  method, schedule, test_error_mean, test_error_std, params_M   (ASAP Table 3's layout)
pareto.csv  method, seed, arch_id, epoch, macs_M (exact, not rounded: it orders the front), params_M,
            test_error
consistency.csv  method, seed, architecture, supernet_error, child_error, error_gap,
            retrained_error, kendall_tau, note                   (EnTranNAS Tables 1 and 2)
Each CSV has a Markdown copy beside it; figures go to results/figures/. metrics.json holds the
headline numbers (per architecture and per method) for `dvc metrics show` / `diff`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nasflow import io as nio
from nasflow import plan
from nasflow.jobs import method_settings
from nasflow.search import registry

TABLE1 = ["architecture", "method", "seeds", "test_error_mean", "test_error_std", "params_M", "macs_M",
          "search_gpu_days", "search_device"]
TABLE3 = ["method", "schedule", "test_error_mean", "test_error_std", "params_M"]
CONSISTENCY = ["method", "seed", "architecture", "supernet_error", "child_error", "error_gap",
               "retrained_error", "kendall_tau", "note"]
PARETO = ["method", "seed", "arch_id", "epoch", "macs_M", "params_M", "test_error"]


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _metrics(root: Path, arch_id: str, dataset: str, seeds) -> list[dict]:
    return [_json(root / plan.train_dir(arch_id, dataset, s) / "metrics.json") for s in seeds]


def _mean_std(values: list[float]) -> tuple[float, float]:
    series = pd.Series(values, dtype=float)
    return round(float(series.mean()), 3), round(float(series.std(ddof=1)), 3) if len(series) > 1 else 0.0


def _schedule(params, method: str) -> str:
    return registry.method(method).describe(method_settings(params, method))


def build_tables(params, root: str | Path = ".") -> dict[str, pd.DataFrame]:
    root = Path(root)
    train = params["train"]
    searched = plan.searched_architectures(params, lambda m, s: root / plan.search_dir(m, s) / "architectures.json")
    seeds = train["seeds"]
    rows1, rows3, pareto = [], [], []
    per_method: dict[str, list[dict]] = {}
    for arch in searched:
        metrics = _metrics(root, arch["id"], train["dataset"], seeds)
        search = _json(root / plan.search_dir(arch["method"], arch["search_seed"]) / "search.json")
        mean, std = _mean_std([m["top1_error"] for m in metrics])
        rows1.append({"architecture": arch["id"], "method": arch["method"], "seeds": ",".join(map(str, seeds)),
                      "test_error_mean": mean, "test_error_std": std, "params_M": metrics[0]["params_M"],
                      "macs_M": metrics[0]["macs_M"], "search_gpu_days": round(search["seconds"] / 86400, 6),
                      "search_device": search["device"]})
        pareto.append({"method": arch["method"], "seed": arch["search_seed"], "arch_id": arch["id"],
                       "epoch": arch["epoch"], "macs_M": arch["macs"] / 1e6, "params_M": arch["params_M"], "test_error": mean})
        per_method.setdefault(arch["method"], []).extend(metrics)
    for method, metrics in per_method.items():
        mean, std = _mean_std([m["top1_error"] for m in metrics])
        rows3.append({"method": method, "schedule": _schedule(params, method), "test_error_mean": mean,
                      "test_error_std": std, "params_M": round(float(pd.Series([m["params_M"] for m in metrics]).mean()), 3)})
    datasets = train["transfer"]["datasets"]
    rows2 = []
    for arch_id in plan.transfer_architectures(params, searched):
        row = {"architecture": arch_id}
        for d in datasets:
            row[f"{d}_error"] = _mean_std([m["top1_error"] for m in _metrics(root, arch_id, d, seeds)])[0]
        rows2.append(row)
    return {"table1": pd.DataFrame(rows1, columns=TABLE1),
            "consistency": consistency_table(params, root, rows1),
            "table2": pd.DataFrame(rows2, columns=["architecture"] + [f"{d}_error" for d in datasets]),
            "table3": pd.DataFrame(rows3, columns=TABLE3),
            "pareto": pd.DataFrame(pareto, columns=PARETO)}


def consistency_table(params, root: Path, rows1: list[dict]) -> pd.DataFrame:
    """EnTranNAS Tables 1 and 2 for every search: the super-net's validation error against its derived
    child's (`nasflow consistency supernet`), and per method Kendall's tau between the super-net's error
    and the retrained error over its seeds (empty with fewer than two seeds)."""
    from nasflow.search.consistency import kendall_tau

    retrained = {r["architecture"]: r["test_error_mean"] for r in rows1}
    rows = []
    for method, seed in plan.consistency_searches(params):
        found = _json(root / plan.consistency_file(method, seed))
        archs = plan.read_architectures(root / plan.search_dir(method, seed) / "architectures.json")
        final = plan.final_architecture(archs)["id"]
        measured = found.get("architecture", final)  # `end state`: the child is not the retrained cell
        rounded = {k: None if found[k] is None else round(found[k], 3) for k in ("supernet_error", "child_error", "error_gap")}
        rows.append({"method": method, "seed": seed, "architecture": measured, **rounded,
                     "retrained_error": retrained.get(measured), "note": found.get("note", "")})
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ranked = [r for r in mine if r["supernet_error"] is not None and r["retrained_error"] is not None]
        tau = (kendall_tau([r["supernet_error"] for r in ranked], [r["retrained_error"] for r in ranked])
               if len(ranked) > 1 else None)
        for r in mine:
            r["kendall_tau"] = None if tau is None or tau != tau else round(tau, 3)
    return pd.DataFrame(rows, columns=CONSISTENCY)


def headline_metrics(tables: dict[str, pd.DataFrame]) -> dict:
    """Table 1's errors and sizes per architecture and Table 3's per method, numbers only (DVC metrics
    are nested numbers; an empty cell is left out rather than written as NaN)."""
    def numbers(row, keys):
        return {k: float(row[k]) for k in keys if pd.notna(row[k])}

    return {"architectures": {r["architecture"]: numbers(r, ("test_error_mean", "test_error_std", "params_M", "macs_M"))
                              for _, r in tables["table1"].iterrows()},
            "methods": {r["method"]: numbers(r, ("test_error_mean", "test_error_std", "params_M"))
                        for _, r in tables["table3"].iterrows()}}


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    out = Path(out)
    written = []
    for name, df in tables.items():
        nio.write_text(out / f"{name}.csv", df.to_csv(index=False))
        nio.write_text(out / f"{name}.md", df.to_markdown(index=False) + "\n")
        written += [out / f"{name}.csv", out / f"{name}.md"]
    nio.write_json(out / "metrics.json", headline_metrics(tables))
    return written + [out / "metrics.json"]
