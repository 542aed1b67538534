"""Figures from result files: the Pareto front, the search curves, reproduced against published errors,
and a drawing of every derived cell."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nasflow import io as nio
from nasflow import layout
from nasflow.space.draw import draw_genotype
from nasflow.catalog.genotype import load_genotype
from nasflow.study import study_of

# Quantities every search writes: one panel each, every run in it.
COMMON_CURVES = [("alive_candidates", "alive candidate ops"), ("epoch_seconds", "epoch time (s)"),
                 ("entropy", "normalised op entropy")]
# A method's own quantities: one panel per method that writes it (ASAP's and EnTranNAS's temperatures
# follow different schedules; GOLD-NAS's lambda weighs FLOPs, EnTranNAS-DST's its thresholds' term, eq. 11).
METHOD_CURVES = [("temperature", "temperature"), ("lambda", "lambda"), ("flops_M", "network MACs (M)")]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with nio.atomic_path(path) as tmp:
        # the tight box takes in labels that reach past the axes (point names, a legend beside them)
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path


def _colours(keys) -> dict:
    """One colour per key, the same in every panel of a figure."""
    import matplotlib

    keys = list(dict.fromkeys(keys))
    cmap = matplotlib.colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def _grid(plt, panels: int, width: float, height: float, columns: int = 3):
    columns = min(columns, max(panels, 1))
    rows = -(-max(panels, 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def pareto_plot(pareto: pd.DataFrame):
    """Retrained test error against MACs, one panel per evaluation network (MACs counted at different
    widths and depths do not share an axis), one colour per search; a search with several architectures
    (a GOLD-NAS front) joins its points in the order it recorded them."""
    plt = _pyplot()
    networks = list(pareto.groupby(["eval_dataset", "eval_channels", "eval_layers"], sort=False).groups)
    colours = _colours(f"{m} s{s}" for m, s in zip(pareto["method"], pareto["seed"]))
    fig, axes = _grid(plt, len(networks), 4.6, 3.6, columns=2)
    for ax, (dataset, channels, layers) in zip(axes, networks):
        here = pareto[(pareto["eval_dataset"] == dataset) & (pareto["eval_channels"] == channels)
                      & (pareto["eval_layers"] == layers)]
        for (method, seed), run in here.groupby(["method", "seed"], sort=False):
            ax.plot(run["macs_M"], run["test_error"], marker="o", markersize=4, linewidth=0.8,
                    color=colours[f"{method} s{seed}"], label=f"{method} s{seed}")
            for _, row in run.iterrows():
                ax.annotate(row["arch_id"], (row["macs_M"], row["test_error"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
        ax.margins(x=0.2, y=0.15)
        ax.set_title(f"{dataset}, {channels} channels, {layers} cells", fontsize=9)
        ax.set_xlabel("MACs (M) of this evaluation network")
        ax.set_ylabel("retrained test error (%)")
        ax.legend(fontsize=6)
    if not networks:
        axes = [fig.axes[0]]
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, "no searched architecture", ha="center", va="center")
    fig.tight_layout()
    return fig


def pareto_figure(pareto: pd.DataFrame, path: Path) -> Path:
    return _save(pareto_plot(pareto), path)


def search_curve_panels(params, root: Path) -> list[tuple[str, str, list[tuple[str, pd.Series, pd.Series]]]]:
    """(title, column, [(run label, epochs, values)]) per panel: the common quantities first, then each
    method's own, one panel per (quantity, method) so no two methods' schedules share one."""
    runs = []
    study = study_of(params)
    for name, seed in study.searches():
        history = pd.read_csv(root / layout.search_dir(name, seed) / "history.csv")
        if "epoch" in history:  # a baseline (random pruning) has candidates, not epochs
            runs.append((f"{name} s{seed}", study.search_name(name).method, history))

    def curve(label, history, column):
        values = history[column] if column in history else pd.Series(dtype=float)
        return (label, history["epoch"], values) if values.notna().any() else None

    panels = [(title, column, [c for label, _, h in runs if (c := curve(label, h, column))])
              for column, title in COMMON_CURVES]
    for column, title in METHOD_CURVES:
        for method in dict.fromkeys(method for _, method, _ in runs):
            lines = [c for label, m, h in runs if m == method and (c := curve(label, h, column))]
            if lines:
                panels.append((f"{title} ({method})", column, lines))
    return panels


def search_curves_plot(params, root: Path):
    """The panels of `search_curve_panels` on a grid, each run in one colour in every panel, one legend."""
    plt = _pyplot()
    panels = search_curve_panels(params, root)
    colours = _colours(label for _, _, lines in panels for label, _, _ in lines)
    fig, axes = _grid(plt, len(panels), 3.8, 2.7)
    for ax, (title, _, lines) in zip(axes, panels):
        for label, epochs, values in lines:
            ax.plot(epochs, values, marker=".", color=colours[label], label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], color=c, marker=".", label=label) for label, c in colours.items()]
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="search")
    return fig


def search_curves_figure(params, root: Path, path: Path) -> Path:
    return _save(search_curves_plot(params, root), path)


def published_figure(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Reproduced against published error for every pairing of Tables 1 and 2 (the diagonal: equal)."""
    plt = _pyplot()
    t1 = tables["table1"].dropna(subset=["paper_test_error"])
    points = [("retraining", t1["paper_test_error"], t1["test_error_mean"])]
    t2 = tables["table2"]
    for column in [c for c in t2.columns if c.startswith("paper_") and c.endswith("_error")
                   and not c.endswith("_top5_error")]:  # top-1 only: the axes compare top-1 errors
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
