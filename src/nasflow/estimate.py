"""`nasflow plan`: the jobs a settings file implies, per stage, and an estimate of their GPU-hours.

Searches are counted exactly (their number is fixed by the settings). How many architectures a search
yields is known only when it ends, so the trainings are estimates: one cell per search, or for a front
the number of points the paper published for it (GOLD-NAS: six per front). Costs come from the
papers' published figures, scaled by epochs (and for trainings by training images):
- a search: its paper's search GPU-days (published.csv, the row naming the search or its method) times
  these settings' epochs over the paper settings' (params.yaml without a profile);
- a training: GOLD-NAS B.1's "0.3-1.2 days on one V100" per 600-epoch CIFAR-10 retraining (0.75 taken),
  and for ImageNet-style networks C.1's "around 3 days on eight V100" per 250 epochs, both per image-epoch.
These are different GPUs (GTX 1080 Ti, V100) and networks of different sizes: an order of magnitude.
"""
from __future__ import annotations

import fnmatch

import pandas as pd

from nasflow import jobs, plan, protocol
from nasflow.catalog.datasets import dataset_info

CIFAR_HOURS_PER_IMAGE_EPOCH = 0.75 * 24 / (600 * 50_000)          # GOLD-NAS B.1
IMAGENET_HOURS_PER_IMAGE_EPOCH = 3 * 8 * 24 / (250 * 1_281_167)   # GOLD-NAS C.1
TRAIN_SOURCE = ("GOLD-NAS B.1 (0.3-1.2 V100-days per 600-epoch CIFAR-10 retraining) and C.1 (about 3 days on "
                "8 V100 per 250-epoch ImageNet training), per image-epoch")


def _published_search_days(pubs: pd.DataFrame, params, name: str) -> tuple[float | None, str]:
    """The first published search cost of the name, else of its method (a Kendall variant)."""
    for key in (name, protocol.method_of(params, name)):
        rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(key, p)) & pubs["search_gpu_days"].notna()]
        if not rows.empty:
            row = rows.iloc[0]
            return float(row["search_gpu_days"]), f"{row['paper']} {row['table']} {row['row']}"
    return None, "no published search cost"


def _train_hours(params, recipe: str, dataset: str) -> float:
    r = jobs.recipe_settings(params, recipe)
    info = dataset_info(dataset)
    images = info.train_images
    if r["train_subset_per_class"]:
        images = min(images, r["train_subset_per_class"] * info.num_classes)
    if r["holdout_fraction"]:
        images *= 1 - r["holdout_fraction"]
    style = r["style"] or info.style
    rate = IMAGENET_HOURS_PER_IMAGE_EPOCH if style == "imagenet" else CIFAR_HOURS_PER_IMAGE_EPOCH
    return r["epochs"] * images * rate


def _points_per_search(pubs: pd.DataFrame, params, name: str) -> int:
    """1, or for a search published as a front the number of its published points."""
    rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(name, p)) & (pubs["match"] == "nearest_macs")
                & (pubs["dataset"] == protocol.retrain_dataset(params, name))]
    return max(1, len(rows))


def summary(params) -> dict:
    from nasflow.catalog.published import published
    from nasflow.settings import load_params

    pubs = published()
    paper_settings = load_params(params.base_dir / "params.yaml", "base") if (params.base_dir / "params.yaml").is_file() else params
    searches, trainings = [], []
    for name in protocol.names(params):
        s = jobs.method_settings(params, name)
        try:
            base_epochs = jobs.method_settings(paper_settings, name)["epochs"]
        except Exception:  # a variant only this file defines
            base_epochs = s["epochs"]
        days, source = _published_search_days(pubs, params, name)
        seeds = protocol.search_seeds(params, name)
        scale = s["epochs"] / base_epochs
        searches.append({"name": name, "method": protocol.method_of(params, name), "dataset": s["dataset"],
                         "searches": len(seeds), "epochs": s["epochs"],
                         "gpu_hours": None if days is None else round(len(seeds) * days * 24 * scale, 2),
                         "source": f"{source} x {scale:.3g} (epochs)" if days is not None else source})
        kept = 1 if protocol.selection(params, name) else len(seeds)
        points = _points_per_search(pubs, params, name)
        dataset = protocol.retrain_dataset(params, name)
        recipe = plan.recipe_for(params, f"{name}-s{seeds[0]}-0", dataset)
        n = kept * points * len(protocol.retrain_seeds(params, name))
        trainings.append({"stage": "retrain", "what": name, "dataset": dataset, "recipe": recipe, "jobs": n,
                          "gpu_hours": round(n * _train_hours(params, recipe, dataset), 2),
                          "estimate": points > 1 or bool(protocol.selection(params, name))})
        select = protocol.selection(params, name)
        if select and select["by"] == "short_retrain":
            recipe = params["train"]["selection_recipe"]
            trainings.append({"stage": "short-retrain", "what": name, "dataset": dataset, "recipe": recipe,
                              "jobs": len(seeds), "gpu_hours": round(len(seeds) * _train_hours(params, recipe, dataset), 2),
                              "estimate": False})
    train = params["train"]
    for cell in train["retrain_cells"]:
        recipe = plan.recipe_for(params, cell, train["dataset"])
        n = len(train["seeds"])
        trainings.append({"stage": "retrain", "what": cell, "dataset": train["dataset"], "recipe": recipe, "jobs": n,
                          "gpu_hours": round(n * _train_hours(params, recipe, train["dataset"]), 2), "estimate": False})
    per_name = train["transfer"]["searched_per_method"]
    cells_to: dict[str, int] = {d: len(train["transfer"]["cells"]) for d in train["transfer"]["datasets"]}
    for name in protocol.names(params):
        for d in protocol.transfer_datasets(params, name):
            cells_to[d] = cells_to.get(d, 0) + min(per_name, len(protocol.search_seeds(params, name)))
    for dataset, cells in cells_to.items():
        recipe = plan.recipe_for(params, "transfer", dataset)
        n = cells * len(train["seeds"])
        trainings.append({"stage": "transfer", "what": f"{cells} cells", "dataset": dataset, "recipe": recipe,
                          "jobs": n, "gpu_hours": round(n * _train_hours(params, recipe, dataset), 2), "estimate": False})
    return {"profile": params.profile, "searches": searches, "selections": len(plan.selected_names(params)),
            "consistency": len(plan.consistency_searches(params)), "trainings": trainings,
            "train_source": TRAIN_SOURCE}


def render(found: dict) -> str:
    lines = [f"nasflow plan (profile {found['profile']}): jobs per stage and an estimate of GPU-hours"]
    searches = pd.DataFrame(found["searches"])
    lines += ["", f"search: {int(searches['searches'].sum())} jobs, {searches['gpu_hours'].sum():.1f} GPU-hours "
                  "(exact counts; cost: the paper's published search cost scaled by epochs)",
              searches.to_string(index=False)]
    lines += ["", f"select: {found['selections']} jobs (reading result files); consistency: {found['consistency']} jobs "
                  "(one validation pass each)"]
    trainings = pd.DataFrame(found["trainings"])
    for stage, rows in trainings.groupby("stage", sort=False):
        label = ("estimated count: how many cells a search yields is known when it ends" if rows["estimate"].any()
                 else "exact count")
        lines += ["", f"{stage}: {int(rows['jobs'].sum())} jobs ({label}), "
                      f"{rows['gpu_hours'].sum():.1f} GPU-hours",
                  rows.drop(columns=["stage", "estimate"]).to_string(index=False)]
    total = searches["gpu_hours"].sum() + trainings["gpu_hours"].sum()
    lines += ["", f"total: about {total:.0f} GPU-hours ({total / 24:.1f} GPU-days); training costs from "
                  f"{found['train_source']}; different GPUs and network sizes: an order of magnitude"]
    return "\n".join(lines)
