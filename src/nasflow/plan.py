"""Which jobs a settings file asks for, and where their files live: shared by the Snakemake rules (which
read each search's architectures.json at run time, through a checkpoint) and by the report (which reads
the same files afterwards), so the two never disagree about the fan-out."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.search import registry
from nasflow.space.genotype import SEARCHED_ID, zoo_entries

SEARCH_DIR = "results/search/{method}/seed{seed}"
TRAIN_DIR = "results/train/{arch_id}/{dataset}/seed{seed}"
CONSISTENCY_FILE = "results/consistency/{method}/seed{seed}.json"


def searches(params) -> list[tuple[str, int]]:
    s = params["search"]
    return [(m, seed) for m in s["methods"] for seed in s["seeds"]]


def search_dir(method: str, seed: int) -> str:
    return SEARCH_DIR.format(method=method, seed=seed)


def consistency_file(method: str, seed: int) -> str:
    """Outside results/search/, which DVC versions as the search stage's output."""
    return CONSISTENCY_FILE.format(method=method, seed=seed)


def consistency_searches(params) -> list[tuple[str, int]]:
    """The searches that leave a super-net to compare with its derived cell (not the random baseline)."""
    return [(m, s) for m, s in searches(params) if registry.method(m).trains_supernet]


def train_dir(arch_id: str, dataset: str, seed: int) -> str:
    return TRAIN_DIR.format(arch_id=arch_id, dataset=dataset, seed=seed)


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


def searched_architectures(params, archs_file: Callable[[str, int], str]) -> list[dict]:
    """Every architecture every search yielded: one per search, or one per Pareto point."""
    out = []
    for method, seed in searches(params):
        for entry in read_architectures(archs_file(method, seed)):
            out.append({**entry, "method": method, "search_seed": seed,
                        "genotype_path": f"{search_dir(method, seed)}/{entry['genotype']}"})  # checked on reading
    return out


def genotype_ref(arch_id: str) -> str:
    """The genotype a training job reads: a searched cell's file, or a published cell's name."""
    m = SEARCHED_ID.match(arch_id)
    if m and m["method"] in registry.names():
        # architectures.json names the file; the first architecture of a search is its genotype.json
        path = Path(search_dir(m["method"], int(m["seed"]))) / "architectures.json"
        if path.is_file():
            for entry in read_architectures(path):
                if entry["id"] == arch_id:
                    return str(nio.inside(path.parent, entry["genotype"], path))
        return str(path.parent / "genotype.json")
    if arch_id in zoo_entries():
        return arch_id
    raise ValueError(f"architecture id {arch_id!r} is neither a searched cell (<method>-s<seed>-<index>) "
                     "nor a published cell")


def recipe_for(params, dataset: str) -> str:
    train = params["train"]
    return train["recipe"] if dataset == train["dataset"] else train["transfer"]["recipe"]


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


def training_jobs(params, searched: list[dict]) -> list[tuple[str, str, int]]:
    """(arch_id, dataset, seed) of every retraining and transfer run."""
    train = params["train"]
    jobs = [(a["id"], train["dataset"], s) for a in searched for s in train["seeds"]]
    for arch_id in transfer_architectures(params, searched):
        jobs += [(arch_id, d, s) for d in train["transfer"]["datasets"] for s in train["seeds"]]
    return list(dict.fromkeys(jobs))
