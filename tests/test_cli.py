"""The command line as users meet it: one line per problem, non-zero exit, never a traceback."""
import json
from pathlib import Path

import pytest

from conftest import run_cli


def _one_clear_line(res, message):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


def _write(tmp_path, obj, name="g.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


OK_REDUCE = [["max_pool_3x3", 0], ["max_pool_3x3", 1]]


@pytest.mark.parametrize("genotype,message", [
    ({"normal": [["sep_conv_3x3", 0], ["conv_9x9", 1]], "reduce": OK_REDUCE}, "unknown op 'conv_9x9'"),
    ({"normal": [["sep_conv_3x3", 0], ["skip_connect", 4]], "reduce": OK_REDUCE}, "fed by input 4, which does not exist yet"),
    ({"normal": [], "reduce": OK_REDUCE}, "the cell is empty"),
    ('{"normal": [["sep_conv_3x3", 0]', "malformed JSON"),
])
def test_bad_genotype_files(tmp_path, cli, genotype, message):
    _one_clear_line(cli("count", "--genotype", _write(tmp_path, genotype)), message)


def test_unknown_cell_name_and_bad_numbers(cli):
    _one_clear_line(cli("count", "--genotype", "DARTS_V3"), "neither a published cell name nor a file")
    res = cli("count", "--genotype", "DARTS_V2", "--channels", "0")
    assert res.returncode == 2 and "expected a positive integer" in res.stderr and "Traceback" not in res.stderr


def test_channels_not_divisible_where_required(cli):
    _one_clear_line(cli("count", "--genotype", "DARTS_V2", "--channels", "45", "--layers", "14",
                        "--dataset", "imagenet"), "even channel count")


def test_unknown_settings_key(cli, params_file):
    _one_clear_line(cli("params", "--params", params_file, "--set", "data.rot=x"), "unknown settings key 'data.rot'")


def test_draw_writes_png_and_svg(tmp_path, cli):
    png, svg = tmp_path / "c.png", tmp_path / "c.svg"
    assert cli("draw", "--genotype", "PR_DARTS_UR", "--out", png).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("draw", "--genotype", "DARTS_V2", "--out", svg).returncode == 0
    text = svg.read_text()
    assert "<svg" in text and "sep_conv_3x3" in text
    _one_clear_line(cli("draw", "--genotype", "DARTS_V2", "--out", tmp_path / "c.gif"), ".png or .svg")


def test_zoo_lists_every_cell(cli):
    res = cli("zoo")
    assert res.returncode == 0
    assert "DARTS_V2" in res.stdout and "3.349 M params" in res.stdout
    cells = json.loads(cli("zoo", "--json").stdout)
    assert cells["PR_DARTS_DL1"]["format"] == "nasflow-genotype/1"


def test_data_prepare_reports_a_missing_dataset(cli, params_file, tmp_path):
    _one_clear_line(cli("data", "prepare", "cifar100", "--params", params_file, "--no-download", "--no-track"),
                    "dataset cifar100 not found")


def test_a_moved_project_shows_its_mlflow_artifacts_after_reroot(smoke_params, tmp_path):
    """MLflow stores absolute artifact paths: after a move, the runs point at the old place until
    `nasflow tracking reroot` (which every tracked verb and the pipeline also run) points them here."""
    import shutil

    import mlflow

    first = tmp_path / "first"
    first.mkdir()
    params = first / "params.yaml"
    params.write_text(Path(smoke_params).read_text())
    res = run_cli("train", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny", "--params", params,
                  "--set", "train.recipes.tiny.epochs=1", "--set", "runtime.progress=none", "--out", first / "run",
                  cwd=tmp_path)  # a job run from another directory still puts its artifacts beside params.yaml
    assert res.returncode == 0, res.stderr
    assert (first / "mlruns").is_dir() and not (tmp_path / "mlruns").exists()
    moved = tmp_path / "moved"
    shutil.move(first, moved)

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{moved / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nasflow").experiment_id

    def artifacts():
        (run,) = client.search_runs([experiment])
        try:
            files = {f.path for f in client.list_artifacts(run.info.run_id)}
        except Exception:
            files = set()
        (model,) = client.search_logged_models([experiment])  # MLflow 3 keeps models beside the runs
        return files, model.source_run_id == run.info.run_id and Path(model.artifact_location.split("://")[-1]).is_dir()

    assert artifacts() == (set(), False)  # still pointing at the old place
    res = run_cli("tracking", "reroot", "--params", moved / "params.yaml")
    assert res.returncode == 0 and "artifact locations now point into" in res.stdout, res.stderr
    files, model_found = artifacts()
    assert {"metrics.json", "genotype.json", "settings.json"} <= files and model_found
    again = run_cli("tracking", "reroot", "--params", moved / "params.yaml")
    assert "already points" in again.stdout


def test_bench_search_prints_entrannas_table_3_beside_each_measured_rung(monkeypatch, capsys):
    """The ratios printed beside the measured ones are the paper's (published_measures.csv), each to the
    DARTS rung: 4.5 / 9.0 G and 0.22 / 0.73 GPU-days for Engine and Transit cells."""
    import argparse

    from nasflow import cli
    from nasflow.search import bench

    rows = [{"rung": r, "step_seconds": 1.0, "time_ratio": 1.0, "peak_MB": 100.0, "memory_ratio": 1.0, "ops_run": 8}
            for r in bench.RUNGS]
    monkeypatch.setattr(bench, "bench_search", lambda *a: rows)
    cli.cmd_bench_search(argparse.Namespace(channels=4, layers=5, batch=2, steps=1, warmup=0, device="cpu", threads=0))
    lines = {line.split("  ")[1].strip(): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "9.0 G x1.00, search 0.73 GPU-days at its largest batch x1.00" in lines["DARTS (1st order)"]
    assert "4.5 G x0.50, search 0.22 GPU-days at its largest batch x0.30" in lines["+ Engine & Transit cells"]
    assert "1.5 G x0.17" in lines["+ bottleneck"]
