"""Every dataset's loader on small files the tests write in the exact canonical formats (the real
CIFAR-100, SVHN, CINIC-10 and ImageNet are not available offline), and the real shared files."""
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from nasflow.data.datasets import load, prepare
from nasflow.data.folders import FolderBatches
from nasflow.data.formats import read_cifar
from nasflow.errors import NasflowError
from nasflow.settings import load_params
from conftest import SHARED_DATASETS


def _params(params_file, archive_dir, *extra):
    return load_params(params_file, overrides=[f"data.archive_dirs=[{archive_dir}]", *extra])


def _cifar100_folder(root, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"fine_labels": list(range(n)),
                 b"coarse_labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    return folder


def test_cifar100_from_its_pickled_batches(params_file, tmp_path):
    folder = _cifar100_folder(tmp_path / "archives")
    data = load(_params(params_file, tmp_path / "archives"), "cifar100")
    assert data.x_train.shape == (6, 32, 32, 3) and data.classes[:2] == ["c0", "c1"]
    raw = pickle.loads((folder / "train").read_bytes())
    # CIFAR stores each image as 1024 red, then green, then blue values
    assert data.x_train[1, 0, 0].tolist() == [raw[b"data"][1][0], raw[b"data"][1][1024], raw[b"data"][1][2048]]


def test_official_tarball_is_checksummed(params_file, tmp_path):
    folder = _cifar100_folder(tmp_path / "src")
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    with pytest.raises(NasflowError, match="fails its checksum"):
        read_cifar(archives, "cifar100")


def test_svhn_from_mat_files_with_extra(params_file, tmp_path):
    import scipy.io

    rng = np.random.default_rng(1)
    for name, n in (("train", 5), ("test", 3), ("extra", 4)):
        scipy.io.savemat(tmp_path / f"{name}_32x32.mat", {"X": rng.integers(0, 255, (32, 32, 3, n), dtype=np.uint8),
                                                          "y": np.array([[10], [1], [2], [3], [4]][:n], dtype=np.uint8)})
    data = load(_params(params_file, tmp_path), "svhn")
    assert data.x_train.shape == (9, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    assert data.y_train[0] == 0  # label 10 is the digit 0
    only_train = load(_params(params_file, tmp_path, "data.svhn_extra=false", f"data.root={tmp_path / 'd2'}"), "svhn")
    assert len(only_train.y_train) == 5


def _image_tree(root, splits, classes, size, fmt="PNG", per_class=3):
    rng = np.random.default_rng(2)
    for split in splits:
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.{fmt.lower()}", fmt)


def test_cinic10_from_class_folders(params_file, tmp_path):
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _image_tree(tmp_path / "cinic10", ["train", "valid", "test"], classes, 32)
    data = load(_params(params_file, tmp_path), "cinic10")
    assert data.x_train.shape == (30, 32, 32, 3) and data.classes == classes
    assert np.bincount(data.y_test).tolist() == [3] * 10


def test_imagenet_class_folders_stream_with_random_resized_crop(params_file, tmp_path):
    wnids = [f"n0{i}" for i in range(6)]
    _image_tree(tmp_path / "imagenet", ["train", "val"], wnids, 40, fmt="JPEG", per_class=4)
    params = _params(params_file, tmp_path, "data.imagenet_classes=3", "data.imagenet_fraction=0.5")
    train = FolderBatches(params, "imagenet", "train", 4, True, image_size=32)
    assert len(train.classes) == 3 and len(train.dataset) == 6  # 3 classes x half of 4 images
    x, y = next(train.epoch(torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 32, 32) and int(y.max()) < 3
    val = FolderBatches(params, "imagenet", "val", 5, False, image_size=32)
    assert sum(len(b[1]) for b in val.epoch(None)) == 12
    with pytest.raises(NasflowError, match="class folders"):
        prepare(params, "imagenet")


def test_missing_imagenet_says_where_it_looked(params_file, tmp_path):
    with pytest.raises(NasflowError, match="dataset imagenet not found: looked for imagenet/train"):
        FolderBatches(_params(params_file, tmp_path), "imagenet", "train", 4, True)


@pytest.mark.skipif(not (SHARED_DATASETS / "imagenette64-subset-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_shared_freiburg_and_imagenette(params_file):
    params = load_params(params_file)
    freiburg = load(params, "freiburg")
    assert freiburg.x_train.shape == (3933, 64, 64, 3) and freiburg.x_test.shape == (1014, 64, 64, 3)
    assert len(set(freiburg.y_train)) == len(set(freiburg.y_test)) == 25
    nette = load(params, "imagenette64")
    assert nette.x_train.shape == (3000, 64, 64, 3) and np.bincount(nette.y_test).tolist() == [50] * 10


def test_freiburg_from_official_images_and_split_files(params_file, tmp_path):
    base = tmp_path / "freiburg_groceries_dataset"
    _image_tree(base / "images", [""], ["BEANS", "CAKE"], 80, per_class=2)
    (base / "splits").mkdir()
    (base / "splits" / "train0.txt").write_text("BEANS/0.png 1\nCAKE/0.png 0\nCAKE/1.png 0\n")
    (base / "splits" / "test0.txt").write_text("BEANS/1.png 1\n")
    data = load(_params(params_file, tmp_path), "freiburg")
    assert data.x_train.shape == (3, 64, 64, 3)  # resized to 64x64 as in ASAP
    assert data.y_train.tolist() == [1, 0, 0] and data.classes == ["CAKE", "BEANS"]
    (base / "splits" / "test0.txt").write_text("BEANS/1.png\n")
    with pytest.raises(NasflowError, match="test0.txt:1: expected"):
        load(_params(params_file, tmp_path, f"data.root={tmp_path / 'd2'}"), "freiburg")
