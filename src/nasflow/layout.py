"""Where every job's files live under results/, and reading what a search yielded (its
architectures.json, checked): shared by the Snakemake rules, the study's fan-out and the report, so they
never disagree about a path. Reads no settings."""
from __future__ import annotations

import json
import re
from pathlib import Path

from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.catalog.cells import SEARCHED_ID, own_recipe, zoo_entries  # noqa: F401 (own_recipe: the study's)

SEARCH_DIR = "results/search/{method}/seed{seed}"
TRAIN_DIR = "results/{stage}/{arch_id}/{dataset}/seed{seed}"
CONSISTENCY_FILE = "results/consistency/{method}/seed{seed}.json"
SELECTION_FILE = "results/selection/{name}.json"
STAGES = ("train", "short-retrain")  # retraining and transfer; a selection's short retraining


def selection_file(name: str) -> str:
    return SELECTION_FILE.format(name=name)


def search_dir(method: str, seed: int) -> str:
    return SEARCH_DIR.format(method=method, seed=seed)


def consistency_file(method: str, seed: int) -> str:
    """Outside results/search/, which DVC versions as the search stage's output."""
    return CONSISTENCY_FILE.format(method=method, seed=seed)


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


def genotype_ref(arch_id: str) -> str:
    """The genotype a training job reads: a searched cell's file (<name>-s<seed>-<index>, the name a method
    or a variant), or a published cell's name."""
    m = SEARCHED_ID.match(arch_id)
    if m:
        # architectures.json names the file; the first architecture of a search is its genotype.json
        path = Path(search_dir(m["method"], int(m["seed"]))) / "architectures.json"
        if path.is_file():
            for entry in read_architectures(path):
                if entry["id"] == searched_id(arch_id):
                    return str(nio.inside(path.parent, entry["genotype"], path))
        return str(path.parent / "genotype.json")
    if arch_id in zoo_entries():
        return arch_id
    raise ValueError(f"architecture id {arch_id!r} is neither a searched cell (<name>-s<seed>-<index>) "
                     "nor a published cell")


def with_recipe(arch_id: str, recipe: str | None) -> str:
    """The id of a searched cell trained under a recipe of its own (a protocol's `retrain` entry)."""
    return f"{arch_id}+{recipe}" if recipe else arch_id


def searched_id(arch_id: str) -> str:
    """The architecture a training id trains: the id without its +<recipe>."""
    return arch_id.split("+", 1)[0]


def arch_name(arch_id: str) -> str | None:
    """The search name (method or variant) of a searched cell's id; None for a published cell."""
    m = SEARCHED_ID.match(arch_id)
    return m["method"] if m else None


