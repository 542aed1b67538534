"""The built-in datasets' readers and downloads, as `nasflow.catalog.datasets` names them: a reader takes
one of `data.archive_dirs` and the settings and returns the dataset (or, for a folder dataset, the root
of its class folders) or None when it is not there; a download fetches the official source into `raw_dir`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nasflow.data import formats
from nasflow.data.archives import ImageArrays

CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
CINIC10_FOLDERS = ("cinic10", "CINIC-10", "cinic-10")


# ---- readers of the canonical formats -----------------------------------------------------------------

def read_cifar10(directory: Path, params) -> ImageArrays | None:
    return formats.read_cifar(directory, "cifar10")


def read_cifar100(directory: Path, params) -> ImageArrays | None:
    return formats.read_cifar(directory, "cifar100")


def read_svhn(directory: Path, params) -> ImageArrays | None:
    return formats.read_svhn(directory, with_extra=params["data"]["svhn_extra"])


def read_fashion_mnist(directory: Path, params) -> ImageArrays | None:
    return formats.read_fashion_mnist(directory)


def read_freiburg(directory: Path, params) -> ImageArrays | None:
    return formats.read_freiburg(directory)


def read_cinic10(directory: Path, params) -> ImageArrays | None:
    for sub in CINIC10_FOLDERS:
        arrays = formats.read_class_folders(directory / sub, ("train",), "test", 32)
        if arrays is not None:
            return arrays
    return None


def imagenet_root(directory: Path, params) -> Path | None:
    for root in (directory / "imagenet", directory / "ILSVRC2012", directory):
        if (root / "train").is_dir() and (root / "val").is_dir():
            return root
    return None


# ---- official downloads ------------------------------------------------------------------------------

def _torchvision(cls, raw_dir: Path) -> ImageArrays:
    train, test = cls(raw_dir, train=True, download=True), cls(raw_dir, train=False, download=True)

    def arrays(ds):
        x = np.asarray(ds.data, dtype=np.uint8)
        return (x[..., None] if x.ndim == 3 else x), np.asarray(ds.targets, dtype=np.int64)

    x_tr, y_tr = arrays(train)
    x_te, y_te = arrays(test)
    return ImageArrays(x_tr, y_tr, x_te, y_te, list(train.classes), f"torchvision {cls.__name__} download "
                       "(checksums verified)")


def download_cifar10(raw_dir: Path, params) -> ImageArrays:
    import torchvision.datasets as tvd

    return _torchvision(tvd.CIFAR10, raw_dir)


def download_cifar100(raw_dir: Path, params) -> ImageArrays:
    import torchvision.datasets as tvd

    return _torchvision(tvd.CIFAR100, raw_dir)


def download_fashion_mnist(raw_dir: Path, params) -> ImageArrays:
    import torchvision.datasets as tvd

    return _torchvision(tvd.FashionMNIST, raw_dir)


def download_svhn(raw_dir: Path, params) -> ImageArrays:
    import torchvision.datasets as tvd

    splits = ["train", "extra"] if params["data"]["svhn_extra"] else ["train"]
    train = [tvd.SVHN(raw_dir, split=s, download=True) for s in splits]
    test = tvd.SVHN(raw_dir, split="test", download=True)
    x_tr = np.concatenate([d.data.transpose(0, 2, 3, 1) for d in train])
    y_tr = np.concatenate([np.asarray(d.labels) for d in train])
    return ImageArrays(x_tr, y_tr.astype(np.int64), test.data.transpose(0, 2, 3, 1),
                       np.asarray(test.labels, np.int64), [str(i) for i in range(10)], "torchvision SVHN download")


# CINIC-10 and Freiburg Groceries have no torchvision loader: their official archives (no checksum is
# published for either, so none is checked).

def download_cinic10(raw_dir: Path, params) -> ImageArrays | None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(CINIC10_URL, str(raw_dir / "cinic10"))
    return formats.read_class_folders(raw_dir / "cinic10", ("train",), "test", 32)


def download_freiburg(raw_dir: Path, params) -> ImageArrays | None:
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    download_and_extract_archive(formats.FREIBURG_URL, str(raw_dir))
    for split in ("train", "test"):
        download_url(formats.FREIBURG_SPLITS_URL.format(split), str(raw_dir / "freiburg_groceries_dataset" / "splits"))
    return formats.read_freiburg(raw_dir)
