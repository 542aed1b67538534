"""What each job reads (nasflow.jobs): the run's fingerprint, its settings.json, the rule's params and
`nasflow params` all come from one function per job kind."""
import json

import pytest

from conftest import ROOT, SHARED_DATASETS
from nasflow import jobs
from nasflow.study import study_of
from nasflow.errors import NasflowError
from nasflow.settings import load_params


def _params(*overrides):
    return load_params(ROOT / "params.yaml", overrides=list(overrides))


def _search(method, *overrides):
    return jobs.fingerprint(study_of(_params(*overrides)).search_inputs(method, 0))


def _train(recipe, *overrides):
    return jobs.fingerprint(study_of(_params(*overrides)).train_inputs(jobs.genotype_content("DARTS_V2"), "cifar10", recipe, 0))


def test_a_search_reads_the_weight_split_only_when_it_has_two_levels():
    assert _search("darts") != _search("darts", "data.weights_fraction=0.6")
    assert _search("gold-nas") == _search("gold-nas", "data.weights_fraction=0.6")  # one level: every image
    assert _search("gold-nas-random") != _search("gold-nas-random", "data.weights_fraction=0.6")  # held-out scoring


def test_a_search_reads_the_split_seed_when_it_splits_or_subsets():
    assert _search("darts") != _search("darts", "data.split_seed=7")
    assert _search("gold-nas") != _search("gold-nas", "data.split_seed=7")  # the smoke profile draws a subset
    full = "search.gold-nas.subset_per_class=null"
    assert _search("gold-nas", full) == _search("gold-nas", full, "data.split_seed=7")


def test_a_search_reads_its_own_block_and_the_common_keys_only():
    assert _search("darts") != _search("darts", "search.darts.order=second")
    assert _search("darts") == _search("darts", "search.asap.t0=2.0")
    assert _search("darts") != _search("darts", "search.w_momentum=0.8")  # common, not overridden by darts
    assert _search("darts") == _search("darts", "train.recipes.tiny.epochs=9")


def test_an_epoch_bound_is_not_an_input_but_an_epoch_count_is():
    # GOLD-NAS stops at flops_min; its `epochs` only bounds the search, so raising it reruns nothing and
    # a checkpoint that stopped at the bound resumes under the larger one
    assert _search("gold-nas") == _search("gold-nas", "search.gold-nas.epochs=99")
    assert _search("darts") != _search("darts", "search.darts.epochs=9")


def test_the_random_baseline_reads_gold_nas_space_but_not_its_pruning_rules():
    assert _search("gold-nas-random") != _search("gold-nas-random", "search.gold-nas.layers=4")  # the space
    for key in ("patience=5", "lambda0=1.0", "flops_min=0.5"):  # Algorithm 1's settings: not the baseline's
        assert _search("gold-nas-random") == _search("gold-nas-random", f"search.gold-nas.{key}")


def test_svhn_jobs_read_whether_the_extra_images_are_in(tmp_path):
    params = _params()
    cell = jobs.genotype_content("DARTS_V2")
    with_extra = study_of(params).train_inputs(cell, "svhn", "tiny", 0)
    without = study_of(_params("data.svhn_extra=false")).train_inputs(cell, "svhn", "tiny", 0)
    assert jobs.fingerprint(with_extra) != jobs.fingerprint(without)
    assert study_of(_params("data.svhn_extra=false")).train_inputs(cell, "cifar10", "tiny", 0) == \
        study_of(params).train_inputs(cell, "cifar10", "tiny", 0)


def test_a_training_reads_its_recipe_with_the_defaults_filled_in():
    assert _train("tiny") != _train("tiny", "train.recipe_defaults.grad_clip=4.0")
    assert _train("tiny") == _train("tiny", "train.recipes.darts_cifar.epochs=9")
    assert _train("tiny") != _train("tiny", "data.split_seed=3")  # the tiny recipe draws per-class subsets
    assert _train("darts_cifar") == _train("darts_cifar", "data.split_seed=3")  # whole dataset: seed unread
    assert _train("darts_cifar") == _train("darts_cifar", "search.epochs=3")


def test_a_training_reads_its_genotypes_content_not_its_name(tmp_path):
    params = _params()
    cell = jobs.genotype_content("DARTS_V2")
    (tmp_path / "a.json").write_text(json.dumps(cell))
    same = study_of(params).train_inputs(jobs.genotype_content(tmp_path / "a.json"), "cifar10", "tiny", 0)
    assert same == study_of(params).train_inputs(cell, "cifar10", "tiny", 0)
    other = study_of(params).train_inputs(jobs.genotype_content("DARTS_V1"), "cifar10", "tiny", 0)
    assert other["genotype_sha256"] != same["genotype_sha256"]


def test_every_recipe_key_is_in_params_yaml_and_one_removed_is_refused_by_name(tmp_path):
    r = study_of(_params()).recipe_settings("gold_nas_cifar")
    assert r["cutout"] == 16 and r["drop_path"] == 0.2 and r["grad_clip"] == 5.0  # visible, not hidden in code
    text = (ROOT / "params.yaml").read_text()
    assert "\n    cutout: 16\n" in text
    (tmp_path / "params.yaml").write_text(text.replace("\n    cutout: 16\n", "\n", 1))
    with pytest.raises(NasflowError, match="train.recipe_defaults: 'cutout' is a required property"):
        load_params(tmp_path / "params.yaml")


def test_a_method_key_removed_from_params_yaml_is_refused_by_name(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    assert "\n        order: first\n" in text
    (tmp_path / "params.yaml").write_text(text.replace("\n        order: first\n", "\n", 1))
    with pytest.raises(NasflowError, match="search.darts: 'order' is a required property; written under "
                                           "papers.darts.search.darts"):
        load_params(tmp_path / "params.yaml")


needs_shared = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("verb,job", [
    (["search", "--method", "darts", "--set", "search.darts.epochs=1"], ["--search", "darts"]),
    (["train", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny", "--set", "train.recipes.tiny.epochs=1"],
     ["--train", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny"]),
])
def test_a_runs_settings_json_is_what_nasflow_params_prints_for_that_job(cli, smoke_params, tmp_path, verb, job):
    out = tmp_path / "run"
    res = cli(*verb, "--params", smoke_params, "--out", out, "--no-track", "--set", "runtime.progress=none")
    assert res.returncode == 0, res.stderr
    overrides = verb[verb.index("--set"):]
    printed = cli("params", "--params", smoke_params, *job, *overrides)
    assert printed.returncode == 0, printed.stderr
    assert json.loads((out / "settings.json").read_text()) == json.loads(printed.stdout)
