"""Which architecture of a search a transfer takes (`transfer_by_dataset.<dataset>.pick`)."""
import pytest

from conftest import ROOT
from nasflow.errors import NasflowError
from nasflow.settings import load_params
from nasflow.study import study_of

FRONT = [546.0, 508.0, 459.0, 445.0, 402.0, 376.0]  # GOLD-NAS Table 1's mu = 0 front, L to G


def _front(name, seed):
    return [{"id": f"{name}-s{seed}-{i}", "genotype": f"arch{i}.json", "macs_M": m} for i, m in enumerate(FRONT)]


def _searched(study, name):
    return [{**e, "method": name, "search_seed": 0} for e in _front(name, 0)]


def test_gold_nas_i_is_the_mu0_front_point_nearest_table_1s_445_m_not_the_most_pruned():
    study = study_of(load_params(ROOT / "params.yaml", "paper"))
    jobs = study.transfer_jobs(_searched(study, "gold-nas-mu0"))
    assert [a for a, d in jobs if a.startswith("gold-nas-mu0")] == ["gold-nas-mu0-s0-3"]  # 445 M, not 376 M
    assert study.recipe_for("gold-nas-mu0-s0-3", "imagenet") == "gold_nas_imagenet"


def test_a_name_without_a_pick_transfers_its_final_cell_and_a_bad_pick_is_refused():
    params = load_params(ROOT / "params.yaml", "paper", [
        "search.protocol.gold-nas-mu0={seeds: [0], transfer: [imagenet]}"])
    study = study_of(params)
    assert [a for a, _ in study.transfer_jobs(_searched(study, "gold-nas-mu0")) if a.startswith("gold")] == \
        ["gold-nas-mu0-s0-5"]
    for pick, match in (("last", "does not match"), ("{nearest_macs: -1}", "less than or equal"),
                        ("{nearest: 445}", "pick.nearest' .allowed here: largest_under_macs, nearest_macs"),
                        ("all", "pick: all: a transfer takes one architecture"),
                        ("{nearest_macs: 445, largest_under_macs: 600}", "expected exactly one of")):
        with pytest.raises(NasflowError, match=match):
            load_params(ROOT / "params.yaml", "paper", [
                f"search.protocol.gold-nas-mu0={{transfer: [imagenet], transfer_by_dataset: {{imagenet: {{pick: {pick}}}}}}}"])


# GOLD-NAS Table 2's fronts, MACs at each search's own width (made up around C.1's 578-590 M picks)
IMAGENET_FRONTS = {"gold-nas-imagenet-44": [702.0, 640.0, 585.0, 541.0, 502.0],
                   "gold-nas-imagenet-46": [655.0, 611.0, 578.0, 520.0],
                   "gold-nas-imagenet-48": [690.0, 601.0, 585.0, 560.0]}


def _imagenet_searched():
    return [{"id": f"{name}-s0-{i}", "genotype": f"arch{i}.json", "macs_M": m, "method": name, "search_seed": 0}
            for name, front in IMAGENET_FRONTS.items() for i, m in enumerate(front)]


def test_gold_nas_imagenet_retrains_x_y_z_the_largest_under_600_m_and_z_tr_the_500_m_point_at_48_channels():
    study = study_of(load_params(ROOT / "params.yaml", "paper"))
    trainings = [(a, study.recipe_for(a, d)) for a, d, _ in study.training_jobs(_imagenet_searched())
                 if a.startswith("gold-nas-imagenet")]
    assert trainings == [("gold-nas-imagenet-44-s0-2", "gold_nas_imagenet_44"),          # X: 585 M at 44
                         ("gold-nas-imagenet-44-s0-4+gold_nas_imagenet", "gold_nas_imagenet"),  # Z-tr: 502 M, at 48
                         ("gold-nas-imagenet-46-s0-2", "gold_nas_imagenet_46"),          # Y: 578 M at 46
                         ("gold-nas-imagenet-48-s0-2", "gold_nas_imagenet")]             # Z: 585 M at 48
    assert study.recipe_settings("gold_nas_imagenet_44")["channels"] == 44
    assert {n: study.search_name(n).settings["eval_channels"] for n in IMAGENET_FRONTS} == \
        {n: study.search_name(n).settings["channels"] for n in IMAGENET_FRONTS} == \
        {"gold-nas-imagenet-44": 44, "gold-nas-imagenet-46": 46, "gold-nas-imagenet-48": 48}


def test_a_front_with_no_point_under_the_bound_retrains_its_smallest_and_a_bad_retrain_entry_is_refused():
    from nasflow.study import _picked

    front = [{"id": f"x-s0-{i}", "macs_M": m} for i, m in enumerate([900.0, 700.0, 650.0])]
    assert [e["id"] for e in _picked(front, {"largest_under_macs": 600})] == ["x-s0-2"]
    assert [e["id"] for e in _picked(front, "all")] == ["x-s0-0", "x-s0-1", "x-s0-2"]
    with pytest.raises(NasflowError, match=r"asap.retrain.1.recipe: .nope. is not a recipe"):
        load_params(ROOT / "params.yaml", "paper", [
            "search.protocol.asap={retrain: [{pick: all}, {pick: final, recipe: nope}]}"])
    with pytest.raises(NasflowError, match=r"retrain.0.pick: 'first' does not match"):
        load_params(ROOT / "params.yaml", "paper", ["search.protocol.asap={retrain: [{pick: first}]}"])


def test_asap_medium_and_large_are_its_cell_at_44_and_50_channels_each_paired_with_its_own_row():
    study = study_of(load_params(ROOT / "params.yaml", "paper"))
    searched = [{"id": "asap-s0-0", "genotype": "genotype.json", "method": "asap", "search_seed": 0}]
    retrained = {(a, study.recipe_for(a, d)) for a, d, _ in study.training_jobs(searched)
                 if a.startswith("asap") and d == "cifar10"}
    assert retrained == {("asap-s0-0", "asap_cifar"), ("asap-s0-0+asap_cifar_44", "asap_cifar_44"),
                         ("asap-s0-0+asap_cifar_50", "asap_cifar_50")}
    assert [study.recipe_settings(r)["channels"] for r in ("asap_cifar", "asap_cifar_44", "asap_cifar_50")] == [36, 44, 50]
    assert study.recipe_settings("asap_cifar_50")["epochs"] == study.recipe_settings("asap_cifar")["epochs"] == 1500


def test_the_tables_pair_each_retraining_with_the_row_of_its_own_recipe():
    import pandas as pd

    from nasflow.catalog.published import beside

    rows = pd.DataFrame([
        ("asap-s0-0", "asap", "cifar10", True), ("asap-s0-0+asap_cifar_44", "asap", "cifar10", True),
        ("asap-s0-0+asap_cifar_50", "asap", "cifar10", True),
        ("gold-nas-imagenet-44-s0-2", "gold-nas-imagenet-44", "imagenet", False),
        ("gold-nas-imagenet-44-s0-4+gold_nas_imagenet", "gold-nas-imagenet-44", "imagenet", False),
        ("gold-nas-imagenet-46-s0-2", "gold-nas-imagenet-46", "imagenet", False),
        ("gold-nas-imagenet-48-s0-2", "gold-nas-imagenet-48", "imagenet", False)],
        columns=["architecture", "method", "dataset", "final"])
    rows["test_error_mean"], rows["params_M"], rows["macs_M"] = 2.0, 3.0, 500.0
    table = beside(rows, "test_error_mean")
    paired = table.dropna(subset=["paper_row"]).groupby("architecture")["paper_row"].apply(set).to_dict()
    assert paired["asap-s0-0"] == {"ASAP-Small"}
    assert paired["asap-s0-0+asap_cifar_44"] == {"ASAP-Medium"}
    assert paired["asap-s0-0+asap_cifar_50"] == {"ASAP-Large"}
    assert paired["gold-nas-imagenet-44-s0-2"] == {"GOLD-NAS-X‡"}
    assert paired["gold-nas-imagenet-44-s0-4+gold_nas_imagenet"] == {"GOLD-NAS-Z-tr‡"}
    assert paired["gold-nas-imagenet-46-s0-2"] == {"GOLD-NAS-Y‡"}
    assert paired["gold-nas-imagenet-48-s0-2"] == {"GOLD-NAS-Z‡"}


def test_a_cell_under_its_own_recipe_reads_the_genotype_of_the_cell_it_names(tmp_path, monkeypatch):
    import json

    from nasflow import layout

    folder = tmp_path / layout.search_dir("asap", 0)
    folder.mkdir(parents=True)
    (folder / "architectures.json").write_text(json.dumps([{"id": "asap-s0-0", "genotype": "genotype-0.json"},
                                                           {"id": "asap-s0-1", "genotype": "genotype-1.json"}]))
    monkeypatch.chdir(tmp_path)
    assert layout.genotype_ref("asap-s0-0+asap_cifar_44") == str(layout.search_dir("asap", 0)) + "/genotype-0.json"
    assert layout.arch_name("asap-s0-1+asap_cifar_50") == "asap"
    assert layout.own_recipe("asap-s0-1+asap_cifar_50") == "asap_cifar_50" and layout.own_recipe("asap-s0-1") is None
    with pytest.raises(ValueError, match="neither a searched cell"):
        layout.genotype_ref("asap-s0-1+")


def test_asap_table_2s_baselines_transfer_to_the_five_small_datasets_not_imagenet():
    study = study_of(load_params(ROOT / "params.yaml", "paper"))
    jobs = study.transfer_jobs([])
    small = {"cifar100", "cinic10", "freiburg", "svhn", "fashion-mnist"}
    for cell in ("AmoebaNet", "NASNet", "PNASNet", "SNAS_moderate"):
        assert {d for c, d in jobs if c == cell} == small, cell
        assert study.recipe_for(cell, "cinic10") == "asap_transfer_cinic10" and study.recipe_for(cell, "svhn") == "asap_transfer"
    assert {d for c, d in jobs if c == "ASAP"} == small | {"imagenet"}
    narrowed = study_of(load_params(ROOT / "params.yaml", "paper", ["train.transfer.datasets=[svhn]"]))
    assert {d for c, d in narrowed.transfer_jobs([]) if c == "AmoebaNet"} == {"svhn"}


def test_a_recipe_based_on_another_takes_every_change_to_its_base_and_a_bad_base_is_refused():
    params = load_params(ROOT / "params.yaml", "paper", ["train.recipes.gold_nas_imagenet.epochs=10",
                                                         "train.recipes.asap_cifar.lr=0.05"])
    study = study_of(params)
    assert [study.recipe_settings(r)["epochs"] for r in ("gold_nas_imagenet", "gold_nas_imagenet_44",
                                                         "gold_nas_imagenet_46")] == [10, 10, 10]
    assert [study.recipe_settings(r)["lr"] for r in ("asap_cifar", "asap_cifar_44", "asap_cifar_50")] == [0.05] * 3
    assert study.recipe_settings("asap_cifar_50")["channels"] == 50 and "based_on" not in params["train"]["recipes"]["asap_cifar_50"]
    with pytest.raises(NasflowError, match=r"train\.recipes\.asap_cifar_44\.based_on: 'nope' is not a recipe"):
        load_params(ROOT / "params.yaml", "paper", ["train.recipes.asap_cifar_44.based_on=nope"])
    with pytest.raises(NasflowError, match=r"asap_cifar_44 -> asap_cifar_50 -> asap_cifar_44 is a cycle"):
        load_params(ROOT / "params.yaml", "paper", ["train.recipes.asap_cifar_44.based_on=asap_cifar_50",
                                                    "train.recipes.asap_cifar_50.based_on=asap_cifar_44"])
