"""ASAP (Noy et al. 2019): annealed softmax with temperature, grace epochs, gradual pruning.

Temperature. T is set once per epoch, epochs counted from 1: T(e) = t0 * beta^e. With t0 = 1.3,
beta = 0.95 and grace temperature tau = 1, epochs 1-5 have T >= 1 (five grace epochs of weights only)
and T(50) = 0.100: both the paper's "five grace epochs" and "T ~ 0.1 at the end". `schedule: pac`
uses Theorem 2 instead (eqs. 5-8, with t the epoch).

Pruning (`pruning: threshold`, Algorithm 1 lines 5-8). After every alpha step outside the grace
phase, every alive op whose weight Phi = softmax(alpha / T) over its edge's alive ops falls below
theta = threshold_factor / N is removed (N = the candidates an edge starts with); the strongest op of
an edge always stays. The search stops when every edge holds one op, or after `epochs`.
`magnitude` and `accumulated_gradient` are Table 3's baselines: from `prune_start_epoch` to
`prune_end_epoch` the pruned fraction follows Zhu and Gupta's schedule (eq. 13, power p) towards
one op per edge, removing the ops with the smallest Phi or the smallest accumulated |dL/dalpha|.

Final cell. Each node keeps the two incoming edges whose surviving op weighs most, weighed by Phi over
all N candidates of the edge at the final temperature (a pruned op keeps the alpha it had when it was
pruned); ties go to the lower input index. So an edge whose survivor won clearly beats one whose
survivor was left over by the pruning of close rivals.
"""
from __future__ import annotations

import math

import torch

from nasflow.search.policy import Prune, SearchPolicy, masked_softmax
from nasflow.search.supernet import Supernet, top_k_per_node


def exponential_temperature(t0: float, beta: float, epoch: int) -> float:
    return t0 * beta ** epoch


def pac_schedule(epoch: int, n: int, eta: float, grad_bound: float, delta: float, nu: float) -> tuple[float, float]:
    """Theorem 2: theta_t = nu * exp(-t) (eq. 5, nu constant), T_t = eta * L * rho_t *
    sqrt(8 / t * log(pi^2 N t^2 / (3 delta))) (eq. 7) with rho_t = t / (t + log(1 / (N nu))) (eq. 8)."""
    t = epoch
    rho = t / (t + math.log(1.0 / (n * nu)))
    temperature = eta * grad_bound * rho * math.sqrt(8.0 / t * math.log(math.pi ** 2 * n * t ** 2 / (3.0 * delta)))
    return temperature, nu * math.exp(-t)


def zhu_gupta_sparsity(epoch: int, start: int, end: int, final: float, power: int, initial: float = 0.0) -> float:
    """Eq. 13: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^p, clamped outside [t0, t0 + n dt]."""
    if epoch < start:
        return initial
    progress = min(1.0, (epoch - start) / max(1, end - start))
    return final + (initial - final) * (1.0 - progress) ** power


class Asap(SearchPolicy):
    name = "asap"
    alpha_first = False  # Algorithm 1: weights, then alpha, then prune
    stop_reason = "one op per edge"

    def __init__(self, settings, net):
        super().__init__(settings, net)
        self.temperature = settings["t0"]
        self.threshold = settings["threshold_factor"] / self.n_candidates
        self.accumulated = {name: torch.zeros_like(g.alpha) for name, g in net.groups.items()}

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        s = self.s
        if s["schedule"] == "pac":
            pac = s["pac"]
            self.temperature, self.threshold = pac_schedule(epoch, self.n_candidates, s["a_lr"], pac["grad_bound"],
                                                            pac["delta"], pac["nu"])
        else:
            self.temperature = exponential_temperature(s["t0"], s["beta"], epoch)

    def updates_alpha(self) -> bool:
        return self.temperature < self.s["grace_temperature"]

    def record(self) -> dict:
        return {"phase": "search" if self.updates_alpha() else "grace", "temperature": self.temperature,
                "threshold": self.threshold if self.s["pruning"] == "threshold" else float("nan")}

    def op_weights(self, group):
        return masked_softmax(group.alpha / self.temperature, group.alive)

    def arch_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        loss = super().arch_gradients(net, train_batch, val_batch, w_opt)
        if self.s["pruning"] == "accumulated_gradient":  # Table 3's baseline prunes by these
            for name, g in net.groups.items():
                if g.alpha.grad is not None:
                    self.accumulated[name] += g.alpha.grad.detach().abs()
        return loss

    def prune_after_step(self, net: Supernet) -> list[Prune]:
        if self.s["pruning"] != "threshold" or not self.updates_alpha():
            return []
        pruned = []
        with torch.no_grad():
            for name, g in net.groups.items():
                phi = self.op_weights(g)
                strongest = phi.argmax(dim=1)
                below = (phi < self.threshold) & g.alive
                below[torch.arange(len(strongest)), strongest] = False
                pruned += [(name, e, s) for e, s in torch.nonzero(below).tolist()]
        return pruned

    def prune_after_epoch(self, net: Supernet) -> list[Prune]:
        """The baselines: bring the pruned fraction up to the schedule's sparsity for this epoch."""
        s = self.s
        if s["pruning"] == "threshold" or not self.updates_alpha():
            return []
        alive, total = net.alive_candidates()
        edges = total // self.n_candidates
        final = 1.0 - edges / total  # one op per edge
        target = zhu_gupta_sparsity(self.epoch, s["prune_start_epoch"], s["prune_end_epoch"], final, s["sparsity_power"])
        to_prune = int(round(target * total)) - (total - alive)
        scored = []
        with torch.no_grad():
            for name, g in net.groups.items():
                score = self.op_weights(g) if s["pruning"] == "magnitude" else self.accumulated[name]
                for e, slot in torch.nonzero(g.alive).tolist():
                    scored.append((float(score[e, slot]), name, e, slot))
        scored.sort()
        alive_per_edge = {}
        for _, name, e, _slot in scored:
            alive_per_edge[(name, e)] = alive_per_edge.get((name, e), 0) + 1
        pruned = []
        for _, name, e, slot in scored:
            if len(pruned) >= to_prune:
                break
            if alive_per_edge[(name, e)] > 1:
                alive_per_edge[(name, e)] -= 1
                pruned.append((name, e, slot))
        return pruned

    def finished(self, net: Supernet) -> bool:
        return all(int(row.sum()) <= 1 for g in net.groups.values() for row in g.alive)

    def derive(self, net: Supernet):
        choice = {}
        for name, g in net.groups.items():
            full = torch.softmax(g.alpha.detach() / self.temperature, dim=-1)  # over all N candidates
            choice[name] = top_k_per_node(full, g.alive.clone(), net.space.nodes, k=2)
        return net.genotype_from_choice(choice)

    def state_dict(self) -> dict:
        return {"accumulated": {k: v.clone() for k, v in self.accumulated.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.accumulated = {k: v.clone() for k, v in state["accumulated"].items()}
