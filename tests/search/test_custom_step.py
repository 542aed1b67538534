"""A method that is not plain bi-level is its declaration and its policy: the policy takes its own step
(or runs its own search, when it trains no supernet), and `nasflow search` runs it with no engine edit."""
import csv
import json

import numpy as np
import pytest
import torch

from conftest import smoke_search
from nasflow.catalog import methods as registry
from nasflow.errors import NasflowError


def _frozen_alpha_toy():
    """Trains the supernet's weights only, alpha left where it started, with the library's weight step
    behind the engine's guard: a step no built-in method takes."""
    from nasflow.search.policies.base import SearchPolicy
    from nasflow.search.steps import weight_step
    from nasflow.search.supernet import top2_without_none

    @registry.register("frozen-alpha-toy", describe=lambda s: "weights only, alpha frozen at its start",
                       columns=("own_steps",))
    class FrozenAlpha(SearchPolicy):
        def __init__(self, settings, net):
            super().__init__(settings, net)
            self.own_steps = 0

        def begin_epoch(self, epoch):
            super().begin_epoch(epoch)
            self.own_steps = 0

        def step(self, ctx, x, y):
            self.own_steps += 1
            return weight_step(self, ctx.net, ctx.w_opt, x, y, ctx.grad_clip, ctx.guard)

        def record(self):
            return {"phase": "weights", "own_steps": self.own_steps}

        def derive(self, net):
            return net.genotype_from_choice(top2_without_none(net, {k: g.alpha for k, g in net.groups.items()}))

    return FrozenAlpha


def _fixed_cell_toy(trains_supernet=False):
    """Trains no supernet: its runner draws one cell from a fresh supernet's random alpha and writes it
    as a search's result."""
    from nasflow import io as nio
    from nasflow import track
    from nasflow.runtime import prepare_run_dir
    from nasflow.search.policies.base import SearchPolicy
    from nasflow.search.results import write_results
    from nasflow.search.supernet import Supernet, top2_without_none

    class FixedCellRun:
        def __init__(self, search):
            self.search, self.method, self.seed, self.s = search, search.method, search.seed, search.s
            self.out, self.device = search.out, search.device

        def run(self, resume, replace_stale):
            search = self.search
            prepare_run_dir(self.out, self.out / "checkpoint.pt", search.inputs, resume, replace_stale,
                            search.params, "search")
            torch.manual_seed(self.seed)
            net = Supernet(search.space_config(10))
            genotype = net.genotype_from_choice(top2_without_none(net, {k: g.alpha for k, g in net.groups.items()}))
            nio.write_json(self.out / "drawn.json", {"seed": self.seed})
            self.tracker = track.start_run(search.params, f"search-{self.method}-s{self.seed}", tags={},
                                           logged_params={}, enabled=search.track_runs)
            with track.finishing(self.tracker):
                return write_results(self, [(0, genotype)], FixedCell.stop_reason, 0, 0.0, files=("drawn.json",))

    class FixedCell(SearchPolicy):
        stop_reason = "one cell drawn"
        runner = FixedCellRun

    registry.register("fixed-cell-toy", policy=FixedCell, describe=lambda s: "one random cell, never trained",
                      trains_supernet=trains_supernet)
    return FixedCell


@pytest.fixture
def frozen_alpha_toy():
    yield _frozen_alpha_toy()
    registry.unregister("frozen-alpha-toy")


@pytest.fixture
def fixed_cell_toy():
    yield _fixed_cell_toy()
    registry.unregister("fixed-cell-toy")


def _search(method, smoke_params, out, *overrides, resume=False):
    from nasflow import cli

    return cli.main(["search", "--method", method, "--params", str(smoke_params), "--out", str(out), "--no-track",
                     "--set", "runtime.progress=none", *[a for o in overrides for a in ("--set", o)],
                     *(["--resume"] if resume else [])])


def _rows(out):
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


@smoke_search
def test_a_policy_with_its_own_step_searches_through_the_search_verb(frozen_alpha_toy, smoke_params, tmp_path,
                                                                    capsys, monkeypatch):
    from nasflow.search.results import HISTORY_COLUMNS

    out = tmp_path / "toy"
    assert _search("frozen-alpha-toy", smoke_params, out, "search.frozen-alpha-toy.epochs=2") == 0, capsys.readouterr().err
    rows = _rows(out)
    assert list(rows[0]) == HISTORY_COLUMNS + ["own_steps"]
    assert [r["epoch"] for r in rows] == ["1", "2"] and {r["phase"] for r in rows} == {"weights"}
    assert all(int(r["own_steps"]) == int(r["steps"]) > 0 for r in rows)  # every step the engine ran was its own
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    alphas = np.load(out / "alphas.npz")
    for group in alphas["groups"]:  # the bi-level step would have moved them
        assert np.array_equal(alphas[f"{group}_alpha_e001"], alphas[f"{group}_alpha_e002"])
    assert json.loads((out / "search.json").read_text())["stopped"] == "2 epochs"
    assert (out / "genotype.json").is_file() and (out / "checkpoint.pt").is_file()

    # Its step runs behind the engine's guard: a NaN loss in epoch 2 stops it with epoch 1's checkpoint kept,
    # and the search resumes from there to the uninterrupted search's rows.
    cut = tmp_path / "cut"
    monkeypatch.setenv("NASFLOW_FAULT", "nan-loss@2")
    assert _search("frozen-alpha-toy", smoke_params, cut, "search.frozen-alpha-toy.epochs=2") == 2
    assert "epoch 2 step 1: the loss became nan" in capsys.readouterr().err
    assert [r["epoch"] for r in _rows(cut)] == ["1"] and not (cut / "genotype.json").exists()
    monkeypatch.delenv("NASFLOW_FAULT")
    assert _search("frozen-alpha-toy", smoke_params, cut, "search.frozen-alpha-toy.epochs=2", resume=True) == 0
    keep = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]
    assert keep(_rows(cut)) == keep(rows)
    assert (cut / "genotype.json").read_text() == (out / "genotype.json").read_text()


@smoke_search
def test_a_method_that_trains_no_supernet_runs_its_own_search(fixed_cell_toy, smoke_params, tmp_path, capsys):
    out = tmp_path / "toy"
    assert _search("fixed-cell-toy", smoke_params, out) == 0, capsys.readouterr().err
    assert json.loads((out / "drawn.json").read_text()) == {"seed": 0}
    search = json.loads((out / "search.json").read_text())
    assert search["stopped"] == "one cell drawn" and search["method"] == "fixed-cell-toy" and search["epochs"] == 0
    [entry] = json.loads((out / "architectures.json").read_text())
    assert entry["id"] == "fixed-cell-toy-s0-0" and entry["genotype"] == "genotype.json"
    assert (out / "genotype.json").is_file() and (out / "settings.json").is_file()
    assert not (out / "history.csv").exists() and not (out / "alphas.npz").exists()  # the engine's loop never ran


def test_a_runner_needs_the_declaration_to_say_it_trains_no_supernet(params_file, tmp_path):
    from nasflow.search.engine import SearchRun
    from nasflow.settings import load_params

    _fixed_cell_toy(trains_supernet=True)
    try:
        params = load_params(params_file, "smoke", ["runtime.progress=none"])
        with pytest.raises(NasflowError, match="fixed-cell-toy.*trains_supernet=True.*names a runner"):
            SearchRun(params, "fixed-cell-toy", 0, tmp_path / "out", track_runs=False).run()
        assert not (tmp_path / "out").exists()
    finally:
        registry.unregister("fixed-cell-toy")
