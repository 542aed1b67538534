"""The four papers' published figures (published.csv, transcribed from their result tables and checked
against the papers' text by tests/report/test_published.py) beside the reproduced ones.

A published row names the nasflow search it is compared with (`nasflow`, a search name or a pattern such
as asap-magnitude-p*, where the paper does not say which variant it ran) and how the reproduced cell is
chosen (`match`): the search's final cell (every seed's), every cell its protocol's `retrain` picks
(`picked`: GOLD-NAS's X, Y, Z), or on a front the cell nearest in MACs (GOLD-NAS) or parameters (PR-DARTS).
A row with a `recipe` is compared only with a cell a protocol's `retrain` entry trains under that recipe of
its own (<id>+<recipe>: ASAP-Medium, the ASAP cell at 44 channels); a row without, only with cells under
their search's own recipe, whatever a profile names it. A row with a `cell` is also compared with that published cell
retrained by nasflow (train.retrain_cells, train.transfer.cells). `metric` says what the row measured:
a test error, or EnTranNAS Table 1's child network's validation error (consistency.csv).
"""
from __future__ import annotations

import fnmatch
from importlib import resources

import pandas as pd

from nasflow.catalog.cells import own_recipe

PAPER_COLUMNS = ["paper", "paper_table", "paper_row", "paper_test_error", "paper_test_error_std", "paper_top5_error",
                 "paper_params_M", "paper_macs_M", "paper_search_gpu_days", "delta"]


def published() -> pd.DataFrame:
    with resources.files("nasflow.catalog").joinpath("published.csv").open() as fh:
        table = pd.read_csv(fh, dtype={"cell": str, "recipe": str, "line": str, "differs": str, "no_run": str}, keep_default_na=False, na_values={
            c: [""] for c in ("test_error", "test_error_std", "top5_error", "params_M", "macs_M", "search_gpu_days")})
    return table


def measures() -> pd.DataFrame:
    """published_measures.csv: the papers' figures that are not a test error of a trained cell: EnTranNAS
    Table 1's super-net errors, Table 2's Kendall tau per method, Table 3's memory and search cost per
    component (`nasflow`: the search name, or `nasflow bench search`'s rung), each with its paper line."""
    with resources.files("nasflow.catalog").joinpath("published_measures.csv").open() as fh:
        return pd.read_csv(fh, dtype={"nasflow": str, "line": str, "no_run": str}, keep_default_na=False,
                           na_values={"value": [""]})


def measure_of(name: str, measure: str) -> tuple[float, str] | None:
    """(value, "paper table row") of the first published `measure` whose `nasflow` names `name`."""
    table = measures()
    rows = table[(table["measure"] == measure) & (table["nasflow"] == name)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return float(row["value"]), f"{row['paper']} {row['table']} {row['row']}"


def names_matching(pattern: str, names) -> set[str]:
    """The search names a row's `nasflow` pattern (asap-magnitude-p*) stands for."""
    return set(fnmatch.filter(list(names), pattern))


def _paper_values(pub: pd.Series, error: float | None) -> dict:
    delta = None if error is None or pd.isna(pub["test_error"]) else round(float(error) - float(pub["test_error"]), 3)
    value = (lambda k: None if pd.isna(pub[k]) else float(pub[k]))
    return {"paper": pub["paper"], "paper_table": pub["table"], "paper_row": pub["row"],
            "paper_test_error": value("test_error"), "paper_test_error_std": value("test_error_std"),
            "paper_top5_error": value("top5_error"),
            "paper_params_M": value("params_M"), "paper_macs_M": value("macs_M"),
            "paper_search_gpu_days": value("search_gpu_days"), "delta": delta}


def matches(rows: pd.DataFrame, pub: pd.Series) -> list[int]:
    """The index labels of `rows` (architecture, method, dataset, params_M, macs_M, final) that `pub` sits
    beside: its cell retrained, and its search's final cells, picked cells or the one nearest it on the
    front, trained under the row's own recipe where it names one."""
    here = rows[(rows["dataset"] == pub["dataset"])
                & (rows["architecture"].map(own_recipe).fillna("") == pub["recipe"])]
    found = list(here.index[here["architecture"] == pub["cell"]]) if pub["cell"] else []
    mine = here[here["method"].isin(names_matching(pub["nasflow"], here["method"].unique()))]
    if mine.empty or pub["match"] == "nearest_params":  # PR-DARTS: paired from the reproduced side (nearest_row)
        return found
    if pub["match"] == "final":
        return found + list(mine.index[mine["final"]])
    if pub["match"] == "picked":
        return found + list(mine.index)
    if pd.isna(pub["macs_M"]):
        return found
    return found + [(mine["macs_M"] - float(pub["macs_M"])).abs().idxmin()]


def nearest_row(pubs: pd.DataFrame, name: str, dataset: str, params_M: float) -> pd.Series | None:
    """PR-DARTS 4.3 shows "the most interesting" of three searches per space: each reproduced final cell
    sits beside its space's published row nearest in parameters (DL1 or DL2 for the darts-like space)."""
    rows = pubs[(pubs["match"] == "nearest_params") & (pubs["dataset"] == dataset) & pubs["params_M"].notna()
                & pubs["nasflow"].map(lambda p: fnmatch.fnmatch(name, p))]
    if rows.empty or pd.isna(params_M):
        return None
    return rows.loc[(rows["params_M"] - float(params_M)).abs().idxmin()]


def beside(rows: pd.DataFrame, error_column: str, metric: str = "test_error") -> pd.DataFrame:
    """`rows` with the paper columns: one row per (reproduced row, published row it is compared with); a
    reproduced row no published row names keeps empty paper columns."""
    pubs = published()
    pubs = pubs[pubs["metric"] == metric]
    paired: dict[int, list[dict]] = {}
    for _, pub in pubs.iterrows():
        for label in matches(rows, pub):
            paired.setdefault(label, []).append(_paper_values(pub, rows.at[label, error_column]))
    for label, row in rows[rows["final"]].iterrows():
        pub = nearest_row(pubs, row["method"], row["dataset"], row.get("params_M", float("nan")))
        if pub is not None:
            paired.setdefault(label, []).append(_paper_values(pub, row[error_column]))
    out = []
    for label, row in rows.iterrows():
        for values in paired.get(label, [dict.fromkeys(PAPER_COLUMNS)]):
            out.append({**row.to_dict(), **values})
    return pd.DataFrame(out, columns=[*rows.columns, *PAPER_COLUMNS])


def top5_datasets(datasets) -> list[str]:
    """The datasets some published row gives a top-5 error on (ImageNet): the tables carry top-5 there."""
    pubs = published()
    return [d for d in datasets if pubs.loc[pubs["dataset"] == d, "top5_error"].notna().any()]


def transfer_beside(rows: pd.DataFrame, datasets: list[str], searched_by: dict[str, str],
                    params_of: dict[str, float]) -> pd.DataFrame:
    """The transfer table (one row per architecture, `<dataset>_error` columns, and `<dataset>_top5_error`
    where `top5_datasets`) with `paper_<dataset>_error` (`paper_<dataset>_top5_error`) and `delta_<dataset>` from the first published row of each dataset that names the cell (by `cell`, or
    by its search's name for a searched cell: `searched_by` maps each transferred architecture to its search
    name, the transfer having taken the cell its protocol picks, as GOLD-NAS-I; PR-DARTS's by the nearest in
    parameters, `params_of`)."""
    pubs = published()
    pubs = pubs[pubs["metric"] == "test_error"]
    top5 = top5_datasets(datasets)
    out = []
    for _, row in rows.iterrows():
        arch = row["architecture"]
        name = searched_by.get(arch)
        named = pubs["nasflow"].map(lambda p: bool(name) and fnmatch.fnmatch(name, p))
        mine = pubs[((pubs["cell"] == arch) | (named & (pubs["match"] != "nearest_params")))
                    & pubs["dataset"].isin(datasets)]
        nearest = [nearest_row(pubs, name, d, params_of.get(arch, float("nan"))) for d in datasets] if name else []
        mine = pd.concat([mine, pd.DataFrame([n for n in nearest if n is not None])])
        labels = dict.fromkeys(f"{p} {t} {r}" for p, t, r in zip(mine["paper"], mine["table"], mine["row"]))
        values = {"paper_row": "; ".join(labels) or None}
        for d in datasets:
            pub = mine[mine["dataset"] == d]
            paper = None if pub.empty else float(pub.iloc[0]["test_error"])
            values[f"paper_{d}_error"] = paper
            values[f"delta_{d}"] = (None if paper is None or pd.isna(row[f"{d}_error"])
                                    else round(float(row[f"{d}_error"]) - paper, 3))
            if d in top5:
                values[f"paper_{d}_top5_error"] = None if pub.empty or pd.isna(pub.iloc[0]["top5_error"]) \
                    else float(pub.iloc[0]["top5_error"])
        out.append({**row.to_dict(), **values})
    columns = [*rows.columns, "paper_row", *[f"paper_{d}_error" for d in datasets],
               *[f"paper_{d}_top5_error" for d in top5], *[f"delta_{d}" for d in datasets]]
    return pd.DataFrame(out, columns=columns)


def method_beside(rows: pd.DataFrame, datasets: dict[str, str]) -> pd.DataFrame:
    """Table 3 (one row per search name): the first published row naming the search's final cell on its
    retraining dataset (`datasets`: name -> dataset)."""
    pubs = published()
    pubs = pubs[(pubs["metric"] == "test_error") & (pubs["match"] == "final")]
    out = []
    for _, row in rows.iterrows():
        name = row["method"]
        mine = pubs[pubs["nasflow"].map(lambda p: fnmatch.fnmatch(name, p)) & (pubs["dataset"] == datasets.get(name))]
        values = (_paper_values(mine.iloc[0], row["test_error_mean"]) if not mine.empty
                  else dict.fromkeys(PAPER_COLUMNS))
        out.append({**row.to_dict(), **values})
    return pd.DataFrame(out, columns=[*rows.columns, *PAPER_COLUMNS])
