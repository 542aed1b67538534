"""The smoke pipeline end to end, once, on the real offline data; the tests below inspect its outputs."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SHARED_DATASETS

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")]


def _snakemake(workdir, *args, timeout=1800):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "4", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=lambda: os.umask(0o022))  # a shared filesystem's usual umask


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    text = (ROOT / "params.yaml").read_text().replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    (work / "params.yaml").write_text(text)
    res = _snakemake(work, "results/table1.csv")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work


def _params(pipeline):
    from nasflow.settings import load_params

    return load_params(pipeline / "params.yaml")


def _methods(pipeline):
    """The search names: methods and the smoke variant."""
    return _params(pipeline)["search"]["names"]


def _kept(pipeline):
    """The architectures retrained: every search's, a `best_of` selection's chosen one's only."""
    from nasflow.report.tables import searched

    return searched(_params(pipeline), pipeline)


def _transferred(pipeline):
    """The searched cells transferred: each name's first kept search's final cell, where its protocol says."""
    from nasflow.study import study_of

    cells = set(_params(pipeline)["train"]["transfer"]["cells"])
    return list(dict.fromkeys(a for a, _ in study_of(_params(pipeline)).transfer_jobs(_kept(pipeline)) if a not in cells))


def _searched(pipeline):
    """The retrained ids: the kept architectures, and the ASAP cell under its own wider recipe (+tiny_cyclic_wide)."""
    from nasflow.study import study_of

    return [a["id"] for a in study_of(_params(pipeline)).retrained(_kept(pipeline))]


def _finals(pipeline):
    """Every search's final cell, kept or not (consistency measures every search)."""
    from nasflow import layout
    from nasflow.study import study_of

    return [json.loads((pipeline / layout.search_dir(m, s) / "architectures.json").read_text())[-1]["id"]
            for m, s in study_of(_params(pipeline)).searches()]


def test_every_pareto_point_is_retrained(pipeline):
    ids = _searched(pipeline)
    gold = [i for i in ids if i.startswith("gold-nas")]
    # the smoke front's size follows the trajectory (tests/search/test_gold_nas.py); a front has two or more
    assert len(gold) >= 2, "the smoke GOLD-NAS search should record a front"
    for arch_id in ids:
        assert (pipeline / f"results/train/{arch_id}/cifar10/seed0/metrics.json").is_file()


def test_tables_have_the_exact_columns_and_a_row_per_architecture(pipeline):
    r = pipeline / "results"
    t1 = pd.read_csv(r / "table1.csv")
    paper = ["paper", "paper_table", "paper_row", "paper_test_error", "paper_test_error_std", "paper_top5_error",
             "paper_params_M", "paper_macs_M", "paper_search_gpu_days", "delta"]
    assert list(t1.columns) == ["architecture", "method", "dataset", "recipe", "seeds", "test_error_mean", "test_error_std",
                                "top5_error_mean",
                                "params_M", "macs_M", "search_gpu_days", "search_device", *paper]
    assert sorted(t1["architecture"].unique()) == sorted(_searched(pipeline))  # one row per published pairing
    assert ((t1["test_error_mean"] >= 0) & (t1["test_error_mean"] < 100)).all()
    # a final cell sits beside its paper's rows: ASAP Table 1's ASAP-Small, and DARTS (first order) as 3 papers print it
    asap = t1[t1["method"] == "asap"].set_index(["paper_table", "paper_row"])  # Tables 1 and 3 both print ASAP-Small
    assert asap.loc[("Table 1", "ASAP-Small"), "paper_test_error"] == 1.99
    assert asap.loc[("Table 1", "ASAP-Small"), "delta"] == pytest.approx(
        asap.loc[("Table 1", "ASAP-Small"), "test_error_mean"] - 1.99, abs=1e-3)
    assert sorted(t1.loc[t1["method"] == "darts", "paper"]) == ["asap", "gold-nas", "pr-darts"]
    t2 = pd.read_csv(r / "table2.csv")
    assert list(t2.columns) == ["architecture", "fashion-mnist_error", "freiburg_error", "paper_row",
                                "paper_fashion-mnist_error", "paper_freiburg_error", "delta_fashion-mnist",
                                "delta_freiburg"]
    assert sorted(t2["architecture"]) == sorted(["DARTS_V2"] + _transferred(pipeline))
    assert t2.set_index("architecture").loc["DARTS_V2", "paper_freiburg_error"] == 10.8  # ASAP Table 2, DARTS-Rev2
    t3 = pd.read_csv(r / "table3.csv")
    assert list(t3.columns) == ["method", "schedule", "test_error_mean", "test_error_std", "params_M", *paper]
    assert sorted(t3["method"]) == sorted(_methods(pipeline)) and t3["schedule"].str.len().min() > 10
    consistency = pd.read_csv(r / "consistency.csv")
    assert list(consistency.columns) == ["method", "seed", "architecture", "supernet_error", "child_error",
                                         "error_gap", "retrained_error", "kendall_tau", "note", "paper", "paper_table",
                                         "paper_row", "paper_child_error", "paper_supernet_error",
                                         "paper_kendall_tau", "delta"]
    from nasflow.study import study_of

    assert list(zip(consistency["method"], consistency["seed"])) == study_of(_params(pipeline)).consistency_searches()
    # EnTranNAS Table 1: the child of the first-cells (default) and all-cells Engine placements
    assert set(consistency.loc[consistency["method"] == "entranas-engine-all", "paper_child_error"]) == {36.03}
    assert set(consistency.loc[consistency["method"] == "entranas-engine-all", "paper_supernet_error"]) == {11.71}
    assert set(consistency.loc[consistency["method"] == "entranas", "paper_supernet_error"]) == {13.32}
    assert (consistency["error_gap"] - (consistency["child_error"] - consistency["supernet_error"])).abs().max() < 1e-6
    assert consistency["kendall_tau"].isna().all()  # one retrained search per method: no ranking to compare
    # The one-level search holds nothing out (val_fraction 0) and never looks at the test set: no errors, a reason
    one_level = consistency["method"] == "gold-nas"
    assert consistency.loc[one_level, "supernet_error"].isna().all()
    assert consistency.loc[one_level, "note"].str.contains("val_fraction is 0").all()
    assert consistency.loc[~one_level, "supernet_error"].notna().all()
    # GOLD-NAS's checkpoint holds its end state, not its last Pareto point: the row says which it measured
    assert set(consistency.loc[one_level, "architecture"]) == {"end state"}
    bilevel = consistency.loc[~one_level, "architecture"]
    assert sorted(bilevel) == sorted(a for a in _finals(pipeline) if not a.startswith("gold-nas"))
    pareto = pd.read_csv(r / "pareto.csv")
    assert list(pareto.columns) == ["method", "seed", "arch_id", "epoch", "macs_M", "params_M", "test_error",
                                    "eval_dataset", "eval_channels", "eval_layers"]
    gold = pareto[pareto["method"] == "gold-nas"]
    # the smoke GOLD-NAS searches 3 cells of 4 channels per position: its sizes count that network, not 36 x 20
    assert set(zip(gold["eval_channels"], gold["eval_layers"])) == {(4, 3)}
    assert set(zip(pareto.loc[pareto["method"] == "darts", "eval_channels"],
                   pareto.loc[pareto["method"] == "darts", "eval_layers"])) == {(36, 20)}
    # Table 3's row is the final cell's (the front's last point), with one seed no deviation
    t3_gold = t3[t3["method"] == "gold-nas"]
    assert (t3_gold["test_error_mean"] == gold["test_error"].iloc[-1]).all() and t3_gold["test_error_std"].isna().all()
    assert t1["test_error_std"].isna().all()  # train.seeds is [0] in the smoke profile
    # Recorded as the FLOPs fall: exact MACs never go up (two points may share rounded MACs, see test_gold_nas)
    assert (gold["macs_M"].diff().dropna() <= 0).all() and gold["macs_M"].iloc[0] > gold["macs_M"].iloc[-1]
    assert gold["arch_id"].is_unique
    for name in ("table1", "table2", "table3", "pareto", "consistency"):
        text = (r / f"{name}.md").read_text()
        assert text.startswith("| ") and not re.search(r"\|\s*nan\s*(?=\|)", text, flags=re.I), name


def test_every_result_file_is_readable_by_colleagues_under_umask_022(pipeline):
    import stat

    files = [f for f in (pipeline / "results").rglob("*") if f.is_file()]
    assert len(files) > 100
    modes = {f: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert {oct(m) for m in modes.values()} == {"0o644"}, [f for f, m in modes.items() if m != 0o644][:5]


def test_figures_and_cell_drawings(pipeline):
    figures = pipeline / "results" / "figures"
    for path in [figures / "pareto.png", figures / "search_curves.png", figures / "published.png",
                 figures / "cells" / "asap-s0-0.png",
                 figures / "cells" / "darts-s0-0.png", figures / "cells" / "gold-nas-s0-1.png"]:
        assert path.read_bytes()[:4] == b"\x89PNG", path


def test_every_job_is_one_mlflow_run_nested_under_the_pipeline(pipeline):
    import mlflow

    # a client of its own: mlflow.set_tracking_uri would export MLFLOW_TRACKING_URI to every later test's jobs
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nasflow").experiment_id
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"
    runs = pd.DataFrame([{"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                          **{f"tags.{k}": v for k, v in r.data.tags.items()},
                          **{f"metrics.{k}": v for k, v in r.data.metrics.items()}}
                         for r in client.search_runs([experiment], max_results=1000)])
    parents = runs[runs["tags.stage"] == "pipeline"]
    jobs = runs[runs["tags.stage"] != "pipeline"]
    assert len(parents) == 1 and parents["status"].iloc[0] == "FINISHED"
    from nasflow.study import study_of

    searches = study_of(_params(pipeline)).searches()
    trainings = len(list((pipeline / "results").glob("*/*/*/seed*/metrics.json")))  # train/ and short-retrain/
    # data (cifar10 and the 2 transfer datasets), searches, trainings, consistency, 2 selections, report: every
    # job kind has its run
    assert len(jobs) == 3 + len(searches) + trainings + len(searches) + 2 + 1
    assert set(jobs["tags.stage"]) == {"data", "search", "select", "train", "short-retrain", "consistency", "report"}
    assert (jobs["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]).all()
    assert (jobs["status"] == "FINISHED").all()
    assert (runs["tags.profile"] == "smoke").all() and runs["tags.mlflow.source.git.commit"].str.len().eq(40).all()
    parent = parents["run_id"].iloc[0]
    logged = {f.path for f in client.list_artifacts(parent, "tables")} | {f.path for f in client.list_artifacts(parent, "figures")}
    assert {"tables/table1.json", "tables/consistency.json", "figures/pareto.png"} <= logged, logged
    trainings = jobs[jobs["tags.stage"].isin(["train", "short-retrain"])]
    models = client.search_logged_models([experiment], max_results=1000)
    assert sorted(m.source_run_id for m in models) == sorted(trainings["run_id"])  # one network per training
    # a selection's short trainings are named and tagged as such, and say they measured held-out images
    short = jobs[jobs["tags.stage"] == "short-retrain"]
    darts = json.loads((pipeline / "results/selection/darts.json").read_text())
    assert sorted(short["tags.arch_id"]) == sorted(c["arch_id"] for c in darts["candidates"])
    assert short["run_name"].str.startswith("short-retrain-").all() and (short["tags.selection"] == "darts").all()
    for _, run in short.iterrows():
        measured = next(c["error"] for c in darts["candidates"] if c["arch_id"] == run["tags.arch_id"])
        assert run["metrics.final_holdout_error"] == pytest.approx(measured, abs=1e-3)
        assert pd.notna(run["metrics.holdout_loss"])
    assert short[[c for c in runs.columns if c.endswith(("top1_error", "test_loss"))]].isna().all().all()
    retrain = jobs[jobs["tags.stage"] == "train"]
    assert retrain["run_name"].str.startswith("train-").all() and retrain["metrics.final_top1_error"].notna().all()
    assert retrain["metrics.final_holdout_error"].isna().all()
    searches = jobs[jobs["tags.stage"] == "search"]
    assert set(searches["tags.method"]) == set(_methods(pipeline))
    # a one-level search holds nothing out by default, so it logs no validation error (never the test set's)
    one_level = searches["tags.method"] == "gold-nas"
    assert searches.loc[~one_level, "metrics.val_error"].notna().all()
    assert searches.loc[one_level, "metrics.val_error"].isna().all()
    # four jobs at a time wrote to one sqlite store: every epoch of every job is there
    for _, run in jobs[jobs["tags.stage"].isin(["search", "train", "short-retrain"])].iterrows():
        stage = run["tags.stage"]
        folder = (pipeline / "results/search" / run["tags.method"] / f"seed{run['tags.seed']}" if stage == "search"
                  else pipeline / "results" / stage / run["tags.arch_id"] / run["tags.dataset"] / f"seed{run['tags.seed']}")
        epochs = len((folder / "history.csv").read_text().strip().splitlines()) - 1
        assert len(client.get_metric_history(run["run_id"], "train_loss")) == epochs, folder


def test_a_logged_model_classifies_images_from_a_fresh_python_without_nasflow(pipeline, tmp_path):
    """The model's input contract and its usage example: run from a Python that cannot import nasflow (site
    packages only, no editable install), it gives the classes nasflow's own evaluation gives."""
    import mlflow
    import numpy as np
    import torch
    from PIL import Image

    from nasflow.data.loader import normalisation

    uri = f"sqlite:///{pipeline / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("nasflow").experiment_id
    run = client.search_runs([experiment], "tags.stage = 'train' and tags.dataset = 'freiburg'", max_results=1)[0]
    model_uri = f"runs:/{run.info.run_id}/model"
    mlflow.set_tracking_uri(uri)
    try:
        contract = mlflow.models.get_model_info(model_uri).metadata["nasflow"]
        model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model")))
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # set_tracking_uri exports it to later tests' jobs
    arrays = np.load(pipeline / "data/freiburg.npz")
    mean, std = normalisation("freiburg", arrays["x_train"])  # measured on Freiburg's training images
    assert contract["image_size"] == 64 and contract["channels"] == 3
    assert contract["classes"] == [str(c) for c in arrays["classes"]] and len(contract["classes"]) == 25
    assert contract["mean"] == pytest.approx(mean.flatten().tolist(), abs=1e-5)
    assert contract["std"] == pytest.approx(std.flatten().tolist(), abs=1e-5)
    picks = np.random.default_rng(0).choice(len(arrays["y_test"]), 6, replace=False)
    images = []
    for i in picks:
        images.append(str(tmp_path / f"image{i}.png"))
        Image.fromarray(arrays["x_test"][i]).save(images[-1])
    model.eval()  # a module, not an exported graph (whose eval() raises)
    with torch.no_grad():
        x = torch.from_numpy(arrays["x_test"][picks]).permute(0, 3, 1, 2).float().div(255)
        expected = model((x - mean) / std).argmax(1).tolist()
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(site)}
    python = [sys.executable, "-S"]  # no .pth files: the editable install of nasflow is not on the path
    blocked = subprocess.run([*python, "-c", "import nasflow"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "No module named 'nasflow'" in blocked.stderr
    res = subprocess.run([*python, str(local / "extra_files" / "usage_example.py"), model_uri, *images],
                         cwd=pipeline, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    printed = [json.loads(line) for line in res.stdout.splitlines()]
    assert [p["index"] for p in printed] == expected
    assert [p["class"] for p in printed] == [contract["classes"][k] for k in expected]


def test_a_second_invocation_does_nothing(pipeline):
    res = _snakemake(pipeline, "-n", "results/table1.csv")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr
    res = _snakemake(pipeline, "-n")  # `rule all` is the default target: the same tables
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def test_every_search_and_training_has_a_benchmark_record(pipeline):
    logs = pipeline / "logs" / "benchmarks"
    for method in _methods(pipeline):
        record = pd.read_csv(logs / "search" / method / "seed0.tsv", sep="\t")
        assert len(record) == 1 and record["s"].iloc[0] > 0 and "max_rss" in record
    trained = sorted(logs.glob("train/*/*/seed*.tsv"))
    assert len(trained) == len(list((pipeline / "results" / "train").glob("*/*/seed*/metrics.json")))


@pytest.mark.parametrize("target", [[], ["results/table1.csv"]], ids=["as the README shows it", "with a target"])
def test_snakemake_report_holds_the_tables_and_figures(pipeline, target):
    (pipeline / "report.zip").unlink(missing_ok=True)
    res = _snakemake(pipeline, "--report", "report.zip", *target, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(pipeline / "report.zip").namelist()
    for shown in ("table1.csv", "consistency.csv", "pareto.png", "search_curves.png"):
        assert any(n.endswith(shown) for n in names), (shown, names[:20])


def _dry_run(pipeline, *config, target="results/table1.csv"):
    """Snakemake's job counts for `target` with `config` changed ({} when nothing is to be done), and its output."""
    res = _snakemake(pipeline, "-n", target, "--config", *config)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    counts = {}
    if "Nothing to be done" in out:
        return counts, out
    for line in out[out.index("Job stats:"):].splitlines()[3:]:  # after the title and the table's header
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts, out


def test_changing_one_search_setting_reruns_only_what_depends_on_it(pipeline):
    counts, out = _dry_run(pipeline, "search={asap: {t0: 1.7}}")
    # training fans out once the new search ends
    assert counts == {"search": 1, "consistency": 1, "report": 1, "total": 3}
    assert "wildcards: method=asap, seed=0" in out and "method=darts" not in out


PUBLISHED_TRANSFER = "results/train/DARTS_V2/fashion-mnist/seed0/metrics.json"  # needs no search


def test_the_weight_split_reruns_the_bilevel_searches_only(pipeline):
    counts, out = _dry_run(pipeline, "data={weights_fraction: 0.6}")
    from nasflow.study import study_of

    bilevel = [s for s in study_of(_params(pipeline)).searches() if s[0] != "gold-nas"]  # GOLD-NAS trains on every image
    assert counts == {"search": len(bilevel), "consistency": len(bilevel), "select": 2, "report": 1,
                      "total": 2 * len(bilevel) + 3}
    assert "method=gold-nas," not in out
    assert _dry_run(pipeline, "data={weights_fraction: 0.6}", target=PUBLISHED_TRANSFER)[0] == {}  # not read


def test_the_split_seed_reruns_every_search_and_the_trainings_on_subsets(pipeline):
    counts, out = _dry_run(pipeline, "data={split_seed: 7}")
    from nasflow.study import study_of

    searches = study_of(_params(pipeline)).searches()  # the smoke searches all draw per-class subsets; trainings fan out after them
    assert counts == {"search": len(searches), "consistency": len(searches), "select": 2, "report": 1,
                      "total": 2 * len(searches) + 3}
    # the tiny recipe draws its per-class subsets with the seed too
    assert _dry_run(pipeline, "data={split_seed: 7}", target=PUBLISHED_TRANSFER)[0] == {"train": 1, "total": 1}


def test_a_recipe_default_reruns_every_training_and_no_search(pipeline):
    counts, _ = _dry_run(pipeline, "train={recipe_defaults: {grad_clip: 4.0}}")
    # retrainings, transfers and DARTS's short trainings; its selection reads them again
    trainings = len(list((pipeline / "results").glob("*/*/*/seed0/metrics.json")))
    assert counts == {"train": trainings, "select": 1, "report": 1, "total": trainings + 2}


def test_dvc_repro_and_exp_run_wrap_the_same_work_and_track_settings(pipeline, tmp_path):
    import shutil

    work = tmp_path / "dvc"
    shutil.copytree(pipeline, work, ignore=shutil.ignore_patterns("mlflow.db"))
    for name in ("Snakefile", "dvc.yaml"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "src" / "nasflow", work / "src" / "nasflow", ignore=shutil.ignore_patterns("__pycache__"))
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = dict({k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    run = lambda *a: subprocess.run([dvc, *a], cwd=work, capture_output=True, text=True, env=env, timeout=1500)
    git = lambda *a: subprocess.run(["git", *a], cwd=work, capture_output=True, text=True, env=env, check=True)
    git("init", "-q")
    assert run("init", "-q").returncode == 0
    res = run("repro")  # every stage's Snakemake finds its outputs up to date
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (work / "dvc.lock").is_file()
    assert "up to date" in run("status").stdout
    shown = run("metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "darts" in json.dumps(json.loads(shown.stdout))  # results/metrics.json's per-method errors
    assert "test_error_mean" in shown.stdout
    plots = run("plots", "show", "-o", "dvc_plots")
    assert plots.returncode == 0, plots.stderr
    page = (work / "dvc_plots" / "index.html").read_text()
    assert all(f"{name}.png" in page for name in ("pareto", "search_curves", "published")), page[:2000]
    assert "<script src=" not in page and "cdn." not in page  # nothing to fetch: it renders offline
    params = work / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("      lr: 0.05\n      cutout: 8", "      lr: 0.04\n      cutout: 8"))
    status = run("status").stdout
    assert "train:" in status and "search:" not in status and "data:" not in status
    params.write_text(original)

    # an experiment with one retraining setting changed reruns retraining and tables, not the searches
    git("add", "-A")
    git("commit", "-qm", "pipeline")
    searches = {p: p.stat().st_mtime_ns for p in (work / "results/search").rglob("search.json")}
    trainings = {p: p.stat().st_mtime_ns for p in (work / "results/train").rglob("metrics.json")
                 if json.loads(p.read_text())["recipe"] == "tiny"}  # not ASAP's tiny_cyclic
    assert len(trainings) > 10
    res = run("exp", "run", "-S", "train.recipes.tiny.epochs=1")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in searches} == searches
    assert all(p.stat().st_mtime_ns != t for p, t in trainings.items())
    assert all(json.loads(p.read_text())["epochs"] == 1 for p in trainings)
    assert "train.recipes.tiny.epochs" in run("params", "diff").stdout  # the experiment changed it


def test_mlflow_server_filters_runs_by_method_and_dataset(pipeline):
    """A real `mlflow server` on loopback over the pipeline's store, queried through its REST API."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    server = subprocess.Popen([mlflow_cli, "server", "--backend-store-uri", f"sqlite:///{pipeline / 'mlflow.db'}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=pipeline, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"

    def post(path, body):
        request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    try:
        deadline = time.time() + 120
        while True:  # until the server answers its health check
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name=nasflow", timeout=30) as r:
            experiment = json.loads(r.read())["experiment"]["experiment_id"]
        runs = post("runs/search", {"experiment_ids": [experiment],
                                    "filter": "tags.stage = 'train' and tags.dataset = 'freiburg'"})["runs"]
        assert {r["data"]["tags"][[t["key"] for t in r["data"]["tags"]].index("arch_id")]["value"] for r in runs} == {
            "DARTS_V2", *_transferred(pipeline)}
        asap = post("runs/search", {"experiment_ids": [experiment],
                                    "filter": "tags.method = 'asap' and tags.dataset = 'cifar10'"})["runs"]
        stages = sorted(next(t["value"] for t in r["data"]["tags"] if t["key"] == "stage") for r in asap)
        assert stages == ["search", "train", "train"]  # its cell under its own recipe and under the wider one
        # the same metric names across methods: every training run reports final_top1_error
        for r in runs:
            assert "final_top1_error" in {m["key"] for m in r["data"]["metrics"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_papers_machinery_at_toy_size_selection_variant_and_recipe_mapping(pipeline):
    """The paper profile's machinery in the smoke run: DARTS's best of two after a short training on held-out
    images, EnTranNAS-DST's best of two by the super-net's validation error, a variant in its own folder,
    and each method retrained with its own recipe."""
    r = pipeline / "results"
    darts = json.loads((r / "selection/darts.json").read_text())
    assert darts["by"] == "short_retrain" and [c["seed"] for c in darts["candidates"]] == [0, 1]
    assert darts["seed"] == min(darts["candidates"], key=lambda c: (c["error"], c["seed"]))["seed"]
    for c in darts["candidates"]:
        short = json.loads((r / f"short-retrain/{c['arch_id']}/cifar10/seed0/metrics.json").read_text())
        assert short["evaluated_on"] == "holdout" and short["recipe"] == "tiny_select" and short["top1_error"] == c["error"]
        assert short["train_images"] == 300 and short["test_images"] == 100  # 40 a class, a quarter held out
    chosen, other = darts["arch_id"], next(c["arch_id"] for c in darts["candidates"] if c["arch_id"] != darts["arch_id"])
    assert (r / f"train/{chosen}/cifar10/seed0/metrics.json").is_file()
    assert not (r / f"train/{other}").exists()  # the one not kept is never retrained
    dst = json.loads((r / "selection/entranas-dst.json").read_text())
    for c in dst["candidates"]:  # the last epoch's super-net error on the images that trained alpha
        history = pd.read_csv(r / f"search/entranas-dst/seed{c['seed']}/history.csv")
        assert c["error"] == pytest.approx(history["val_error"].iloc[-1], abs=1e-3)
    assert dst["seed"] == min(dst["candidates"], key=lambda c: (c["error"], c["seed"]))["seed"]
    variant = json.loads((r / "search/entranas-engine-all/seed0/settings.json").read_text())
    assert variant["method"] == "entranas-engine-all" and variant["settings"]["engine_cells"] == "all"
    recipes = {a: json.loads((r / f"train/{a}/cifar10/seed0/metrics.json").read_text())["recipe"]
               for a in _searched(pipeline)}
    assert {a: rec for a, rec in recipes.items() if rec != "tiny"} == {"asap-s0-0": "tiny_cyclic",
                                                                       "asap-s0-0+tiny_cyclic_wide": "tiny_cyclic_wide"}
    # the protocol's own-recipe entry trained the same cell at 12 channels instead of 8 (ASAP-Medium's path)
    wide, narrow = (json.loads((r / f"train/{a}/cifar10/seed0/metrics.json").read_text())
                    for a in ("asap-s0-0+tiny_cyclic_wide", "asap-s0-0"))
    assert wide["params_M"] > narrow["params_M"] and wide["macs_M"] > narrow["macs_M"]


def test_the_paper_profile_dry_run_lists_every_search_of_the_papers_protocols(pipeline):
    from collections import Counter

    res = _snakemake(pipeline, "-n", "results/table1.csv", "--config", "profile=paper", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    searches, rule = Counter(), None
    for line in out.splitlines():
        if line.startswith(("rule ", "checkpoint ")):
            rule = line.split()[-1].rstrip(":")
        elif rule == "search" and line.strip().startswith("wildcards: method="):
            searches[line.split("method=")[1].split(",")[0]] += 1
    assert searches == {"darts": 4, "darts-2nd": 4, "asap": 1, "asap-magnitude-p1": 1, "asap-magnitude-p3": 1,
                        "asap-accgrad-p1": 1, "asap-accgrad-p3": 1, "gold-nas": 1, "gold-nas-mu0": 1,
                        "gold-nas-imagenet-44": 1, "gold-nas-imagenet-46": 1, "gold-nas-imagenet-48": 1,
                        "gold-nas-random": 3, "pr-darts-dl": 3, "pr-darts-dr": 3, "pr-darts-ur": 3, "entranas": 5,
                        "entranas-dst": 5, "entranas-extended": 5, "entranas-engine-last": 1, "entranas-engine-half": 1,
                        "entranas-engine-all": 1, "entranas-imagenet": 1, "entranas-dst-imagenet": 5,
                        "entranas-dst-imagenet-0p1": 1, "entranas-dst-imagenet-0p05": 1,
                        "darts-kendall": 6, "entranas-kendall": 6, "entranas-dst-kendall": 6}
    # `nasflow plan`'s summary heads the dry run: trainings are estimates from the papers' costs
    assert "nasflow plan (profile paper)" in out and "retrain:" in out and "GOLD-NAS B.1" in out
