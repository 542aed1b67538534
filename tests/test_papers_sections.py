"""params.yaml by paper: each paper's section holds what belongs to it, the sections are laid into the
settings (blocks merge, lists join, conflicting values refused), and the paper profile is assembled from
their `paper_profile:` parts."""
import pytest
import yaml

from conftest import ROOT
from nasflow.catalog import methods as registry
from nasflow.errors import NasflowError
from nasflow.settings import load_params

RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
PAPERS = RAW["papers"]


def _write(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_each_paper_section_holds_its_methods_variants_protocol_and_recipes():
    blocks = {}
    for paper, section in PAPERS.items():
        search, train = section.get("search", {}), section.get("train", {})
        own = [k for k in search if k in registry.names()]
        for name in own:
            assert name not in blocks, f"search.{name} is written in papers.{blocks.get(name)} and papers.{paper}"
            blocks[name] = paper
        for name, variant in search.get("variants", {}).items():
            assert variant["method"] in own, f"papers.{paper}: variant {name} searches another paper's method"
        profile = section.get("paper_profile", {}).get("search", {})
        names = profile.get("names", [])
        variants = {**search.get("variants", {}), **profile.get("variants", {})}
        for name in profile.get("protocol", {}):
            assert name in names, f"papers.{paper}: a protocol for {name}, which the paper profile does not search"
        for name in names:  # a search of this paper: one of its methods, its own variant or a baseline's rerun
            assert name in own or name in variants or name in registry.names(), (paper, name)
        # its own recipes, or the DARTS baseline's (EnTranNAS 4.1 retrains "following DARTS")
        recipes = {**RAW["train"]["recipes"], **PAPERS["darts"]["train"]["recipes"], **train.get("recipes", {})}
        for table in ("recipe_by_search", "recipe_by_cell"):
            for key, recipe in train.get(table, {}).items():
                assert recipe in recipes, f"papers.{paper}.train.{table}.{key}: {recipe} is neither its own nor DARTS's"
    assert sorted(blocks) == sorted(registry.names()), "every registered method's block is in one paper's section"


def test_the_paper_profile_joins_the_papers_parts_in_order():
    params = load_params(ROOT / "params.yaml", "paper")
    expected = [n for s in PAPERS.values() for n in s.get("paper_profile", {}).get("search", {}).get("names", [])]
    assert params["search"]["names"] == expected and len(expected) == len(set(expected))
    cells = [c for s in PAPERS.values() for c in s.get("paper_profile", {}).get("train", {}).get("retrain_cells", [])]
    assert params["train"]["retrain_cells"] == cells
    protocols = {n: p for s in PAPERS.values() for n, p in s.get("paper_profile", {}).get("search", {})
                 .get("protocol", {}).items()}
    assert params["search"]["protocol"] == protocols
    smoke = load_params(ROOT / "params.yaml", "smoke")  # the paper profile's parts stay out of the others
    assert "darts-kendall" not in smoke["search"]["variants"] and "papers" not in smoke


def test_a_value_two_papers_set_differently_is_refused_with_both_places(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["papers"]["gold-nas"]["train"]["recipes"]["darts_cifar"] = {"layers": 8}
    with pytest.raises(NasflowError, match=r"papers\.gold-nas\.train\.recipes\.darts_cifar\.layers: 8 differs from 20"):
        load_params(_write(tmp_path, raw))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["papers"]["asap"]["paper_profile"]["search"]["protocol"]["darts"] = {"seeds": [0]}
    with pytest.raises(NasflowError, match=r"papers\.asap\.paper_profile\.search\.protocol\.darts\.seeds"):
        load_params(_write(tmp_path, raw))


def test_the_same_value_in_two_places_and_list_items_in_two_papers_are_joined_once(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["papers"]["asap"]["paper_profile"]["train"]["retrain_cells"] = ["DARTS_V2", "ASAP"]  # DARTS_V2: also darts'
    raw["papers"]["asap"]["train"]["recipes"]["darts_cifar"] = dict(raw["papers"]["darts"]["train"]["recipes"]["darts_cifar"])
    params = load_params(_write(tmp_path, raw), "paper")
    assert params["train"]["retrain_cells"][:3] == ["DARTS_V1", "DARTS_V2", "ASAP"]


@pytest.mark.parametrize("mutate,match", [
    (lambda raw: raw["papers"]["darts"].__setitem__("recipes", {}), r"papers\.darts: unknown key 'recipes'"),
    (lambda raw: raw["papers"].__setitem__("asap", [1]), r"papers\.asap: a paper's section must be a mapping"),
    (lambda raw: raw.__setitem__("papers", [1]), r"'papers' must map paper names"),
    (lambda raw: raw["papers"]["darts"]["search"]["darts"].__setitem__("orderr", "first"),
     r"unknown settings key 'search\.darts\.orderr' .*written under papers\.darts\.search\.darts\.orderr"),
])
def test_a_malformed_paper_section_is_refused_by_name(tmp_path, mutate, match):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(raw)
    with pytest.raises(NasflowError, match=match):
        load_params(_write(tmp_path, raw))


def test_every_parameter_dvc_yaml_tracks_is_written_in_params_yaml():
    """DVC reads params.yaml as written, before the papers' sections are laid in: a key that lives under
    papers.<paper> must be tracked there (`dvc repro` refuses a missing one)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        for key in spec.get("params", []):
            node = RAW
            for part in str(key).split("."):
                assert isinstance(node, dict) and part in node, f"dvc.yaml stage {stage}: {key} is not in params.yaml"
                node = node[part]
        for dep in spec.get("deps", []):  # the code a stage reads exists (the other stages' outputs aside)
            assert dep.split("/")[0] in ("data", "results") or (ROOT / dep).exists(), f"dvc.yaml stage {stage}: {dep}"
    # the tables pair rows by published.csv, published_measures.csv and the study's trainings
    assert {"src/nasflow/catalog", "src/nasflow/study.py"} <= set(stages["report"]["deps"])
