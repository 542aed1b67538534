"""Named searches and each search's protocol: what `search.methods` may name beyond the registered
methods, and how many times a name is searched, which of its searches are kept, how often and where
the kept cells are retrained, and which error is reported.

A variant is a method plus a settings overlay (`search.variants.<name>: {method, settings}`): it searches
in its own folder (results/search/<variant>/seed<k>/), its cells carry its name (<variant>-s<k>-<i>) and
it has its own rows in the tables. `search.protocol.<name>` holds the per-name protocol; a key it leaves
out takes the common value (search.seeds, every search kept, train.seeds, train.dataset, final error,
train.transfer.datasets).
"""
from __future__ import annotations

import re

from nasflow.errors import NasflowError

SELECT_BY = ("supernet_val", "short_retrain")
REPORTED = ("final", "last_5_mean")


def names(params) -> list[str]:
    """The searches the pipeline runs, in settings order."""
    return list(params["search"]["methods"])


def is_search(params, name: str) -> bool:
    """A registered method or a variant of this settings file."""
    from nasflow.catalog import methods as registry

    return name in registry.names() or name in params["search"].get("variants", {})


def method_of(params, name: str) -> str:
    """The registered method a search name runs (itself, or its variant's method)."""
    from nasflow.catalog import methods as registry

    variant = params["search"].get("variants", {}).get(name)
    if variant is not None:
        return variant["method"]
    registry.method(name)  # an unknown name is refused here, listing the registered methods
    return name


def variant_settings(params, name: str) -> dict:
    """The overlay a variant lays over its method's block (empty for a method itself)."""
    return dict(params["search"].get("variants", {}).get(name, {}).get("settings", {}))


def _entry(params, name: str) -> dict:
    return params["search"].get("protocol", {}).get(name, {})


def search_seeds(params, name: str) -> list[int]:
    return list(_entry(params, name).get("seeds", params["search"]["seeds"]))


def selection(params, name: str) -> dict | None:
    """None: every search of the name is retrained; else {best_of: N, by: supernet_val | short_retrain}."""
    select = _entry(params, name).get("select", "all")
    return None if select == "all" else dict(select)


def retrain_seeds(params, name: str) -> list[int]:
    return list(_entry(params, name).get("retrain_seeds", params["train"]["seeds"]))


def retrain_dataset(params, name: str) -> str:
    return _entry(params, name).get("retrain_dataset", params["train"]["dataset"])


def transfer_datasets(params, name: str) -> list[str]:
    """Where the name's final cells are transferred (train.transfer.searched_per_method of its searches)."""
    return list(_entry(params, name).get("transfer", params["train"]["transfer"]["datasets"]))


def reported(params, name: str) -> str:
    """`final`: the last epoch's test error; `last_5_mean`: the mean of the last five epochs' (PR-DARTS)."""
    return _entry(params, name).get("reported", "final")


def check(params) -> None:
    """What the schema cannot say: variants name registered methods and do not shadow one, their settings
    are keys of their method's block, protocol entries name searches, and `best_of` counts the seeds."""
    from nasflow.schema_check import problems
    from nasflow.catalog import methods as registry
    from nasflow.settings import schema

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
    for name in search["methods"]:
        if not is_search(params, name):
            raise NasflowError(f"search.methods: {name!r} is neither a registered method ({', '.join(registry.names())}) "
                               "nor a name under search.variants")
    for name, entry in search.get("protocol", {}).items():
        where = f"search.protocol.{name}"
        if not is_search(params, name):
            raise NasflowError(f"{where}: {name!r} is neither a registered method nor a variant")
        select = entry.get("select", "all")
        if isinstance(select, str):
            if select != "all":
                raise NasflowError(f"{where}.select: {select!r}: expected all or {{best_of: N, by: {' | '.join(SELECT_BY)}}}")
            continue
        seeds = entry.get("seeds", search["seeds"])
        if select["best_of"] != len(seeds):
            raise NasflowError(f"{where}.select.best_of: {select['best_of']} searches, but the name is searched with "
                               f"{len(seeds)} seeds ({seeds}); best_of counts them")
        if select["by"] == "supernet_val" and not registry.method(method_of(params, name)).trains_supernet:
            raise NasflowError(f"{where}.select.by: {name!r} trains no super-net; use short_retrain")
