"""Drawing cells with matplotlib (pure Python, PNG or SVG): inputs on the left, nodes in order,
the output on the right, every edge labelled with its op."""
from __future__ import annotations

from pathlib import Path

from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.catalog.genotype import Genotype


def _draw_cell(ax, cell, title, cell_output):
    n = len(cell.nodes)
    pos = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for k in range(n):
        pos[k + 2] = (1.0 + k, 1.2 if k % 2 == 0 else -1.2)
    out = (n + 1.5, 0.0)
    for k, node in enumerate(cell.nodes):
        tx, ty = pos[k + 2]
        for j, e in enumerate(node):
            sx, sy = pos[e.input]
            ax.annotate("", xy=(tx, ty), xytext=(sx, sy),
                        arrowprops=dict(arrowstyle="->", color="0.35", shrinkA=14, shrinkB=14,
                                        connectionstyle=f"arc3,rad={0.15 * (j - (len(node) - 1) / 2)}"))
            ax.text((sx + tx) / 2, (sy + ty) / 2 + 0.12 * (j - (len(node) - 1) / 2), e.op.label(),
                    fontsize=7, ha="center", va="center", color="tab:blue",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    for i in cell.concat:
        ax.annotate("", xy=out, xytext=pos[i],
                    arrowprops=dict(arrowstyle="->", color="0.75", shrinkA=14, shrinkB=18, ls="--"))
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    for i, (x, y) in pos.items():
        colour = "palegreen" if i < 2 else "lightblue"
        ax.text(x, y, f"${names[i]}$" if i < 2 else str(i - 2), ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc=colour, ec="0.3"))
    ax.text(*out, f"$c_{{k}}$\n{cell_output}", ha="center", va="center", fontsize=9,
            bbox=dict(boxstyle="round", fc="khaki", ec="0.3"))
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-0.6, n + 2.2)
    ax.set_ylim(-1.9, 1.9)
    ax.axis("off")


def draw_genotype(genotype: Genotype, out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise NasflowError(f"--out {out}: the drawing is written as .png or .svg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = genotype.cells
    width = max(4.0, 1.6 * (max(len(c.nodes) for c in cells) + 3))
    fig, axes = plt.subplots(len(cells), 1, figsize=(width, 2.6 * len(cells)), squeeze=False)
    for i, (ax, cell) in enumerate(zip(axes[:, 0], cells)):
        kind = "reduction" if cell.reduction else "normal"
        title = f"{genotype.name or 'genotype'}: {kind} cell" + (f" {i}" if genotype.layout == "per-position" else "")
        _draw_cell(ax, cell, title, genotype.cell_output)
    fig.tight_layout()
    with nio.atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix[1:].lower(), dpi=120)
    plt.close(fig)
    return out
