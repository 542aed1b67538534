"""Every number the papers published is produced by jobs of the paper profile, or says why not."""
from conftest import ROOT
from nasflow.catalog.published import published
from nasflow.estimate import planned_jobs
from nasflow.settings import load_params
from nasflow.study import study_of


def test_every_published_row_has_the_paper_profiles_jobs_behind_it_or_a_reason(tmp_path):
    params = load_params(ROOT / "params.yaml", "paper")
    jobs, _ = planned_jobs(params, tmp_path)  # no results here: the trainings fan out from stand-ins
    rows = study_of(params).published_jobs(published(), jobs)
    assert len(rows) == len(published())
    for row in rows:
        where = f"{row['paper']} {row['table']} {row['row']!r} ({row['dataset']})"
        if row["no_run"]:
            assert not row["jobs"], f"{where} says it has no run, but {row['jobs']} produce it"
        else:
            assert row["jobs"], f"{where}: no job of the paper profile produces it and no reason is given"
        for job in row["jobs"]:
            assert job["kind"] == "consistency" or job["dataset"] == row["dataset"], where
    by_row = {(r["paper"], r["table"], r["row"], r["dataset"]): r["jobs"] for r in rows}
    # a published cell and the searched one both stand beside ASAP's transfer rows; Table 1 of EnTranNAS
    # is measured by consistency jobs
    assert {j["name"] for j in by_row[("asap", "Table 2", "ASAP", "svhn")]} == {"ASAP", "asap-s0-0"}
    assert [j["kind"] for j in by_row[("entrannas", "Table 1", "last", "cifar10")]] == ["consistency"]


def test_a_row_with_no_job_and_no_reason_is_caught(tmp_path):
    params = load_params(ROOT / "params.yaml", "paper")
    jobs, _ = planned_jobs(params, tmp_path)
    pubs = published()
    pubs.loc[pubs["row"] == "DARTS-Rev1", "no_run"] = ""
    rows = study_of(params).published_jobs(pubs, jobs)
    assert [r for r in rows if not r["jobs"] and not r["no_run"]], "Rev1 has no run: it must show up unexplained"
