"""Getting a dataset ready: the prepared file under `data.root`, else an import from the first of
`data.archive_dirs` that holds it in a canonical format, else (when `data.download` allows) the
official download. Never stand-in data under a real dataset's name."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nasflow.data import formats
from nasflow.data.archives import ImageArrays, find_file, read_archive, write_prepared
from nasflow.data.registry import dataset_info
from nasflow.errors import NasflowError

# Where each dataset can be imported from, besides the shared .npz archives of the registry.
CANONICAL = {
    "cifar10": lambda d, p: formats.read_cifar(d, "cifar10"),
    "cifar100": lambda d, p: formats.read_cifar(d, "cifar100"),
    "svhn": lambda d, p: formats.read_svhn(d, with_extra=p["data"]["svhn_extra"]),
    "fashion-mnist": lambda d, p: formats.read_fashion_mnist(d),
    "freiburg": lambda d, p: formats.read_freiburg(d),
    "cinic10": lambda d, p: next((a for a in (formats.read_class_folders(d / sub, ("train",), "test", 32)
                                              for sub in ("cinic10", "CINIC-10", "cinic-10")) if a is not None), None),
}


CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"


def _official_archive(name: str, raw_dir: Path) -> ImageArrays:
    """CINIC-10 and Freiburg Groceries have no torchvision loader: their official archives (no
    checksum is published for either, so none is checked)."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    if name == "cinic10":
        download_and_extract_archive(CINIC10_URL, str(raw_dir / "cinic10"))
        return formats.read_class_folders(raw_dir / "cinic10", ("train",), "test", 32)
    download_and_extract_archive(formats.FREIBURG_URL, str(raw_dir))
    for split in ("train", "test"):
        download_url(formats.FREIBURG_SPLITS_URL.format(split), str(raw_dir / "freiburg_groceries_dataset" / "splits"))
    return formats.read_freiburg(raw_dir)


def _download(name: str, raw_dir: Path, params) -> ImageArrays:
    import torchvision.datasets as tvd

    info = dataset_info(name)
    try:
        if name in ("cinic10", "freiburg"):
            arrays = _official_archive(name, raw_dir)
            if arrays is None:
                raise NasflowError(f"{name}: the downloaded archive does not hold the expected files")
            return arrays
        if name == "svhn":
            splits = ["train", "extra"] if params["data"]["svhn_extra"] else ["train"]
            train = [tvd.SVHN(raw_dir, split=s, download=True) for s in splits]
            test = tvd.SVHN(raw_dir, split="test", download=True)
            x_tr = np.concatenate([d.data.transpose(0, 2, 3, 1) for d in train])
            y_tr = np.concatenate([np.asarray(d.labels) for d in train])
            return ImageArrays(x_tr, y_tr.astype(np.int64), test.data.transpose(0, 2, 3, 1),
                               np.asarray(test.labels, np.int64), [str(i) for i in range(10)], "torchvision SVHN download")
        cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "fashion-mnist": tvd.FashionMNIST}.get(name)
        if cls is None:
            raise NasflowError(f"{name}: no automatic download; {info.how_to_get}")
        train, test = cls(raw_dir, train=True, download=True), cls(raw_dir, train=False, download=True)
    except NasflowError:
        raise
    except Exception as exc:  # network errors come in many types; the user needs the one line
        raise NasflowError(f"{name}: download failed ({exc}); {info.how_to_get}") from None

    def arrays(ds):
        x = np.asarray(ds.data, dtype=np.uint8)
        return (x[..., None] if x.ndim == 3 else x), np.asarray(ds.targets, dtype=np.int64)

    x_tr, y_tr = arrays(train)
    x_te, y_te = arrays(test)
    return ImageArrays(x_tr, y_tr, x_te, y_te, list(train.classes), f"torchvision {cls.__name__} download "
                       "(checksums verified)")


def prepared_path(params, name: str) -> Path:
    return params.path(params["data"]["root"]) / f"{name}.npz"


def _import(params, name: str, dirs: list[Path]) -> ImageArrays | None:
    info = dataset_info(name)
    for filename in info.archives:
        found = find_file(filename, dirs)
        if found is not None:
            return read_archive(found)
    reader = CANONICAL.get(name)
    for d in dirs if reader else []:
        arrays = reader(d, params)
        if arrays is not None:
            return arrays
    return None


def prepare(params, name: str, download: bool | None = None) -> Path:
    """Make `data/<name>.npz` exist and return its path; one-line error when it cannot."""
    info = dataset_info(name)
    if info.style == "imagenet" and not info.archives:
        raise NasflowError(f"{name} is read from its class folders, not prepared into one file: "
                           f"{info.how_to_get}")
    target = prepared_path(params, name)
    if target.is_file():
        return target
    dirs = [params.path(d) for d in params["data"]["archive_dirs"]]
    arrays = _import(params, name, dirs)
    allow = params["data"]["download"] if download is None else download
    if arrays is None and allow:
        raw = params.path(params["data"]["root"]) / "raw" / name
        print(f"nasflow: {name} is in none of {', '.join(map(str, dirs))}: downloading it from its official "
              f"source into {raw} (prepared as {target})", file=sys.stderr, flush=True)
        arrays = _download(name, raw, params)
    if arrays is None:
        looked = ", ".join(info.archives + info.canonical) or "its files"
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
