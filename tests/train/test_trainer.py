import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import FASHION_MNIST_DIR, QUIET, ROOT, SHARED_DATASETS, TRAIN, run_cli
from nasflow.train.schedules import drop_path_probability, learning_rate
from nasflow.train.trainer import topk_errors


def _recipe(**keys):
    """A recipe as the trainer sees it: the repository's recipe_defaults under `keys`."""
    from nasflow.settings import load_params

    return {**load_params(ROOT / "params.yaml")["train"]["recipe_defaults"], **keys}


def test_cosine_per_epoch_is_darts_schedule():
    r = _recipe(epochs=600, lr=0.025, lr_min=0.0, schedule="cosine", schedule_unit="epoch")
    assert learning_rate(r, 0, 123, 521) == pytest.approx(0.025)
    assert learning_rate(r, 300, 0, 521) == pytest.approx(0.0125)
    assert learning_rate(r, 599, 0, 521) == pytest.approx(0.025 * 0.5 * (1 + math.cos(math.pi * 599 / 600)))


def test_cosine_per_step_moves_within_an_epoch():
    r = _recipe(epochs=2, lr=1.0, schedule="cosine", schedule_unit="step")
    lrs = [learning_rate(r, e, s, 10) for e in range(2) for s in range(10)]
    assert lrs[0] == 1.0 and all(b < a for a, b in zip(lrs, lrs[1:]))
    assert lrs[10] == pytest.approx(0.5)


def test_asap_cyclic_cosine_halves_each_cycle():
    r = _recipe(epochs=1500, lr=0.025, schedule="cyclic_cosine", cycles=5, cycle_decay=0.5)
    peaks = [learning_rate(r, c * 300, 0, 1) for c in range(5)]
    assert peaks == pytest.approx([0.025 / 2 ** c for c in range(5)])
    assert learning_rate(r, 299, 0, 1) < 1e-5 and learning_rate(r, 150, 0, 1) == pytest.approx(0.0125)


def test_linear_decay_and_drop_path():
    r = _recipe(epochs=250, lr=0.5, schedule="linear", schedule_unit="epoch")
    assert learning_rate(r, 125, 0, 1) == pytest.approx(0.25)
    assert drop_path_probability(_recipe(epochs=600, drop_path=0.2), 300) == pytest.approx(0.1)
    assert drop_path_probability(_recipe(epochs=600, drop_path=0.2, drop_path_schedule="constant"), 3) == 0.2


def test_top5_on_ten_classes():
    logits = torch.tensor([[9., 8, 7, 6, 5, 4, 3, 2, 1, 0]] * 3)
    y = torch.tensor([0, 4, 5])  # right at top-1; inside top-5; outside top-5
    assert topk_errors(logits, y) == [2, 1]


needs_shared = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")


@pytest.mark.slow
@needs_shared
def test_killed_training_resumes_to_the_same_final_weights(reference_training, smoke_params, tmp_path):
    base = [*TRAIN, "--params", smoke_params, *QUIET]  # the session's uninterrupted reference_training's command
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nasflow.cli", *map(str, base), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.csv").is_file() and len((out / "history.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = run_cli(*base, "--out", out, "--resume")
    assert res.returncode == 0, res.stderr
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(reference_training / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "metrics.json").read_text())["top1_error"] == json.loads((reference_training / "metrics.json").read_text())["top1_error"]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["fashion-mnist", "freiburg"])
def test_transfer_datasets_train_with_the_auxiliary_head(smoke_params, tmp_path, dataset):
    if dataset == "fashion-mnist" and not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    if dataset == "freiburg" and not (SHARED_DATASETS / "freiburg64-jpeg.npz").is_file():
        pytest.skip("needs ../shared/datasets")
    res = run_cli("train", "--genotype", "ASAP", "--dataset", dataset, "--recipe", "tiny", "--params", smoke_params,
                  "--no-track", "--set", "train.recipes.tiny.epochs=1", "--out", tmp_path / dataset)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / dataset / "metrics.json").read_text())
    assert m["dataset"] == dataset and 0 <= m["top5_error"] <= m["top1_error"] <= 100
    assert m["test_images"] == (25 if dataset == "freiburg" else 10) * 20


def test_unknown_recipe_is_refused(cli, params_file, tmp_path):
    res = cli("train", "--genotype", "DARTS_V2", "--recipe", "fastest", "--params", params_file, "--out", tmp_path / "x")
    assert res.returncode == 2 and "unknown recipe 'fastest'" in res.stderr


@pytest.mark.slow
@needs_shared
def test_torchrun_two_processes_write_one_result(smoke_params, tmp_path):
    torchrun = str(__import__("pathlib").Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    res = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "nasflow.cli", "train",
                          "--genotype", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny", "--params",
                          str(smoke_params), "--no-track", "--set", "train.recipes.tiny.epochs=1", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and m["test_images"] == 200 and m["train_images"] == 400
    assert res.stdout.count("top-1 error") == 1  # rank 0 speaks for both
    assert len((out / "history.csv").read_text().splitlines()) == 2


def test_bench_train_prints_every_path_against_eager(cli):
    res = cli("bench", "train", "--channels", "4", "--layers", "3", "--batch", "4", "--steps", "1", "--warmup", "0",
              "--threads", "1")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if "img/s" in line]
    assert len(lines) == 4 and "x1.00 vs eager" in lines[0]


@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_the_logged_model_reproduces_the_logged_test_error(smoke_params, tmp_path):
    """A training logs its network as an MLflow model: loaded back, it scores the run's test images
    exactly as the run logged (same weights, same BatchNorm statistics)."""
    import mlflow
    import mlflow.pytorch

    from nasflow.settings import load_params
    from nasflow.train.trainer import TrainRun, topk_errors

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = load_params(smoke_params, None, ["train.recipes.tiny.epochs=1", "runtime.progress=none",
                                              f"tracking.uri={uri}"])
    try:  # the run sets MLflow's process-wide tracking URI (and exports it): put it back for later tests
        metrics = TrainRun(params, "DARTS_V2", "cifar10", "tiny", 0, tmp_path / "run").run()
        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        (run,) = client.search_runs([client.get_experiment_by_name("nasflow").experiment_id])
        model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
        contract = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model").metadata["nasflow"]
    finally:
        mlflow.set_tracking_uri(None)
    assert run.data.metrics["final_top1_error"] == metrics["top1_error"]
    assert run.data.tags["profile"] == "smoke" and len(run.data.tags["mlflow.source.git.commit"]) == 40
    model.eval()  # a module: MLflow 3's default `pt2` export gives a graph whose eval() raises
    assert not model.training
    assert contract["classes"][:2] == ["airplane", "automobile"] and len(contract["classes"]) == 10
    assert (contract["image_size"], contract["channels"]) == (32, 3)
    assert contract["mean"] == [0.4914, 0.4822, 0.4465] and contract["std"] == [0.247, 0.2435, 0.2616]
    again = TrainRun(params, "DARTS_V2", "cifar10", "tiny", 0, tmp_path / "unused")
    again._data()
    wrong = seen = 0
    with torch.no_grad():
        for x, y in again.test_batches.epoch(None):
            wrong += topk_errors(model(x), y)[0]
            seen += len(y)
    assert 100.0 * wrong / seen == pytest.approx(metrics["top1_error"], abs=1e-9)


@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_a_selections_short_training_is_named_and_measured_as_one(smoke_params, tmp_path):
    """A recipe that holds training images out (train.selection_recipe) runs as stage short-retrain, and its
    evaluation is logged as held-out error and loss, never under a test metric's name."""
    import mlflow

    from nasflow.settings import load_params
    from nasflow.train.trainer import TrainRun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = load_params(smoke_params, None, ["train.recipes.tiny_select.epochs=1", "runtime.progress=none",
                                              f"tracking.uri={uri}"])
    try:
        metrics = TrainRun(params, "DARTS_V2", "cifar10", "tiny_select", 0, tmp_path / "run",
                           arch_id="darts-s1-0").run()
        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        (run,) = client.search_runs([client.get_experiment_by_name("nasflow").experiment_id])
    finally:
        mlflow.set_tracking_uri(None)
    assert metrics["evaluated_on"] == "holdout"
    assert run.info.run_name == "short-retrain-darts-s1-0-cifar10-s0"
    assert run.data.tags["stage"] == "short-retrain" and run.data.tags["selection"] == "darts"
    assert run.data.metrics["final_holdout_error"] == metrics["top1_error"] and "holdout_loss" in run.data.metrics
    assert not {k for k in run.data.metrics if "top1" in k or "test" in k}
