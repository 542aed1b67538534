"""The papers' tables and figures, built from result files only (never from live objects).

table1.csv  architecture, method (the search name: a method or variant), dataset, recipe, seeds,
            test_error_mean, test_error_std, top5_error_mean, params_M, macs_M, search_gpu_days,
            search_device (retraining: every retrained cell on its protocol's dataset and seeds, a cell
            under a `retrain` entry's own recipe as <id>+<recipe>; train.retrain_cells as method `published`)
table2.csv  architecture, <dataset>_error for each transfer dataset (ASAP Table 2's layout), and
            <dataset>_top5_error where a published row gives a top-5 error there (ImageNet)
table3.csv  method, schedule, test_error_mean, test_error_std, params_M   (ASAP Table 3's layout: each
            search's final cell, over its searches and retraining seeds)
Tables 1 and 3 gain paper, paper_table, paper_row, paper_test_error, paper_test_error_std,
paper_top5_error, paper_params_M, paper_macs_M, paper_search_gpu_days and delta (reproduced - published)
from published.csv: one row per pairing (catalog/published.py says how rows pair); table2 gains
paper_row, paper_<dataset>_error (and paper_<dataset>_top5_error) and delta_<dataset>; consistency.csv
paper_child_error (EnTranNAS Table 1).
pareto.csv  method, seed, arch_id, epoch, macs_M (exact, not rounded: it orders the front), params_M,
            test_error, eval_dataset, eval_channels, eval_layers: every retrained searched architecture, its
            sizes in the evaluation network its search counted (search.<name>.eval_channels and eval_layers;
            a per-position genotype at its searched depth), which differs between methods
consistency.csv  method, seed, architecture, supernet_error, child_error, error_gap,
            retrained_error, kendall_tau, note                   (EnTranNAS Tables 1 and 2), with
            paper_child_error, paper_supernet_error (Table 1) and paper_kendall_tau (Table 2) beside
Each CSV has a Markdown copy beside it; figures go to results/figures/. metrics.json holds the
headline numbers (per architecture and per method) for `dvc metrics show` / `diff`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nasflow import io as nio
from nasflow import layout
from nasflow.catalog import published
from nasflow.study import study_of

TABLE1 = ["architecture", "method", "dataset", "recipe", "seeds", "test_error_mean", "test_error_std", "top5_error_mean", "params_M", "macs_M",
          "search_gpu_days", "search_device"]
TABLE3 = ["method", "schedule", "test_error_mean", "test_error_std", "params_M"]
CONSISTENCY = ["method", "seed", "architecture", "supernet_error", "child_error", "error_gap",
               "retrained_error", "kendall_tau", "note"]
PARETO = ["method", "seed", "arch_id", "epoch", "macs_M", "params_M", "test_error", "eval_dataset", "eval_channels",
          "eval_layers"]


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _metrics(root: Path, arch_id: str, dataset: str, seeds, reported: str = "final") -> list[dict]:
    """Each training's metrics.json; with `last_5_mean` (PR-DARTS 4.1) top1_error is the mean of its last
    five epochs' test errors, from its history.csv."""
    out = []
    for s in seeds:
        folder = root / layout.train_dir(arch_id, dataset, s)
        metrics = _json(folder / "metrics.json")
        if reported == "last_5_mean":
            history = pd.read_csv(folder / "history.csv")
            metrics = {**metrics, "top1_error": float(history["top1_error"].tail(5).mean())}
        out.append(metrics)
    return out


def searched(params, root: Path) -> list[dict]:
    """The kept architectures, a `best_of` selection's read from its results/selection/<name>.json."""
    from nasflow.selection import chosen_seed

    return study_of(params).searched_architectures(
        lambda m, s: layout.read_architectures(root / layout.search_dir(m, s) / "architectures.json"),
        lambda name: chosen_seed(root / layout.selection_file(name)))


def _top5(metrics: list[dict]) -> float | None:
    """The mean final top-5 error of a training's runs (the ImageNet tables print it beside top-1)."""
    values = [m["top5_error"] for m in metrics if m.get("top5_error") is not None]
    return _mean_std(values)[0] if len(values) == len(metrics) and values else None


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation; one value has no deviation (None: a blank cell, not 0)."""
    series = pd.Series(values, dtype=float)
    return round(float(series.mean()), 3), round(float(series.std(ddof=1)), 3) if len(series) > 1 else None


def _evaluation_network(params, root: Path, arch: dict) -> dict:
    """The network whose sizes architectures.json holds: the rule of search/results.py."""
    from nasflow.catalog.genotype import load_genotype

    s = study_of(params).search_name(arch["method"]).settings
    per_position = load_genotype(root / arch["genotype_path"]).layout == "per-position"
    return {"eval_dataset": s["dataset"], "eval_channels": s["eval_channels"],
            "eval_layers": s["layers"] if per_position else s["eval_layers"]}


def _schedule(params, method: str) -> str:
    return study_of(params).search_name(method).describe()


def build_tables(params, root: str | Path = ".") -> dict[str, pd.DataFrame]:
    root = Path(root)
    study = study_of(params)
    found = searched(params, root)
    last = {(arch["method"], arch["search_seed"]): arch["id"] for arch in found}
    finals = {arch_id: name for (name, _), arch_id in last.items()}  # each search's final cell -> its name
    seeds = study.train_seeds
    rows1, rows3, pareto = [], [], []
    per_method: dict[str, list[dict]] = {}
    for arch in study.retrained(found):
        name = arch["method"]
        entry = study.search_name(name)
        retrain_seeds = entry.retrain_seeds
        metrics = _metrics(root, arch["id"], entry.retrain_dataset, retrain_seeds, entry.reported)
        search = _json(root / layout.search_dir(name, arch["search_seed"]) / "search.json")
        mean, std = _mean_std([m["top1_error"] for m in metrics])
        own = layout.own_recipe(arch["id"]) is not None
        rows1.append({"architecture": arch["id"], "method": name, "dataset": entry.retrain_dataset,
                      "recipe": study.recipe_for(arch["id"], entry.retrain_dataset),
                      "final": layout.searched_id(arch["id"]) in finals,
                      "seeds": ",".join(map(str, retrain_seeds)),
                      "test_error_mean": mean, "test_error_std": std, "top5_error_mean": _top5(metrics),
                      "params_M": metrics[0]["params_M"],
                      "macs_M": metrics[0]["macs_M"], "search_gpu_days": round(search["seconds"] / 86400, 6),
                      "search_device": search["device"]})
        if own:  # trained at another width than its front was counted at: not a point of that front
            continue
        pareto.append({"method": arch["method"], "seed": arch["search_seed"], "arch_id": arch["id"],
                       "epoch": arch["epoch"], "macs_M": arch["macs"] / 1e6, "params_M": arch["params_M"], "test_error": mean,
                       **_evaluation_network(params, root, arch)})
        if arch["id"] in finals:  # Table 3 reports each search's final cell, not every point of a front
            per_method.setdefault(arch["method"], []).extend(metrics)
    for cell in study.retrain_cells:  # published cells retrained beside the searched ones
        metrics = _metrics(root, cell, study.train_dataset, seeds)
        mean, std = _mean_std([m["top1_error"] for m in metrics])
        rows1.append({"architecture": cell, "method": "published", "dataset": study.train_dataset,
                      "recipe": study.recipe_for(cell, study.train_dataset), "final": False,
                      "seeds": ",".join(map(str, seeds)), "test_error_mean": mean, "test_error_std": std,
                      "top5_error_mean": _top5(metrics), "params_M": metrics[0]["params_M"], "macs_M": metrics[0]["macs_M"]})
    for method, metrics in per_method.items():
        mean, std = _mean_std([m["top1_error"] for m in metrics])
        rows3.append({"method": method, "schedule": _schedule(params, method), "test_error_mean": mean,
                      "test_error_std": std, "params_M": round(float(pd.Series([m["params_M"] for m in metrics]).mean()), 3)})
    planned = study.transfer_jobs(found)
    datasets = list(dict.fromkeys([*study.transfer_datasets, *(d for _, d in planned)]))
    top5 = published.top5_datasets(datasets)
    rows2 = {}
    for arch_id, d in planned:  # a cell not transferred to a dataset leaves its column empty
        row = rows2.setdefault(arch_id, {"architecture": arch_id})
        _, transfer_seeds, reported = study.transfer_run(arch_id, d)
        metrics = _metrics(root, arch_id, d, transfer_seeds, reported)
        row[f"{d}_error"] = _mean_std([m["top1_error"] for m in metrics])[0]
        if d in top5:
            row[f"{d}_top5_error"] = _top5(metrics)
    rows2 = list(rows2.values())
    table1 = published.beside(pd.DataFrame(rows1, columns=[*TABLE1, "final"]), "test_error_mean").drop(columns="final")
    table2 = published.transfer_beside(pd.DataFrame(rows2, columns=["architecture"] + [f"{d}_error" for d in datasets]
                                                    + [f"{d}_top5_error" for d in top5]),
                                       datasets, {a: layout.arch_name(a) for a, _ in planned if layout.arch_name(a)},
                                       {r["architecture"]: r["params_M"] for r in rows1})
    table3 = published.method_beside(pd.DataFrame(rows3, columns=TABLE3),
                                     {n: study.search_name(n).retrain_dataset for n in study.names})
    return {"table1": table1, "consistency": consistency_table(params, root, rows1), "table2": table2,
            "table3": table3, "pareto": pd.DataFrame(pareto, columns=PARETO)}


def consistency_table(params, root: Path, rows1: list[dict]) -> pd.DataFrame:
    """EnTranNAS Tables 1 and 2 for every search: the super-net's validation error against its derived
    child's (`nasflow consistency supernet`), and per method Kendall's tau between the super-net's error
    and the retrained error over its seeds (empty with fewer than two seeds)."""
    from nasflow.search.consistency import kendall_tau

    retrained = {r["architecture"]: r["test_error_mean"] for r in rows1}
    rows = []
    for method, seed in study_of(params).consistency_searches():
        found = _json(root / layout.consistency_file(method, seed))
        archs = layout.read_architectures(root / layout.search_dir(method, seed) / "architectures.json")
        final = layout.final_architecture(archs)["id"]
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
    # EnTranNAS Table 1's child networks' validation errors beside the measured ones
    table = pd.DataFrame(rows, columns=CONSISTENCY)
    table["dataset"] = [study_of(params).search_name(m).dataset for m in table["method"]]
    table["final"] = True
    table = published.beside(table, "child_error", metric="child_val_error")
    table = table.rename(columns={"paper_test_error": "paper_child_error"})
    for column, measure in (("paper_supernet_error", "supernet_val_error"), ("paper_kendall_tau", "kendall_tau")):
        table[column] = [(published.measure_of(m, measure) or (None,))[0] for m in table["method"]]
    return table[[*CONSISTENCY, "paper", "paper_table", "paper_row", "paper_child_error", "paper_supernet_error",
                  "paper_kendall_tau", "delta"]]


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
        blanks = df.astype(object).where(df.notna(), None)  # an empty cell, as in the CSV, not `nan`
        nio.write_text(out / f"{name}.md", blanks.to_markdown(index=False, missingval="") + "\n")
        written += [out / f"{name}.csv", out / f"{name}.md"]
    nio.write_json(out / "metrics.json", headline_metrics(tables))
    return written + [out / "metrics.json"]
