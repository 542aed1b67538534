"""Search methods register themselves: a new one is one policy file, nothing else changes."""
import csv
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, SHARED_DATASETS
from nasflow.errors import NasflowError
from nasflow.catalog import methods as registry


def test_the_planning_layer_resolves_a_study_without_torch():
    code = ("import sys, nasflow.layout, nasflow.jobs, nasflow.estimate, nasflow.selection, nasflow.settings as s, "
            "nasflow.study as st; study = st.study_of(s.load_params('params.yaml', 'paper')); study.jobs(); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_every_method_declares_a_schema_a_description_and_a_policy():
    from nasflow.study import method_settings
    from nasflow.search.policies.base import SearchPolicy
    from nasflow.settings import load_params, schema

    params = load_params(ROOT / "params.yaml", "base")
    assert set(schema()["properties"]["search"]["properties"]) >= set(registry.names())  # a block each
    for name in registry.names():
        declared = registry.method(name)
        assert issubclass(declared.policy_class(), SearchPolicy)
        assert len(declared.describe(method_settings(params, name))) > 10



def test_each_policys_step_and_runner_agree_with_what_its_declaration_tells_the_planning():
    """The planning reads the torch-free flags (a one-level search has no architecture images, a method
    that trains no supernet has no consistency check); the engine runs the policy's step and runner."""
    from nasflow.search.policies.base import SearchPolicy
    from nasflow.search.steps import bilevel_step, one_level_step

    for name in registry.names():
        declared, policy = registry.method(name), registry.method(name).policy_class()
        assert (policy.runner is None) == declared.trains_supernet, name
        if declared.trains_supernet:  # one level: the splits give alpha no images of its own
            assert (policy.step is one_level_step) == declared.one_level, name
    assert SearchPolicy.step is bilevel_step and registry.method("gold-nas").one_level

def _gumbel_toy():
    """A Gumbel-softmax toy on the shared supernet, written the way a user would add a method."""
    from nasflow.search.policies.base import SearchPolicy
    from nasflow.search.supernet import top2_without_none

    @registry.register("gumbel-toy", describe=lambda s: f"Gumbel-softmax, tau {s['tau']}", columns=("tau",),
                       schema={"required": ["tau"], "properties": {"tau": {"type": "number", "exclusiveMinimum": 0}}})
    class GumbelToy(SearchPolicy):
        def op_weights(self, group):
            logits = group.alpha.masked_fill(~group.alive, float("-inf"))
            return torch.nn.functional.gumbel_softmax(logits, tau=self.s["tau"]).nan_to_num(0.0)

        def record(self):
            return {"phase": "search", "tau": self.s["tau"]}

        def derive(self, net):
            return net.genotype_from_choice(top2_without_none(net, {k: g.alpha for k, g in net.groups.items()}))

    return GumbelToy


@pytest.fixture
def gumbel_toy():
    yield _gumbel_toy()
    registry.unregister("gumbel-toy")


def test_a_registered_methods_settings_are_checked_by_its_own_schema(gumbel_toy, params_file):
    from nasflow.settings import load_params

    with pytest.raises(NasflowError, match="search.gumbel-toy: 'tau' is a required property"):
        load_params(params_file, overrides=["search.gumbel-toy.epochs=2"])
    with pytest.raises(NasflowError, match="search.gumbel-toy.temperature"):
        load_params(params_file, overrides=["search.gumbel-toy.tau=1", "search.gumbel-toy.temperature=1"])
    assert registry.method("gumbel-toy").describe({"tau": 2}) == "Gumbel-softmax, tau 2"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_a_policy_defined_here_runs_a_search_through_the_search_verb(gumbel_toy, smoke_params, tmp_path, capsys):
    from nasflow import cli
    from nasflow.search.results import HISTORY_COLUMNS

    out = tmp_path / "toy"
    rc = cli.main(["search", "--method", "gumbel-toy", "--params", str(smoke_params), "--out", str(out), "--no-track",
                   "--set", "search.gumbel-toy.tau=2.0", "--set", "search.gumbel-toy.epochs=2",
                   "--set", "runtime.progress=none"])
    assert rc == 0, capsys.readouterr().err
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == HISTORY_COLUMNS + ["tau"]  # its own column, none of ASAP's or GOLD-NAS's
    assert [r["epoch"] for r in rows] == ["1", "2"] and {r["tau"] for r in rows} == {"2.0"}
    assert (out / "genotype.json").is_file()
