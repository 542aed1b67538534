"""DARTS (Liu, Simonyan, Yang 2019): softmax over the candidates, bi-level optimisation (first order,
or second order through one unrolled weight step), and top-2 derivation without `none`.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "DARTS (Liu, Simonyan and Yang 2019), the baseline".
"""
from __future__ import annotations

import torch

from nasflow.search.policies.base import SearchPolicy
from nasflow.search.supernet import Supernet, top2_without_none


class Darts(SearchPolicy):
    name = "darts"
    alpha_first = True

    def arch_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        if self.s["order"] == "first":
            return super().arch_gradients(net, train_batch, val_batch, w_opt)
        return self._unrolled_gradients(net, train_batch, val_batch, w_opt)

    def _unrolled_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        """grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / 2 eps,
        with w' = w - xi * (grad_w L_train + momentum + weight decay) as the network optimizer would step,
        and w+- = w +- eps * grad_w' L_val (eq. 7 and 8 of DARTS, finite differences)."""
        weights = net.weight_parameters()
        arch = net.arch_parameters()
        group = w_opt.param_groups[0]
        xi, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        saved = [p.detach().clone() for p in weights]
        buffers = [b.detach().clone() for b in net.buffers()]

        train_loss = self.arch_loss(net, *train_batch)
        grads = torch.autograd.grad(train_loss, weights, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(weights, grads):
                g = torch.zeros_like(p) if g is None else g
                buf = w_opt.state.get(p, {}).get("momentum_buffer")
                step = g + wd * p + (momentum * buf if buf is not None else 0.0)
                p.sub_(xi * step)

        val_loss = self.arch_loss(net, *val_batch)
        grads = torch.autograd.grad(val_loss, arch + weights, allow_unused=True)
        d_alpha = [torch.zeros_like(a) if g is None else g for a, g in zip(arch, grads[:len(arch)])]
        d_w = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, grads[len(arch):])]

        eps = 0.01 / (torch.cat([g.flatten() for g in d_w]).norm() + 1e-12)
        implicit = []
        for sign in (1.0, -2.0):  # to w + eps*dw, then to w - eps*dw
            with torch.no_grad():
                for p, w0, g in zip(weights, saved, d_w):
                    p.copy_(w0 + (eps * g if sign > 0 else -eps * g))
            loss = self.arch_loss(net, *train_batch)
            implicit.append(torch.autograd.grad(loss, arch))
        with torch.no_grad():
            for p, w0 in zip(weights, saved):
                p.copy_(w0)
            for b, b0 in zip(net.buffers(), buffers):
                b.copy_(b0)

        for a, da, gp, gm in zip(arch, d_alpha, implicit[0], implicit[1]):
            a.grad = da - xi * (gp - gm) / (2 * eps)
        return float(val_loss.detach())

    def derive(self, net: Supernet):
        """Top-2 incoming edges per node by their strongest non-`none` op (softmax over every original
        candidate, as DARTS's genotype() reads it), each with that op."""
        weights = {name: torch.softmax(g.alpha.detach(), dim=-1) for name, g in net.groups.items()}
        return net.genotype_from_choice(top2_without_none(net, weights))

