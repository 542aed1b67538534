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


def run_cli(*args, cwd=ROOT, env=None, timeout=600):
    """Run `nasflow ...` as a user would, in a child process."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "nasflow.cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def params_file(tmp_path):
    """A params.yaml in a temporary directory whose data root is private to the test."""
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("root: data ", f"root: {tmp_path / 'data'} ")
    text = text.replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def smoke_params(tmp_path_factory):
    """params.yaml (smoke profile) whose prepared data lives in one directory for the whole session."""
    tmp = tmp_path_factory.mktemp("smoke")
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("root: data ", f"root: {tmp / 'data'} ")
    text = text.replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    path = tmp / "params.yaml"
    path.write_text(text)
    return path
