"""Everything that determines a job's outputs, in one place per job kind.

The run's own fingerprint (what `--resume` checks a checkpoint against) and the Snakemake rule's
`params` (what makes Snakemake rerun a job) are both computed from these functions, so a setting that
changes a job's result always reruns it, and a setting the job does not read never does.
"""
from __future__ import annotations

import hashlib
import json

from nasflow.catalog.datasets import dataset_info
from nasflow.errors import NasflowError


def recipe_settings(params, name: str) -> dict:
    """A recipe with `train.recipe_defaults` laid under it: every key the trainer reads."""
    recipes = params["train"]["recipes"]
    if name not in recipes:
        raise NasflowError(f"unknown recipe {name!r}; params.yaml train.recipes defines: {', '.join(recipes) or 'none'}")
    return {**params["train"]["recipe_defaults"], **recipes[name], "name": name}


# What every job on a dataset streamed from class folders reads: they draw its class subset and fraction
# (nasflow.data.folders.choose) instead of reading a prepared file.
FOLDER_KEYS = ("imagenet_classes", "imagenet_fraction", "split_seed")


def _dataset_keys(params, dataset: str) -> dict:
    """The data settings a job on `dataset` reads beyond the prepared file."""
    data = params["data"]
    if dataset_info(dataset).streamed:
        return {k: data[k] for k in FOLDER_KEYS}
    return {k: v for k, v in data_inputs(params, dataset).items() if k != "dataset"}  # what the .npz holds


def data_inputs(params, dataset: str) -> dict:
    """What decides the content of `data/<dataset>.npz`: the `data:` keys its reader and download read."""
    return {"dataset": dataset, **{k: params["data"][k] for k in dataset_info(dataset).data_keys}}


def method_settings(params, name: str) -> dict:
    """A search's settings: the common `search:` keys, its base method's block (a baseline searches its
    method's space), its method's block, a variant's overlay (`name` may be a variant of
    search.variants), and for ImageNet-style data the `imagenet:` sub-block, laid over each other in that
    order; then the method's own `settle` (derived keys, cross-key checks)."""
    from nasflow import protocol
    from nasflow.catalog import methods as registry

    method = protocol.method_of(params, name)
    declared = registry.method(method)
    search = params["search"]
    blocks = set(registry.names())
    merged = {k: v for k, v in search.items() if k not in NOT_SETTINGS and k not in blocks}
    if declared.base_method:
        merged.update(search.get(declared.base_method, {}))
    merged.update(search.get(method, {}))
    overlay = protocol.variant_settings(params, name)
    if isinstance(overlay.get("imagenet"), dict) and isinstance(merged.get("imagenet"), dict):
        overlay["imagenet"] = {**merged["imagenet"], **overlay["imagenet"]}
    merged.update(overlay)
    imagenet = merged.pop("imagenet", None)  # GOLD-NAS appendix C: settings for ImageNet-style datasets
    if imagenet and dataset_info(merged["dataset"]).style == "imagenet":
        merged.update(imagenet)
    if merged["w_lr_min"] > merged["w_lr"]:
        raise NasflowError(f"search.{name}: w_lr_min ({merged['w_lr_min']}) exceeds w_lr ({merged['w_lr']})")
    return declared.settle(merged, method)


# search: keys that describe which searches run, not how one search runs
NOT_SETTINGS = ("methods", "seeds", "variants", "protocol")


def splits_data(method: str, settings: dict) -> list[str]:
    """The `data:` keys a search's split of the training set reads: a bi-level search (and the random
    baseline, which scores candidates on held-out images) halves it with both, or reads the seed only
    where its settings give their own `weights_fraction` (EnTranNAS's `imagenet:` block, with
    `arch_fraction`: the settings carry both); a one-level search trains on all of it and reads the seed
    only to draw a subset, a validation part or ImageNet's classes."""
    from nasflow.catalog import methods as registry

    declared = registry.method(method)
    if not declared.trains_supernet or not declared.one_level:
        own = declared.trains_supernet and settings.get("weights_fraction") is not None
        return ["split_seed"] if own else ["split_seed", "weights_fraction"]
    drawn = settings["subset_per_class"] or settings["val_fraction"] or dataset_info(settings["dataset"]).streamed
    return ["split_seed"] if drawn else []


# What a search computes beyond its settings: raised when a method's algorithm changes what it finds or
# what its checkpoint holds, so that earlier checkpoints are set aside (the pipeline) or refused by name
# (`--resume`) instead of being resumed by code that reads them differently. 2: issue 15's fidelity fixes.
SEARCH_ALGORITHMS = 2


def search_inputs(params, method: str, seed: int) -> dict:
    """A search: its resolved settings (every default filled in), the data split it draws, and the
    version of the search algorithms."""
    from nasflow import protocol
    from nasflow.catalog import methods as registry

    settings = method_settings(params, method)
    declared = registry.method(protocol.method_of(params, method))
    if declared.epochs_bound:  # a bound, not a length: raising it changes no result
        settings = {k: v for k, v in settings.items() if k != "epochs"}
    if declared.base_method:  # a baseline searches its method's space but runs none of its method's rules
        own, base = _schema_keys(declared), _schema_keys(registry.method(declared.base_method))
        settings = {k: v for k, v in settings.items() if k in own or k not in base}
    data = _dataset_keys(params, settings["dataset"])
    data.update({k: params["data"][k] for k in splits_data(declared.name, settings)})
    return {"kind": "search", "algorithms": SEARCH_ALGORITHMS, "method": method, "seed": seed, "settings": settings,
            "data": data}


def train_inputs(params, genotype: dict, dataset: str, recipe: str, seed: int) -> dict:
    """A training: the genotype's content, the resolved recipe, and the data settings it reads."""
    r = recipe_settings(params, recipe)
    data = _dataset_keys(params, dataset)
    if r["train_subset_per_class"] or r["test_subset_per_class"] or r["holdout_fraction"]:
        data["split_seed"] = params["data"]["split_seed"]
    digest = hashlib.sha256(json.dumps(genotype, sort_keys=True).encode()).hexdigest()
    return {"kind": "train", "genotype_sha256": digest, "dataset": dataset, "recipe": r, "seed": seed, "data": data}


def genotype_content(ref) -> dict:
    """The genotype a training reads, as JSON: a published cell's entry or a file's content (a parsed
    Genotype or JSON object is taken as it is)."""
    from nasflow.catalog.cells import genotype_source

    if hasattr(ref, "to_json"):  # a parsed Genotype (nasflow.space.genotype), taken as it is
        return ref.to_json()
    return genotype_source(ref)[0]


def _schema_keys(declared) -> set[str]:
    schema = declared.schema({}) if callable(declared.schema) else declared.schema
    return set(schema.get("properties", {}))


def fingerprint(inputs: dict) -> str:
    blob = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def as_rule_params(inputs: dict) -> str:
    """A rule's `params:` value: Snakemake reruns the job when this string changes."""
    return json.dumps(inputs, sort_keys=True, default=str)
