"""The one supernet every search method shares.

Cells of `nodes` nodes; every node reads every earlier state through a mixed edge that holds one module
per candidate op. Architecture weights live in *groups*: one per cell type (`layout: shared`, DARTS and
ASAP) or one per cell (`layout: per-position`, GOLD-NAS). A method turns a group's alpha into op weights;
the supernet only mixes. What the later methods need is here too:

- per-edge candidate pools that change during a search (`set_pool`, PR-DARTS), each new op possibly
  inheriting a module built from its parent;
- feature sharing (`feature_sharing: true`, EnTranNAS eq. 6): an op applied to state j is computed once
  and reused by every node that reads j, with its own parameters per (state, op): eq. 6's w_k^(i), one
  module per source node i and op k, instead of one per edge (i, j) and op;
- a 1x1 bottleneck before the candidates (`bottleneck: r`, EnTranNAS 2.5: a 1x1 conv takes each source
  state to C/r channels, the candidates run there, and one 1x1 conv per intermediate node brings the sum
  of its inputs back to C);
- transit cells (`forward(..., cell_slots=...)`): cells that run only a derived sub-graph.

Pruning deletes the op's module from every cell of its group, so it leaves the module graph, the
optimizer (see `rebuild_optimizer`) and every later step's cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from nasflow.errors import NasflowError
from nasflow.catalog.genotype import CellSpec, Edge, Genotype
from nasflow.space.network import reduction_layers
from nasflow.catalog.ops import POOLS, OpSpec, parse_op
from nasflow.space.ops import FactorizedReduce, ReLUConvBN, build_op


@dataclass
class SpaceConfig:
    ops: list
    channels: int = 16
    layers: int = 8
    nodes: int = 4
    layout: str = "shared"          # "shared" (normal/reduce alphas) or "per-position" (one per cell)
    cell_output: str = "concat"     # "concat", "mean" or "conv1x1"
    num_classes: int = 10
    in_channels: int = 3
    stem_multiplier: int = 3
    feature_sharing: bool = False
    bottleneck: int = 1             # candidates run at C / bottleneck channels (1: no bottleneck)
    stem: str = "cifar"             # "cifar": one 3x3 conv; "imagenet": three stride-2 convs (GOLD-NAS appendix C)
    candidates: list = field(default_factory=list)  # filled from ops

    def __post_init__(self):
        self.candidates = [parse_op(o) for o in self.ops]
        if len(set(map(str, self.ops))) != len(self.ops):
            raise NasflowError(f"search ops list a candidate twice: {self.ops}")
        if self.stem not in ("cifar", "imagenet"):
            raise NasflowError(f"stem {self.stem!r}: expected cifar or imagenet")
        if self.stem == "imagenet" and self.channels % 2:
            raise NasflowError(f"search.channels ({self.channels}) must be even with the ImageNet stem (it starts at C/2)")
        if self.channels % self.bottleneck:
            raise NasflowError(f"search.channels ({self.channels}) must be divisible by the bottleneck ratio "
                               f"({self.bottleneck})")


def edge_inputs(nodes: int) -> list[tuple[int, int]]:
    """(node, input) of every mixed edge, in DARTS order: node 0's two inputs, node 1's three, ..."""
    return [(k, j) for k in range(nodes) for j in range(k + 2)]


def _slot_key(slot: int) -> str:
    return f"s{slot}"


def candidate_module(spec: OpSpec, c: int, stride: int) -> nn.Module:
    op = build_op(spec, c, stride, affine=False)
    if spec.name in POOLS:  # as DARTS: pooling outputs are normalised to match the convs' scale
        op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


class CandidateSet(nn.Module):
    """The candidate modules applied to one input: one per alive slot, behind an optional bottleneck
    (a 1x1 conv to C / r channels that feeds all of them; the cell brings each node back to C)."""

    def __init__(self, candidates: list[OpSpec], c: int, stride: int, bottleneck: int):
        super().__init__()
        inner = c // bottleneck
        self.reduce = ReLUConvBN(c, inner, 1, 1, 0, affine=False) if bottleneck > 1 else None
        self.inner, self.stride = inner, stride
        self.ops = nn.ModuleDict({_slot_key(s): candidate_module(spec, inner, stride) for s, spec in enumerate(candidates)})

    def outputs(self, x, slots: list[int], cache: dict | None = None) -> dict[int, torch.Tensor]:
        """Each asked-for slot's output on x (computed once when a cache is shared between edges)."""
        cache = {} if cache is None else cache
        if self.reduce is not None and "reduced" not in cache:
            cache["reduced"] = self.reduce(x)
        inner_x = cache.get("reduced", x)
        for s in slots:
            if s not in cache:
                cache[s] = self.ops[_slot_key(s)](inner_x)
        return cache

    def mix(self, outputs: dict, weights: torch.Tensor | None, slots: list[int]) -> torch.Tensor:
        """Weighted sum of the slots' outputs; `weights=None` sums them as they are (a derived cell)."""
        out = None
        for s in slots:
            y = outputs[s] if weights is None else weights[s] * outputs[s]
            out = y if out is None else out + y
        return out

    def remove(self, slot: int) -> list[nn.Parameter]:
        if _slot_key(slot) not in self.ops:
            return []
        module = self.ops[_slot_key(slot)]
        del self.ops[_slot_key(slot)]
        return list(module.parameters())

    def module(self, slot: int) -> nn.Module:
        return self.ops[_slot_key(slot)]

    def put(self, slot: int, module: nn.Module) -> None:
        self.ops[_slot_key(slot)] = module


class SearchCell(nn.Module):
    def __init__(self, space: SpaceConfig, c_pp, c_p, c, reduction, reduction_prev, group: str):
        super().__init__()
        self.reduction, self.group, self.nodes, self.c = reduction, group, space.nodes, c
        self.sharing, self.bottleneck = space.feature_sharing, space.bottleneck
        self.preprocess0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.inputs = edge_inputs(space.nodes)
        stride = lambda j: 2 if reduction and j < 2 else 1
        if self.sharing:  # one candidate set per source state (the last node feeds nothing)
            self.sources = nn.ModuleList(CandidateSet(space.candidates, c, stride(j), space.bottleneck)
                                         for j in range(space.nodes + 1))
        else:
            self.edges = nn.ModuleList(CandidateSet(space.candidates, c, stride(j), space.bottleneck)
                                       for _, j in self.inputs)
        # EnTranNAS 2.5: one 1x1 conv per intermediate node brings the C / r mixture back to C channels
        self.expand = (nn.ModuleList(nn.Sequential(nn.Conv2d(c // space.bottleneck, c, 1, bias=False),
                                                   nn.BatchNorm2d(c, affine=False)) for _ in range(space.nodes))
                       if space.bottleneck > 1 else None)
        self.cell_output = space.cell_output
        self.fuse = ReLUConvBN(space.nodes * c, c, 1, 1, 0, affine=False) if space.cell_output == "conv1x1" else None
        self.c_out = space.nodes * c if space.cell_output == "concat" else c

    def candidate_set(self, edge: int) -> CandidateSet:
        return self.sources[self.inputs[edge][1]] if self.sharing else self.edges[edge]

    def forward(self, s0, s1, weights: torch.Tensor | None, edge_slots: list[list[int]]):
        """`edge_slots[e]` lists the slots edge e runs (empty: the edge is cut); `weights[e, slot]` mixes them
        (`weights=None`: each runs with coefficient 1, as in the evaluation network)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        caches = [{} for _ in range(self.nodes + 2)] if self.sharing else None
        e = 0
        for k in range(self.nodes):
            total = None
            for j in range(k + 2):
                if edge_slots[e]:
                    cs = self.candidate_set(e)
                    outs = cs.outputs(states[j], edge_slots[e], caches[j] if self.sharing else None)
                    y = cs.mix(outs, None if weights is None else weights[e], edge_slots[e])
                    total = y if total is None else total + y
                e += 1
            if total is not None and self.expand is not None:
                total = self.expand[k](total)
            if total is None:  # every input of this node was cut: it contributes zeros at the node's size
                ref = states[1]
                size = [(d + 1) // 2 for d in ref.shape[2:]] if self.reduction else list(ref.shape[2:])
                total = ref.new_zeros(ref.shape[0], self.c, *size)
            states.append(total)
        nodes = states[2:]
        if self.cell_output == "mean":
            return torch.stack(nodes).mean(0)
        out = torch.cat(nodes, dim=1)
        return self.fuse(out) if self.fuse is not None else out


class ArchGroup(nn.Module):
    """Architecture weights of one cell type (or one cell), with which candidates are still alive and
    each edge's candidate pool. `frozen` keeps the alpha an op had when it was pruned, so later
    optimizer steps (Adam keeps moving parameters whose gradient is zero) cannot change what the
    derivation sees of it. A method whose op weights are a softmax over the alive ops (ASAP) calls
    `freeze_last_ops`: an edge's last op then weighs 1 whatever its alpha, so its alpha too stays where
    it was at the step that left it alone (`restore_pruned` puts it back there)."""

    def __init__(self, n_edges: int, candidates: list[OpSpec], reduction: bool, init: float = 1e-3):
        super().__init__()
        self.reduction = reduction
        self.pools = [list(candidates) for _ in range(n_edges)]
        self.alpha = nn.Parameter(init * torch.randn(n_edges, len(candidates)))
        self.register_buffer("alive", torch.ones(n_edges, len(candidates), dtype=torch.bool))
        self.register_buffer("frozen", torch.zeros(n_edges, len(candidates)))
        self.last_ops_fixed = False  # the method's choice (`freeze_last_ops`), made anew when it is built

    def edge_slots(self) -> list[list[int]]:
        return [torch.nonzero(row).flatten().tolist() for row in self.alive]

    def lone(self) -> torch.Tensor:
        """The alive op of every edge that holds one, as a mask."""
        return self.alive & (self.alive.sum(1, keepdim=True) == 1)

    @torch.no_grad()
    def freeze_last_ops(self):
        self.last_ops_fixed = True
        self.frozen.copy_(torch.where(self.lone(), self.alpha, self.frozen))

    @torch.no_grad()
    def restore_pruned(self):
        fixed = (~self.alive | self.lone()) if self.last_ops_fixed else ~self.alive
        self.alpha.copy_(torch.where(fixed, self.frozen, self.alpha))

    def get_extra_state(self):
        return {"pools": [[op.to_json() for op in pool] for pool in self.pools]}

    def set_extra_state(self, state):
        self.pools = [[parse_op(op) for op in pool] for pool in state["pools"]]


def imagenet_stem(in_channels: int, c: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Three stride-2 3x3 convs (224 -> 28), split where the first cell reads its two inputs; the same
    layers as the ImageNet evaluation network, so its MACs equal the analytic count."""
    stem0 = nn.Sequential(nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                          nn.ReLU(inplace=False), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(c))
    stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
    return stem0, stem1


class Supernet(nn.Module):
    def __init__(self, space: SpaceConfig):
        super().__init__()
        self.space = space
        c = space.channels
        if space.stem == "imagenet":  # as the ImageNet evaluation network: 8x down before the first cell
            self.stem, self.stem1 = imagenet_stem(space.in_channels, c)
            c_pp, c_p, reduction_prev = c, c, True  # s0 is one resolution above s1
        else:
            c_stem = space.stem_multiplier * c
            self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
            self.stem1 = None
            c_pp, c_p, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        c_curr = c
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
        self.groups = nn.ModuleDict({g: ArchGroup(n_edges, space.candidates, red) for g, red in groups.items()})
        self.refresh_slots()

    # ---- parameters ----------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [g.alpha for g in self.groups.values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # ---- structure -----------------------------------------------------------------------------------
    def refresh_slots(self):
        self.group_slots = {name: g.edge_slots() for name, g in self.groups.items()}

    def cells_of(self, group: str) -> list[SearchCell]:
        return [cell for cell in self.cells if cell.group == group]

    def prune(self, group: str, edge: int, slot: int) -> list[nn.Parameter]:
        """Remove a candidate from every cell of its group; returns the parameters that left the graph."""
        g = self.groups[group]
        if not g.alive[edge, slot]:
            return []
        g.alive[edge, slot] = False
        g.frozen[edge, slot] = g.alpha.detach()[edge, slot]
        if int(g.alive[edge].sum()) == 1:  # the survivor's alpha as well (used where last ops are fixed)
            g.frozen[edge] = torch.where(g.alive[edge], g.alpha.detach()[edge], g.frozen[edge])
        removed = []
        for cell in self.cells_of(group):
            if cell.sharing:  # a shared module goes only when no edge from its source still uses it
                source = cell.inputs[edge][1]
                users = [e for e, (_, j) in enumerate(cell.inputs) if j == source and g.alive[e, slot]]
                if users:
                    continue
            removed += cell.candidate_set(edge).remove(slot)
        self.refresh_slots()
        return removed

    def set_pool(self, group: str, edge: int, pool: list[OpSpec], modules: dict[int, list[nn.Module]] | None = None):
        """Give an edge a new candidate pool (PR-DARTS replaces candidates between cycles). `modules[slot]`
        holds, per cell of the group, a module that inherits its parent's weights; other slots are built
        fresh. The edge's alpha starts at zero with every slot of its pool alive; the other edges keep
        theirs. Every group's alpha has as many slots as the largest pool, so it may be replaced by a
        wider or narrower one: rebuild the optimizers afterwards."""
        if self.space.feature_sharing:
            raise NasflowError("per-edge candidate pools and feature sharing do not combine")
        g = self.groups[group]
        g.pools[edge] = list(pool)
        device = g.alpha.device
        for i, cell in enumerate(self.cells_of(group)):
            cs = cell.candidate_set(edge)
            for slot in list(cs.ops.keys()):
                del cs.ops[slot]
            for slot, spec in enumerate(pool):
                module = modules[slot][i] if modules and slot in modules else candidate_module(spec, cs.inner, cs.stride)
                cs.put(slot, module.to(device))
        width = max(len(p) for grp in self.groups.values() for p in grp.pools)
        for grp in self.groups.values():
            keep = min(width, grp.alpha.shape[1])
            alpha = torch.zeros(len(grp.pools), width, device=device)
            alive = torch.zeros(len(grp.pools), width, dtype=torch.bool, device=device)
            frozen = torch.zeros(len(grp.pools), width, device=device)
            alpha[:, :keep] = grp.alpha.detach()[:, :keep]
            alive[:, :keep] = grp.alive[:, :keep]
            frozen[:, :keep] = grp.frozen[:, :keep]
            grp.alpha, grp.alive, grp.frozen = nn.Parameter(alpha), alive, frozen
        with torch.no_grad():
            g.alpha[edge] = 0.0
            g.frozen[edge] = 0.0
            g.alive[edge] = torch.arange(width, device=device) < len(pool)
        self.refresh_slots()

    def restore_pools(self, state: dict) -> None:
        """Give every edge the pool a checkpoint's `state` (a state_dict) was saved with, in fresh modules,
        so that its weights load (pools that changed during the search, PR-DARTS)."""
        for name, g in self.groups.items():
            extra = state.get(f"groups.{name}._extra_state")
            if extra is None:
                continue
            pools = [[parse_op(op) for op in pool] for pool in extra["pools"]]
            for edge, pool in enumerate(pools):
                if pool != g.pools[edge]:
                    self.set_pool(name, edge, pool)

    def apply_alive(self, alive: dict[str, torch.Tensor]):
        """Rebuild the pruned structure of a checkpoint before loading its weights."""
        for name, mask in alive.items():
            for edge, slot in torch.nonzero(~mask.bool()).tolist():
                self.prune(name, edge, slot)

    def ops_run(self) -> int:
        """Op modules run per step across the whole network (a shared module counts once)."""
        total = 0
        for cell in self.cells:
            edge_slots = self.group_slots[cell.group]
            if cell.sharing:
                total += sum(len({s for e, slots in enumerate(edge_slots) if cell.inputs[e][1] == j for s in slots})
                             for j in range(cell.nodes + 1))
            else:
                total += sum(len(slots) for slots in edge_slots)
        return total

    def alive_candidates(self) -> tuple[int, int]:
        """(alive, total) candidates in the architecture (per group, not per cell)."""
        alive = sum(int(g.alive.sum()) for g in self.groups.values())
        total = sum(sum(len(p) for p in g.pools) for g in self.groups.values())
        return alive, total

    # ---- forward -------------------------------------------------------------------------------------
    def forward(self, x, weights: dict[str, torch.Tensor], group_slots: dict[str, list[list[int]]] | None = None,
                cell_slots: dict[int, list[list[int]]] | None = None,
                cell_weights: dict[int, torch.Tensor | None] | None = None):
        """`cell_slots[i]` makes cell i a transit cell that runs only those slots (a derived sub-graph);
        `cell_weights[i]` replaces its group's weights there (None: every op it runs counts once, EnTranNAS
        eq. 6's transit form)."""
        group_slots = group_slots or self.group_slots
        cell_slots = cell_slots or {}
        cell_weights = cell_weights or {}
        s0 = s1 = self.stem(x)
        if self.stem1 is not None:
            s1 = self.stem1(s0)
        for i, cell in enumerate(self.cells):
            w = cell_weights[i] if i in cell_weights else weights[cell.group]
            s0, s1 = s1, cell(s0, s1, w, cell_slots.get(i, group_slots[cell.group]))
        return self.classifier(self.global_pooling(s1).flatten(1))

    # ---- derivation ----------------------------------------------------------------------------------
    def genotype_from_choice(self, choice: dict[str, list[list[tuple[int, int]]]], cell_output="concat") -> Genotype:
        """`choice[group][node]` lists the (edge, slot) pairs a node keeps."""
        inputs = edge_inputs(self.space.nodes)
        cells = []
        for name, g in self.groups.items():
            nodes = [[Edge(g.pools[edge][slot], inputs[edge][1])
                      for edge, slot in sorted(node_edges, key=lambda es: inputs[es[0]][1])]
                     for node_edges in choice[name]]
            cells.append(CellSpec(g.reduction, nodes, list(range(2, self.space.nodes + 2))))
        layout = "per-position" if self.space.layout == "per-position" else "shared"
        return Genotype(cells, layout, cell_output)


def top2_without_none(net: "Supernet", weights: dict[str, torch.Tensor]) -> dict[str, list[list[tuple[int, int]]]]:
    """DARTS's derivation (also EnTranNAS's eq. 4): per cell type, each node's two strongest incoming
    edges, each with its strongest alive op other than `none`."""
    names = [c.name for c in net.space.candidates]
    choice = {}
    for name, g in net.groups.items():
        allowed = g.alive.detach().clone().cpu()
        if "none" in names:
            allowed[:, names.index("none")] = False
        choice[name] = top_k_per_node(weights[name].detach().cpu(), allowed, net.space.nodes, k=2)
    return choice


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


def slots_from_choice(choice: list[list[tuple[int, int]]], n_edges: int) -> list[list[int]]:
    """The slots per edge of a transit cell: each kept edge runs its chosen ops (one for the top-k rule, any number
    for EnTranNAS-DST), every other edge is cut."""
    edge_slots = [[] for _ in range(n_edges)]
    for node_edges in choice:
        for edge, slot in node_edges:
            if slot not in edge_slots[edge]:
                edge_slots[edge].append(slot)
    for slots in edge_slots:
        slots.sort()
    return edge_slots


def rebuild_optimizer(old: torch.optim.Optimizer, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """A new optimizer over `params` (the survivors of a pruning) that keeps their state (momentum,
    Adam moments): pruned parameters leave the optimizer as well as the graph."""
    group = {k: v for k, v in old.param_groups[0].items() if k != "params"}
    new = type(old)(params, **group)
    for p in params:
        if p in old.state:
            new.state[p] = old.state[p]
    return new
