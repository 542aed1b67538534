"""The search engine: settings refused before work; the architecture step every bi-level policy takes
(nasflow.search.steps)."""
import time

import pytest
import torch

from conftest import QUIET, run_cli, smoke_search
from nasflow.search.supernet import SpaceConfig, Supernet

ASAP_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def _net(**kw):
    torch.manual_seed(0)
    return Supernet(SpaceConfig(ops=kw.pop("ops", ASAP_OPS), channels=4, layers=3, **kw))


def test_the_engine_restores_pruned_alphas_after_any_policys_architecture_step():
    """A policy computes gradients only; a minimal one (backward, nothing after) cannot let Adam, whose
    weight decay and momentum move parameters with zero gradient, shift a pruned alpha."""
    from nasflow.search.steps import architecture_step
    from nasflow.search.policies.base import SearchPolicy

    class BackwardOnly(SearchPolicy):
        def arch_gradients(self, net, train_batch, val_batch, w_opt):
            loss = self.arch_loss(net, *val_batch)
            loss.backward()
            return float(loss.detach())

    net = _net()
    policy = BackwardOnly({"a_lr": 0.1, "a_betas": [0.5, 0.999], "a_weight_decay": 0.5}, net)
    a_opt = policy.make_arch_optimizer(net.arch_parameters())
    batch = (torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    architecture_step(policy, net, a_opt, None, batch, None)  # momentum in every alpha
    net.prune("normal", 0, 2)
    net.prune("reduce", 5, 4)
    frozen = {name: g.alpha.detach().clone() for name, g in net.groups.items()}
    for _ in range(3):
        architecture_step(policy, net, a_opt, None, batch, None)
    for name, e, s in (("normal", 0, 2), ("reduce", 5, 4)):
        assert net.groups[name].alpha[e, s] == frozen[name][e, s]
    assert not torch.equal(net.groups["normal"].alpha.detach(), frozen["normal"])  # the alive ones moved


@smoke_search
@pytest.mark.parametrize("override,message", [
    ("search.asap.t0=0", "search.asap.t0"),
    ("search.asap.beta=1.5", "search.asap.beta"),
    ("search.asap.beta=0", "search.asap.beta"),
    ("search.asap.threshold_factor=1", "search.asap.threshold_factor"),
    ("search.asap.ops=[sep_conv_3x3, conv_9x9]", "search.asap.ops.1"),
    ("search.asap.ops=[none, sep_conv_3x3]", "search.asap.ops"),
])
def test_bad_search_settings_are_refused_before_training(smoke_params, tmp_path, override, message):
    out = tmp_path / "bad"
    started = time.time()
    res = run_cli("search", "--method", "asap", "--params", smoke_params, "--out", out, "--set", override, *QUIET)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and time.time() - started < 30
