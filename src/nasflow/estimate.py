"""`nasflow plan`: the jobs a settings file implies, per stage, and an estimate of their GPU-hours.

The jobs are the study's (nasflow.study), the list Snakemake schedules. Searches are counted exactly
(their number is fixed by the settings). How many architectures a search yields is known only when it
ends: a search whose architectures.json exists under `root` fans out as it did, one that has not run yet
by stand-ins (one cell per search, or for a front the number of points the paper published for it:
GOLD-NAS six per front; a `best_of` selection not yet made keeps its first seed). Costs come from the
papers' published figures, scaled by epochs, and for trainings by the work each one does:
- a search: its paper's search GPU-days (published.csv, the row naming the search or its method) times
  these settings' epochs over the paper settings' (params.yaml without a profile). A super-net that holds
  the whole DAG in more cells than its paper's (EnTranNAS's `engine_cells`) moves towards DARTS's published
  cost in proportion to the extra Engine cells: with every cell an Engine cell it is DARTS's super-net
  (EnTranNAS Table 1, "all (DARTS)");
- a training: epochs x training images x the MACs of its network (the recipe's layers, channels, stem,
  stem_reductions and SE around its cell, at the dataset's image size; nasflow.catalog.sizes, no torch)
  x an hour rate per MAC-image-epoch. The rate is GOLD-NAS's figures divided by the MACs of the networks
  they timed: B.1's "0.3-1.2 days on one V100" per 600-epoch CIFAR-10 retraining (0.75 taken) over the
  middle of its CIFAR-10 front (245-546 M, Table 1), and for ImageNet-style networks C.1's "around 3 days on
  eight V100" per 250 epochs over the mean of its ImageNet networks (X, Y, Z, Z-tr: 578-590 M, Table 2).
  The cell: a published one by its zoo name, a searched one from its genotype file once the search has
  ended, else the published cell published.csv pairs with its search or method, else plan.stand_in_cell.
These are different GPUs (GTX 1080 Ti, V100) and networks of different sizes: an order of magnitude.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import math
from pathlib import Path

import pandas as pd

from nasflow import layout
from nasflow.catalog.datasets import dataset_info
from nasflow.catalog.genotype import load_genotype
from nasflow.catalog.sizes import network_cost, recipe_network
from nasflow.errors import NasflowError
from nasflow.study import Job, stand_in_architectures, study_of

# GOLD-NAS's timings, per image-epoch of the networks they timed (whose MACs `anchor_macs` reads)
CIFAR_HOURS_PER_IMAGE_EPOCH = 0.75 * 24 / (600 * 50_000)          # GOLD-NAS B.1
IMAGENET_HOURS_PER_IMAGE_EPOCH = 3 * 8 * 24 / (250 * 1_281_167)   # GOLD-NAS C.1
HOURS_PER_IMAGE_EPOCH = {"cifar": CIFAR_HOURS_PER_IMAGE_EPOCH, "imagenet": IMAGENET_HOURS_PER_IMAGE_EPOCH}
TRAIN_SOURCE = ("GOLD-NAS B.1 (0.3-1.2 V100-days per 600-epoch CIFAR-10 retraining, its front 245-546 M MACs) "
                "and C.1 (about 3 days on 8 V100 per 250-epoch ImageNet training, its networks 578-590 M MACs), "
                "per MAC-image-epoch")


def _published_search_days(pubs: pd.DataFrame, keys) -> tuple[float | None, str]:
    """The first published search cost of the first key that has one (a name, then its method)."""
    for key in keys:
        rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(key, p)) & pubs["search_gpu_days"].notna()]
        if not rows.empty:
            row = rows.iloc[0]
            return float(row["search_gpu_days"]), f"{row['paper']} {row['table']} {row['row']}"
    return None, "no published search cost"


def engine_cell_count(settings: dict) -> int:
    """How many of the super-net's cells hold the whole DAG under `engine_cells` (the count
    nasflow.search.policies.entranas.engine_cell_indices selects, per cell type)."""
    layers = settings["layers"]
    reductions = {layers // 3, 2 * layers // 3}
    per_type = [layers - len(reductions), len(reductions)]
    mode = settings["engine_cells"]
    take = {"first": lambda n: 1, "last": lambda n: 1, "half": lambda n: math.ceil(n / 2), "all": lambda n: n}[mode]
    return sum(take(n) for n in per_type if n)


def _search_days(pubs: pd.DataFrame, entry, paper_entry) -> tuple[float | None, str]:
    """A search's published GPU-days (before the epoch scaling), moved towards DARTS's where its super-net
    holds the whole DAG in more cells than the paper's (EnTranNAS `engine_cells`: all is DARTS's super-net)."""
    days, source = _published_search_days(pubs, (entry.name, entry.method))
    if days is None or "engine_cells" not in entry.settings:
        return days, source
    layers = entry.settings["layers"]
    engines = engine_cell_count(entry.settings)
    published = engine_cell_count({**paper_entry.settings, "layers": layers})
    if engines == published or layers == published:
        return days, source
    darts_days, darts_source = _published_search_days(pubs, ("darts",))
    share = (engines - published) / (layers - published)
    return (days + (darts_days - days) * share,
            f"{source} + {share:.3g} x ({darts_source} - it) (Engine cells {engines} of {layers}, the paper's "
            f"{published}; all: DARTS's super-net)")


def anchor_macs(pubs: pd.DataFrame) -> dict[str, float]:
    """Millions of MACs of the networks GOLD-NAS timed, per network style: the middle of its CIFAR-10 front
    (Table 1, as 0.75 days is the middle of 0.3-1.2) and the mean of its ImageNet networks (Table 2)."""
    paper = pubs[(pubs["paper"] == "gold-nas") & pubs["macs_M"].notna()]
    front = paper[(paper["table"] == "Table 1") & (paper["match"] == "nearest_macs") & (paper["dataset"] == "cifar10")]
    imagenet = paper[(paper["table"] == "Table 2") & (paper["match"] == "picked")]  # X, Y, Z, Z-tr
    if front.empty or imagenet.empty:
        raise NasflowError("published.csv lacks GOLD-NAS's Table 1 front or Table 2 ImageNet MACs, which anchor "
                           "the training estimate")
    return {"cifar": (front["macs_M"].min() + front["macs_M"].max()) / 2, "imagenet": float(imagenet["macs_M"].mean())}


def hours_per_mac_image_epoch(style: str, pubs: pd.DataFrame) -> float:
    return HOURS_PER_IMAGE_EPOCH[style] / (anchor_macs(pubs)[style] * 1e6)


def stand_in_cell(pubs: pd.DataFrame, entry, fallback: str) -> str:
    """The published cell that stands for a search's cell before it has ended: the one published.csv pairs
    with its name, else its method, else `fallback` (plan.stand_in_cell)."""
    for key in (entry.name, entry.method):
        rows = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(key, p)) & pubs["cell"].notna()
                    & (pubs["cell"] != "")]
        if not rows.empty:
            return str(rows.iloc[0]["cell"])
    return fallback


def _training_images(r: dict, info) -> float:
    images = info.train_images
    if r["train_subset_per_class"]:
        images = min(images, r["train_subset_per_class"] * info.num_classes)
    if r["holdout_fraction"]:
        images *= 1 - r["holdout_fraction"]
    return images


def network_macs(study, genotype_ref, recipe: str, dataset: str) -> int:
    """MACs on one image of the network a training builds: the cell in the recipe's network (layers,
    channels, stem style and stem_reductions, SE, cell output) at the dataset's image size."""
    r, info = study.recipe_settings(recipe), dataset_info(dataset)
    genotype = load_genotype(genotype_ref)
    if r["cell_output"]:
        genotype = dataclasses.replace(genotype, cell_output=r["cell_output"])
    net = recipe_network(r, dataset, genotype)  # the network the trainer builds
    return network_cost(genotype, net["style"], net["channels"], net["layers"], info.num_classes,
                        info.channels, info.image_size, stem_reductions=r["stem_reductions"],
                        se_ratio=r["se_ratio"])["macs"]


def training_hours(study, genotype_ref, recipe: str, dataset: str, pubs: pd.DataFrame) -> tuple[float, int]:
    """(GPU-hours, MACs per image) of one training: epochs x training images x MACs x the style's rate."""
    r, info = study.recipe_settings(recipe), dataset_info(dataset)
    macs = network_macs(study, genotype_ref, recipe, dataset)
    rate = hours_per_mac_image_epoch(r["style"] or info.style, pubs)
    return r["epochs"] * _training_images(r, info) * macs * rate, macs


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


def genotype_of(study, arch_id: str, root: Path, pubs: pd.DataFrame) -> str | Path:
    """What a training's cell is for the estimate: a published cell's zoo name, a searched cell's genotype
    file where its search has ended, else its stand-in (`stand_in_cell`)."""
    name = layout.arch_name(arch_id)
    if name is None:
        return arch_id
    seed = int(layout.SEARCHED_ID.match(arch_id)["seed"])
    made = root / layout.search_dir(name, seed) / "architectures.json"
    if made.is_file():
        for entry in layout.read_architectures(made):
            path = root / layout.search_dir(name, seed) / entry["genotype"]
            if entry["id"] == layout.searched_id(arch_id) and path.is_file():  # <id>+<recipe> trains <id>
                return path
    return stand_in_cell(pubs, study.search_name(name), study.params["plan"]["stand_in_cell"])


def summary(params, root: str | Path | None = None) -> dict:
    from nasflow.catalog.published import published
    from nasflow.settings import load_params

    study, pubs = study_of(params), published()
    base_file = params.base_dir / "params.yaml"
    paper_study = study_of(load_params(base_file, "base")) if base_file.is_file() else study
    found, estimated = planned_jobs(params, root, pubs)
    root = Path(root) if root is not None else params.base_dir
    searches = []
    for name in study.names:
        entry = study.search_name(name)
        try:
            base_epochs = paper_study.search_name(name).settings["epochs"]
        except NasflowError:  # a variant only this profile defines
            base_epochs = entry.settings["epochs"]
        try:
            paper_entry = paper_study.search_name(entry.method)
        except NasflowError:
            paper_entry = entry
        days, source = _search_days(pubs, entry, paper_entry)
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
    trainings, costs = [], {}
    for (stage, what, dataset, recipe), members in groups.items():
        if stage == "transfer":
            what = f"{len({j.name for j in members})} cells"
        priced = []
        for j in members:
            cell = genotype_of(study, j.name, root, pubs)
            key = (str(cell), recipe, dataset)
            if key not in costs:  # one count per (cell, recipe, dataset)
                costs[key] = training_hours(study, cell, recipe, dataset, pubs)
            priced.append(costs[key])
        trainings.append({"stage": stage, "what": what, "dataset": dataset, "recipe": recipe, "jobs": len(members),
                          "macs_M": round(sum(m for _, m in priced) / len(priced) / 1e6, 1),
                          "gpu_hours": round(sum(h for h, _ in priced), 2),
                          "estimate": stage == "retrain" and any((layout.arch_name(j.name) or "") in estimated
                                                                  for j in members)})
    anchors = anchor_macs(pubs)
    rates = {style: {"hours_per_image_epoch": HOURS_PER_IMAGE_EPOCH[style], "anchor_macs_M": anchors[style],
                     "hours_per_mac_image_epoch": hours_per_mac_image_epoch(style, pubs)} for style in anchors}
    return {"profile": params.profile, "searches": searches, "selections": len(study.selected_names()),
            "consistency": len(study.consistency_searches()), "trainings": trainings,
            "jobs": [j.as_dict() for j in found], "published": study.published_jobs(pubs, found),
            "train_source": TRAIN_SOURCE, "train_rates": rates}


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
    lines += ["", "macs_M: the mean MACs per image of the stage's networks (the recipe's network around each cell "
                  "at the dataset's image size; a cell not yet searched: its stand-in)"]
    total = searches["gpu_hours"].sum() + trainings["gpu_hours"].sum()
    lines += ["", f"total: about {total:.0f} GPU-hours ({total / 24:.1f} GPU-days); training costs from "
                  f"{found['train_source']}; different GPUs and network sizes: an order of magnitude"]
    return "\n".join(lines)


def render_published(found: dict) -> str:
    """`nasflow plan --published`: every published row with what nasflow runs for it, how its cells are
    paired with the row, and where that differs from the paper (docs/methods.md prints the paper profile's)."""
    lines = ["| paper | table | row | dataset | nasflow runs (cell or search, recipe, seeds) | reported | paired by "
             "| differs from the paper |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in found["published"]:
        groups: dict[tuple, list[int]] = {}
        for job in row["jobs"]:
            what = layout.arch_name(job["name"]) or job["name"]
            what = f"{what} (consistency)" if job["kind"] == "consistency" else what
            groups.setdefault((what, job.get("recipe", ""), job["reported"]), []).append(job.get("seed", 0))
        runs = "; ".join(f"{what} {recipe} x{len(seeds)}".replace("  ", " ") for (what, recipe, _), seeds in groups.items())
        reported = ", ".join(dict.fromkeys(r for _, _, r in groups)) or "-"
        missing = f"none: {row['no_run']}" if row["no_run"] else "none in this profile"
        lines.append(f"| {row['paper']} | {row['table']} | {row['row']} | {row['dataset']} | {runs or missing} | "
                     f"{reported} | {row['paired_by'] if runs else '-'} | {row['differs'] or '-'} |")
    return "\n".join(lines)
