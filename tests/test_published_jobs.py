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


def test_every_imagenet_rows_published_cell_is_trained_in_a_network_of_the_papers_size(tmp_path):
    """Each ImageNet row's published cell, counted in the network of the recipe its job trains it with,
    has the parameters and MACs the paper's table gives, within 10 % (DARTS_V2 in DARTS's mobile network:
    4.719 M / 529.9 M against the published 4.7 M / 574 M)."""
    from nasflow.catalog.genotype import load_genotype
    from nasflow.catalog.sizes import recipe_network
    from nasflow.space.counting import count_network

    params = load_params(ROOT / "params.yaml", "paper")
    study = study_of(params)
    jobs, _ = planned_jobs(params, tmp_path)
    pubs = published()
    checked = 0
    for row, (_, pub) in zip(study.published_jobs(pubs, jobs), pubs.iterrows()):
        if pub["dataset"] != "imagenet" or not pub["cell"]:
            continue
        for job in (j for j in row["jobs"] if j["name"] == pub["cell"]):
            genotype = load_genotype(pub["cell"])
            counts = count_network(genotype, **recipe_network(study.recipe_settings(job["recipe"]), "imagenet", genotype))
            for key in ("params_M", "macs_M"):
                if pub[key] == pub[key]:  # published
                    assert abs(counts[key] / pub[key] - 1) <= 0.10, (pub["paper"], pub["row"], job["recipe"], key, counts)
                    checked += 1
    assert checked >= 4  # GOLD-NAS Table 2's and EnTranNAS Table 7's DARTS rows, parameters and MACs


def test_docs_methods_prints_what_the_paper_profile_runs_for_every_published_row(tmp_path):
    from nasflow.estimate import render_published, summary

    text = (ROOT / "docs" / "methods.md").read_text()
    documented = text.split("<!-- published-rows:begin -->\n")[1].split("\n<!-- published-rows:end -->")[0]
    printed = render_published(summary(load_params(ROOT / "params.yaml", "paper"), tmp_path / "nonexistent"))
    assert documented == printed, "docs/methods.md is stale: rerun nasflow plan --profile paper --published"
    assert printed.count("\n") == len(published()) + 1


def test_the_rows_issue_26_added_are_produced_by_their_own_jobs(tmp_path):
    """ASAP-Medium/-Large, GOLD-NAS's X/Y/Z/Z-tr and EnTranNAS Table 4's three lambdas each stand beside
    their own trainings; EnTranNAS-DST on ImageNet is the best of five searches at lambda 0.2."""
    params = load_params(ROOT / "params.yaml", "paper")
    study = study_of(params)
    jobs, _ = planned_jobs(params, tmp_path)
    by_row = {(r["paper"], r["table"], r["row"]): r["jobs"] for r in study.published_jobs(published(), jobs)}
    recipes = lambda key: {(j["name"].split("-s0-")[0], j["recipe"]) for j in by_row[key]}  # noqa: E731
    assert recipes(("asap", "Table 1", "ASAP-Medium")) == {("asap", "asap_cifar_44")}
    assert recipes(("asap", "Table 1", "ASAP-Large")) == {("asap", "asap_cifar_50")}
    assert recipes(("gold-nas", "Table 2", "GOLD-NAS-X‡")) == {("gold-nas-imagenet-44", "gold_nas_imagenet_44")}
    assert recipes(("gold-nas", "Table 2", "GOLD-NAS-Y‡")) == {("gold-nas-imagenet-46", "gold_nas_imagenet_46")}
    assert recipes(("gold-nas", "Table 2", "GOLD-NAS-Z‡")) == {("gold-nas-imagenet-48", "gold_nas_imagenet")}
    assert recipes(("gold-nas", "Table 2", "GOLD-NAS-Z-tr‡")) == {("gold-nas-imagenet-44", "gold_nas_imagenet")}
    for lam, name in ((0.2, "entranas-dst-imagenet"), (0.1, "entranas-dst-imagenet-0p1"),
                      (0.05, "entranas-dst-imagenet-0p05")):
        assert {j["name"].split("-s")[0] for j in by_row[("entrannas", "Table 4", str(lam))]} == {name}
        settings = study.search_name(name).settings
        assert (settings["lambda"], settings["temperature0"], settings["dataset"]) == (lam, 1.0, "imagenet")
    dst = study.search_name("entranas-dst-imagenet")
    assert dst.seeds == (0, 1, 2, 3, 4) and dst.select == {"best_of": 5, "by": "supernet_val"}
