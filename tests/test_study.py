"""The study lists the jobs Snakemake schedules: `nasflow plan --json` against Snakemake's dry run, kind by
kind, for the smoke and the paper profiles. Before any search has run the dry run stops at the search
checkpoints, so the trainings are compared on a project whose searches (and selections) are stood in by
files in their real formats."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_params

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
JOB = re.compile(r"^(?:localrule|rule|checkpoint|localcheckpoint) (\w+):\n(.*?)(?=^\S|\Z)", re.M | re.S)


def _dry_run_jobs(workdir: Path, profile: str) -> set[tuple]:
    """(kind, name, dataset, seed, recipe) of every job Snakemake's dry run schedules."""
    res = subprocess.run([SNAKEMAKE, "-n", "-p", "--cores", "1", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "results/table1.csv", "--rerun-triggers", "mtime", "--config", f"profile={profile}"],
                         capture_output=True, text=True, timeout=600, cwd=workdir,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    found = set()
    for rule, block in JOB.findall(out.replace("\nShell command:", "\n    shell:")):  # each job's command in its block
        wild = dict(re.findall(r"(\w+)=([^,\s]+)", (re.search(r"wildcards: (.*)", block) or ["", ""])[1]))
        if rule in ("search", "consistency"):
            found.add((rule, wild["method"], "", int(wild["seed"]), ""))
        elif rule == "select":
            found.add(("select", wild["name"], "", -1, ""))
        elif rule == "train":
            recipe = re.search(r"--recipe (\S+)", block)[1]
            found.add((wild["stage"], wild["arch_id"], wild["dataset"], int(wild["seed"]), recipe))
    return found


def _planned_jobs(workdir: Path, profile: str) -> set[tuple]:
    res = subprocess.run([sys.executable, "-m", "nasflow.cli", "plan", "--json", "--params", str(workdir / "params.yaml"),
                          "--profile", profile, "--root", str(workdir)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    found = set()
    for job in json.loads(res.stdout)["jobs"]:
        kind = job["kind"]
        if kind in ("search", "consistency", "select"):
            found.add((kind, job["name"], "", job.get("seed", -1), ""))
        elif kind in ("train", "short-retrain"):
            found.add((kind, job["name"], job["dataset"], job["seed"], job["recipe"]))
    return found


def _stand_in_results(workdir: Path, profile: str, selections: bool) -> None:
    """Every search ended (the plan's own stand-in count of architectures each), its data prepared before it;
    with `selections`, every `best_of` selection made (its short trainings too), keeping the first seed."""
    from nasflow import layout
    from nasflow.estimate import planned_jobs
    from nasflow.settings import load_params
    from nasflow.catalog.genotype import zoo_genotype
    from nasflow.study import study_of

    params = load_params(workdir / "params.yaml", profile)
    study = study_of(params)
    (workdir / "data").mkdir(exist_ok=True)
    for dataset in study.prepared_datasets():
        (workdir / "data" / f"{dataset}.npz").write_bytes(b"stand-in")
        os.utime(workdir / "data" / f"{dataset}.npz", (1e9, 1e9))
    cell = zoo_genotype("DARTS_V2").to_json()
    jobs, _ = planned_jobs(params, workdir)  # nothing under results/ yet: the plan's stand-in architectures
    ids: dict[tuple[str, int], list[str]] = {}
    for name, seed in study.searches():
        ids[(name, seed)] = []
    for job in jobs:
        name = layout.arch_name(job.name)
        if job.kind in ("train", "short-retrain") and name:
            key = (name, int(layout.SEARCHED_ID.match(job.name)["seed"]))
            if layout.searched_id(job.name) not in ids[key]:  # ASAP-Medium's <id>+<recipe> trains <id>
                ids[key].append(layout.searched_id(job.name))
    for (name, seed), archs in ids.items():
        folder = workdir / layout.search_dir(name, seed)
        folder.mkdir(parents=True)
        archs = sorted(archs or [f"{name}-s{seed}-0"], key=lambda a: int(a.rsplit("-", 1)[1]))
        entries = [{"id": a, "genotype": f"arch{i}.json", "macs_M": 1.0, "params_M": 1.0, "epoch": 1}
                   for i, a in enumerate(archs)]
        for i, _ in enumerate(archs):
            (folder / f"arch{i}.json").write_text(json.dumps(cell))
        (folder / "genotype.json").write_text(json.dumps(cell))
        (folder / "architectures.json").write_text(json.dumps(entries))
        (folder / "search.json").write_text(json.dumps({"seconds": 1, "device": "cpu"}))
    if not selections:
        return
    for name in study.selected_names():
        entry = study.search_name(name)
        if entry.select["by"] == "short_retrain":
            for arch_id, dataset, seed in study.short_retrain_jobs(
                    name, lambda n, s: layout.read_architectures(workdir / layout.search_dir(n, s) / "architectures.json")):
                metrics = workdir / layout.train_dir(arch_id, dataset, seed, "short-retrain") / "metrics.json"
                metrics.parent.mkdir(parents=True)
                metrics.write_text(json.dumps({"top1_error": 50.0, "evaluated_on": "holdout"}))
        (workdir / layout.selection_file(name)).parent.mkdir(parents=True, exist_ok=True)
        (workdir / layout.selection_file(name)).write_text(json.dumps({"name": name, "seed": entry.seeds[0]}))


def _kinds(jobs: set[tuple], *kinds: str) -> set[tuple]:
    return {j for j in jobs if j[0] in kinds}


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_nasflow_plan_lists_the_jobs_snakemake_schedules(tmp_path, profile):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_params(fresh)
    planned, scheduled = _planned_jobs(fresh, profile), _dry_run_jobs(fresh, profile)
    assert _kinds(scheduled, "search") and _kinds(planned, "search", "consistency", "select") == \
        _kinds(scheduled, "search", "consistency", "select")

    searched = tmp_path / "searched"  # the searches ended, the selections not yet made: their short trainings
    searched.mkdir()
    write_params(searched)
    _stand_in_results(searched, profile, selections=False)
    scheduled = _dry_run_jobs(searched, profile)
    assert _kinds(scheduled, "short-retrain") and \
        _kinds(scheduled, "short-retrain") == _kinds(_planned_jobs(searched, profile), "short-retrain")

    selected = tmp_path / "selected"  # and the selections made: every retraining and transfer
    selected.mkdir()
    write_params(selected)
    _stand_in_results(selected, profile, selections=True)
    scheduled, planned = _dry_run_jobs(selected, profile), _planned_jobs(selected, profile)
    assert _kinds(scheduled, "train") and _kinds(planned, "train") == _kinds(scheduled, "train")
