"""Figures from result files: the Pareto front, the search curves, reproduced against published errors,
and a drawing of every derived cell."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nasflow import io as nio
from nasflow import layout
from nasflow.study import study_of
from nasflow.space.draw import draw_genotype
from nasflow.space.genotype import load_genotype

CURVES = [("alive_candidates", "alive candidate ops"), ("epoch_seconds", "epoch time (s)"), ("entropy", "normalised op entropy"),
          ("temperature", "temperature (ASAP)"), ("lambda", "lambda (GOLD-NAS)"), ("flops_M", "network MACs (M)")]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with nio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def pareto_figure(pareto: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, group in pareto.groupby("method"):
        ax.scatter(group["macs_M"], group["test_error"], label=method)
        for _, row in group.iterrows():
            ax.annotate(row["arch_id"], (row["macs_M"], row["test_error"]), fontsize=6)
    ax.set_xlabel("MACs (M), evaluation network")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def search_curves_figure(params, root: Path, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    for method, seed in study_of(params).searches():
        history = pd.read_csv(root / layout.search_dir(method, seed) / "history.csv")
        for ax, (column, label) in zip(axes, CURVES):
            # each method writes its own columns (DARTS has no temperature); a baseline has no epochs
            if "epoch" in history and column in history and history[column].notna().any():
                ax.plot(history["epoch"], history[column], marker=".", label=f"{method} s{seed}")
            ax.set_xlabel("epoch")
            ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def published_figure(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Reproduced against published error for every pairing of Tables 1 and 2 (the diagonal: equal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t1 = tables["table1"].dropna(subset=["paper_test_error"])
    points = [("retraining", t1["paper_test_error"], t1["test_error_mean"])]
    t2 = tables["table2"]
    for column in [c for c in t2.columns if c.startswith("paper_") and c.endswith("_error")]:
        dataset = column[len("paper_"):-len("_error")]
        pairs = t2.dropna(subset=[column, f"{dataset}_error"])
        points.append((f"transfer {dataset}", pairs[column], pairs[f"{dataset}_error"]))
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    values = []
    for label, published, reproduced in points:
        if len(published):
            ax.scatter(published, reproduced, label=label, s=14)
            values += [*published, *reproduced]
    if values:
        low, high = min(values), max(values)
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "no published row pairs with these results", ha="center", va="center", fontsize=8)
    ax.set_xlabel("published test error (%)")
    ax.set_ylabel("reproduced test error (%)")
    fig.tight_layout()
    return _save(fig, path)


def build_figures(params, tables: dict[str, pd.DataFrame], root: str | Path, out: str | Path) -> list[Path]:
    root, out = Path(root), Path(out)
    written = [pareto_figure(tables["pareto"], out / "pareto.png"),
               search_curves_figure(params, root, out / "search_curves.png"),
               published_figure(tables, out / "published.png")]
    from nasflow.report.tables import searched

    for arch in searched(params, root):
        genotype = load_genotype(root / arch["genotype_path"])
        genotype.name = arch["id"]
        written.append(draw_genotype(genotype, out / "cells" / f"{arch['id']}.png"))
    return written
