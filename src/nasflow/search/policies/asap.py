"""ASAP (Noy et al. 2019): annealed softmax with temperature, grace epochs, gradual pruning.

Temperature. `schedule: exponential` (eq. 9) sets T once per epoch, epochs counted from 1:
T(e) = t0 * beta^e. With t0 = 1.3, beta = 0.95 and grace temperature tau = 1, epochs 1-5 have T >= 1
(five grace epochs of weights only) and T(50) = 0.100: both the paper's "five grace epochs" and
"T ~ 0.1 at the end" (6.2.1 prints t0 = 1.6, which gives nine). `schedule: pac` is Theorem 2 (eqs. 5-8)
with t the number of alpha updates so far, as its proof counts them (eq. 15: alpha_t sums t steps):
T and theta move after every update, across epochs and resumes. It has no grace phase: t counts from
the first step, and a test T_t >= tau would stop t for good. eta is a_lr and L (`pac.grad_bound`)
bounds one update in units of a_lr: Adam (6.2.1), not eq. 4's plain step, updates alpha, and its first
update is a_lr on every alpha. Theorem 2 prunes an op only once Phi < nu e^-t (Claim 1: its alpha
trails the best by eta * L * sqrt(8 t log(pi^2 N t^2 / (3 delta)))), while an op's alpha gradient is
proportional to its Phi: past the first ten or so updates the losers' alphas stop moving and nothing
more is pruned ("PAC bounds tend to be overly pessimistic", 3.2). L = 0.25, tuned by hand (the theorem's
guarantee does not hold there), prunes some but not all ops over those first updates on the tiny search
of tests/search/test_asap.py (docs/methods.md).

Pruning (`pruning: threshold`, Algorithm 1 lines 5-8). After every alpha step outside the grace
phase, every alive op whose weight Phi = softmax(alpha / T) over its edge's alive ops falls below
theta is removed: theta = threshold_factor / N (N = the candidates an edge starts with) or Theorem 2's
nu * e^-t, compared in logs (e^-t is below any float's range past t = 745); the strongest op of an edge
always stays. The search stops at the step that leaves every edge one op (line 3; the engine ends the
epoch there), or after `epochs`. `magnitude` and `accumulated_gradient` are Table 3's baselines: from
`prune_start_epoch` to `prune_end_epoch` the pruned fraction follows Zhu and Gupta's schedule (eq. 13,
power p) towards one op per edge, removing the ops with the smallest Phi or the smallest accumulated
|dL/dalpha|.

Frozen alphas. An op's alpha stops when the op is pruned, and the alpha of an edge's last op stops at
the step that left it alone: it weighs 1 whatever its alpha, so only Adam (its weight decay and
momentum, with no loss gradient) would move it, by as much as the edge waits for the others.

Final cell. The paper keeps each mixed op's survivor (Algorithm 1 returns O) and leaves open which
two incoming edges a node keeps; nasflow ranks the edges by DARTS's op strength (softmax(alpha) over
all N candidates, T = 1, DARTS being ASAP at T = 1, section 3.1) of the surviving op, every pruned
op at the alpha it was pruned with; ties go to the lower input index. So an edge whose survivor won
clearly beats one whose survivor was left over by the pruning of close rivals, and, every alpha being
fixed once its edge settles, the choice does not change with how long the search runs afterwards.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "ASAP (Noy et al. 2019)".
"""
from __future__ import annotations

import math

import torch

from nasflow.search.policies.base import Prune, SearchPolicy, masked_softmax
from nasflow.search.supernet import Supernet, top_k_per_node


def exponential_temperature(t0: float, beta: float, epoch: int) -> float:
    return t0 * beta ** epoch


def pac_schedule(t: int, n: int, eta: float, grad_bound: float, delta: float, nu: float) -> tuple[float, float]:
    """Theorem 2 at the t-th alpha update: (T_t, log theta_t) with theta_t = nu * exp(-t) (eq. 5, nu
    constant), T_t = eta * L * rho_t * sqrt(8 / t * log(pi^2 N t^2 / (3 delta))) (eq. 7) and
    rho_t = t / (t + log(1 / (N nu))) (eq. 8). theta_t as a log: it leaves a float's range past t = 745."""
    rho = t / (t + math.log(1.0 / (n * nu)))
    temperature = eta * grad_bound * rho * math.sqrt(8.0 / t * math.log(math.pi ** 2 * n * t ** 2 / (3.0 * delta)))
    return temperature, math.log(nu) - t


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
        self.epoch = 0
        self.updates = 0  # alpha updates made: Theorem 2's t
        self.accumulated = {name: torch.zeros_like(g.alpha) for name, g in net.groups.items()}
        with torch.no_grad():
            for g in net.groups.values():
                g.alpha.zero_()  # Algorithm 1 (line 2, and the proof of Theorem 2): alpha_0 = 0
                g.freeze_last_ops()
        self._schedule()

    def _pac(self, t: int) -> tuple[float, float]:
        s, pac = self.s, self.s["pac"]
        return pac_schedule(t, self.n_candidates, s["a_lr"], pac["grad_bound"], pac["delta"], pac["nu"])

    def _schedule(self) -> None:
        """T and log theta for the next step: eq. 9 by epoch, or Theorem 2 for the next update (t + 1)."""
        s = self.s
        if s["schedule"] == "pac":
            self.temperature, self.log_threshold = self._pac(self.updates + 1)
        else:
            self.temperature = exponential_temperature(s["t0"], s["beta"], self.epoch)
            self.log_threshold = math.log(s["threshold_factor"] / self.n_candidates)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._schedule()

    def updates_alpha(self) -> bool:
        # Under pac every step updates alpha: its T moves only with updates, so T_t >= tau would hold for good.
        return self.s["schedule"] == "pac" or self.temperature < self.s["grace_temperature"]

    def record(self) -> dict:
        temperature, log_threshold = self.temperature, self.log_threshold
        if self.s["schedule"] == "pac":  # the epoch's last update's, not the next one's
            temperature, log_threshold = self._pac(max(self.updates, 1))
        threshold = math.exp(log_threshold) if self.s["pruning"] == "threshold" else float("nan")
        return {"phase": "search" if self.updates_alpha() else "grace", "temperature": temperature,
                "threshold": threshold, "alpha_updates": self.updates}

    def op_weights(self, group):
        return masked_softmax(group.alpha / self.temperature, group.alive)

    def arch_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        loss = super().arch_gradients(net, train_batch, val_batch, w_opt)
        self.updates += 1  # steps.architecture_step steps alpha with these gradients next
        if self.s["pruning"] == "accumulated_gradient":  # Table 3's baseline prunes by these
            for name, g in net.groups.items():
                if g.alpha.grad is not None:
                    self.accumulated[name] += g.alpha.grad.detach().abs()
        return loss

    def prune_after_step(self, net: Supernet) -> list[Prune]:
        if not self.updates_alpha():
            return []
        pruned = self._below_threshold(net) if self.s["pruning"] == "threshold" else []
        if self.s["schedule"] == "pac":  # Algorithm 1, lines 11-12: T and theta for the next update
            self._schedule()
        return pruned

    def _below_threshold(self, net: Supernet) -> list[Prune]:
        pruned = []
        with torch.no_grad():
            for name, g in net.groups.items():
                logits = (g.alpha.detach().double() / self.temperature).masked_fill(~g.alive, float("-inf"))
                log_phi = torch.log_softmax(logits, dim=1)
                strongest = log_phi.argmax(dim=1)
                below = (log_phi < self.log_threshold) & g.alive
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
        return all(bool((g.alive.sum(1) <= 1).all()) for g in net.groups.values())  # asked after every step

    def derive(self, net: Supernet):
        choice = {}
        for name, g in net.groups.items():
            strength = torch.softmax(g.alpha.detach(), dim=-1)  # DARTS's, over all N candidates (module doc)
            choice[name] = top_k_per_node(strength, g.alive.clone(), net.space.nodes, k=2)
        return net.genotype_from_choice(choice)

    def state_dict(self) -> dict:
        return {"accumulated": {k: v.clone() for k, v in self.accumulated.items()}, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.accumulated = {k: v.clone() for k, v in state["accumulated"].items()}
        self.updates = state["updates"]
        self._schedule()
