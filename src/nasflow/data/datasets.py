"""Getting a dataset ready: the prepared file under `data.root`, else an archive from
`data.archive_dirs`, else (when `data.download` allows) the official download. Never stand-in data."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from nasflow.data.archives import ImageArrays, find_file, read_archive, write_prepared
from nasflow.data.registry import dataset_info
from nasflow.errors import NasflowError

FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                       "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """The MNIST idx format (big-endian header: magic, then one uint32 per dimension)."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            raw = fh.read()
        magic, = struct.unpack(">I", raw[:4])
        ndim = magic & 0xFF
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
        return data.reshape(dims)
    except (OSError, EOFError, struct.error, ValueError) as exc:
        raise NasflowError(f"{path}: truncated or corrupt idx file ({exc})") from None


def _fashion_mnist_from(directory: Path) -> ImageArrays | None:
    paths = {k: directory / f for k, f in FASHION_MNIST_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        return None
    a = {k: read_idx(p) for k, p in paths.items()}
    return ImageArrays(a["x_train"][..., None], a["y_train"].astype(np.int64), a["x_test"][..., None],
                       a["y_test"].astype(np.int64), FASHION_MNIST_CLASSES, f"idx files in {directory}")


def _torchvision_download(name: str, raw_dir: Path) -> ImageArrays:
    import torchvision.datasets as tvd

    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "fashion-mnist": tvd.FashionMNIST}.get(name)
    if cls is None:
        raise NasflowError(f"{name}: no automatic download; {dataset_info(name).how_to_get}")
    try:
        train, test = cls(raw_dir, train=True, download=True), cls(raw_dir, train=False, download=True)
    except Exception as exc:  # network errors come in many types; the user needs the one line
        raise NasflowError(f"{name}: download failed ({exc}); {dataset_info(name).how_to_get}") from None

    def arrays(ds):
        x = np.asarray(ds.data, dtype=np.uint8)
        return (x[..., None] if x.ndim == 3 else x), np.asarray(ds.targets, dtype=np.int64)

    x_tr, y_tr = arrays(train)
    x_te, y_te = arrays(test)
    return ImageArrays(x_tr, y_tr, x_te, y_te, list(train.classes), f"torchvision {cls.__name__} download")


def prepared_path(params, name: str) -> Path:
    return params.path(params["data"]["root"]) / f"{name}.npz"


def prepare(params, name: str, download: bool | None = None) -> Path:
    """Make `data/<name>.npz` exist and return its path; one-line error when it cannot."""
    info = dataset_info(name)
    target = prepared_path(params, name)
    if target.is_file():
        return target
    dirs = [params.path(d) for d in params["data"]["archive_dirs"]]
    arrays = None
    for filename in info.archives:
        found = find_file(filename, dirs)
        if found is not None:
            arrays = read_archive(found)
            break
    if arrays is None and name == "fashion-mnist":
        arrays = next((a for a in map(_fashion_mnist_from, dirs) if a is not None), None)
    allow = params["data"]["download"] if download is None else download
    if arrays is None and allow:
        arrays = _torchvision_download(name, params.path(params["data"]["root"]) / "raw" / name)
    if arrays is None:
        looked = ", ".join(info.archives) or "its files"
        raise NasflowError(f"dataset {name} not found: looked for {target} and {looked} in "
                           f"{', '.join(map(str, dirs))}; {info.how_to_get}"
                           + ("" if allow else " (or set data.download=true)"))
    if arrays.x_train.shape[1:] != (info.image_size, info.image_size, info.channels):
        raise NasflowError(f"{name}: images are {arrays.x_train.shape[1:]}, expected "
                           f"{(info.image_size, info.image_size, info.channels)}")
    write_prepared(target, arrays)
    return target


def load(params, name: str) -> ImageArrays:
    return read_archive(prepare(params, name))
