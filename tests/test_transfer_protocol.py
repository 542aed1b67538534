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
                        ("{nearest: 445}", "required property")):
        with pytest.raises(NasflowError, match=match):
            load_params(ROOT / "params.yaml", "paper", [
                f"search.protocol.gold-nas-mu0={{transfer: [imagenet], transfer_by_dataset: {{imagenet: {{pick: {pick}}}}}}}"])
