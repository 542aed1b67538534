"""A dataset stored as class folders (storage "folders" in nasflow.catalog.datasets: ImageNet), streamed
from `<root>/train/<class>/` and `<root>/val/<class>/` (it does not fit in memory as one array): random resized
crop (scale 0.08 to 1) and flip for training, resize to 256/224 of the size and centre crop for test,
optionally a seeded subset of classes and a seeded, per-class fraction of the images (GOLD-NAS and
EnTranNAS search on such subsets), and seeded, disjoint per-class parts of them (a bi-level search's
weight and architecture images: EnTranNAS appendix A.1, 10 % and another 10 % of every class)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nasflow.catalog.datasets import dataset_info, function
from nasflow.data.formats import IMAGE_SUFFIXES
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError


def find_root(params, name: str) -> Path:
    """The root of the dataset's class folders: the first archive dir where its reader finds them."""
    info = dataset_info(name)
    dirs = [params.path(d) for d in params["data"]["archive_dirs"]]
    reader = function(info.reader)
    for d in dirs:
        root = reader(d, params)
        if root is not None:
            return root
    raise NasflowError(f"dataset {name} not found: looked for {', '.join(info.canonical) or 'its class folders'} in "
                       f"{', '.join(map(str, dirs))}; {info.how_to_get}")


def index_split(root: Path, split: str, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / split / cls
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if not files:
            raise NasflowError(f"{folder}: no images (every class needs a folder in {split}/)")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def choose(root: Path, params, seed: int) -> tuple[list[str], float | None]:
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    n = params["data"].get("imagenet_classes")
    if n:
        if n > len(classes):
            raise NasflowError(f"data.imagenet_classes is {n} but {root / 'train'} has {len(classes)} classes")
        rng = np.random.default_rng(seed)
        classes = sorted(rng.choice(classes, size=n, replace=False).tolist())
    return classes, params["data"].get("imagenet_fraction")


def stratified_parts(labels: np.ndarray, fractions, seed: int = 0) -> list[np.ndarray]:
    """Disjoint index sets, one per fraction: part k holds round(n * fractions[k]) (at least one) of
    every class of n images, drawn per class with `seed` (one permutation per class, cut in order); a
    last fraction None takes the rest of every class."""
    given = [f for f in fractions if f is not None]
    if (None in fractions[:-1] or any(not 0 < f <= 1 for f in given) or sum(given) > 1 + 1e-9
            or (fractions[-1] is None and sum(given) >= 1)):
        raise NasflowError(f"per-class parts {list(fractions)}: each must be in (0, 1] and together at most 1")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        sizes = [max(1, int(round(len(idx) * f))) for f in given]
        if fractions[-1] is None:
            sizes.append(len(idx) - sum(sizes))
        if sum(sizes) > len(idx) or min(sizes) < 1:
            raise NasflowError(f"class {c} has {len(idx)} images: too few for per-class parts of "
                               f"{' + '.join(map(str, fractions))} ({' + '.join(map(str, sizes))} images)")
        start = 0
        for part, n in zip(parts, sizes):
            part.append(idx[start:start + n])
            start += n
    return [np.sort(np.concatenate(p)) for p in parts]


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        try:
            img = Image.open(self.paths[i]).convert("RGB")
        except OSError as exc:
            raise NasflowError(f"{self.paths[i]}: unreadable image ({exc})") from None
        return self.transform(img), int(self.labels[i])


class FolderBatches:
    """The Batches interface (len, epoch(generator)) over a class-folder split."""

    def __init__(self, params, dataset: str, split: str, batch_size: int, train: bool, image_size: int = 224,
                 autoaugment: bool = False, device="cpu", workers: int = 0, hold_out: float = 0.0,
                 held_out: bool = False, parts: tuple[float, ...] | None = None, part: int = 0):
        """`hold_out`: a fraction of every class set aside (seeded with data.split_seed); these batches
        stream the rest, or with `held_out` that part only (a search's validation images, never the val
        split, which is ImageNet's test set). `parts`: disjoint per-class fractions of the training images
        (`stratified_parts`, seeded with data.split_seed); these batches stream part number `part` only
        (a bi-level search's weight images, 0, and architecture images, 1)."""
        from torchvision.transforms import v2

        root = find_root(params, dataset)
        classes, fraction = choose(root, params, params["data"]["split_seed"])
        paths, labels = index_split(root, split, classes)
        if fraction and split == "train":  # the same subset for training and held-out batches
            keep = stratified_subset(labels, fraction=fraction, seed=params["data"]["split_seed"])
            paths, labels = [paths[i] for i in keep], labels[keep]
        if parts:
            if hold_out or split != "train":
                raise NasflowError("FolderBatches: `parts` divides the training images and excludes `hold_out`")
            keep = stratified_parts(labels, parts, params["data"]["split_seed"])[part]
            paths, labels = [paths[i] for i in keep], labels[keep]
        if hold_out:
            rest, held = stratified_split(labels, 1.0 - hold_out, params["data"]["split_seed"])
            keep = held if held_out else rest
            paths, labels = [paths[i] for i in keep], labels[keep]
        info = dataset_info(dataset)
        norm = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]
        if train:
            steps = [v2.RandomResizedCrop(image_size, scale=(0.08, 1.0)), v2.RandomHorizontalFlip()]
            if autoaugment:
                steps.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
        else:
            steps = [v2.Resize(round(image_size * 256 / 224)), v2.CenterCrop(image_size)]
        self.dataset = _Images(paths, labels, v2.Compose(steps + norm))
        self.classes, self.batch_size, self.train, self.device, self.workers = classes, batch_size, train, device, workers
        self.y = torch.from_numpy(labels)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.train and n >= self.batch_size else -(-n // self.batch_size)

    def epoch(self, g: torch.Generator | None, shard: tuple[int, int] = (0, 1)):
        rank, world = shard
        order = torch.randperm(len(self.dataset), generator=g).tolist() if g is not None else list(range(len(self.dataset)))
        order = order[rank::world]
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=max(1, self.batch_size // world), sampler=order,
                                             num_workers=self.workers, drop_last=self.train and len(self) > 0
                                             and len(self.dataset) >= self.batch_size)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
