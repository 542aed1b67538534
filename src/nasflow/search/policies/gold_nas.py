"""GOLD-NAS (Bi et al. 2020): one-level search in the enlarged space, FLOPs-regularised gradual
pruning, a Pareto front of architectures from one search.

Weights. Each candidate weighs sigma(alpha) on its own (no competition on an edge); alpha starts at
zero; alpha and the network weights are updated together on the same batch (one level), by two SGD
optimizers (lr 1 and 0.01, momentum 0.9).

Regulariser. loss = CE + lambda * (FLOPs(alpha) + mu * uniform FLOPs(alpha)), FLOPs(alpha) of eq. (5)
in millions of MACs from the analytic per-op counter, the uniform version giving every candidate the
network's mean per-op MACs. (The printed loss, garbled in the text, reads as CE + lambda * FLOPs +
mu * uniform FLOPs; with lambda = 0 at the start that would let the mu term prune from the first step,
against the paper's own account that training first focuses on accuracy, so mu is taken inside lambda.)

Pruning (Algorithm 1, after every epoch). E = the alive candidates, E_min = the n0 of them with the
smallest sigma(alpha); prune those of E_min below xi_max and every one of E below xi_min, never the last
candidate feeding a node. Then: if n_pruned < n0: dlambda <- c0 * dlambda, lambda <- lambda + dlambda,
else dlambda <- lambda0, lambda <- lambda / c0; if n_pruned == 0: t <- t + 1 else t <- 0; if t > t0
(the setting `patience`, so as not to be read as ASAP's initial temperature): record the architecture as a Pareto point, t <- 0. The search ends when the network's discretised
MACs fall to flops_min.

Derivation. Every alive candidate stays: any number of ops per edge and of inputs per node.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "GOLD-NAS (Bi et al. 2020)".
"""
from __future__ import annotations

import torch

from nasflow.catalog.datasets import dataset_info
from nasflow.search.flops import discrete_macs, expected_flops, fixed_macs, op_macs_table
from nasflow.search.policies.base import Prune, SearchPolicy
from nasflow.search.steps import one_level_step
from nasflow.search.supernet import Supernet, edge_inputs


def algorithm1_update(state: dict, n_pruned: int, s: dict) -> bool:
    """One epoch's bookkeeping of Algorithm 1 on `state` (lambda, dlambda, t); True when the current
    architecture is to be recorded as a Pareto point."""
    if n_pruned < s["n0"]:
        state["dlambda"] *= s["c0"]
        state["lambda"] += state["dlambda"]
    else:
        state["dlambda"] = s["lambda0"]
        state["lambda"] /= s["c0"]
    state["t"] = state["t"] + 1 if n_pruned == 0 else 0
    if state["t"] > s["patience"]:
        state["t"] = 0
        return True
    return False


class GoldNas(SearchPolicy):
    name = "gold-nas"
    stop_reason = "FLOPs at or below flops_min"
    step = one_level_step  # alpha and the weights together, on the same batch (its declaration: one_level)

    def __init__(self, settings, net: Supernet):
        super().__init__(settings, net)
        with torch.no_grad():
            for g in net.groups.values():
                g.alpha.zero_()
        image_size = dataset_info(settings["dataset"]).image_size
        self.raw_tables = op_macs_table(net, image_size)  # exact MACs, for the discretised count
        self.tables = {k: (t / 1e6).float() for k, t in self.raw_tables.items()}  # millions, for the loss
        self.fixed = fixed_macs(net, image_size)
        mean = float(torch.cat([t.flatten() for t in self.tables.values()]).mean())
        self.uniform = {k: torch.full_like(t, mean) for k, t in self.tables.items()}
        self.state = {"lambda": 0.0, "dlambda": settings["lambda0"], "t": 0}
        self.n_pruned = 0
        self.pareto: list[tuple[int, object]] = []
        self.end_state = None
        self.macs = discrete_macs(net, self.raw_tables, self.fixed)

    def learning_rate(self, epoch: int) -> float:
        """Appendix B.1: a constant learning rate (0.01) for the weights; `epochs` is only a bound."""
        return self.s["w_lr"]

    def make_arch_optimizer(self, params):
        return torch.optim.SGD(params, lr=self.s["a_lr"], momentum=self.s["a_momentum"])

    def op_weights(self, group):
        return torch.sigmoid(group.alpha) * group.alive

    def regulariser(self, net: Supernet) -> torch.Tensor:
        total = 0.0
        for name, g in net.groups.items():
            device = g.alpha.device
            total = total + expected_flops(g.alpha, g.alive, self.tables[name].to(device))
            total = total + self.s["mu"] * expected_flops(g.alpha, g.alive, self.uniform[name].to(device))
        return self.state["lambda"] * total

    def record(self) -> dict:
        return {"phase": "search", "lambda": self.state["lambda"], "n_pruned": self.n_pruned,
                "flops_M": self.macs / 1e6}

    def prune_after_epoch(self, net: Supernet) -> list[Prune]:
        s = self.s
        inputs = edge_inputs(net.space.nodes)
        with torch.no_grad():
            scored = sorted((float(torch.sigmoid(g.alpha[e, slot])), name, e, slot)
                            for name, g in net.groups.items() for e, slot in torch.nonzero(g.alive).tolist())
        alive_into = {}  # (group, node) -> alive candidates feeding it
        for _, name, e, _slot in scored:
            key = (name, inputs[e][0])
            alive_into[key] = alive_into.get(key, 0) + 1
        smallest = {(name, e, slot) for _, name, e, slot in scored[:s["n0"]]}
        pruned = []
        for w, name, e, slot in scored:
            if (w < s["xi_max"] and (name, e, slot) in smallest) or w < s["xi_min"]:
                key = (name, inputs[e][0])
                if alive_into[key] > 1:
                    alive_into[key] -= 1
                    pruned.append((name, e, slot))
        self.n_pruned = len(pruned)
        return pruned

    def end_epoch(self, net: Supernet) -> bool:
        """After the epoch's pruning: Algorithm 1's lambda and t, the Pareto record, the network's MACs."""
        self.macs = discrete_macs(net, self.raw_tables, self.fixed)
        self.end_state = self.derive(net).to_json()
        if algorithm1_update(self.state, self.n_pruned, self.s):
            genotype = self.derive(net)
            # A discrete architecture already recorded (nothing pruned since) is not recorded twice.
            if not self.pareto or self.pareto[-1][1].to_json() != genotype.to_json():
                self.pareto.append((self.epoch, genotype))
        return False

    def finished(self, net: Supernet) -> bool:
        return self.macs <= self.s["flops_min"] * 1e6

    def derive(self, net: Supernet):
        choice = {}
        for name, g in net.groups.items():
            nodes = [[] for _ in range(net.space.nodes)]
            for e, slot in torch.nonzero(g.alive).tolist():
                nodes[edge_inputs(net.space.nodes)[e][0]].append((e, slot))
            choice[name] = nodes
        return net.genotype_from_choice(choice)

    def architectures(self, net: Supernet):
        """What Algorithm 1 returns: the architectures recorded when t > t0, in order; the last one is the
        search's final cell. The architecture left when the search stops is not among them (it is
        written apart, as the search's end state: `files()`)."""
        return list(self.pareto)

    def files(self) -> dict[str, object]:
        """end-state.json: the architecture the search stopped with (not a Pareto point, never retrained)."""
        if self.macs > self.s["flops_min"] * 1e6:
            return {}
        return {"end-state.json": {"epoch": self.epoch, "macs": self.macs, "pareto_point": False,
                                   "genotype": self.end_state}}

    def state_dict(self) -> dict:
        return {"state": dict(self.state), "n_pruned": self.n_pruned,
                "pareto": [(epoch, g.to_json()) for epoch, g in self.pareto], "macs": self.macs,
                "end_state": self.end_state}

    def load_state_dict(self, state: dict) -> None:
        from nasflow.catalog.genotype import parse_genotype

        self.state, self.n_pruned, self.macs = dict(state["state"]), state["n_pruned"], state["macs"]
        self.pareto = [(epoch, parse_genotype(g)) for epoch, g in state["pareto"]]
        self.end_state = state["end_state"]
