"""What each dataset is: shape, classes, network style, and the archive files it can be imported from.

Archives are the `.npz` files described in `../shared/datasets/README.md` (decoded or JPEG-encoded),
found by searching a list of directories in order (`data.archive_dirs` in params.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

from nasflow.errors import NasflowError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    image_size: int
    style: str  # the evaluation network family: "cifar" or "imagenet"
    archives: tuple[str, ...] = ()  # archive file names to import from, most exact first
    how_to_get: str = ""
    mean: tuple[float, ...] | None = None  # per-channel normalisation; None: measured on the training set
    std: tuple[float, ...] | None = None
    canonical: tuple[str, ...] = ()  # the official layouts it is also imported from (for messages)


DATASETS = {
    d.name: d for d in [
        DatasetInfo("cifar10", 10, 3, 32, "cifar", ("cifar10-jpeg.npz",),
                    "torchvision downloads it from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                    ("cifar-10-batches-py/", "cifar-10-python.tar.gz")),
        DatasetInfo("cifar100", 100, 3, 32, "cifar", (),
                    "torchvision downloads it from https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                    ("cifar-100-python/", "cifar-100-python.tar.gz")),
        DatasetInfo("svhn", 10, 3, 32, "cifar", (),
                    "torchvision downloads train/test/extra from http://ufldl.stanford.edu/housenumbers/",
                    (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                    ("train_32x32.mat + test_32x32.mat (+ extra_32x32.mat)",)),
        DatasetInfo("cinic10", 10, 3, 32, "cifar", (),
                    "with data.download=true nasflow fetches the official archive (https://datashare.ed.ac.uk/handle/10283/3192)",
                    (0.4789, 0.4723, 0.4305), (0.2421, 0.2383, 0.2587),
                    ("cinic10/train|test/<class>/*.png",)),
        DatasetInfo("fashion-mnist", 10, 1, 28, "cifar", (),
                    "apt-get install dataset-fashion-mnist (or torchvision's FashionMNIST download)",
                    (0.2860,), (0.3530,),
                    ("train-images-idx3-ubyte.gz and the other three idx files",)),
        DatasetInfo("freiburg", 25, 3, 64, "cifar", ("freiburg64-jpeg.npz",),
                    "with data.download=true nasflow fetches the official archive "
                    "(http://aisdatasets.informatik.uni-freiburg.de/freiburg_groceries_dataset/) and split 0",
                    canonical=("freiburg_groceries_dataset/images + splits/train0.txt, test0.txt",)),
        DatasetInfo("imagenet", 1000, 3, 224, "imagenet", (),
                    "download ILSVRC2012 from https://image-net.org and put its train/ and val/ class folders "
                    "(val sorted into one folder per wnid) under an archive dir's imagenet/",
                    (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), ("imagenet/train/<wnid>/*.JPEG",)),
        # Ten ImageNet classes at 64x64: a small stand-in for the ImageNet transfer rule, under its own name.
        DatasetInfo("imagenette64", 10, 3, 64, "imagenet", ("imagenette64-subset-jpeg.npz",),
                    "the shared imagenette64-subset-jpeg.npz (Imagenette, https://github.com/fastai/imagenette)",
                    (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise NasflowError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]
