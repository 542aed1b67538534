"""`nasflow plan`'s estimate: a training costs epochs x images x its network's MACs (the recipe's network
around its cell, at the dataset's image size) x a rate anchored to GOLD-NAS's timings; an EnTranNAS super-net
with more Engine cells costs more, all of them DARTS's."""
import json

import pytest

from nasflow import layout
from nasflow.catalog.datasets import dataset_info
from nasflow.catalog.genotype import zoo_genotype
from nasflow.catalog.published import published
from nasflow.catalog.sizes import network_cost
from nasflow.estimate import (CIFAR_HOURS_PER_IMAGE_EPOCH, IMAGENET_HOURS_PER_IMAGE_EPOCH, anchor_macs,
                              hours_per_mac_image_epoch, summary, training_hours)
from nasflow.settings import load_params
from nasflow.study import study_of


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    from conftest import write_params
    return load_params(write_params(tmp_path_factory.mktemp("paper")), "paper")


@pytest.fixture(scope="module")
def plan(paper):
    return summary(paper)


def test_the_rates_are_gold_nas_figures_over_the_macs_of_the_networks_they_timed():
    pubs = published()
    anchors = anchor_macs(pubs)
    assert anchors["cifar"] == pytest.approx((245 + 546) / 2)          # Table 1's front, A to L
    assert anchors["imagenet"] == pytest.approx((585 + 578 + 585 + 590) / 4)  # Table 2's X, Y, Z, Z-tr
    # a network of the anchor's size costs what the figure says: 0.75 days per 600 CIFAR-10 epochs
    assert hours_per_mac_image_epoch("cifar", pubs) * anchors["cifar"] * 1e6 * 600 * 50_000 == pytest.approx(18)
    assert hours_per_mac_image_epoch("imagenet", pubs) * anchors["imagenet"] * 1e6 == \
        pytest.approx(IMAGENET_HOURS_PER_IMAGE_EPOCH)
    assert CIFAR_HOURS_PER_IMAGE_EPOCH == pytest.approx(18 / (600 * 50_000))


def test_two_recipes_on_one_cell_cost_in_proportion_to_their_networks(tmp_path):
    """DARTS_V2 in DARTS's mobile network (14 cells, 48 ch, stem to 28x28: 529.9 M MACs, the original
    NetworkImageNet's) and in ASAP's taken to 56x56 by its stem (50 ch, SE; the reading docs/methods.md
    rejects): about three times the MACs, three times the hours, at the same epochs and images."""
    from conftest import write_params

    paper = load_params(write_params(tmp_path), "paper", ["train.recipes.asap_imagenet.stem_reductions=2"])
    study, pubs = study_of(paper), published()
    small, small_macs = training_hours(study, "DARTS_V2", "darts_imagenet", "imagenet", pubs)
    big, big_macs = training_hours(study, "DARTS_V2", "asap_imagenet", "imagenet", pubs)
    assert small_macs / 1e6 == pytest.approx(529.9, abs=0.05)
    assert big_macs > 3 * small_macs
    epochs = {r: study.recipe_settings(r)["epochs"] for r in ("darts_imagenet", "asap_imagenet")}
    images = dataset_info("imagenet").train_images
    assert big / small == pytest.approx(big_macs * images * epochs["asap_imagenet"]
                                        / (small_macs * images * epochs["darts_imagenet"]), rel=1e-9)
    # the MACs are the recipe's network: counted here from its keys, independently of the recipe lookup
    r = study.recipe_settings("asap_imagenet")
    assert big_macs == network_cost(zoo_genotype("DARTS_V2"), "imagenet", r["channels"], r["layers"], 1000, 3, 224,
                                    stem_reductions=r["stem_reductions"], se_ratio=r["se_ratio"])["macs"]


def test_freiburg_is_priced_at_its_64_pixels(paper):
    study, pubs = study_of(paper), published()
    freiburg, freiburg_macs = training_hours(study, "ASAP", "asap_transfer", "freiburg", pubs)
    cifar100, cifar100_macs = training_hours(study, "ASAP", "asap_transfer", "cifar100", pubs)
    assert freiburg_macs == pytest.approx(4 * cifar100_macs, rel=0.01)  # 64x64: four times 32x32's pixels
    per_image = {d: h / dataset_info(d).train_images for d, h in (("freiburg", freiburg), ("cifar100", cifar100))}
    assert per_image["freiburg"] == pytest.approx(4 * per_image["cifar100"], rel=0.01)


def test_the_plan_rows_are_epochs_images_macs_and_rate(paper, plan):
    study, pubs = study_of(paper), published()
    rows = [t for t in plan["trainings"] if t["what"] in ("DARTS_V1", "DARTS_V2", "ASAP", "PR_DARTS_UR")]
    assert len(rows) == 4
    for row in rows:
        r, info = study.recipe_settings(row["recipe"]), dataset_info(row["dataset"])
        expected = (row["jobs"] * r["epochs"] * info.train_images * row["macs_M"] * 1e6
                    * hours_per_mac_image_epoch(info.style, pubs))
        assert row["gpu_hours"] == pytest.approx(expected, rel=1e-3)
    transfers = {(t["dataset"], t["recipe"]): t for t in plan["trainings"] if t["stage"] == "transfer"}
    # ASAP's ImageNet network (3 stem reductions, SE, 50 ch): each cell's count, under 4.3's 600 M
    assert 400 < transfers[("imagenet", "asap_imagenet")]["macs_M"] < 600
    assert transfers[("freiburg", "asap_transfer")]["macs_M"] > 3.5 * transfers[("cifar100", "asap_transfer")]["macs_M"]


def test_the_plan_keeps_its_json_fields(plan):
    assert {"profile", "searches", "selections", "consistency", "trainings", "jobs", "train_source"} <= set(plan)
    assert {"name", "method", "dataset", "searches", "epochs", "gpu_hours", "source"} <= set(plan["searches"][0])
    assert {"stage", "what", "dataset", "recipe", "jobs", "gpu_hours", "estimate", "macs_M"} <= set(plan["trainings"][0])
    json.dumps(plan)


def test_cells_not_yet_searched_stand_in_as_their_papers_cell(paper, plan):
    study, pubs = study_of(paper), published()
    row = {t["what"]: t for t in plan["trainings"] if t["stage"] == "retrain"}
    asap = study.recipe_settings("asap_cifar")
    assert row["asap-magnitude-p1"]["macs_M"] == row["ASAP"]["macs_M"]   # published.csv pairs asap with ASAP
    assert row["pr-darts-ur"]["macs_M"] == row["PR_DARTS_UR"]["macs_M"]
    assert paper["plan"]["stand_in_cell"] == "DARTS_V2"                  # no published GOLD-NAS or EnTranNAS cell
    assert row["entranas"]["macs_M"] == row["DARTS_V2"]["macs_M"]
    assert asap["channels"] == 36


def test_a_searched_cell_is_priced_by_its_own_genotype_once_its_search_ended(paper, tmp_path):
    """A search that has ended prices its cell from its genotype file (a cell of skips and pools: only the
    preprocessing convs cost), not its stand-in."""
    from nasflow.catalog.genotype import parse_genotype
    skip = {"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4, "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4,
            "normal_concat": [2, 3, 4, 5], "reduce_concat": [2, 3, 4, 5]}
    folder = tmp_path / layout.search_dir("asap", 0)
    folder.mkdir(parents=True)
    (folder / "arch0.json").write_text(json.dumps(skip))
    (folder / "architectures.json").write_text(json.dumps([{"id": "asap-s0-0", "genotype": "arch0.json"}]))
    trainings = summary(paper, tmp_path)["trainings"]
    ended = {t["what"]: t for t in trainings if t["stage"] == "retrain" and t["recipe"] == "asap_cifar"}
    r = study_of(paper).recipe_settings("asap_cifar")
    own = network_cost(parse_genotype(skip), "cifar", r["channels"], r["layers"], 10, 3, 32)["macs"]
    assert ended["asap"]["macs_M"] == round(own / 1e6, 1) < 0.6 * ended["ASAP"]["macs_M"]
    # ASAP-Medium's training (asap-s0-0+asap_cifar_44) prices the same cell in its own 44-channel network
    medium = next(t for t in trainings if t["stage"] == "retrain" and t["recipe"] == "asap_cifar_44")
    wide = network_cost(parse_genotype(skip), "cifar", 44, r["layers"], 10, 3, 32)["macs"]
    assert medium["what"] == "asap" and medium["macs_M"] == round(wide / 1e6, 1) > ended["asap"]["macs_M"]


def test_an_all_engine_entranas_super_net_costs_what_darts_does(plan):
    """EnTranNAS Table 1: with every cell an Engine cell the super-net is DARTS's; the paper's (first) and
    `last` hold two Engine cells of eight and cost the published EnTranNAS search; `half` lies between."""
    per_search = {s["name"]: s["gpu_hours"] / s["searches"] for s in plan["searches"]}
    assert per_search["entranas-engine-all"] >= per_search["entranas"]
    assert per_search["entranas-engine-all"] == pytest.approx(per_search["darts"])  # both 50 epochs
    assert per_search["entranas-engine-last"] == pytest.approx(per_search["entranas"])
    assert per_search["entranas"] < per_search["entranas-engine-half"] < per_search["entranas-engine-all"]


def test_the_estimate_counts_without_torch():
    """Every training's MACs are counted by formula (nasflow.catalog.sizes): the plan imports no torch."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from nasflow.settings import load_params; from nasflow.estimate import summary; "
            "found = summary(load_params('params.yaml', 'paper')); assert found['trainings'][0]['macs_M'] > 0; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr


def test_a_per_position_cell_is_priced_at_its_own_depth_as_the_trainer_builds_it(paper, tmp_path):
    """A GOLD-NAS genotype holds one cell per layer: the trainer builds that many layers whatever the recipe
    says (14 here against a 20-layer recipe), and the estimate counts the same network (it used to refuse
    the genotype, which stopped every dry run once a smoke GOLD-NAS search had ended)."""
    from nasflow.catalog.genotype import Genotype, zoo_genotype
    from nasflow.estimate import network_macs

    darts = zoo_genotype("DARTS_V2")
    cells = [darts.cells[1 if i in (4, 9) else 0] for i in range(14)]
    genotype = Genotype(cells, layout="per-position")
    path = tmp_path / "front.json"
    path.write_text(json.dumps(genotype.to_json()))
    study = study_of(paper)
    assert study.recipe_settings("darts_cifar")["layers"] == 20
    r = study.recipe_settings("darts_cifar")
    expected = network_cost(genotype, "cifar", r["channels"], 14, 10, 3, 32)["macs"]
    assert network_macs(study, str(path), "darts_cifar", "cifar10") == expected
