"""The one loader for params.yaml: base settings, a profile overlay, then `--set key=value` overrides,
validated against `params.schema.yaml` with errors that name the offending key."""
from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path

import yaml

from nasflow.errors import NasflowError
from nasflow.catalog import datasets
from nasflow.catalog import methods as registry
from nasflow.schema_check import inline_refs, problems


class Params(dict):
    """The merged settings; `base_dir` is where params.yaml lives, so relative paths in it resolve
    the same whichever directory a verb runs from."""

    base_dir: Path = Path(".")
    profile: str | None = None

    def path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def schema() -> dict:
    """params.schema.yaml with the declared datasets' names (nasflow.catalog.datasets) as its dataset enum,
    and each registered search method's block (the common search keys, laid under what the method
    declares)."""

    full = yaml.safe_load(resources.files("nasflow").joinpath("params.schema.yaml").read_text())
    full["$defs"]["dataset"]["enum"] = datasets.names()
    full = inline_refs(full)
    search = full["properties"]["search"]
    common = full["$defs"]["search_common"]
    search["properties"]["names"]["items"] = {"type": "string"}  # a method or variant: check_searches
    for name in registry.names():
        declared = _declared_schema(name, common)
        required = declared.get("required", [])
        parent = registry.method(name).settings_from
        if parent:  # what the parent's block must hold, this block inherits
            required = [k for k in required if k not in _declared_schema(parent, common).get("required", [])]
        search["properties"][name] = {"type": "object", "additionalProperties": False,
                                      "required": list(required),
                                      "properties": {**common, **declared.get("properties", {})}}
    return full


def _declared_schema(name: str, common: dict) -> dict:
    declared = registry.method(name).schema
    return declared(common) if callable(declared) else declared


def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


PAPER_PARTS = ("search", "train", "paper_profile")
# The lists several papers add items to (the paper profile's searches and cells); every other list, like
# a value, must be the same wherever it is written.
JOINED_LISTS = {("search", "names"), ("train", "retrain_cells"), ("train", "transfer", "datasets"),
                ("train", "transfer", "cells")}


def join(base: dict, part: dict, where: str, at: tuple = ()) -> dict:
    """Lay one paper's section beside the rest of the file: blocks merge, the JOINED_LISTS join without
    repeats (paper by paper, in the file's order), and any other value set in two places must be the same,
    so that no paper silently wins over another."""
    out = copy.deepcopy(base)
    for key, value in part.items():
        here = (*at, key)
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = join(out[key], value, f"{where}.{key}", here)
        elif here in JOINED_LISTS and isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + [copy.deepcopy(v) for v in value if v not in out[key]]
        elif out[key] != value:
            raise NasflowError(f"{where}.{key}: {value!r} differs from {out[key]!r}, set elsewhere in the file")
    return out


def lay_papers(raw: dict, profiles: dict, source: str, origins: dict) -> dict:
    """`papers:` laid into the settings: each paper's search and train parts into the base, its
    paper_profile part into profiles.paper (before what profiles.paper itself says). `origins` records which
    paper wrote each block (validate's errors name it)."""
    papers = raw.pop("papers", None) or {}
    if not isinstance(papers, dict):
        raise NasflowError(f"{source}: 'papers' must map paper names to their settings")
    paper_profile: dict = {}
    for name, section in papers.items():
        where = f"{source}: papers.{name}"
        if not isinstance(section, dict):
            raise NasflowError(f"{where}: a paper's section must be a mapping of {', '.join(PAPER_PARTS)}")
        for key, value in section.items():
            if key not in PAPER_PARTS:
                raise NasflowError(f"{where}: unknown key {key!r} (a paper's section holds {', '.join(PAPER_PARTS)})")
            if not isinstance(value, dict):
                raise NasflowError(f"{where}.{key}: must be a mapping")
        raw = join(raw, {k: v for k, v in section.items() if k != "paper_profile"}, where)
        origins.update({(part, key): name for part in ("search", "train") for key in section.get(part, {})
                        if isinstance(section[part][key], dict)})
        paper_profile = join(paper_profile, section.get("paper_profile", {}), f"{where}.paper_profile")
    if paper_profile:
        own = profiles.get("paper") or {}
        if not isinstance(own, dict):
            raise NasflowError(f"{source}: profiles.paper must be a mapping")
        profiles["paper"] = join(paper_profile, own, f"{source}: profiles.paper")
    return raw


def apply_override(cfg: dict, assignment: str) -> None:
    """`a.b.c=value`; the value is read as YAML, so `3`, `1e-3`, `true`, `[0, 1]` keep their types."""
    if "=" not in assignment:
        raise NasflowError(f"--set {assignment!r}: expected key=value (for example search.epochs=5)")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise NasflowError(f"--set {key}: {'.'.join(parts[:i + 1])} is not a block of settings")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise NasflowError(f"--set {key}: value {raw!r} is not valid YAML ({exc.problem})") from None


def _yaml_typed(value):
    """Snakemake's --config hands every scalar over as a string; read each back as YAML."""
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    if isinstance(value, list):
        return [_yaml_typed(v) for v in value]
    if isinstance(value, dict):
        return {k: _yaml_typed(v) for k, v in value.items()}
    return value


def flatten_overrides(tree: dict, prefix: str = "") -> list[str]:
    """{"data": {"download": "true"}} -> ["data.download=true"]: nested overrides (Snakemake's --config)
    as the `--set` assignments every verb understands."""
    out = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten_overrides(value, dotted + "."))
        else:
            out.append(f"{dotted}={json.dumps(_yaml_typed(value))}")
    return out


def resolve_recipe_bases(cfg: dict) -> None:
    """Lay each recipe with `based_on: <recipe>` over the recipe it names (recursively), in place, after
    the profile and every override, so that a change to a base reaches the recipes built on it (ASAP-Medium's
    asap_cifar_44 is asap_cifar at 44 channels)."""
    recipes = ((cfg.get("train") or {}).get("recipes")) or {}
    if not isinstance(recipes, dict):
        return

    def resolved(name: str, seen: tuple) -> dict:
        recipe = recipes[name]
        base = recipe.get("based_on") if isinstance(recipe, dict) else None
        if base is None:
            return recipe
        if base not in recipes:
            raise NasflowError(f"train.recipes.{name}.based_on: {base!r} is not a recipe under train.recipes")
        if base in seen:
            raise NasflowError(f"train.recipes.{name}.based_on: {' -> '.join((*seen, base))} is a cycle")
        own = {k: v for k, v in recipe.items() if k != "based_on"}
        return {**resolved(base, (*seen, base)), **own}

    for name in list(recipes):
        recipes[name] = resolved(name, (name,))


def _check_pick(where: str, pick, many: bool) -> None:
    """A `pick` names one rule: a transfer takes one architecture (final or by MACs), a retraining also all."""
    if pick == "all" and not many:
        raise NasflowError(f"{where}: all: a transfer takes one architecture (final, {{nearest_macs: M}} or "
                           "{largest_under_macs: M})")
    if isinstance(pick, dict) and len(pick) != 1:
        raise NasflowError(f"{where}: {pick}: expected exactly one of nearest_macs, largest_under_macs")


def validate(cfg: dict, source: str = "params.yaml", origins: dict | None = None) -> None:
    """`origins` maps a block's path (("search", "darts")) to the paper whose section holds it, so an error
    names where in the file the key is written, not only where it lands."""
    found = problems(cfg, schema())
    if not found:
        return
    path, message = min(found, key=lambda pm: (len(pm[0]), [str(p) for p in pm[0]]))
    where = ".".join(str(p) for p in path)
    paper = (origins or {}).get(tuple(path[:2]))
    written = f"; written under papers.{paper}.{where}" if paper else ""
    if message.startswith("unknown key"):
        raise NasflowError(f"{source}: unknown settings key {where!r} ({message.split(': ', 1)[1]}{written})")
    raise NasflowError(f"{source}: {where or 'top level'}: {message}{written}")


SELECT_BY = ("supernet_val", "short_retrain")


def _is_search(params, name: str) -> bool:
    return name in registry.names() or name in params["search"].get("variants", {})


def _method_of(params, name: str) -> str:
    variant = params["search"].get("variants", {}).get(name)
    return variant["method"] if variant is not None else name


def check_searches(params) -> None:
    """What the schema cannot say: variants name registered methods and do not shadow one, their settings
    are keys of their method's block, protocol entries name searches, and `best_of` counts the seeds."""
    search = params["search"]
    methods_schema = schema()["properties"]["search"]["properties"]
    for name, variant in search.get("variants", {}).items():
        where = f"search.variants.{name}"
        if name in registry.names():
            raise NasflowError(f"{where}: {name!r} is a registered method's name; a variant needs a name of its own")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise NasflowError(f"{where}: {name!r}: a variant's name is lower-case letters, digits and '-' (it names "
                               "folders and cells, <name>-s<seed>-<index>)")
        if variant["method"] not in registry.names():
            raise NasflowError(f"{where}.method: unknown search method {variant['method']!r}; available: "
                               f"{', '.join(registry.names())}")
        block = {**methods_schema[variant["method"]], "required": []}
        found = problems(variant.get("settings", {}), block)
        if found:
            path, message = found[0]
            raise NasflowError(f"{where}.settings.{'.'.join(map(str, path))}: {message}".replace(".: ", ": "))
    for name in search["names"]:
        if not _is_search(params, name):
            raise NasflowError(f"search.names: {name!r} is neither a registered method ({', '.join(registry.names())}) "
                               "nor a name under search.variants")
    for name, entry in search.get("protocol", {}).items():
        where = f"search.protocol.{name}"
        if not _is_search(params, name):
            raise NasflowError(f"{where}: {name!r} is neither a registered method nor a variant")
        transfer = entry.get("transfer", params["train"]["transfer"]["datasets"])
        for dataset, own in entry.get("transfer_by_dataset", {}).items():
            if dataset not in transfer:
                raise NasflowError(f"{where}.transfer_by_dataset.{dataset}: {name!r} is not transferred to {dataset} "
                                   f"(its transfer datasets: {', '.join(transfer) or 'none'})")
            if "recipe" in own and own["recipe"] not in params["train"]["recipes"]:
                raise NasflowError(f"{where}.transfer_by_dataset.{dataset}.recipe: {own['recipe']!r} is not a recipe "
                                   "under train.recipes")
            _check_pick(f"{where}.transfer_by_dataset.{dataset}.pick", own.get("pick", "final"), many=False)
        for i, wanted in enumerate(entry.get("retrain", [])):
            _check_pick(f"{where}.retrain.{i}.pick", wanted["pick"], many=True)
            if "recipe" in wanted and wanted["recipe"] not in params["train"]["recipes"]:
                raise NasflowError(f"{where}.retrain.{i}.recipe: {wanted['recipe']!r} is not a recipe under train.recipes")
            if "recipe" in wanted and not re.fullmatch(r"[A-Za-z0-9_.-]+", wanted["recipe"]):
                raise NasflowError(f"{where}.retrain.{i}.recipe: {wanted['recipe']!r} names the trained cell "
                                   "(<id>+<recipe>): letters, digits, '_', '.', '-' only")
        select = entry.get("select", "all")
        if isinstance(select, str):
            if select != "all":
                raise NasflowError(f"{where}.select: {select!r}: expected all or {{best_of: N, by: {' | '.join(SELECT_BY)}}}")
            continue
        seeds = entry.get("seeds", search["seeds"])
        if select["best_of"] != len(seeds):
            raise NasflowError(f"{where}.select.best_of: {select['best_of']} searches, but the name is searched with "
                               f"{len(seeds)} seeds ({seeds}); best_of counts them")
        if select["by"] == "supernet_val" and not registry.method(_method_of(params, name)).trains_supernet:
            raise NasflowError(f"{where}.select.by: {name!r} trains no super-net; use short_retrain")
        if select["by"] == "short_retrain":
            _check_short_retrain(params, name, entry)


def _check_short_retrain(params, name: str, entry: dict) -> None:
    """A short retraining judges on held-out training images, never the test set, and streamed class
    folders hold nothing out: both are known before any search runs."""
    train = params["train"]
    recipe = train["selection_recipe"]
    if recipe not in train["recipes"]:
        raise NasflowError(f"train.selection_recipe: {recipe!r} is not a recipe under train.recipes "
                           f"(search.protocol.{name}.select.by is short_retrain)")
    if not {**train["recipe_defaults"], **train["recipes"][recipe]}["holdout_fraction"]:
        raise NasflowError(f"train.recipes.{recipe}.holdout_fraction: 0, but {recipe} is train.selection_recipe, "
                           f"which search.protocol.{name}.select judges on held-out training images (never the "
                           "test set); give it a holdout_fraction > 0")
    dataset = entry.get("retrain_dataset", train["dataset"])
    if datasets.dataset_info(dataset).streamed:
        raise NasflowError(f"search.protocol.{name}.select.by: short_retrain on {dataset}, which is streamed from "
                           "class folders and holds no training images out; use by: supernet_val")


def load_params(path: str | Path = "params.yaml", profile: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Params:
    path = Path(path)
    if not path.is_file():
        raise NasflowError(f"settings file {path} not found (pass --params PATH)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise NasflowError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise NasflowError(f"{path}: the top level must be a mapping of settings")
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise NasflowError(f"{path}: 'profiles' must map profile names to overlays")
    origins: dict = {}
    raw = lay_papers(raw, profiles, str(path), origins)
    chosen = profile if profile is not None else raw.get("profile")
    for name, overlay in profiles.items():
        # Every profile is checked, not only the chosen one, so a typo in `paper` is caught on a laptop.
        if not isinstance(overlay, dict):
            raise NasflowError(f"{path}: profiles.{name} must be a mapping")
        try:
            merged = deep_merge(raw, overlay)
            resolve_recipe_bases(merged)
            validate(merged, f"{path} (profile {name})", origins)
            try:
                check_searches(merged)
            except NasflowError as exc:
                raise NasflowError(f"{path} (profile {name}): {exc}") from None
        except NasflowError as exc:
            raise NasflowError(str(exc).replace(f"{path} (profile {name}): ", f"{path}: profiles.{name}: ")) from None
    cfg = raw
    if chosen not in (None, "", "base"):
        if chosen not in profiles:
            raise NasflowError(f"unknown profile {chosen!r}; {path} defines: {', '.join(profiles) or 'none'}")
        cfg = deep_merge(raw, profiles[chosen])
    cfg["profile"] = chosen or "base"
    for assignment in overrides:
        apply_override(cfg, assignment)
    resolve_recipe_bases(cfg)
    validate(cfg, str(path), origins)
    try:
        check_searches(cfg)
    except NasflowError as exc:
        raise NasflowError(f"{path}: {exc}") from None
    params = Params(cfg)
    params.base_dir = path.resolve().parent
    params.profile = cfg["profile"]
    return params
