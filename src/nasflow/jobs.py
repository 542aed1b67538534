"""Everything that determines a job's outputs, per job kind, from values the study has resolved.

The run's own fingerprint (what `--resume` checks a checkpoint against) and the Snakemake rule's
`params` (what makes Snakemake rerun a job) are both computed from these inputs, so a setting that
changes a job's result always reruns it, and a setting the job does not read never does. The study
(nasflow.study) resolves a search's settings and a training's recipe and builds the inputs here.
"""
from __future__ import annotations

import hashlib
import json

from nasflow.catalog import methods as registry
from nasflow.catalog.cells import genotype_source
from nasflow.catalog.datasets import dataset_info

# What every job on a dataset streamed from class folders reads: they draw its class subset and fraction
# (nasflow.data.folders.choose) instead of reading a prepared file.
FOLDER_KEYS = ("imagenet_classes", "imagenet_fraction", "split_seed")

# What a search computes beyond its settings: raised when a method's algorithm changes what it finds or
# what its checkpoint holds, so that earlier checkpoints are set aside (the pipeline) or refused by name
# (`--resume`) instead of being resumed by code that reads them differently. 2: the fidelity fixes that
# made ASAP, GOLD-NAS and PR-DARTS follow their papers' algorithms and their authors' code.
SEARCH_ALGORITHMS = 2


def data_inputs(data: dict, dataset: str) -> dict:
    """What decides the content of `data/<dataset>.npz`: the `data:` keys its reader and download read."""
    return {"dataset": dataset, **{k: data[k] for k in dataset_info(dataset).data_keys}}


def dataset_keys(data: dict, dataset: str) -> dict:
    """The data settings a job on `dataset` reads beyond the prepared file."""
    if dataset_info(dataset).streamed:
        return {k: data[k] for k in FOLDER_KEYS}
    return {k: v for k, v in data_inputs(data, dataset).items() if k != "dataset"}  # what the .npz holds


def splits_data(declared, settings: dict) -> list[str]:
    """The `data:` keys a search's split of the training set reads: a bi-level search (and the random
    baseline, which scores candidates on held-out images) halves it with both, or reads the seed only
    where its settings give their own `weights_fraction` (EnTranNAS's `imagenet_style:` block, with
    `arch_fraction`: the settings carry both); a one-level search trains on all of it and reads the seed
    only to draw a subset, a validation part or ImageNet's classes."""
    if not declared.trains_supernet or not declared.one_level:
        own = declared.trains_supernet and settings.get("weights_fraction") is not None
        return ["split_seed"] if own else ["split_seed", "weights_fraction"]
    drawn = settings["subset_per_class"] or settings["val_fraction"] or dataset_info(settings["dataset"]).streamed
    return ["split_seed"] if drawn else []


def search_inputs(data: dict, declared, name: str, seed: int, settings: dict) -> dict:
    """A search: its resolved settings (every default filled in), the data split it draws, and the
    version of the search algorithms. `declared` is its method's declaration (nasflow.catalog.methods)."""
    if declared.epochs_bound:  # a bound, not a length: raising it changes no result
        settings = {k: v for k, v in settings.items() if k != "epochs"}
    if declared.settings_from:  # keys only the parent method reads (a baseline runs none of its rules) are not read
        own, base = _schema_keys(declared), _schema_keys(registry.method(declared.settings_from))
        settings = {k: v for k, v in settings.items() if k in own or k not in base}
    keys = dataset_keys(data, settings["dataset"])
    keys.update({k: data[k] for k in splits_data(declared, settings)})
    return {"kind": "search", "algorithms": SEARCH_ALGORITHMS, "method": name, "seed": seed, "settings": settings,
            "data": keys}


def genotype_content(ref) -> dict:
    """The genotype a training reads, as JSON: a published cell's entry or a file's content (a parsed
    Genotype or JSON object is taken as it is)."""
    if hasattr(ref, "to_json"):  # a parsed Genotype (nasflow.catalog.genotype)
        return ref.to_json()
    return genotype_source(ref)[0]


def genotype_sha256(genotype: dict) -> str:
    return hashlib.sha256(json.dumps(genotype, sort_keys=True).encode()).hexdigest()


def _schema_keys(declared) -> set[str]:
    schema = declared.schema({}) if callable(declared.schema) else declared.schema
    return set(schema.get("properties", {}))


def fingerprint(inputs: dict) -> str:
    blob = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def as_rule_params(inputs: dict) -> str:
    """A rule's `params:` value: Snakemake reruns the job when this string changes."""
    return json.dumps(inputs, sort_keys=True, default=str)
