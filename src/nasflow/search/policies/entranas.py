"""EnTranNAS and EnTranNAS-DST (Yang et al. 2021): Engine-cells, Transit-cells, feature sharing, and the
differentiable search for topology.

Engine and Transit cells (section 2.2). The architecture is derived at every forward pass, not once at
the end: the Engine-cells (the first normal and the first reduction cell; `engine_cells` also gives
Table 1's `last`, `half` and `all`) hold the whole DAG and mix every candidate by its coefficient; every
other cell is a Transit-cell that runs only the architecture derived at that step, each chosen op with
coefficient 1 (the transit form of eq. 6). alpha therefore learns only through the Engine-cells, and the
last cell of the super-net has the architecture of the target-net.

Coefficients. EnTranNAS: p = softmax(alpha / tau) over an edge's candidates (eq. 5), tau = tau0 * decay
^ (epoch - 1) (tau0 = 5.0 and 0.923 in 4.2, so the first epoch runs at tau0). Its derivation is the DARTS
rule (eq. 4): the two incoming edges per node whose strongest non-`none` op weighs most.

EnTranNAS-DST (section 2.4). Per intermediate node j: p_hat = p / max over (i, k) of p into j (eq. 7);
q = ReLU(p_hat - t_j) with t_j = sigmoid(beta_j) (eq. 8); q_hat = q / sum_k q on each edge (eq. 9, zero
where an edge has no q > 0). The Engine-cells mix by q_hat; the derived architecture is every (edge, op)
with q_hat > 0 (eq. 10), any number per node and per edge; `none` is not in the space. The betas are
architecture parameters, stepped by the same Adam as alpha on L_val + lambda * mean_j(-log t_j) (eq. 11),
applied per cell type and summed (see `regulariser`).
Because the strongest entry into a node has p_hat = 1 exactly and t_j < 1, q > 0 for it: every node
keeps an input at every step. It is computed as p_hat - 1 + sigmoid(-beta) so that it stays positive in
float arithmetic even where sigmoid(beta) rounds to 1.

A connection with q_hat = 0 adds nothing to the output and passes no gradient (ReLU), so the DST
Engine-cells run only the non-zero connections too: the same output and gradients, at a fraction of
the cost.

Feature sharing (eq. 6) and the 1x1 bottleneck (section 2.5) are the supernet's `feature_sharing` and
`bottleneck` settings; both are on in this method's defaults.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "EnTranNAS and EnTranNAS-DST (Yang et al. 2021)".
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasflow.search.policies.base import SearchPolicy, masked_softmax
from nasflow.search.supernet import Supernet, edge_inputs, slots_from_choice, top2_without_none

Choice = dict[str, list[list[tuple[int, int]]]]  # group -> node -> [(edge, slot)]


def engine_cell_indices(net: Supernet, mode: str) -> set[int]:
    """The cells that hold the whole DAG, per cell type: `first` (the paper's choice), `last`, the first
    `half`, or `all` (the DARTS super-net)."""
    chosen = set()
    for group in net.groups:
        cells = [i for i, cell in enumerate(net.cells) if cell.group == group]
        if mode == "first":
            chosen.add(cells[0])
        elif mode == "last":
            chosen.add(cells[-1])
        elif mode == "half":
            chosen.update(cells[:math.ceil(len(cells) / 2)])
        else:
            chosen.update(cells)
    return chosen


def dst_coefficients(p: torch.Tensor, beta: torch.Tensor, nodes: int) -> torch.Tensor:
    """q_hat of eqs. (7)-(9) for one cell type: `p` is (edges, ops), `beta` one value per node."""
    rows, e0 = [], 0
    for k in range(nodes):
        block = p[e0:e0 + k + 2]
        p_hat = block / block.max()
        q = F.relu(p_hat - 1.0 + torch.sigmoid(-beta[k]))  # = ReLU(p_hat - t_k), see the module docstring
        total = q.sum(dim=1, keepdim=True)
        rows.append(q / total.clamp_min(torch.finfo(q.dtype).tiny))  # an edge with nothing above t stays 0
        e0 += k + 2
    return torch.cat(rows)


def choice_from_coefficients(weights: torch.Tensor, nodes: int) -> list[list[tuple[int, int]]]:
    """Eq. (10): every (edge, op) with a non-zero coefficient, grouped by the node it feeds."""
    inputs = edge_inputs(nodes)
    choice = [[] for _ in range(nodes)]
    for edge, slot in torch.nonzero(weights.detach() > 0).tolist():
        choice[inputs[edge][0]].append((edge, slot))
    return choice


class EnTranNAS(SearchPolicy):
    name = "entranas"
    alpha_first = True  # first-order bi-level, as DARTS

    def __init__(self, settings: dict, net: Supernet):
        super().__init__(settings, net)
        self.engine = engine_cell_indices(net, settings["engine_cells"])
        self.n_edges = len(edge_inputs(net.space.nodes))
        self.temperature = settings["temperature0"]
        self.epoch = 0
        self._edges = {}  # the derived cell's size after the latest epoch, for history.csv

    # ---- coefficients ------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.temperature = self.s["temperature0"] * self.s["temperature_decay"] ** (epoch - 1)

    def op_weights(self, group):
        return masked_softmax(group.alpha / self.temperature, group.alive)

    # ---- derivation at every step --------------------------------------------------------------------
    def choose(self, net: Supernet, weights: dict) -> Choice:
        """The architecture the coefficients give now: top-2 edges per node without `none` (eq. 4)."""
        return top2_without_none(net, weights)

    def engine_slots(self, net: Supernet, choice: Choice) -> dict[str, list[list[int]]] | None:
        """What the Engine-cells run: the whole DAG (None: the supernet's alive slots)."""
        return None

    def forward(self, net: Supernet, x, weights: dict) -> torch.Tensor:
        choice = self.choose(net, weights)
        derived = {name: slots_from_choice(c, self.n_edges) for name, c in choice.items()}
        transit = [i for i in range(len(net.cells)) if i not in self.engine]
        cell_slots = {i: derived[net.cells[i].group] for i in transit}
        return net(x, weights, group_slots=self.engine_slots(net, choice), cell_slots=cell_slots,
                   cell_weights={i: None for i in transit})

    def derive(self, net: Supernet):
        with torch.no_grad():
            choice = self.choose(net, self.weights(net))
        return net.genotype_from_choice(choice, self.s["cell_output"])

    def record(self) -> dict:
        return {"phase": "search", "temperature": self.temperature, **self._edges}

    def derived_edges(self, net: Supernet) -> dict:
        """(edge, op) pairs of the derived cell per cell type (Table 4's "Edges N / R")."""
        with torch.no_grad():
            choice = self.choose(net, self.weights(net))
        out = {}
        for name, g in net.groups.items():
            kind = "reduce" if g.reduction else "normal"
            out[f"derived_edges_{kind}"] = sum(len(node) for node in choice[name])
        return out

    def end_epoch(self, net: Supernet) -> bool:
        self._edges = self.derived_edges(net)
        return False


class EnTranNASDST(EnTranNAS):
    name = "entranas-dst"

    def __init__(self, settings: dict, net: Supernet):
        super().__init__(settings, net)
        device = next(iter(net.groups.values())).alpha.device
        self.betas = nn.ParameterDict({name: nn.Parameter(torch.full((net.space.nodes,), float(settings["beta_init"]),
                                                                      device=device))
                                       for name in net.groups})

    def arch_parameters(self, net: Supernet) -> list:
        return net.arch_parameters() + list(self.betas.values())

    def thresholds(self, group: str) -> torch.Tensor:
        return torch.sigmoid(self.betas[group])

    def weights(self, net: Supernet) -> dict[str, torch.Tensor]:
        return {name: dst_coefficients(self.op_weights(g), self.betas[name], net.space.nodes)
                for name, g in net.groups.items()}

    def regulariser(self, net: Supernet) -> torch.Tensor:
        """Eq. (11)'s lambda * mean_j(-log t_j) is written for one cell; the super-net has a normal and a
        reduction cell type, each with its own thresholds, and the paper never says how they combine.
        The term is applied per cell type and summed, so each type's thresholds feel the paper's lambda
        (a mean over both types would halve it)."""
        return self.s["lambda"] * sum((-F.logsigmoid(b)).mean() for b in self.betas.values())

    def arch_loss(self, net: Supernet, x, y) -> torch.Tensor:
        return super().arch_loss(net, x, y) + self.regulariser(net)

    def choose(self, net: Supernet, weights: dict) -> Choice:
        return {name: choice_from_coefficients(weights[name].cpu(), net.space.nodes) for name in net.groups}

    def engine_slots(self, net: Supernet, choice: Choice):
        # Zero-coefficient connections add nothing and pass no gradient: the Engine-cells skip them too.
        return {name: slots_from_choice(c, self.n_edges) for name, c in choice.items()}

    def record(self) -> dict:
        with torch.no_grad():
            t = torch.cat([self.thresholds(name) for name in self.betas])
        return {**super().record(), "threshold": float(t.mean()), "lambda": self.s["lambda"]}

    def state_dict(self) -> dict:
        return {"betas": {k: v.detach().cpu().clone() for k, v in self.betas.items()}}

    def load_state_dict(self, state: dict) -> None:
        # In place: the architecture optimizer (already rebuilt) holds these very tensors.
        with torch.no_grad():
            for k, v in state["betas"].items():
                self.betas[k].copy_(v.to(self.betas[k].device))
