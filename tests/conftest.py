import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATASETS = SHARED / "datasets"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

torch.set_num_threads(1)

QUIET = ["--no-track", "--set", "runtime.progress=lines"]  # verbs run by tests: no MLflow, plain progress lines
# The short training the kill-and-resume tests interrupt (tests/train, tests/test_reliability.py): three epochs
TRAIN = ["train", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny", "--set",
         "train.recipes.tiny.epochs=3"]


def smoke_search(test):
    """Whole searches on the smoke profile's real CIFAR-10 images: slow, and they need ../shared/datasets."""
    needs = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
    return pytest.mark.slow(needs(test))


def run_cli(*args, cwd=ROOT, env=None, timeout=600):
    """Run `nasflow ...` as a user would, in a child process."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "nasflow.cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_clis_at_once(*commands, timeout=600):
    """Run independent `nasflow ...` commands (argument lists) side by side, each as run_cli runs it: the smoke
    profile's jobs use one thread, and the suite otherwise leaves the second core idle. Their results, in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: run_cli(*args, timeout=timeout), commands))


@pytest.fixture
def cli():
    return run_cli


def write_params(directory: Path) -> Path:
    """The repository's params.yaml in `directory`, with its data root there and the shared archives
    found wherever ../shared is."""
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("root: data ", f"root: {directory / 'data'} ")
    text = text.replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    path = directory / "params.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def params_file(tmp_path):
    """A params.yaml whose data root is private to the test."""
    return write_params(tmp_path)


@pytest.fixture(scope="session")
def smoke_params(tmp_path_factory):
    """params.yaml (smoke profile) whose prepared data lives in one directory for the whole session."""
    return write_params(tmp_path_factory.mktemp("smoke"))


@pytest.fixture(scope="session")
def reference_training(smoke_params, tmp_path_factory):
    """TRAIN run once, uninterrupted, on the session's data: what a killed and resumed TRAIN must end as."""
    out = tmp_path_factory.mktemp("ref") / "train"
    res = run_cli(*TRAIN, "--params", smoke_params, "--out", out, *QUIET)
    assert res.returncode == 0, res.stderr
    return out
