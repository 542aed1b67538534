"""Which jobs a settings file asks for, and where their files live: shared by the Snakemake rules (which
read each search's architectures.json at run time, through a checkpoint) and by the report (which reads
the same files afterwards), so the two never disagree about the fan-out."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from nasflow import io as nio
from nasflow import protocol
from nasflow.errors import NasflowError
from nasflow.catalog import methods as registry
from nasflow.catalog.cells import SEARCHED_ID, zoo_entries

SEARCH_DIR = "results/search/{method}/seed{seed}"
TRAIN_DIR = "results/{stage}/{arch_id}/{dataset}/seed{seed}"
CONSISTENCY_FILE = "results/consistency/{method}/seed{seed}.json"
SELECTION_FILE = "results/selection/{name}.json"
STAGES = ("train", "short-retrain")  # retraining and transfer; a selection's short retraining


def searches(params) -> list[tuple[str, int]]:
    """(name, seed) of every search: each method or variant of search.methods, with its protocol's seeds."""
    return [(name, seed) for name in protocol.names(params) for seed in protocol.search_seeds(params, name)]


def selection_file(name: str) -> str:
    return SELECTION_FILE.format(name=name)


def selected_names(params) -> list[str]:
    """The searches whose cells are chosen by a `best_of` selection before any retraining."""
    return [name for name in protocol.names(params) if protocol.selection(params, name)]


def short_retrain_jobs(params, name: str, archs_file: Callable[[str, int], str]) -> list[tuple[str, str, int]]:
    """(arch_id, dataset, seed) of a `best_of ... by: short_retrain` selection: each search's final cell,
    trained once (the first retraining seed) on held-out training images of the retraining dataset."""
    dataset, seed = protocol.retrain_dataset(params, name), protocol.retrain_seeds(params, name)[0]
    return [(final_architecture(read_architectures(archs_file(name, s)))["id"], dataset, seed)
            for s in protocol.search_seeds(params, name)]


def search_dir(method: str, seed: int) -> str:
    return SEARCH_DIR.format(method=method, seed=seed)


def consistency_file(method: str, seed: int) -> str:
    """Outside results/search/, which DVC versions as the search stage's output."""
    return CONSISTENCY_FILE.format(method=method, seed=seed)


def consistency_searches(params) -> list[tuple[str, int]]:
    """The searches that leave a super-net to compare with its derived cell (not the random baseline)."""
    return [(m, s) for m, s in searches(params) if registry.method(protocol.method_of(params, m)).trains_supernet]


def train_dir(arch_id: str, dataset: str, seed: int, stage: str = "train") -> str:
    return TRAIN_DIR.format(stage=stage, arch_id=arch_id, dataset=dataset, seed=seed)


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def read_architectures(path: str | Path) -> list[dict]:
    """A search's architectures.json, with every entry's genotype file checked to lie beside it and its id
    to be a plain name (ids become folder names under results/train/)."""
    path = Path(path)
    entries = json.loads(path.read_text())
    for entry in entries:
        if not _SAFE_ID.fullmatch(str(entry.get("id", ""))) or ".." in entry["id"]:
            raise NasflowError(f"{path}: refused the architecture id {entry.get('id')!r}: ids are plain names "
                               "(letters, digits, '_', '.', '+', '-')")
        nio.inside(path.parent, entry.get("genotype", ""), path)
    return entries


def final_architecture(entries: list[dict]) -> dict:
    """The cell a search is known by (transferred, compared in consistency): the last entry of its
    architectures.json, whose genotype is also its genotype.json (for GOLD-NAS the most pruned point)."""
    return entries[-1]


def searched_architectures(params, archs_file: Callable[[str, int], str],
                           chosen_seed: Callable[[str], int] | None = None) -> list[dict]:
    """Every architecture the kept searches yielded (one per search, or one per Pareto point): all of a
    name's searches, or for a `best_of` selection the one `chosen_seed(name)` names."""
    out = []
    for method, seed in searches(params):
        if protocol.selection(params, method) and (chosen_seed is None or seed != chosen_seed(method)):
            continue
        for entry in read_architectures(archs_file(method, seed)):
            out.append({**entry, "method": method, "search_seed": seed,
                        "genotype_path": f"{search_dir(method, seed)}/{entry['genotype']}"})  # checked on reading
    return out


def genotype_ref(arch_id: str) -> str:
    """The genotype a training job reads: a searched cell's file (<name>-s<seed>-<index>, the name a method
    or a variant), or a published cell's name."""
    m = SEARCHED_ID.match(arch_id)
    if m:
        # architectures.json names the file; the first architecture of a search is its genotype.json
        path = Path(search_dir(m["method"], int(m["seed"]))) / "architectures.json"
        if path.is_file():
            for entry in read_architectures(path):
                if entry["id"] == arch_id:
                    return str(nio.inside(path.parent, entry["genotype"], path))
        return str(path.parent / "genotype.json")
    if arch_id in zoo_entries():
        return arch_id
    raise ValueError(f"architecture id {arch_id!r} is neither a searched cell (<name>-s<seed>-<index>) "
                     "nor a published cell")


def arch_name(arch_id: str) -> str | None:
    """The search name (method or variant) of a searched cell's id; None for a published cell."""
    m = SEARCHED_ID.match(arch_id)
    return m["method"] if m else None


def retrain_dataset_of(params, arch_id: str) -> str:
    name = arch_name(arch_id)
    return protocol.retrain_dataset(params, name) if name else params["train"]["dataset"]


def recipe_for(params, arch_id: str, dataset: str, stage: str = "train") -> str:
    """The recipe of one training job. Retraining: the search's (or published cell's) own paper's recipe
    from train.recipe_by_method (a variant falls back to its method's), else train.recipe, and always
    train.recipe with common_recipe. Transfer keeps ASAP's protocol (4.3): every cell the same recipe, a
    dataset's own where recipe_by_dataset names one (ImageNet). A selection's short retraining:
    train.selection_recipe."""
    train = params["train"]
    if stage == "short-retrain":
        return train["selection_recipe"]
    if dataset != retrain_dataset_of(params, arch_id):
        return train["transfer"]["recipe_by_dataset"].get(dataset, train["transfer"]["recipe"])
    if train["common_recipe"]:
        return train["recipe"]
    by = train["recipe_by_method"]
    name = arch_name(arch_id)
    if name is None:
        return by.get(arch_id, train["recipe"])
    return by.get(name, by.get(protocol.method_of(params, name), train["recipe"]))


def recipes_used(params) -> list[str]:
    """Every recipe a training job of these settings can name (checked before any job runs)."""
    train = params["train"]
    names = [train["recipe"], train["transfer"]["recipe"], *train["transfer"]["recipe_by_dataset"].values()]
    if not train["common_recipe"]:
        names += list(train["recipe_by_method"].values())
    if selected_names(params):
        names.append(train["selection_recipe"])
    return list(dict.fromkeys(names))


def transfer_architectures(params, searched: list[dict]) -> list[str]:
    """Published cells of the profile, plus the final cell (for GOLD-NAS the most pruned Pareto point: the
    one a search is known by) of each method's first `searched_per_method` searches."""
    transfer = params["train"]["transfer"]
    by_search: dict[tuple[str, int], list[dict]] = {}
    for arch in searched:
        by_search.setdefault((arch["method"], arch["search_seed"]), []).append(arch)
    finals = {key: final_architecture(entries)["id"] for key, entries in by_search.items()}
    per_method: dict[str, list[str]] = {}
    for (method, _), arch_id in finals.items():
        per_method.setdefault(method, []).append(arch_id)
    n = transfer["searched_per_method"]
    return list(transfer["cells"]) + [i for ids in per_method.values() for i in ids[:n]]


def transfer_jobs(params, searched: list[dict]) -> list[tuple[str, str]]:
    """(arch_id, dataset) of every transfer: published cells to train.transfer.datasets, a searched cell to
    its search's protocol `transfer` datasets (by default the same)."""
    cells = set(params["train"]["transfer"]["cells"])
    out = []
    for arch_id in transfer_architectures(params, searched):
        name = None if arch_id in cells else arch_name(arch_id)
        datasets = protocol.transfer_datasets(params, name) if name else params["train"]["transfer"]["datasets"]
        out += [(arch_id, d) for d in datasets]
    return out


def training_jobs(params, searched: list[dict]) -> list[tuple[str, str, int]]:
    """(arch_id, dataset, seed) of every retraining (each search name's protocol: its dataset and seeds;
    train.retrain_cells: train.dataset and train.seeds) and transfer run (train.seeds)."""
    train = params["train"]
    jobs = [(a["id"], protocol.retrain_dataset(params, a["method"]), s)
            for a in searched for s in protocol.retrain_seeds(params, a["method"])]
    jobs += [(cell, train["dataset"], s) for cell in train["retrain_cells"] for s in train["seeds"]]
    jobs += [(arch_id, d, s) for arch_id, d in transfer_jobs(params, searched) for s in train["seeds"]]
    return list(dict.fromkeys(jobs))
