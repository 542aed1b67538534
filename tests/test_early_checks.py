"""Settings that cannot work are refused when they load (`nasflow params`, the Snakefile's parse), naming
the key where it is written, not when a selection or training reaches them hours later."""
import pytest

from conftest import ROOT
from nasflow.errors import NasflowError
from nasflow.settings import load_params
from nasflow.study import study_of

PARAMS = ROOT / "params.yaml"


def _load(*overrides, profile="smoke"):
    return study_of(load_params(PARAMS, profile, list(overrides)))


def test_a_short_retrain_selection_whose_recipe_holds_nothing_out_is_refused():
    _load()  # smoke: DARTS's best of 2 by short_retrain, tiny_select holds out a quarter
    with pytest.raises(NasflowError, match=r"train\.recipes\.tiny_select\.holdout_fraction: 0.*search\.protocol\.darts"):
        _load("train.recipes.tiny_select.holdout_fraction=0")
    with pytest.raises(NasflowError, match=r"train\.selection_recipe: 'nope'"):
        _load("train.selection_recipe=nope")


def test_a_short_retrain_selection_on_streamed_class_folders_is_refused():
    with pytest.raises(NasflowError, match=r"search\.protocol\.darts\.select\.by: short_retrain on imagenet"):
        _load("search.protocol.darts.retrain_dataset=imagenet")


def test_supernet_val_on_a_one_level_search_without_held_out_images_is_refused():
    select = "search.protocol.gold-nas={seeds: [0, 1], select: {best_of: 2, by: supernet_val}}"
    with pytest.raises(NasflowError, match=r"search\.protocol\.gold-nas\.select\.by: supernet_val.*"
                                           r"search\.gold-nas\.val_fraction is 0"):
        _load(select)
    assert _load(select, "search.gold-nas.val_fraction=0.25").search_name("gold-nas").select["by"] == "supernet_val"
    variant = ["search.variants.gold-held={method: gold-nas, settings: {mu: 0.0}}", "search.names=[gold-held]",
               "search.protocol.gold-held={seeds: [0, 1], select: {best_of: 2, by: supernet_val}}"]
    with pytest.raises(NasflowError, match=r"search\.variants\.gold-held\.settings\.val_fraction is 0"):
        _load(*variant)


def test_a_variants_own_key_wins_over_its_methods_imagenet_block():
    # gold-nas's imagenet_style block sets channels 44 (appendix C); a variant asking for 48 gets 48
    overrides = ["search.variants.gold-in={method: gold-nas, settings: {dataset: imagenet}}",
                 "search.names=[gold-in, gold-nas-imagenet-48]"]
    study = _load(*overrides, profile="paper")
    assert study.search_name("gold-nas-imagenet-48").settings["channels"] == 48
    assert study.search_name("gold-in").settings["channels"] == 44


def test_an_error_in_a_variants_settings_names_the_variant_block():
    with pytest.raises(NasflowError, match=r"search\.variants\.darts-fast\.settings: w_lr_min"):
        _load("search.variants.darts-fast={method: darts, settings: {w_lr: 0.0001}}", "search.names=[darts-fast]")


def test_a_transfer_protocol_for_a_dataset_not_transferred_to_or_an_unknown_recipe_is_refused():
    with pytest.raises(NasflowError, match=r"search\.protocol\.asap\.transfer_by_dataset\.svhn: 'asap' is not "
                                           r"transferred to svhn"):
        _load("search.protocol.asap={transfer: [freiburg], transfer_by_dataset: {svhn: {seeds: [0, 1]}}}")
    with pytest.raises(NasflowError, match=r"transfer_by_dataset\.freiburg\.recipe: 'nope'"):
        _load("search.protocol.asap={transfer: [freiburg], transfer_by_dataset: {freiburg: {recipe: nope}}}")


def test_the_paper_profile_transfers_each_cell_as_its_paper_did():
    from nasflow.estimate import planned_jobs

    jobs, _ = planned_jobs(load_params(PARAMS, "paper"), ROOT / "no-results-here")
    transfers = {(j.name, j.dataset): [] for j in jobs if j.role == "transfer"}
    for j in jobs:
        if j.role == "transfer":
            transfers[(j.name, j.dataset)].append((j.seed, j.recipe))
    assert transfers[("entranas-s0-0", "imagenet")] == [(0, "entranas_imagenet")]        # EnTranNAS 4.3
    assert [r for _, r in transfers[next(k for k in transfers if k[0].startswith("gold-nas-mu0"))]] == ["gold_nas_imagenet"]
    assert transfers[("pr-darts-dl-s0-0", "cifar100")] == [(s, "pr_darts_cifar") for s in (0, 1, 2)]  # PR-DARTS 4.3
    assert transfers[("ASAP", "imagenet")] == [(0, "asap_imagenet")]                      # ASAP's own, as before


def test_nasflow_count_counts_a_cell_in_a_recipes_network(cli):
    """The original DARTS NetworkImageNet: 4.719 M parameters, 529.9 M MACs; ASAP's ImageNet network is
    under 4.3's 600 M only with its stem's three reductions (docs/methods.md)."""
    import json

    res = cli("count", "--genotype", "DARTS_V2", "--recipe", "darts_imagenet", "--dataset", "imagenet",
              "--profile", "paper", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"params_M": 4.719, "macs_M": 529.9}
    res = cli("count", "--genotype", "ASAP", "--recipe", "asap_imagenet", "--dataset", "imagenet", "--profile", "paper",
              "--json")
    assert json.loads(res.stdout)["macs_M"] < 600
    res = cli("count", "--genotype", "ASAP", "--recipe", "asap_imagenet", "--channels", "40", "--dataset", "imagenet")
    assert res.returncode == 2 and "--recipe gives the network's channels" in res.stderr
