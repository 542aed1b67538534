"""`best_of` selections: which of a name's searches is retrained. EnTranNAS 4.2 keeps the best of five
searches by the super-net's validation accuracy (`supernet_val`: the last epoch's error on the images
that trained alpha); DARTS 3.3 keeps the best of four after a short training from scratch
(`short_retrain`: train.selection_recipe, judged on held-out training images). Neither reads the test
set. Ties go to the lower seed."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nasflow import layout
from nasflow.study import study_of
from nasflow.errors import NasflowError


def _supernet_val_error(search_dir: Path, name: str) -> float:
    history = pd.read_csv(search_dir / "history.csv")
    errors = history["val_error"].dropna() if "val_error" in history else pd.Series(dtype=float)
    if errors.empty:
        raise NasflowError(f"{search_dir}/history.csv: no validation error to select by (a one-level search "
                           f"measures one only with search.{name}.val_fraction > 0); use by: short_retrain")
    return float(errors.iloc[-1])


def _short_retrain_error(entry, root: Path, arch_id: str) -> float:
    path = root / layout.train_dir(arch_id, entry.retrain_dataset, entry.retrain_seeds[0], "short-retrain") / "metrics.json"
    metrics = json.loads(path.read_text())
    if metrics.get("evaluated_on") != "holdout":
        raise NasflowError(f"{path}: measured on the test set (recipe {metrics['recipe']}); a selection must judge on "
                           "held-out training images: give train.selection_recipe a holdout_fraction > 0")
    return float(metrics["top1_error"])


def select(params, name: str, root: str | Path = ".") -> dict:
    entry = study_of(params).search_name(name)
    rule = entry.select
    if rule is None:
        raise NasflowError(f"search {name!r} keeps all its searches (search.protocol.{name}.select is all): "
                           "there is nothing to select")
    root = Path(root)
    candidates = []
    for seed in entry.seeds:
        folder = root / layout.search_dir(name, seed)
        final = layout.final_architecture(layout.read_architectures(folder / "architectures.json"))["id"]
        error = (_supernet_val_error(folder, name) if rule["by"] == "supernet_val"
                 else _short_retrain_error(entry, root, final))
        candidates.append({"seed": seed, "arch_id": final, "error": round(error, 4)})
    best = min(candidates, key=lambda c: (c["error"], c["seed"]))
    return {"name": name, "by": rule["by"], "best_of": rule["best_of"], "seed": best["seed"],
            "arch_id": best["arch_id"], "candidates": candidates}


def chosen_seed(path: str | Path) -> int:
    return int(json.loads(Path(path).read_text())["seed"])
