"""`nasflow plan`: the jobs a settings file implies, per stage, and an estimate of their GPU-hours.

The jobs are the study's (nasflow.study), the list Snakemake schedules. Searches are counted exactly
(their number is fixed by the settings). How many architectures a search yields is known only when it
ends: a search whose architectures.json exists under `root` fans out as it did, one that has not run yet
by stand-ins (one cell per search, or for a front the number of points the paper published for it:
GOLD-NAS six per front; a `best_of` selection not yet made keeps its first seed). Costs come from the
papers' published figures, scaled by epochs (and for trainings by training images):
- a search: its paper's search GPU-days (published.csv, the row naming the search or its method) times
  these settings' epochs over the paper settings' (params.yaml without a profile);
- a training: GOLD-NAS B.1's "0.3-1.2 days on one V100" per 600-epoch CIFAR-10 retraining (0.75 taken),
  and for ImageNet-style networks C.1's "around 3 days on eight V100" per 250 epochs, both per image-epoch.
These are different GPUs (GTX 1080 Ti, V100) and networks of different sizes: an order of magnitude.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pandas as pd

from nasflow import layout
from nasflow.catalog.datasets import dataset_info
from nasflow.errors import NasflowError
from nasflow.study import Job, stand_in_architectures, study_of

CIFAR_HOURS_PER_IMAGE_EPOCH = 0.75 * 24 / (600 * 50_000)          # GOLD-NAS B.1
IMAGENET_HOURS_PER_IMAGE_EPOCH = 3 * 8 * 24 / (250 * 1_281_167)   # GOLD-NAS C.1
TRAIN_SOURCE = ("GOLD-NAS B.1 (0.3-1.2 V100-days per 600-epoch CIFAR-10 retraining) and C.1 (about 3 days on "
                "8 V100 per 250-epoch ImageNet training), per image-epoch")


def _published_search_days(pubs: pd.DataFrame, entry) -> tuple[float | None, str]:
    """The first published search cost of the name, else of its method (a Kendall variant)."""
    for key in (entry.name, entry.method):
        rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(key, p)) & pubs["search_gpu_days"].notna()]
        if not rows.empty:
            row = rows.iloc[0]
            return float(row["search_gpu_days"]), f"{row['paper']} {row['table']} {row['row']}"
    return None, "no published search cost"


def _train_hours(study, recipe: str, dataset: str) -> float:
    r = study.recipe_settings(recipe)
    info = dataset_info(dataset)
    images = info.train_images
    if r["train_subset_per_class"]:
        images = min(images, r["train_subset_per_class"] * info.num_classes)
    if r["holdout_fraction"]:
        images *= 1 - r["holdout_fraction"]
    style = r["style"] or info.style
    rate = IMAGENET_HOURS_PER_IMAGE_EPOCH if style == "imagenet" else CIFAR_HOURS_PER_IMAGE_EPOCH
    return r["epochs"] * images * rate


def _points_per_search(pubs: pd.DataFrame, entry) -> int:
    """1, or for a search published as a front the number of its published points."""
    rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(entry.name, p)) & (pubs["match"] == "nearest_macs")
                & (pubs["dataset"] == entry.retrain_dataset)]
    return max(1, len(rows))


def planned_jobs(params, root: str | Path | None = None, pubs: pd.DataFrame | None = None) -> tuple[list[Job], set[str]]:
    """Every job of the study, the trainings fanned out from the searches' results under `root` (default:
    beside params.yaml) where they exist, else from stand-ins; and the names whose fan-out is estimated.
    `pubs`: published.csv, when the caller has read it already."""
    from nasflow.catalog.published import published
    from nasflow.selection import chosen_seed

    study = study_of(params)
    pubs = published() if pubs is None else pubs
    root = Path(root) if root is not None else params.base_dir
    points = {n: _points_per_search(pubs, study.search_name(n)) for n in study.names}
    estimated = {n for n in study.names
                 if not all((root / layout.search_dir(n, s) / "architectures.json").is_file()
                            for s in study.search_name(n).seeds)
                 or (study.search_name(n).select and not (root / layout.selection_file(n)).is_file())}

    def chosen(name: str) -> int:
        made = root / layout.selection_file(name)
        return chosen_seed(made) if made.is_file() else study.search_name(name).seeds[0]

    return study.jobs(stand_in_architectures(root, points.__getitem__), chosen), estimated


def summary(params, root: str | Path | None = None) -> dict:
    from nasflow.catalog.published import published
    from nasflow.settings import load_params

    study, pubs = study_of(params), published()
    base_file = params.base_dir / "params.yaml"
    paper_study = study_of(load_params(base_file, "base")) if base_file.is_file() else study
    found, estimated = planned_jobs(params, root, pubs)
    searches = []
    for name in study.names:
        entry = study.search_name(name)
        try:
            base_epochs = paper_study.search_name(name).settings["epochs"]
        except NasflowError:  # a variant only this profile defines
            base_epochs = entry.settings["epochs"]
        days, source = _published_search_days(pubs, entry)
        scale = entry.settings["epochs"] / base_epochs
        searches.append({"name": name, "method": entry.method, "dataset": entry.dataset,
                         "searches": len(entry.seeds), "epochs": entry.settings["epochs"],
                         "gpu_hours": None if days is None else round(len(entry.seeds) * days * 24 * scale, 2),
                         "source": f"{source} x {scale:.3g} (epochs)" if days is not None else source})
    groups: dict[tuple, list[Job]] = {}
    for job in found:
        if job.kind not in ("train", "short-retrain"):
            continue
        what = layout.arch_name(job.name) or job.name
        stage = {"retrain": "retrain", "transfer": "transfer", "selection": "short-retrain"}[job.role]
        key = (stage, "" if stage == "transfer" else what, job.dataset, job.recipe)
        groups.setdefault(key, []).append(job)
    trainings = []
    for (stage, what, dataset, recipe), members in groups.items():
        if stage == "transfer":
            what = f"{len({j.name for j in members})} cells"
        trainings.append({"stage": stage, "what": what, "dataset": dataset, "recipe": recipe, "jobs": len(members),
                          "gpu_hours": round(len(members) * _train_hours(study, recipe, dataset), 2),
                          "estimate": stage == "retrain" and any((layout.arch_name(j.name) or "") in estimated
                                                                  for j in members)})
    return {"profile": params.profile, "searches": searches, "selections": len(study.selected_names()),
            "consistency": len(study.consistency_searches()), "trainings": trainings,
            "jobs": [j.as_dict() for j in found], "published": study.published_jobs(pubs, found),
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
