"""The guard around moving settings: every job of the smoke and paper profiles resolves to exactly the
settings it resolved to before params.yaml and the planning code were reorganised.

`tests/fixtures/resolved_jobs.json` was written from main before the reorganisation (`python
tests/test_resolved_jobs_guard.py --write`); rewrite it only for a change that means to alter what a job
reads, and say so in the commit.
"""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FIXTURE = ROOT / "tests" / "fixtures" / "resolved_jobs.json"
PROFILES = ("smoke", "paper")


def snapshot(profile: str) -> dict:
    """Per job: the settings its fingerprint is computed from (`nasflow params` prints the same)."""
    from nasflow import jobs, plan, protocol
    from nasflow.settings import load_params

    params = load_params(ROOT / "params.yaml", profile)
    out = {"search": {}, "retrain": {}, "retrain_cells": {}, "transfer": {}, "short_retrain": {}}
    for name, seed in plan.searches(params):
        out["search"][f"{name}/seed{seed}"] = jobs.search_inputs(params, name, seed)
    for name in protocol.names(params):
        dataset = protocol.retrain_dataset(params, name)
        seed = protocol.search_seeds(params, name)[0]
        recipe = plan.recipe_for(params, f"{name}-s{seed}-0", dataset)
        out["retrain"][name] = {"dataset": dataset, "seeds": protocol.retrain_seeds(params, name),
                                "search_seeds": protocol.search_seeds(params, name),
                                "select": protocol.selection(params, name), "reported": protocol.reported(params, name),
                                "transfer": protocol.transfer_datasets(params, name),
                                "recipe": jobs.recipe_settings(params, recipe)}
        if (protocol.selection(params, name) or {}).get("by") == "short_retrain":
            r = plan.recipe_for(params, f"{name}-s{seed}-0", dataset, "short-retrain")
            out["short_retrain"][name] = {"dataset": dataset, "recipe": jobs.recipe_settings(params, r)}
    train = params["train"]
    for cell in train["retrain_cells"]:
        r = plan.recipe_for(params, cell, train["dataset"])
        out["retrain_cells"][cell] = {"dataset": train["dataset"], "seeds": train["seeds"],
                                      "recipe": jobs.recipe_settings(params, r)}
    datasets = dict.fromkeys(train["transfer"]["datasets"])
    for name in protocol.names(params):
        datasets.update(dict.fromkeys(protocol.transfer_datasets(params, name)))
    for dataset in datasets:
        r = plan.recipe_for(params, "transfer", dataset)
        out["transfer"][dataset] = {"seeds": train["seeds"], "cells": train["transfer"]["cells"],
                                    "recipe": jobs.recipe_settings(params, r)}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_job_resolves_to_the_settings_recorded_before_the_reorganisation(profile):
    recorded = json.loads(FIXTURE.read_text())[profile]
    now = snapshot(profile)
    for kind in recorded:
        assert sorted(now[kind]) == sorted(recorded[kind]), f"{profile}: the {kind} jobs changed"
        for job in recorded[kind]:
            assert now[kind][job] == recorded[kind][job], f"{profile}: {kind} {job} resolves differently"


if __name__ == "__main__" and "--write" in sys.argv:
    FIXTURE.write_text(json.dumps({p: snapshot(p) for p in PROFILES}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
