"""Every dataset nasflow knows, each declared once: its shape, classes, network style, training-image
count, how it is stored, and where its images come from. The settings schema's dataset names, the cost
estimate's image counts and every "is it streamed" decision are read from here, so a dataset is added by
one `register` call (and its settings).

Storage is "array" (prepared once into `data/<name>.npz`, held in memory by every job) or "folders"
(streamed from `<root>/train/<class>/` and `<root>/val/<class>/` at run time, as ImageNet is: too large
for memory). Readers and downloads are named as "module:function" and imported only when used, so this
module stays torch-free (a test may pass the function itself):
- an array dataset's reader(directory, params) -> ImageArrays | None reads its canonical files in one of
  `data.archive_dirs`; its download(raw_dir, params) -> ImageArrays | None fetches the official source;
- a folder dataset's reader(directory, params) -> Path | None finds the root of its class folders there.
Archives are the `.npz` files described in `../shared/datasets/README.md`, tried before the reader.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from nasflow.errors import NasflowError

STYLES = ("cifar", "imagenet")
STORAGES = ("array", "folders")


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    channels: int
    image_size: int
    style: str  # the evaluation network family: "cifar" or "imagenet"
    train_images: int  # the training split nasflow prepares or streams (the cost estimate's image count)
    storage: str  # "array" or "folders"
    reader: str | Callable | None  # see the module docstring
    download: str | Callable | None = None  # None: no automatic download (how_to_get says what to do)
    archives: tuple[str, ...] = ()  # archive file names to import from, most exact first
    how_to_get: str = ""
    mean: tuple[float, ...] | None = None  # per-channel normalisation; None: measured on the training set
    std: tuple[float, ...] | None = None
    canonical: tuple[str, ...] = ()  # the official layouts it is also imported from (for messages)
    data_keys: tuple[str, ...] = ()  # the `data:` keys its reader and download read (what its prepared file depends on)

    @property
    def streamed(self) -> bool:
        """Read from class folders at run time: no prepared file, and no `nasflow prepare`."""
        return self.storage == "folders"


_DATASETS: dict[str, Dataset] = {}


def _check(d: Dataset) -> None:
    def bad(key, why):
        raise NasflowError(f"dataset {d.name!r}: {key} {why}")

    if d.style not in STYLES:
        bad("style", f"is {d.style!r}; one of {', '.join(STYLES)}")
    if d.storage not in STORAGES:
        bad("storage", f"is {d.storage!r}; one of {', '.join(STORAGES)}")
    for key in ("num_classes", "channels", "image_size", "train_images"):
        if not isinstance(getattr(d, key), int) or getattr(d, key) < 1:
            bad(key, f"is {getattr(d, key)!r}; a positive integer")
    if (d.mean is None) != (d.std is None) or (d.mean is not None and not len(d.mean) == len(d.std) == d.channels):
        bad("mean/std", f"need one value per channel ({d.channels}), both or neither")
    if d.storage == "folders" and (d.mean is None or d.reader is None or d.archives or d.download):
        bad("storage", "'folders' needs a reader and mean/std (streamed images are never measured), and has "
                       "no archives or download (nothing is prepared)")
    if d.storage == "array" and d.reader is None and not d.archives:
        bad("reader", "is missing: an array dataset is read from archives or by its reader")


def register(d: Dataset) -> Dataset:
    """Declare a dataset (the built-ins below; a test may add its own)."""
    if d.name in _DATASETS:
        raise NasflowError(f"dataset {d.name!r} is already declared")
    _check(d)
    _DATASETS[d.name] = d
    return d


def unregister(name: str) -> None:
    _DATASETS.pop(name, None)


def names() -> list[str]:
    return list(_DATASETS)


def dataset_info(name: str) -> Dataset:
    if name not in _DATASETS:
        raise NasflowError(f"unknown dataset {name!r}; known: {', '.join(_DATASETS)}")
    return _DATASETS[name]


def function(ref: str | Callable) -> Callable:
    """A reader or download: "module:function" imported now, or the function itself."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


_SOURCES = "nasflow.data.sources"
_IMAGENET_NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

for _d in [
    Dataset("cifar10", 10, 3, 32, "cifar", 50_000, "array", f"{_SOURCES}:read_cifar10", f"{_SOURCES}:download_cifar10",
            ("cifar10-jpeg.npz",),
            "torchvision downloads it from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), ("cifar-10-batches-py/", "cifar-10-python.tar.gz")),
    Dataset("cifar100", 100, 3, 32, "cifar", 50_000, "array", f"{_SOURCES}:read_cifar100",
            f"{_SOURCES}:download_cifar100", (),
            "torchvision downloads it from https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), ("cifar-100-python/", "cifar-100-python.tar.gz")),
    # 604,388 training images: train + extra, as ASAP uses it (data.svhn_extra)
    Dataset("svhn", 10, 3, 32, "cifar", 604_388, "array", f"{_SOURCES}:read_svhn", f"{_SOURCES}:download_svhn", (),
            "torchvision downloads train/test/extra from http://ufldl.stanford.edu/housenumbers/",
            (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
            ("train_32x32.mat + test_32x32.mat (+ extra_32x32.mat)",), data_keys=("svhn_extra",)),
    Dataset("cinic10", 10, 3, 32, "cifar", 90_000, "array", f"{_SOURCES}:read_cinic10", f"{_SOURCES}:download_cinic10",
            (), "with data.download=true nasflow fetches the official archive (https://datashare.ed.ac.uk/handle/10283/3192)",
            (0.4789, 0.4723, 0.4305), (0.2421, 0.2383, 0.2587), ("cinic10/train|test/<class>/*.png",)),
    Dataset("fashion-mnist", 10, 1, 28, "cifar", 60_000, "array", f"{_SOURCES}:read_fashion_mnist",
            f"{_SOURCES}:download_fashion_mnist", (),
            "apt-get install dataset-fashion-mnist (or torchvision's FashionMNIST download)",
            (0.2860,), (0.3530,), ("train-images-idx3-ubyte.gz and the other three idx files",)),
    Dataset("freiburg", 25, 3, 64, "cifar", 3_947, "array", f"{_SOURCES}:read_freiburg", f"{_SOURCES}:download_freiburg",
            ("freiburg64-jpeg.npz",),
            "with data.download=true nasflow fetches the official archive "
            "(http://aisdatasets.informatik.uni-freiburg.de/freiburg_groceries_dataset/) and split 0",
            canonical=("freiburg_groceries_dataset/images + splits/train0.txt, test0.txt",)),
    Dataset("imagenet", 1000, 3, 224, "imagenet", 1_281_167, "folders", f"{_SOURCES}:imagenet_root", None, (),
            "download ILSVRC2012 from https://image-net.org and put its train/ and val/ class folders "
            "(val sorted into one folder per wnid) under an archive dir's imagenet/",
            **_IMAGENET_NORM, canonical=("imagenet/train and imagenet/val",)),
    # Ten ImageNet classes at 64x64: a small stand-in for the ImageNet transfer rule, under its own name.
    Dataset("imagenette64", 10, 3, 64, "imagenet", 9_469, "array", None, None, ("imagenette64-subset-jpeg.npz",),
            "the shared imagenette64-subset-jpeg.npz (Imagenette, https://github.com/fastai/imagenette)",
            **_IMAGENET_NORM),
]:
    register(_d)
