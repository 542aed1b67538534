import pytest

from nasflow.errors import NasflowError
from nasflow.settings import load_params
from conftest import ROOT


def test_repository_params_load_and_validate_for_every_profile():
    assert load_params(ROOT / "params.yaml")["profile"] == "smoke"
    paper = load_params(ROOT / "params.yaml", profile="paper")
    assert paper["data"]["download"] is True


def test_overrides_keep_yaml_types_and_win_over_the_profile(params_file):
    p = load_params(params_file, "paper", ["data.download=false", "data.split_seed=7",
                                           "data.archive_dirs=[a, b]", "data.weights_fraction=0.25"])
    assert p["data"]["download"] is False and p["data"]["split_seed"] == 7
    assert p["data"]["archive_dirs"] == ["a", "b"] and p["data"]["weights_fraction"] == 0.25


def test_relative_paths_resolve_beside_the_params_file(params_file):
    p = load_params(params_file, overrides=["data.root=prepared"])
    assert p.path(p["data"]["root"]) == params_file.parent / "prepared"


@pytest.mark.parametrize("override,message", [
    ("data.downlaod=true", "unknown settings key 'data.downlaod'"),
    ("searchh.epochs=3", "unknown settings key 'searchh'"),
    ("data.split_seed=-1", "data.split_seed: -1 is less than the minimum"),
    ("data.weights_fraction=1.5", "data.weights_fraction"),
    ("data.download=maybe", "data.download: 'maybe' is not of type 'boolean'"),
    ("data", "expected key=value"),
])
def test_bad_settings_name_the_key(params_file, override, message):
    with pytest.raises(NasflowError, match=message):
        load_params(params_file, overrides=[override])


def test_a_typo_in_an_unused_profile_is_caught(params_file):
    params_file.write_text(params_file.read_text() + "  typo:\n    data:\n      rooot: x\n")
    with pytest.raises(NasflowError, match="profiles.typo: unknown settings key 'data.rooot'"):
        load_params(params_file)


def test_unknown_profile_and_missing_file(params_file, tmp_path):
    with pytest.raises(NasflowError, match="unknown profile 'fast'"):
        load_params(params_file, "fast")
    with pytest.raises(NasflowError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_schema_checker_keywords():
    from nasflow.schema_check import problems

    schema = {"type": "object", "additionalProperties": False, "required": ["n"],
              "properties": {"n": {"type": "integer", "minimum": 1}, "x": {"type": ["number", "null"], "exclusiveMaximum": 1},
                             "s": {"type": "string", "pattern": "^(a|b)$"}, "l": {"type": "array", "items": {"enum": [1, 2]}, "maxItems": 2},
                             "m": {"type": "object", "additionalProperties": {"type": "boolean"}}}}
    assert problems({"n": 1, "x": None, "s": "a", "l": [1, 2], "m": {"k": True}}, schema) == []
    found = dict(problems({"n": True, "x": 1.0, "s": "c", "l": [3, 1, 2], "m": {"k": 1}, "z": 0}, schema))
    assert found[("n",)] == "True is not of type 'integer'"  # a bool is not an integer here
    assert found[("x",)] == "1.0 is greater than or equal to the maximum of 1"
    assert "does not match" in found[("s",)] and "at most 2" in found[("l",)] and found[("l", 0)].startswith("3 is not one of")
    assert found[("m", "k")] == "1 is not of type 'boolean'" and found[("z",)].startswith("unknown key")
    assert problems({}, schema) == [((), "'n' is a required property")]
