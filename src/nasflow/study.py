"""The study: everything a settings profile asks for, resolved once from the validated settings.

Each named search (a registered method, or a variant of search.variants: a method plus an overlay of its
block) with its resolved settings and its protocol (seeds, `best_of` selection, retraining seeds and
dataset, the reported statistic, transfer datasets); every search, consistency, selection, training and
transfer job; each training's recipe resolved to its final values. The Snakefile and its rules,
`nasflow plan`, `nasflow params`, the report, the engine and the trainer read this; nothing else
re-reads the raw settings to decide what runs.

Trainings that depend on a search's result are resolved by rule once the search has ended: the caller
hands over `archs_of(name, seed)`, the entries of that search's architectures.json (the Snakefile: read
after a checkpoint that waits for the search; the report: the file under results/; `nasflow plan`: the
file where it exists, else stand-ins), and `chosen_seed(name)` for a `best_of` selection, and the same
functions below fan them out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nasflow import jobs, layout
from nasflow.catalog import methods as registry
from nasflow.catalog.datasets import dataset_info
from nasflow.errors import NasflowError

# search: keys that describe which searches run, not how one search runs
NOT_SETTINGS = ("names", "seeds", "variants", "protocol")


@dataclass(frozen=True)
class SearchName:
    """A named search and its protocol; what a protocol entry leaves out takes the common value
    (search.seeds, every search kept, train.seeds, train.dataset, the final error, train.transfer.datasets)."""
    name: str
    method: str                      # the registered method it runs
    settings: dict                   # resolved: every key its search reads
    seeds: tuple[int, ...]
    select: dict | None              # None: every search kept; else {best_of: N, by: supernet_val | short_retrain}
    retrain_seeds: tuple[int, ...]
    retrain_dataset: str
    reported: str                    # final | last_5_mean (PR-DARTS 4.1: the mean of the last five epochs)
    transfer: tuple[str, ...]        # where its final cells go
    transfer_by_dataset: dict        # dataset -> the paper's own {recipe, seeds, reported} for that transfer
    retrain: tuple[dict, ...]        # which architectures are retrained: [{pick, recipe?}], default every one

    @property
    def declared(self):
        return registry.method(self.method)

    @property
    def dataset(self) -> str:
        return self.settings["dataset"]

    def describe(self) -> str:
        """table3.csv's schedule column."""
        return self.declared.describe(self.settings)


@dataclass(frozen=True, order=True)
class Job:
    """One job of the pipeline, as `nasflow plan --json` lists it and Snakemake schedules it."""
    kind: str                        # prepare_data, search, consistency, select, train, short-retrain
    name: str = ""                   # a search name, an architecture id, or a dataset (prepare_data)
    dataset: str = ""
    seed: int = -1
    recipe: str = ""
    role: str = ""                   # a training's: retrain, transfer, selection

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in ("", -1)}


class Study:
    def __init__(self, params):
        self.params = params
        train = params["train"]
        self.train_dataset = train["dataset"]          # where published cells (retrain_cells) retrain
        self.train_seeds = tuple(train["seeds"])        # their retrainings' seeds, and every transfer's
        self.retrain_cells = tuple(train["retrain_cells"])
        self.transfer_datasets = tuple(train["transfer"]["datasets"])  # where published cells are transferred
        self._names: dict[str, SearchName] = {}
        self.names = list(params["search"]["names"])
        for name in self.names:
            self.search_name(name)

    # --- searches ---------------------------------------------------------------------------------
    def search_name(self, name: str) -> SearchName:
        """A named search: one of search.names, or any registered method or variant (a verb may run a
        search the pipeline does not list, such as GOLD-NAS's random baseline)."""
        if name not in self._names:
            self._names[name] = self._resolve(name)
        return self._names[name]

    def _resolve(self, name: str) -> SearchName:
        search, train = self.params["search"], self.params["train"]
        variant = search.get("variants", {}).get(name)
        method = variant["method"] if variant is not None else registry.method(name).name
        entry = search.get("protocol", {}).get(name, {})
        select = entry.get("select", "all")
        settings = self._method_settings(name, method, variant)
        if select != "all" and select["by"] == "supernet_val" and registry.method(method).one_level \
                and not settings.get("val_fraction"):
            where = f"search.variants.{name}.settings" if variant is not None else f"search.{method}"
            raise NasflowError(f"search.protocol.{name}.select.by: supernet_val, but {name!r} searches on one level "
                               f"with every training image ({where}.val_fraction is 0): it has no validation error "
                               "to select by; hold out a part (val_fraction > 0) or use by: short_retrain")
        return SearchName(
            name=name, method=method, settings=settings,
            seeds=tuple(entry.get("seeds", search["seeds"])),
            select=None if select == "all" else dict(select),
            retrain_seeds=tuple(entry.get("retrain_seeds", train["seeds"])),
            retrain_dataset=entry.get("retrain_dataset", train["dataset"]),
            reported=entry.get("reported", "final"),
            transfer=tuple(entry.get("transfer", train["transfer"]["datasets"])),
            transfer_by_dataset=dict(entry.get("transfer_by_dataset", {})),
            retrain=tuple(dict(r) for r in entry.get("retrain", [{"pick": "all"}])))

    def _method_settings(self, name: str, method: str, variant: dict | None) -> dict:
        """The common `search:` keys, then the block the method's settings come from (`settings_from`:
        EnTranNAS's for EnTranNAS-DST, GOLD-NAS's for its random baseline), the method's block and a
        variant's overlay, each followed on ImageNet-style data by its own `imagenet_style:` sub-block; so a
        later layer's key wins over an earlier layer's ImageNet value (a variant's own key is never undone by
        its method's ImageNet block). Then the method's own `settle` (derived keys, cross-key checks)."""
        declared = registry.method(method)
        search = self.params["search"]
        blocks = set(registry.names())
        merged = {k: v for k, v in search.items() if k not in NOT_SETTINGS and k not in blocks}
        layers = [search.get(declared.settings_from, {})] if declared.settings_from else []
        layers += [search.get(method, {}), (variant or {}).get("settings", {})]
        dataset = next((layer["dataset"] for layer in reversed(layers) if "dataset" in layer), merged["dataset"])
        imagenet_style = dataset_info(dataset).style == "imagenet"  # GOLD-NAS appendix C, EnTranNAS 4.3
        for layer in layers:
            merged.update({k: v for k, v in layer.items() if k != "imagenet_style"})
            if imagenet_style:
                merged.update(layer.get("imagenet_style") or {})
        where = f"search.variants.{name}.settings" if variant is not None else f"search.{name}"
        if merged["w_lr_min"] > merged["w_lr"]:
            raise NasflowError(f"{where}: w_lr_min ({merged['w_lr_min']}) exceeds w_lr ({merged['w_lr']})")
        return declared.settle(merged, method)

    def searches(self) -> list[tuple[str, int]]:
        """(name, seed) of every search the pipeline runs."""
        return [(name, seed) for name in self.names for seed in self.search_name(name).seeds]

    def search_inputs(self, name: str, seed: int) -> dict:
        """Everything that determines a search's outputs: its fingerprint and its rule's params."""
        entry = self.search_name(name)
        return jobs.search_inputs(self.params["data"], entry.declared, name, seed, entry.settings)

    def consistency_searches(self) -> list[tuple[str, int]]:
        """The searches that leave a super-net to compare with its derived cell (not the random baseline)."""
        return [(n, s) for n, s in self.searches() if self.search_name(n).declared.trains_supernet]

    def selected_names(self) -> list[str]:
        """The names whose cells are chosen by a `best_of` selection before any retraining."""
        return [n for n in self.names if self.search_name(n).select]

    def selection_inputs(self, name: str) -> dict:
        """What a selection's result depends on beyond the files it reads."""
        return {"protocol": self.params["search"].get("protocol", {}).get(name, {}),
                "selection_recipe": self.params["train"]["selection_recipe"]}

    def report_inputs(self) -> dict:
        """What the tables read beyond the result files: which searches and trainings they describe."""
        return {"search": self.params["search"], "train": self.params["train"]}

    # --- recipes ----------------------------------------------------------------------------------
    def recipe_settings(self, recipe: str) -> dict:
        """A recipe with train.recipe_defaults laid under it: every key the trainer reads."""
        recipes = self.params["train"]["recipes"]
        if recipe not in recipes:
            raise NasflowError(f"unknown recipe {recipe!r}; params.yaml train.recipes defines: "
                               f"{', '.join(recipes) or 'none'}")
        return {**self.params["train"]["recipe_defaults"], **recipes[recipe], "name": recipe}

    def train_inputs(self, genotype: dict, dataset: str, recipe: str, seed: int) -> dict:
        """Everything that determines a training's outputs: the genotype's content, the resolved recipe
        and the data settings it reads."""
        r = self.recipe_settings(recipe)
        data = jobs.dataset_keys(self.params["data"], dataset)
        if r["train_subset_per_class"] or r["test_subset_per_class"] or r["holdout_fraction"]:
            data["split_seed"] = self.params["data"]["split_seed"]
        return {"kind": "train", "genotype_sha256": jobs.genotype_sha256(genotype), "dataset": dataset, "recipe": r,
                "seed": seed, "data": data}

    def retrain_dataset_of(self, arch_id: str) -> str:
        name = layout.arch_name(arch_id)
        return self.search_name(name).retrain_dataset if name else self.train_dataset

    def recipe_for(self, arch_id: str, dataset: str, stage: str = "train") -> str:
        """The recipe of one training job. Retraining: the search's (or published cell's) own paper's recipe
        from train.recipe_by_search (a variant falls back to its method's) or train.recipe_by_cell, else train.recipe, and always
        train.recipe with common_recipe. Transfer keeps ASAP's protocol (4.3): every cell the same recipe, a
        dataset's own where recipe_by_dataset names one (ImageNet). A selection's short retraining:
        train.selection_recipe."""
        train = self.params["train"]
        if stage == "short-retrain":
            return train["selection_recipe"]
        if dataset != self.retrain_dataset_of(arch_id):
            return self.transfer_run(arch_id, dataset)[0]
        if train["common_recipe"]:
            return train["recipe"]
        if layout.own_recipe(arch_id):  # a protocol `retrain` entry's own (ASAP-Medium's 44 channels)
            return layout.own_recipe(arch_id)
        name = layout.arch_name(arch_id)
        if name is None:
            return train["recipe_by_cell"].get(arch_id, train["recipe"])
        by = train["recipe_by_search"]
        return by.get(name, by.get(self.search_name(name).method, train["recipe"]))

    def recipes_used(self) -> list[str]:
        """Every recipe a training job of these settings can name (checked before any job runs)."""
        train = self.params["train"]
        names = [train["recipe"], train["transfer"]["recipe"], *train["transfer"]["recipe_by_dataset"].values(),
                 *(r for by in train["transfer"]["recipe_by_cell"].values() for r in by.values())]
        if not train["common_recipe"]:
            names += [*train["recipe_by_search"].values(), *train["recipe_by_cell"].values()]
        if self.selected_names():
            names.append(train["selection_recipe"])
        names += [own["recipe"] for n in self.names for own in self.search_name(n).transfer_by_dataset.values()
                  if "recipe" in own]
        if not train["common_recipe"]:
            names += [r["recipe"] for n in self.names for r in self.search_name(n).retrain if "recipe" in r]
        return list(dict.fromkeys(names))

    def transfer_run(self, arch_id: str, dataset: str) -> tuple[str, tuple[int, ...], str]:
        """A transfer's recipe, seeds and reported statistic: the search name's protocol
        `transfer_by_dataset.<dataset>` where it gives them (the paper that transferred the cell: EnTranNAS
        4.3, GOLD-NAS C.1, PR-DARTS 4.3), else ASAP's protocol (4.3): one recipe for every cell
        (train.transfer, a dataset's own where recipe_by_dataset names one, a published cell's own paper's where
        recipe_by_cell names it: DARTS's on ImageNet), train.seeds, the final error."""
        transfer = self.params["train"]["transfer"]
        recipe = transfer["recipe_by_dataset"].get(dataset, transfer["recipe"])
        recipe = transfer["recipe_by_cell"].get(arch_id, {}).get(dataset, recipe)  # a published cell's own paper's
        name = None if arch_id in transfer["cells"] else layout.arch_name(arch_id)
        own = self.search_name(name).transfer_by_dataset.get(dataset, {}) if name else {}
        return own.get("recipe", recipe), tuple(own.get("seeds", self.train_seeds)), own.get("reported", "final")

    # --- trainings, fanned out from the searches' results ------------------------------------------
    def short_retrain_jobs(self, name: str, archs_of: Callable[[str, int], list[dict]]) -> list[tuple[str, str, int]]:
        """(arch_id, dataset, seed) of a `best_of ... by: short_retrain` selection: each search's final cell,
        trained once (the first retraining seed) on held-out training images of the retraining dataset."""
        entry = self.search_name(name)
        return [(layout.final_architecture(archs_of(name, s))["id"], entry.retrain_dataset, entry.retrain_seeds[0])
                for s in entry.seeds]

    def searched_architectures(self, archs_of: Callable[[str, int], list[dict]],
                               chosen_seed: Callable[[str], int] | None = None) -> list[dict]:
        """Every architecture the kept searches yielded (one per search, or one per Pareto point): all of a
        name's searches, or for a `best_of` selection the one `chosen_seed(name)` names."""
        out = []
        for name, seed in self.searches():
            if self.search_name(name).select and (chosen_seed is None or seed != chosen_seed(name)):
                continue
            for entry in archs_of(name, seed):
                out.append({**entry, "method": name, "search_seed": seed,
                            "genotype_path": f"{layout.search_dir(name, seed)}/{entry['genotype']}"})
        return out

    def transfer_jobs(self, searched: list[dict]) -> list[tuple[str, str]]:
        """(arch_id, dataset) of every transfer: the published cells of train.transfer.cells to
        train.transfer.datasets (those of them a cell's datasets_by_cell names, where it has one); from each
        name's first `searched_per_method` kept searches, one cell to each of its protocol's `transfer`
        datasets: the final one (for GOLD-NAS the most pruned Pareto point, the one a search is known by), or
        the one its `transfer_by_dataset.<dataset>.pick` names (GOLD-NAS-I: the point of the mu = 0 front
        nearest the MACs GOLD-NAS Table 1 gives it)."""
        transfer = self.params["train"]["transfer"]
        own = transfer.get("datasets_by_cell", {})
        out = [(cell, d) for cell in transfer["cells"] for d in self.transfer_datasets
               if d in own.get(cell, self.transfer_datasets)]
        for name, searches in _per_name(searched).items():
            entry = self.search_name(name)
            for entries in searches[:transfer["searched_per_method"]]:
                for d in entry.transfer:
                    pick = entry.transfer_by_dataset.get(d, {}).get("pick", "final")
                    out.append((_picked(entries, pick)[0]["id"], d))
        return out

    def retrained(self, searched: list[dict]) -> list[dict]:
        """The architectures retrained on each name's retraining dataset: per search, what its protocol's
        `retrain` entries pick (every one by default; GOLD-NAS C.1's X/Y/Z: the largest under 600 M MACs),
        an entry with a recipe of its own under the id <id>+<recipe> (ASAP-Medium, GOLD-NAS's Z-tr).
        With train.common_recipe every cell takes train.recipe, so those entries' recipes are not used."""
        common = self.params["train"]["common_recipe"]
        out: dict[str, dict] = {}
        for name, searches in _per_name(searched).items():
            for entries in searches:
                for wanted in self.search_name(name).retrain:
                    recipe = None if common else wanted.get("recipe")
                    for arch in _picked(entries, wanted["pick"]):
                        arch_id = layout.with_recipe(arch["id"], recipe)
                        out.setdefault(arch_id, {**arch, "id": arch_id})
        return list(out.values())

    def training_jobs(self, searched: list[dict]) -> list[tuple[str, str, int]]:
        """(arch_id, dataset, seed) of every retraining (each name's protocol: its dataset and seeds;
        train.retrain_cells: train.dataset and train.seeds) and transfer run (`transfer_run`'s seeds)."""
        out = [(a["id"], self.search_name(a["method"]).retrain_dataset, s)
               for a in self.retrained(searched) for s in self.search_name(a["method"]).retrain_seeds]
        out += [(cell, self.train_dataset, s) for cell in self.retrain_cells for s in self.train_seeds]
        out += [(arch_id, d, s) for arch_id, d in self.transfer_jobs(searched) for s in self.transfer_run(arch_id, d)[1]]
        return list(dict.fromkeys(out))

    # --- data -------------------------------------------------------------------------------------
    def datasets_used(self) -> list[str]:
        """Every dataset a job of these settings reads, in settings order."""
        names = [self.search_name(n).dataset for n in self.names]
        names += [self.search_name(n).retrain_dataset for n in self.names]
        names += [d for n in self.names for d in self.search_name(n).transfer]
        names += [self.train_dataset, *self.transfer_datasets]
        return list(dict.fromkeys(names))

    def prepared_datasets(self) -> list[str]:
        """The datasets prepared into data/<name>.npz (not those streamed from class folders)."""
        return [d for d in self.datasets_used() if not dataset_info(d).streamed]

    # --- every job --------------------------------------------------------------------------------
    def jobs(self, archs_of: Callable[[str, int], list[dict]] | None = None,
             chosen_seed: Callable[[str], int] | None = None) -> list[Job]:
        """Every job, the trainings only where `archs_of` (and, for a selection, `chosen_seed`) can say
        what the searches yielded; Snakemake's dry run schedules the same list."""
        out = [Job("prepare_data", d) for d in self.prepared_datasets()]
        out += [Job("search", n, self.search_name(n).dataset, s) for n, s in self.searches()]
        out += [Job("consistency", n, seed=s) for n, s in self.consistency_searches()]
        out += [Job("select", n) for n in self.selected_names()]
        if archs_of is None:
            return out
        for name in self.selected_names():
            if self.search_name(name).select["by"] == "short_retrain":
                out += [Job("short-retrain", a, d, s, self.recipe_for(a, d, "short-retrain"), "selection")
                        for a, d, s in self.short_retrain_jobs(name, archs_of)]
        if chosen_seed is None and self.selected_names():
            return out
        searched = self.searched_architectures(archs_of, chosen_seed)
        for arch_id, dataset, seed in self.training_jobs(searched):
            role = "retrain" if dataset == self.retrain_dataset_of(arch_id) else "transfer"
            out.append(Job("train", arch_id, dataset, seed, self.recipe_for(arch_id, dataset), role))
        return out

    def published_jobs(self, pubs, jobs: list[Job]) -> list[dict]:
        """Per row of published.csv, the jobs whose results stand beside its number: the row's published
        cell trained on its dataset, and the trainings of the searches it names there (for EnTranNAS Table
        1's child validation error, their consistency jobs). A row no job produces says why (`no_run`)."""
        from nasflow.catalog.published import names_matching

        searched = list(dict.fromkeys(j.name for j in jobs if j.kind == "search"))
        out = []
        for _, pub in pubs.iterrows():
            names = names_matching(pub["nasflow"], searched) if pub["nasflow"] else set()
            if pub["metric"] == "child_val_error":
                found = [j for j in jobs if j.kind == "consistency" and j.name in names]
            else:
                found = [j for j in jobs if j.kind == "train" and j.dataset == pub["dataset"]
                         and (j.name == pub["cell"] or layout.arch_name(j.name) in names)
                         and (layout.own_recipe(j.name) or "") == pub["recipe"]]
            out.append({"paper": pub["paper"], "table": pub["table"], "row": pub["row"], "dataset": pub["dataset"],
                        "jobs": [{**j.as_dict(), "reported": self.reported_by(j)} for j in found],
                        "paired_by": pub["match"] + (f" +{pub['recipe']}" if pub["recipe"] else ""),
                        "differs": pub["differs"] or None, "no_run": pub["no_run"] or None})
        return out

    def reported_by(self, job: Job) -> str:
        """The statistic a job's result stands for in the tables."""
        if job.kind == "consistency":
            return "child_val_error"
        name = layout.arch_name(job.name)
        if job.role == "transfer":
            return self.transfer_run(job.name, job.dataset)[2]
        return self.search_name(name).reported if name else "final"


def _per_name(searched: list[dict]) -> dict[str, list[list[dict]]]:
    """The architectures of each search (in seed order), grouped by search name."""
    by_search: dict[tuple[str, int], list[dict]] = {}
    for arch in searched:
        by_search.setdefault((arch["method"], arch["search_seed"]), []).append(arch)
    per_name: dict[str, list[list[dict]]] = {}
    for (name, _), entries in by_search.items():
        per_name.setdefault(name, []).append(entries)
    return per_name


def _picked(entries: list[dict], pick) -> list[dict]:
    """The architectures of one search a `pick` takes: `all`; `final`; {nearest_macs: M}, the entry whose
    MACs (architectures.json: at the search's eval_channels and eval_layers) are nearest M millions;
    {largest_under_macs: M}, the largest below M millions (GOLD-NAS 4.3: "the largest (but smaller than
    600M)"; the smallest where none is, so a long search is never thrown away). A plan's stand-ins for
    a search not yet run carry no MACs: their final entry stands for the one picked."""
    if pick == "all":
        return list(entries)
    if pick == "final" or any("macs_M" not in e for e in entries):
        return [layout.final_architecture(entries)]
    if "nearest_macs" in pick:
        return [min(entries, key=lambda e: abs(e["macs_M"] - pick["nearest_macs"]))]
    under = [e for e in entries if e["macs_M"] < pick["largest_under_macs"]]
    return [max(under, key=lambda e: e["macs_M"])] if under else [min(entries, key=lambda e: e["macs_M"])]


def study_of(params) -> Study:
    """The study of a loaded settings object, built once per object."""
    cached = getattr(params, "_study", None)
    if cached is None:
        cached = Study(params)
        try:
            params._study = cached
        except AttributeError:  # a plain dict (a test's hand-made settings): built each time
            pass
    return cached


def method_settings(params, name: str) -> dict:
    """A named search's resolved settings (what its settings.json records)."""
    return study_of(params).search_name(name).settings


def stand_in_architectures(root: Path, points: Callable[[str], int]) -> Callable[[str, int], list[dict]]:
    """`archs_of` for a plan made before (or while) the searches run: a search's architectures.json under
    `root` where it exists, else `points(name)` stand-in entries, so the fan-out is computed by the same
    code as when the searches have ended."""
    def archs_of(name: str, seed: int) -> list[dict]:
        real = root / layout.search_dir(name, seed) / "architectures.json"
        if real.is_file():
            return layout.read_architectures(real)
        return [{"id": f"{name}-s{seed}-{i}", "genotype": f"arch{i}.json"} for i in range(points(name))]

    return archs_of
