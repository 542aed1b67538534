"""The rule graph, by dry runs: settings reach the verbs; bad settings stop Snakemake before any job."""
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _dry(*args):
    return subprocess.run([SNAKEMAKE, "-n", "-p", "--cores", "1", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_prepare_rule_passes_config_overrides_to_the_verb():
    res = _dry("data/freiburg.npz", "--config", "data={download: true, split_seed: 3}")
    assert res.returncode == 0, res.stderr
    assert "nasflow data prepare freiburg --params params.yaml --set data.download=true --set data.split_seed=3" in res.stdout


def test_bad_setting_stops_the_workflow_naming_the_key():
    res = _dry("data/freiburg.npz", "--config", "data={downlod: true}")
    assert res.returncode != 0
    assert "unknown settings key 'data.downlod'" in res.stdout + res.stderr


# The warnings workflow/Snakefile justifies in its comment; any other one fails.
JUSTIFIED_LINTS = {"Shell command directly uses variable SETTINGS from outside of the rule",
                   "Shell command directly uses variable NASFLOW from outside of the rule",
                   "Specify a conda environment or container for each rule."}


def test_snakemake_lint_leaves_only_the_justified_warnings():
    import re

    res = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    found = set(re.findall(r"^    \* (.+?):?$", res.stdout + res.stderr, flags=re.M))
    assert found <= JUSTIFIED_LINTS, found - JUSTIFIED_LINTS
    assert found or res.returncode == 0, res.stderr[-2000:]  # it ran: warnings, or a clean exit


def test_snakemake_with_no_target_plans_every_job_behind_the_tables(tmp_path):
    """`rule all` is the default target (README: `snakemake` with no target builds the tables): in a fresh
    directory the dry run lists the report and the jobs before it, not "Nothing to be done"."""
    import re

    from conftest import write_params

    write_params(tmp_path)
    res = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-n", "--cores", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    for rule in ("all", "report", "prepare_data", "search"):
        assert re.search(rf"^{rule}\s+\d+$", out, flags=re.M), (rule, out[-2000:])
