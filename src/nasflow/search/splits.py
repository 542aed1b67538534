"""The images a search sees: which part of the training set trains the weights, which trains alpha,
which measures the search, in memory or streamed from ImageNet's class folders. The test set is never
read: a search is measured on held-out training images or not at all."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasflow.catalog.datasets import dataset_info
from nasflow.data.datasets import load
from nasflow.data.loader import Batches, normalisation
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError


@dataclass
class SearchData:
    train: object        # the weights' batches
    arch: object         # alpha's batches (the weights' own in a one-level search)
    val: object | None   # what measures the search; None: nothing is held out
    n_classes: int


def training_split(labels: np.ndarray, s: dict, data: dict, first_fraction: float | None,
                   second_fraction: float | None = None):
    """Indices of the training images that train the weights, and of those held out (alpha's half of a
    bi-level search, a one-level search's validation part, the random baseline's scoring images), or None
    when nothing is held out (`first_fraction` None). The held-out part is the rest of every class, or
    with `second_fraction` that fraction of every class, disjoint from the first (EnTranNAS on
    ImageNet-style data: 10 % and another 10 %, appendix A.1). Subsets and parts are drawn per class
    with data.split_seed."""
    from nasflow.data.folders import stratified_parts

    pool = (stratified_subset(labels, per_class=s["subset_per_class"], seed=data["split_seed"])
            if s["subset_per_class"] else np.arange(len(labels)))
    if first_fraction is None:
        return pool, None
    if second_fraction is not None:
        first, second = stratified_parts(labels[pool], (first_fraction, second_fraction), data["split_seed"])
    else:
        first, second = stratified_split(labels[pool], first_fraction, data["split_seed"])
    return pool[first], pool[second]


def weights_fraction(one_level: bool, s: dict, data: dict) -> float | None:
    """The fraction of the training images that trains the weights: a bi-level search gives the rest to
    alpha (or `arch_fraction`, see below), and takes the fraction from its own settings where they give
    one (EnTranNAS's `imagenet_style:` block: 10 %, appendix A.1), else data.weights_fraction; a one-level
    search trains on all of them unless `val_fraction` holds a part out to measure it (GOLD-NAS 3.1:
    the test set stays invisible during the search)."""
    if not one_level:
        return data["weights_fraction"] if s.get("weights_fraction") is None else s["weights_fraction"]
    return 1.0 - s["val_fraction"] if s["val_fraction"] else None


def arch_fraction(one_level: bool, s: dict) -> float | None:
    """The fraction of every class that trains alpha in a bi-level search, disjoint from the weights'
    images, where the method's settings give one (EnTranNAS's `imagenet_style:` block: another 10 %, appendix
    A.1); None: the rest of the images (and for a one-level search, which has no architecture images)."""
    return None if one_level else s.get("arch_fraction")


def search_augmentation(s: dict):
    """AutoAugment on the training images when the search asks for it (GOLD-NAS on CIFAR-10; not on
    ImageNet-style data, appendix C, where the policy would be ImageNet's)."""
    if not s["autoaugment"]:
        return None
    from torchvision.transforms import v2

    imagenet = dataset_info(s["dataset"]).style == "imagenet"
    return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET if imagenet else v2.AutoAugmentPolicy.CIFAR10)


def search_data(params, method: str, s: dict, one_level: bool, device) -> SearchData:
    """The batches of search `method` (its resolved settings `s`), split as its declaration says."""
    if dataset_info(s["dataset"]).streamed:
        return folder_data(params, s, device) if one_level else folder_bilevel_data(params, method, s, device)
    data_cfg = params["data"]
    arrays = load(params, s["dataset"])
    labels = arrays.y_train
    mean, std = normalisation(s["dataset"], arrays.x_train)
    bs = s["batch_size"]
    w_idx, held = training_split(labels, s, data_cfg, weights_fraction(one_level, s, data_cfg),
                                 arch_fraction(one_level, s))
    # DARTS draws both halves through the training augmentation; validation is measured without it.
    train = Batches(arrays.x_train[w_idx], labels[w_idx], bs, mean, std, True, device,
                    drop_last=True, image_transform=search_augmentation(s))
    arch = (train if one_level else  # one level: alpha on the same batches
            Batches(arrays.x_train[held], labels[held], bs, mean, std, True, device, drop_last=True))
    # Never the test set: a one-level search without val_fraction has no validation error.
    val = None if held is None else Batches(arrays.x_train[held], labels[held], bs, mean, std, False, device)
    if len(train) == 0:
        raise NasflowError(f"search.batch_size {bs} is larger than the {len(w_idx)} images of the weight split")
    return SearchData(train, arch, val, arrays.num_classes)


def folder_data(params, s: dict, device) -> SearchData:
    """A one-level search (GOLD-NAS) on ImageNet streamed from its class folders (it does not fit in
    memory), on `classes` classes drawn with data.split_seed; progress is measured on a held-out part of
    the training images (val_fraction). The val split is ImageNet's test set, so it is never read."""
    from nasflow.data.folders import FolderBatches
    from nasflow.settings import Params, deep_merge

    narrowed = Params(deep_merge(params, {"data": {"imagenet_classes": s.get("classes")}}))
    narrowed.base_dir = params.base_dir
    dataset, held = s["dataset"], s["val_fraction"]
    size = dataset_info(dataset).image_size
    train = FolderBatches(narrowed, dataset, "train", s["batch_size"], True, size, s["autoaugment"], device,
                          hold_out=held)
    val = (FolderBatches(narrowed, dataset, "train", s["batch_size"], False, size, device=device,
                         hold_out=held, held_out=True) if held else None)
    if len(train) == 0:
        raise NasflowError(f"search.batch_size {s['batch_size']} is larger than the {dataset} training images")
    return SearchData(train, train, val, len(train.classes))  # one level: alpha trains on the weights' batches


def folder_bilevel_data(params, method: str, s: dict, device) -> SearchData:
    """A bi-level search on ImageNet's class folders (EnTranNAS appendix A.1, after PC-DARTS): every
    class (data.imagenet_classes and data.imagenet_fraction narrow the pool; null: all 1,000 classes,
    every image), and in each class two disjoint parts drawn with data.split_seed: `weights_fraction`
    trains the weights, `arch_fraction` (None: the rest) trains alpha. Alpha's part, unaugmented, also
    measures the search (val_error), as the in-memory halves do; ImageNet's val split is never read.
    Only methods whose `imagenet_style:` block gives these fractions search here (streamed batches keep their
    size for an epoch, so PR-DARTS's growing batches would not grow)."""
    from nasflow.data.folders import FolderBatches

    if s.get("weights_fraction") is None:
        raise NasflowError(f"search.{method}: a bi-level search on streamed ImageNet (dataset {s['dataset']}) draws "
                           "its weight and architecture images with the fractions of its method's `imagenet_style:` "
                           "block (weights_fraction, arch_fraction: entranas, entranas-dst); this method has none. "
                           "Use one of those, a one-level method (gold-nas) or an in-memory dataset")
    parts = (weights_fraction(False, s, params["data"]), arch_fraction(False, s))
    size, bs = dataset_info(s["dataset"]).image_size, s["batch_size"]
    split = lambda train, part, autoaugment=False: FolderBatches(
        params, s["dataset"], "train", bs, train, size, autoaugment, device, parts=parts, part=part)
    train = split(True, 0, s["autoaugment"])
    arch = split(True, 1)  # augmented like the weights' images, as in memory
    val = split(False, 1)
    if len(train) == 0:
        raise NasflowError(f"search.batch_size {bs} is larger than the {len(train.y)} {s['dataset']} "
                           "images of the weight split")
    return SearchData(train, arch, val, len(train.classes))
