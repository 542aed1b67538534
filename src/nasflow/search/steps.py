"""The training steps a policy chooses from (`SearchPolicy.step`): the bi-level step of DARTS and ASAP,
the one-level step of GOLD-NAS, and the pieces they are made of, for a method that writes its own.
Each step takes the policy, a `StepContext` and the training batch, and returns the loss and logits,
detached, for the epoch's training figures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from nasflow.search.supernet import Supernet


def _unguarded(loss):
    return loss


def _unchecked(loss) -> None:
    return None


@dataclass
class StepContext:
    """What one step may use besides the policy and the batch. The engine builds one per step, so the
    optimizers are the current ones (pruning and new pools replace them between steps)."""
    net: Supernet
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    grad_clip: float | None
    arch_batch: Callable[[], tuple] | None = None  # the next batch of alpha's images; drawn only when called
    guard: Callable = _unguarded          # sees the loss before backward: fault injection, the finite check
    guard_alpha: Callable = _unchecked    # sees alpha's loss (a float) after its step
    epoch: int = 0
    step: int = 0


def restore_pruned(net: Supernet) -> None:
    for g in net.groups.values():
        g.restore_pruned()


def clip_gradients(w_opt, grad_clip: float | None) -> None:
    if grad_clip is not None:  # null: no clipping (GOLD-NAS, appendix B.1)
        torch.nn.utils.clip_grad_norm_(w_opt.param_groups[0]["params"], grad_clip)


def architecture_step(policy, net: Supernet, a_opt, train_batch, val_batch, w_opt) -> float:
    """The architecture optimizer's step. The policy only computes the gradients; the step, and putting
    pruned alphas back where pruning left them (Adam moves a parameter whose gradient is zero, and
    weight decay pulls it), happen here, so no method can forget them."""
    a_opt.zero_grad(set_to_none=True)
    loss = policy.arch_gradients(net, train_batch, val_batch, w_opt)
    a_opt.step()
    restore_pruned(net)
    return loss


def weight_step(policy, net: Supernet, w_opt, x, y, grad_clip: float | None, guard=_unguarded):
    """One step of the network weights with alpha fixed; `guard` sees the loss before backward (fault
    injection and the finite-loss check). Returns the loss and logits, detached."""
    weights = {k: w.detach() for k, w in policy.weights(net).items()}
    w_opt.zero_grad(set_to_none=True)
    logits = policy.forward(net, x, weights)
    loss = guard(F.cross_entropy(logits, y))
    loss.backward()
    clip_gradients(w_opt, grad_clip)
    w_opt.step()
    return loss.detach(), logits.detach()


def bilevel_step(policy, ctx: StepContext, x, y):
    """DARTS and ASAP: alpha on a batch of the alpha half (before or after the weights, as the method
    says; none while the policy does not update alpha, ASAP's grace epochs), the weights on the training
    batch. `nasflow bench search` times this."""
    val_batch = ctx.arch_batch() if policy.updates_alpha() else None
    if val_batch is not None and policy.alpha_first:
        ctx.guard_alpha(architecture_step(policy, ctx.net, ctx.a_opt, (x, y), val_batch, ctx.w_opt))
    loss, logits = weight_step(policy, ctx.net, ctx.w_opt, x, y, ctx.grad_clip, ctx.guard)
    if val_batch is not None and not policy.alpha_first:
        ctx.guard_alpha(architecture_step(policy, ctx.net, ctx.a_opt, (x, y), val_batch, ctx.w_opt))
    return loss, logits


def one_level_step(policy, ctx: StepContext, x, y):
    """GOLD-NAS: alpha and the weights descend one loss, the policy's regulariser added, on the same batch."""
    net = ctx.net
    ctx.w_opt.zero_grad(set_to_none=True)
    ctx.a_opt.zero_grad(set_to_none=True)
    logits = policy.forward(net, x, policy.weights(net))
    loss = ctx.guard(F.cross_entropy(logits, y) + policy.regulariser(net))
    loss.backward()
    clip_gradients(ctx.w_opt, ctx.grad_clip)
    ctx.w_opt.step()
    ctx.a_opt.step()
    restore_pruned(net)
    return loss.detach(), logits.detach()


@torch.no_grad()
def evaluate(logits_of, batches) -> dict:
    """Mean cross-entropy and top-1 error (percent) of `logits_of(x)` over `batches`, unaugmented."""
    loss_sum = wrong = seen = 0
    for x, y in batches.epoch(None):
        logits = logits_of(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        wrong += int((logits.argmax(1) != y).sum())
        seen += len(y)
    return {"val_loss": loss_sum / seen, "val_error": 100.0 * wrong / seen}
