"""The one supernet every search method shares.

Cells of `nodes` nodes; every node reads every earlier state through a mixed edge that holds one module
per candidate op. Architecture weights live in *groups*: one per cell type (`layout: shared`, DARTS and
ASAP) or one per cell (`layout: per-position`, GOLD-NAS). A method turns a group's alpha into op weights;
the supernet only mixes. Pruning deletes the op's module from every cell of its group, so the pruned op
leaves the module graph, the optimizer (see `rebuild_optimizer`) and every later step's cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from nasflow.errors import NasflowError
from nasflow.space.genotype import CellSpec, Edge, Genotype
from nasflow.space.network import reduction_layers
from nasflow.space.ops import POOLS, OpSpec, ReLUConvBN, FactorizedReduce, build_op, parse_op


@dataclass
class SpaceConfig:
    ops: list[str]
    channels: int = 16
    layers: int = 8
    nodes: int = 4
    layout: str = "shared"          # "shared" (normal/reduce alphas) or "per-position" (one per cell)
    cell_output: str = "concat"     # "concat", "mean" or "conv1x1"
    num_classes: int = 10
    in_channels: int = 3
    stem_multiplier: int = 3
    candidates: list = field(default_factory=list)  # filled from ops

    def __post_init__(self):
        self.candidates = [parse_op(o) for o in self.ops]
        if len(set(self.ops)) != len(self.ops):
            raise NasflowError(f"search ops list a candidate twice: {self.ops}")


def edge_inputs(nodes: int) -> list[tuple[int, int]]:
    """(node, input) of every mixed edge, in DARTS order: node 0's two inputs, node 1's three, ..."""
    return [(k, j) for k in range(nodes) for j in range(k + 2)]


def _slot_key(slot: int) -> str:
    return f"s{slot}"


class MixedEdge(nn.Module):
    """One module per alive candidate slot; the output is the weighted sum over the slots asked for."""

    def __init__(self, candidates: list[OpSpec], c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleDict()
        for slot, spec in enumerate(candidates):
            op = build_op(spec, c, stride, affine=False)
            if spec.name in POOLS:  # as DARTS: pooling outputs are normalised to match the convs' scale
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops[_slot_key(slot)] = op

    def forward(self, x, weights: torch.Tensor, slots: list[int]):
        out = None
        for s in slots:
            y = weights[s] * self.ops[_slot_key(s)](x)
            out = y if out is None else out + y
        return out

    def remove(self, slot: int) -> list[nn.Parameter]:
        module = self.ops[_slot_key(slot)]
        del self.ops[_slot_key(slot)]
        return list(module.parameters())


class SearchCell(nn.Module):
    def __init__(self, space: SpaceConfig, c_pp, c_p, c, reduction, reduction_prev, group: str):
        super().__init__()
        self.reduction, self.group, self.nodes = reduction, group, space.nodes
        self.preprocess0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedEdge(space.candidates, c, 2 if reduction and j < 2 else 1) for _, j in edge_inputs(space.nodes))
        self.inputs = edge_inputs(space.nodes)
        self.cell_output = space.cell_output
        self.fuse = ReLUConvBN(space.nodes * c, c, 1, 1, 0, affine=False) if space.cell_output == "conv1x1" else None
        self.c_out = space.nodes * c if space.cell_output == "concat" else c

    def forward(self, s0, s1, weights: torch.Tensor, plan: list[list[int]]):
        """`plan[e]` lists the slots edge e runs (empty: the edge is cut); `weights[e, slot]` mixes them."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for k in range(self.nodes):
            total = None
            for j in range(k + 2):
                if plan[e]:
                    y = self.edges[e](states[j], weights[e], plan[e])
                    total = y if total is None else total + y
                e += 1
            if total is None:  # every input of this node was cut: it contributes zeros
                total = torch.zeros_like(states[1])
            states.append(total)
        nodes = states[2:]
        if self.cell_output == "mean":
            return torch.stack(nodes).mean(0)
        out = torch.cat(nodes, dim=1)
        return self.fuse(out) if self.fuse is not None else out


class ArchGroup(nn.Module):
    """Architecture weights of one cell type (or one cell), with which candidates are still alive.
    `frozen` keeps the alpha an op had when it was pruned, so later optimizer steps (Adam keeps moving
    parameters whose gradient is zero) cannot change what the derivation sees of it."""

    def __init__(self, n_edges: int, n_slots: int, reduction: bool, init: float = 1e-3):
        super().__init__()
        self.reduction = reduction
        self.alpha = nn.Parameter(init * torch.randn(n_edges, n_slots))
        self.register_buffer("alive", torch.ones(n_edges, n_slots, dtype=torch.bool))
        self.register_buffer("frozen", torch.zeros(n_edges, n_slots))

    def plan(self) -> list[list[int]]:
        return [torch.nonzero(row).flatten().tolist() for row in self.alive]

    @torch.no_grad()
    def restore_pruned(self):
        self.alpha.copy_(torch.where(self.alive, self.alpha, self.frozen))


class Supernet(nn.Module):
    def __init__(self, space: SpaceConfig):
        super().__init__()
        self.space = space
        c = space.channels
        c_stem = space.stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self.cells = nn.ModuleList()
        c_pp, c_p, c_curr, reduction_prev = c_stem, c_stem, c, False
        n_edges = len(edge_inputs(space.nodes))
        groups = {}
        for i in range(space.layers):
            reduction = i in reduction_layers(space.layers)
            if reduction:
                c_curr *= 2
            group = f"cell{i}" if space.layout == "per-position" else ("reduce" if reduction else "normal")
            groups.setdefault(group, reduction)
            cell = SearchCell(space, c_pp, c_p, c_curr, reduction, reduction_prev, group)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.c_out
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, space.num_classes)
        self.groups = nn.ModuleDict({g: ArchGroup(n_edges, len(space.candidates), red) for g, red in groups.items()})
        self.refresh_plans()

    # ---- parameters ----------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [g.alpha for g in self.groups.values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # ---- structure -----------------------------------------------------------------------------------
    def refresh_plans(self):
        self.plans = {name: g.plan() for name, g in self.groups.items()}

    def prune(self, group: str, edge: int, slot: int) -> list[nn.Parameter]:
        """Remove a candidate from every cell of its group; returns the parameters that left the graph."""
        g = self.groups[group]
        if not g.alive[edge, slot]:
            return []
        g.alive[edge, slot] = False
        g.frozen[edge, slot] = g.alpha.detach()[edge, slot]
        removed = []
        for cell in self.cells:
            if cell.group == group:
                removed += cell.edges[edge].remove(slot)
        self.refresh_plans()
        return removed

    def apply_alive(self, alive: dict[str, torch.Tensor]):
        """Rebuild the pruned structure of a checkpoint before loading its weights."""
        for name, mask in alive.items():
            for edge, slot in torch.nonzero(~mask.bool()).tolist():
                self.prune(name, edge, slot)

    def alive_ops(self) -> int:
        """Op modules still alive across the whole network (what each step computes)."""
        return sum(len(slots) for cell in self.cells for slots in self.plans[cell.group])

    def mixed_edges(self) -> int:
        """Edges that still mix more than one op, across the network."""
        return sum(len(slots) > 1 for cell in self.cells for slots in self.plans[cell.group])

    def arch_ops(self) -> tuple[int, int]:
        """(alive, total) candidates in the architecture (per group, not per cell)."""
        alive = sum(int(g.alive.sum()) for g in self.groups.values())
        total = sum(g.alive.numel() for g in self.groups.values())
        return alive, total

    # ---- forward -------------------------------------------------------------------------------------
    def forward(self, x, weights: dict[str, torch.Tensor], plans: dict[str, list[list[int]]] | None = None):
        plans = plans or self.plans
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[cell.group], plans[cell.group])
        return self.classifier(self.global_pooling(s1).flatten(1))

    # ---- derivation ----------------------------------------------------------------------------------
    def genotype_from_choice(self, choice: dict[str, list[list[tuple[int, int]]]], cell_output="concat") -> Genotype:
        """`choice[group][node]` lists the (edge, slot) pairs a node keeps."""
        cells = []
        for name, g in self.groups.items():
            nodes = []
            for node_edges in choice[name]:
                nodes.append([Edge(self.space.candidates[slot], edge_inputs(self.space.nodes)[edge][1])
                              for edge, slot in sorted(node_edges, key=lambda es: edge_inputs(self.space.nodes)[es[0]][1])])
            cells.append(CellSpec(g.reduction, nodes, list(range(2, self.space.nodes + 2))))
        layout = "per-position" if self.space.layout == "per-position" else "shared"
        return Genotype(cells, layout, cell_output)


def top_k_per_node(weights: torch.Tensor, allowed: torch.Tensor, nodes: int, k: int = 2) -> list[list[tuple[int, int]]]:
    """The DARTS rule: each node keeps its k incoming edges whose strongest allowed op weighs most, each
    with that op. Ties go to the lower input index, then the lower slot (deterministic)."""
    masked = torch.where(allowed, weights, torch.full_like(weights, -1.0))
    choice, e0 = [], 0
    for node in range(nodes):
        n_in = node + 2
        best_w, best_slot = masked[e0:e0 + n_in].max(dim=1)
        order = sorted(range(n_in), key=lambda j: (-float(best_w[j]), j))
        keep = [j for j in order if float(best_w[j]) >= 0][:k]
        choice.append([(e0 + j, int(best_slot[j])) for j in sorted(keep)])
        e0 += n_in
    return choice


def rebuild_optimizer(old: torch.optim.Optimizer, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """A new optimizer over `params` (the survivors of a pruning) that keeps their state (momentum,
    Adam moments): pruned parameters leave the optimizer as well as the graph."""
    group = {k: v for k, v in old.param_groups[0].items() if k != "params"}
    new = type(old)(params, **group)
    for p in params:
        if p in old.state:
            new.state[p] = old.state[p]
    return new
