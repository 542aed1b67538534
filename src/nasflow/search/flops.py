"""The supernet's cost from the analytic per-op counter: a table of every candidate's MACs at its place
in the network, the discretised MACs of what is alive (equal to the measured MACs of the evaluation
network built from the derived genotype), and GOLD-NAS's differentiable FLOPs(alpha) of eq. (5)."""
from __future__ import annotations

import torch

from nasflow.errors import NasflowError
from nasflow.search.supernet import Supernet, edge_inputs
from nasflow.catalog.sizes import analytic_cost, factorized_reduce_cost, relu_conv_bn_cost


def _half(size: int) -> int:
    return (size + 1) // 2


def _stem(space, image_size: int) -> tuple[int, int, int]:
    """(MACs of the stem, the first cell's input resolution, the resolution of its s0)."""
    if space.stem == "imagenet":  # three stride-2 3x3 convs; s0 is taken after the second
        c, s1, s2, s3 = space.channels, _half(image_size), _half(_half(image_size)), _half(_half(_half(image_size)))
        macs = space.in_channels * (c // 2) * 9 * s1 * s1 + (c // 2) * c * 9 * s2 * s2 + c * c * 9 * s3 * s3
        return macs, s3, s2
    c_stem = space.stem_multiplier * space.channels
    return space.in_channels * c_stem * 9 * image_size * image_size, image_size, image_size


def _cells(net: Supernet, image_size: int):
    """(cell, its input resolution, whether the previous cell reduced, resolution of s0, c_pp, c_p) for
    every cell; the ImageNet stem hands the first cell an s0 one resolution up, as a reduction would."""
    space = net.space
    imagenet = space.stem == "imagenet"
    _, size, prev_size = _stem(space, image_size)
    c_pp = space.channels if imagenet else space.stem_multiplier * space.channels
    c_p, prev_reduced = c_pp, imagenet
    for cell in net.cells:
        yield cell, size, prev_reduced, prev_size, c_pp, c_p
        c_pp, c_p = c_p, cell.c_out
        prev_size, prev_reduced = size, cell.reduction
        if cell.reduction:
            size = (size + 1) // 2


def op_macs_table(net: Supernet, image_size: int) -> dict[str, torch.Tensor]:
    """MACs of every (edge, slot) candidate summed over the cells of its group."""
    if net.space.feature_sharing or net.space.bottleneck > 1:
        raise NasflowError("the analytic FLOPs table covers plain mixed edges (no feature sharing, no bottleneck)")
    inputs = edge_inputs(net.space.nodes)
    tables = {name: torch.zeros(g.alive.shape, dtype=torch.float64) for name, g in net.groups.items()}
    for cell, size, _, _, _, _ in _cells(net, image_size):
        pools = net.groups[cell.group].pools
        out = (size + 1) // 2 if cell.reduction else size
        for e, (_, j) in enumerate(inputs):
            strided = cell.reduction and j < 2
            for slot, spec in enumerate(pools[e]):
                h = size if strided or not cell.reduction else out
                tables[cell.group][e, slot] += analytic_cost(spec, cell.c, 2 if strided else 1, h, h)[1]
    return tables


def fixed_macs(net: Supernet, image_size: int) -> int:
    """Everything but the candidates: stem, the cells' preprocessing (and 1x1 fusion), classifier."""
    space = net.space
    total = _stem(space, image_size)[0]
    last_c = None
    for cell, size, prev_reduced, prev_size, c_pp, c_p in _cells(net, image_size):
        if prev_reduced:
            total += factorized_reduce_cost(c_pp, cell.c, prev_size, prev_size)[1]  # s0 is one resolution up
        else:
            total += relu_conv_bn_cost(c_pp, cell.c, 1, 1, 0, size, size)[1]
        total += relu_conv_bn_cost(c_p, cell.c, 1, 1, 0, size, size)[1]
        out = (size + 1) // 2 if cell.reduction else size
        if cell.fuse is not None:
            total += relu_conv_bn_cost(space.nodes * cell.c, cell.c, 1, 1, 0, out, out)[1]
        last_c = cell.c_out
    return total + last_c * space.num_classes


def discrete_macs(net: Supernet, tables: dict[str, torch.Tensor], fixed: int) -> int:
    return int(fixed + sum(float(t[g.alive.cpu()].sum()) for t, g in zip(tables.values(), net.groups.values())))


def expected_flops(alpha: torch.Tensor, alive: torch.Tensor, macs: torch.Tensor) -> torch.Tensor:
    """Eq. (5): sum over alive ops of ln(1 + sigma(alpha_o) / mean sigma on its edge) * FLOPs(o).

    The edge's mean sigma is a normaliser held constant in the gradient. Appendix A.3 asks that (i) an
    op's expected FLOPs increase with its sigma(alpha), (ii) the edge's average sigma be considered,
    (iii) the penalty grow more slowly as sigma nears 1. With the gradient flowing through the mean,
    scaling every sigma of an edge together leaves the ratios, and so the term, unchanged: an op alone
    on its edge gets exactly zero FLOPs gradient (no edge could ever lose its last op) and raising
    lambda pushes skip-connects *up*, against (i). Detaching the mean keeps (ii) (each op is measured
    against its edge's current mean), satisfies (i) for every op (the derivative is
    FLOPs(o) sigma'(alpha_o) / (mean + sigma(alpha_o)) > 0), and (iii) through ln(1 + x)."""
    sig = torch.sigmoid(alpha) * alive
    count = alive.sum(1, keepdim=True).clamp_min(1)
    mean = (sig.sum(1, keepdim=True) / count).detach()
    ratio = torch.where(alive, sig / mean.clamp_min(1e-12), torch.zeros_like(sig))
    return (torch.log1p(ratio) * macs.to(alpha.dtype) * alive).sum()
