"""What a search method supplies to the shared engine. A method is a policy on the supernet: how op
weights are formed from alpha, when alpha is updated, what is pruned and when, and how the final
genotype is derived, and which training step it takes (nasflow.search.steps). The engine owns the
loop, data, optimizers, checkpoints and outputs."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nasflow.search.steps import bilevel_step
from nasflow.search.supernet import ArchGroup, Supernet, rebuild_optimizer
from nasflow.train.schedules import cosine

Prune = tuple[str, int, int]  # (group, edge, slot)


def masked_softmax(logits: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Softmax over the alive candidates of each edge; pruned candidates weigh exactly zero."""
    masked = logits.masked_fill(~alive, float("-inf"))
    out = torch.softmax(masked, dim=-1)
    return torch.nan_to_num(out, nan=0.0)  # a fully pruned edge has no weights at all


class SearchPolicy:
    name = "base"
    alpha_first = True   # DARTS steps alpha on a validation batch before the weights; ASAP after
    stop_reason = "finished"  # what `finished()` means, for search.json
    # True: the epoch's val_error is measured after its training steps and before `end_epoch` changes
    # the supernet (PR-DARTS's prune and replace); False: after `end_epoch`.
    validate_before_end_epoch = False
    # A method that trains no supernet (a baseline; its declaration says trains_supernet=False) names the
    # class that runs its whole search instead of the engine's loop: runner(search_run).run(resume, replace_stale).
    runner = None
    # One training step, step(self, ctx: StepContext, x, y) -> (loss, logits), both detached: the bi-level
    # step unless the method picks another of nasflow.search.steps (GOLD-NAS: one_level_step) or its own.
    step = bilevel_step

    def __init__(self, settings: dict, net: Supernet):
        self.s = settings
        self.n_candidates = len(net.space.candidates)

    # ---- per epoch -------------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        """`epoch` counts from 1."""
        self.epoch = epoch

    def updates_alpha(self) -> bool:
        return True

    def learning_rate(self, epoch: int) -> float:
        """The weights' learning rate for `epoch`: cosine from w_lr to w_lr_min over the search."""
        s = self.s
        return cosine(s["w_lr"], s["w_lr_min"], epoch - 1, s["epochs"])

    def batch_size(self, step: int, device) -> int | None:
        """The batch size for training step `step` (from 1) of the epoch; None keeps the current one."""
        return None

    def files(self) -> dict[str, object]:
        """Extra JSON files of the run directory (name -> content), rewritten each epoch and logged to
        MLflow at the end (PR-DARTS's per-cycle pools)."""
        return {}

    def record(self) -> dict:
        """Method-specific columns of history.csv (temperature, threshold, phase...)."""
        return {"phase": "search"}

    def make_arch_optimizer(self, params):
        s = self.s
        return torch.optim.Adam(params, lr=s["a_lr"], betas=tuple(s["a_betas"]), weight_decay=s["a_weight_decay"])

    def regulariser(self, net: Supernet) -> torch.Tensor | float:
        """Added to the loss of `steps.one_level_step` (GOLD-NAS's FLOPs terms)."""
        return 0.0

    def end_epoch(self, net: Supernet) -> bool:
        """After the epoch's pruning (GOLD-NAS updates lambda and records Pareto points here). True when
        the supernet's parameters changed (PR-DARTS's new pools): the engine rebuilds both optimizers,
        the weights' with `rebuild_weight_optimizer`, alpha's with `make_arch_optimizer`."""
        return False

    def rebuild_weight_optimizer(self, old: torch.optim.Optimizer, params: list) -> torch.optim.Optimizer:
        """The weight optimizer after `end_epoch` changed the supernet: by default the surviving
        parameters keep their state (momentum); PR-DARTS starts every cycle afresh."""
        return rebuild_optimizer(old, params)

    def arch_parameters(self, net: Supernet) -> list:
        """What the architecture optimizer steps (EnTranNAS-DST adds its thresholds to the alphas)."""
        return net.arch_parameters()

    def forward(self, net: Supernet, x, weights: dict) -> torch.Tensor:
        """The supernet's logits; EnTranNAS runs its transit cells on the derived sub-graph here."""
        return net(x, weights)

    def architectures(self, net: Supernet) -> list[tuple]:
        """(epoch, genotype) of every architecture the search yields, the final cell last; one by default."""
        return [(self.epoch, self.derive(net))]

    # ---- weights and pruning -----------------------------------------------------------------------------
    def op_weights(self, group: ArchGroup) -> torch.Tensor:
        return masked_softmax(group.alpha, group.alive)

    def weights(self, net: Supernet) -> dict[str, torch.Tensor]:
        return {name: self.op_weights(g) for name, g in net.groups.items()}

    def arch_loss(self, net: Supernet, x, y) -> torch.Tensor:
        return F.cross_entropy(self.forward(net, x, self.weights(net)), y)

    def arch_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        """The architecture parameters' gradients (their .grad, zeroed before) for one step, and the loss.
        First order: the validation loss's gradient in alpha with the weights fixed. The step takes
        the optimizer's step and restores pruned alphas (`steps.architecture_step`)."""
        loss = self.arch_loss(net, *val_batch)
        loss.backward()
        return float(loss.detach())

    def prune_after_step(self, net: Supernet) -> list[Prune]:
        return []

    def prune_after_epoch(self, net: Supernet) -> list[Prune]:
        return []

    def finished(self, net: Supernet) -> bool:
        return False

    def derive(self, net: Supernet):
        raise NotImplementedError

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def normalised_entropy(weights: torch.Tensor, n_candidates: int) -> float:
    """Mean over edges of the op distribution's entropy divided by log(N) (ASAP Figure 7)."""
    p = weights.clamp_min(1e-12)
    h = -(weights * p.log()).sum(-1) / math.log(max(n_candidates, 2))
    return float(h.mean())
