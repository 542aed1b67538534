import io

import numpy as np
import pytest

from nasflow.data.archives import read_archive
from nasflow.data.datasets import load, prepare
from nasflow.data.formats import read_idx
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError
from nasflow.settings import load_params
from conftest import FASHION_MNIST_DIR, ROOT, SHARED_DATASETS

needs_shared = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(),
                                  reason="../shared/datasets is not beside this checkout")


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar")
    params = load_params(ROOT / "params.yaml", overrides=[f"data.root={tmp}", f"data.archive_dirs=[{SHARED_DATASETS}]"])
    return params, load(params, "cifar10")


@needs_shared
def test_cifar10_imports_from_the_shared_archive(cifar10):
    params, data = cifar10
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert data.x_train.dtype == np.uint8
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    assert data.classes[0] == "airplane"
    # the prepared file is written once and read back as is
    assert (params.path(params["data"]["root"]) / "cifar10.npz").is_file()


@needs_shared
def test_split_is_stratified_disjoint_and_seeded(cifar10):
    _, data = cifar10
    labels = data.y_train  # sorted by class: a split by position would lose classes
    a, b = stratified_split(labels, 0.5, seed=0)
    assert len(a) == len(b) == 25000 and not set(a) & set(b)
    for part in (a, b):
        assert np.bincount(labels[part], minlength=10).tolist() == [2500] * 10
    a2, _ = stratified_split(labels, 0.5, seed=0)
    a3, _ = stratified_split(labels, 0.5, seed=1)
    assert np.array_equal(a, a2) and not np.array_equal(a, a3)


@needs_shared
def test_subsets_hold_every_class(cifar10):
    _, data = cifar10
    sub = stratified_subset(data.y_train, per_class=7, seed=3)
    assert np.bincount(data.y_train[sub], minlength=10).tolist() == [7] * 10
    frac = stratified_subset(data.y_test, fraction=0.01, seed=3)
    assert set(data.y_test[frac]) == set(range(10))
    with pytest.raises(NasflowError, match="exactly one"):
        stratified_subset(data.y_train)


def _encoded_archive(path, n_per_class=3, classes=4, size=8):
    from PIL import Image

    blobs, offsets, labels = [], [0], []
    rng = np.random.default_rng(0)
    for c in range(classes):
        for _ in range(n_per_class):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
            blobs.append(buf.getvalue())
            offsets.append(offsets[-1] + len(blobs[-1]))
            labels.append(c)
    data = np.frombuffer(b"".join(blobs), np.uint8)
    np.savez(path, train_bytes=data, train_offsets=np.array(offsets), test_bytes=data,
             test_offsets=np.array(offsets), y_train=np.array(labels), y_test=np.array(labels),
             classes=np.array([f"c{i}" for i in range(classes)]), encoding=np.array("jpeg"), source=np.array("test"))


def test_encoded_archive_is_decoded(tmp_path):
    path = tmp_path / "tiny.npz"
    _encoded_archive(path)
    a = read_archive(path)
    assert a.x_train.shape == (12, 8, 8, 3) and a.classes == ["c0", "c1", "c2", "c3"]


def test_truncated_archive_is_refused(tmp_path):
    path = tmp_path / "cifar10-jpeg.npz"
    _encoded_archive(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(NasflowError, match="truncated or corrupt"):
        read_archive(path)


def test_absent_dataset_says_where_it_looked(params_file, tmp_path):
    params = load_params(params_file, overrides=[f"data.archive_dirs=[{tmp_path / 'empty'}]"])
    with pytest.raises(NasflowError, match=r"dataset cifar10 not found: looked for .*cifar10-jpeg.npz.*cs.toronto.edu"):
        prepare(params, "cifar10")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_idx_files(params_file):
    params = load_params(params_file)
    data = load(params, "fashion-mnist")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def test_idx_reader_refuses_truncated_files(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00\x02" + b"\x01" * 7)
    with pytest.raises(NasflowError, match="truncated or corrupt idx"):
        read_idx(path)
