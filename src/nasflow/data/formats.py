"""Readers for the datasets' canonical on-disk formats, as their official archives (and torchvision)
lay them out: CIFAR's pickled batches (folder or .tar.gz), SVHN's .mat files, the MNIST idx files, and
class-folder trees (CINIC-10). Each returns ImageArrays or None when the files are not there; damaged
files are one clear NasflowError."""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from nasflow.data.archives import ImageArrays
from nasflow.errors import NasflowError

# The official archives' checksums (as published with them, and as torchvision checks them).
CIFAR_ARCHIVES = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", "eb9058c3a382ffc7106e4002c42a8d85"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                       "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    got = md5(path)
    if got != expected:
        raise NasflowError(f"{path}: fails its checksum (md5 {got}, the official archive's is {expected}); "
                           "the file is truncated or not the official one: fetch it again")


# ---- CIFAR ---------------------------------------------------------------------------------------------

# What the official CIFAR batches (pickled by Python 2 and numpy 1) and their re-pickled copies (numpy 2)
# reference: numpy arrays, dtypes and scalars, and the codec Python 3 uses for bytes in protocol 2.
# Anything else in a batch is not data, and unpickling it could run code.
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _CIFAR_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


class _Refused(Exception):
    pass


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        return _DataOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except _Refused as exc:
        raise NasflowError(f"{where}: refused: the batch references {exc}, which is not CIFAR data and could "
                           "run code; nothing was loaded") from None
    except Exception as exc:  # pickle raises many types on damaged input
        raise NasflowError(f"{where}: damaged CIFAR batch ({type(exc).__name__})") from None


def _cifar_batches(read, name: str, where: str) -> ImageArrays:
    """`read(member)` returns the bytes of one file of the extracted folder."""
    if name == "cifar10":
        train_files, test_files, meta_file = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"
        label_key, names_key = b"labels", b"label_names"
    else:
        train_files, test_files, meta_file = ["train"], ["test"], "meta"
        label_key, names_key = b"fine_labels", b"fine_label_names"

    def load(files):
        xs, ys = [], []
        for f in files:
            d = _unpickle(read(f), f"{where}/{f}")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = load(train_files)
    x_te, y_te = load(test_files)
    classes = [c.decode() for c in _unpickle(read(meta_file), f"{where}/{meta_file}")[names_key]]
    return ImageArrays(x_tr, y_tr, x_te, y_te, classes, where)


def read_cifar(directory: Path, name: str) -> ImageArrays | None:
    """The extracted folder (`cifar-100-python/`) or the official .tar.gz, checksum verified."""
    tarball, folder, checksum = CIFAR_ARCHIVES[name]
    if (directory / folder).is_dir():
        base = directory / folder
        return _cifar_batches(lambda f: (base / f).read_bytes(), name, str(base))
    if (directory / tarball).is_file():
        path = directory / tarball
        verify_md5(path, checksum)
        with tarfile.open(path, "r:gz") as tar:
            # errors name the member: <archive>.tar.gz:cifar-100-python/train
            return _cifar_batches(lambda f: tar.extractfile(f"{folder}/{f}").read(), name, f"{path}:{folder}")
    return None


# ---- SVHN ----------------------------------------------------------------------------------------------

def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types on damaged files
        raise NasflowError(f"{path}: damaged .mat file ({type(exc).__name__}: {exc})") from None
    x = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 0, 1, 2))  # (32,32,3,N) -> NHWC
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10  # the digit 0 is stored as label 10
    return x, y


def read_svhn(directory: Path, with_extra: bool = True) -> ImageArrays | None:
    """train (+ extra: ASAP trains on their 604,388 images) and test."""
    for base in (directory, directory / "svhn"):
        if (base / SVHN_FILES["train"]).is_file() and (base / SVHN_FILES["test"]).is_file():
            break
    else:
        return None
    x_tr, y_tr = _read_mat(base / SVHN_FILES["train"])
    if with_extra:
        if not (base / SVHN_FILES["extra"]).is_file():
            raise NasflowError(f"{base}: {SVHN_FILES['extra']} is missing (set data.svhn_extra=false to train "
                               "on the 73,257 train images only)")
        x_ex, y_ex = _read_mat(base / SVHN_FILES["extra"])
        x_tr, y_tr = np.concatenate([x_tr, x_ex]), np.concatenate([y_tr, y_ex])
    x_te, y_te = _read_mat(base / SVHN_FILES["test"])
    return ImageArrays(x_tr, y_tr, x_te, y_te, [str(i) for i in range(10)], f"SVHN .mat files in {base}")


# ---- MNIST idx (Fashion-MNIST) ----------------------------------------------------------------------------

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


def read_fashion_mnist(directory: Path) -> ImageArrays | None:
    paths = {k: directory / f for k, f in FASHION_MNIST_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        return None
    a = {k: read_idx(p) for k, p in paths.items()}
    return ImageArrays(a["x_train"][..., None], a["y_train"].astype(np.int64), a["x_test"][..., None],
                       a["y_test"].astype(np.int64), FASHION_MNIST_CLASSES, f"idx files in {directory}")


# ---- class folders (CINIC-10) -----------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def _read_split(folder: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()) if (folder / cls).is_dir() else []:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    img = Image.open(f).convert("RGB")
                except OSError as exc:
                    raise NasflowError(f"{f}: unreadable image ({exc})") from None
                if img.size != (size, size):
                    img = img.resize((size, size), Image.BILINEAR)
                xs.append(np.asarray(img))
                ys.append(label)
    if not xs:
        raise NasflowError(f"{folder}: no images in its class folders")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def read_class_folders(root: Path, train: tuple[str, ...], test: str, size: int) -> ImageArrays | None:
    """`root/<split>/<class>/<image>`; several train splits are concatenated (CINIC-10: train + valid)."""
    if not all((root / s).is_dir() for s in (*train, test)):
        return None
    classes = sorted(d.name for d in (root / test).iterdir() if d.is_dir())
    parts = [_read_split(root / s, classes, size) for s in train]
    x_te, y_te = _read_split(root / test, classes, size)
    return ImageArrays(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_te, y_te,
                       classes, f"class folders in {root}")



# ---- Freiburg Groceries ----------------------------------------------------------------------------------

FREIBURG_URL = "http://aisdatasets.informatik.uni-freiburg.de/freiburg_groceries_dataset/freiburg_groceries_dataset.tar.gz"
FREIBURG_SPLITS_URL = "https://raw.githubusercontent.com/PhilJd/freiburg_groceries_dataset/master/splits/{}0.txt"


def _read_split_file(path: Path) -> list[tuple[str, int]]:
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rel, label = line.split()
                entries.append((rel, int(label)))
            except ValueError:
                raise NasflowError(f"{path}:{n}: expected 'CLASS/FILE.png LABEL', got {line!r}") from None
    return entries


def read_freiburg(directory: Path, size: int = 64) -> ImageArrays | None:
    """The official images (`images/<CLASS>/<file>.png`) with the official split 0 (`splits/train0.txt`,
    `splits/test0.txt`: 'CLASS/FILE.png LABEL' per line), resized to size x size as ASAP does."""
    from PIL import Image

    for base in (directory / "freiburg_groceries_dataset", directory / "freiburg", directory):
        if (base / "images").is_dir() and (base / "splits" / "train0.txt").is_file():
            break
    else:
        return None
    names: dict[int, str] = {}

    def load(split):
        xs, ys = [], []
        for rel, label in _read_split_file(base / "splits" / f"{split}0.txt"):
            try:
                img = Image.open(base / "images" / rel).convert("RGB").resize((size, size), Image.BILINEAR)
            except OSError as exc:
                raise NasflowError(f"{base / 'images' / rel}: unreadable image ({exc})") from None
            xs.append(np.asarray(img))
            ys.append(label)
            names.setdefault(label, rel.split("/")[0])
        return np.stack(xs), np.asarray(ys, dtype=np.int64)

    x_tr, y_tr = load("train")
    x_te, y_te = load("test")
    classes = [names.get(i, str(i)) for i in range(max(names) + 1)]
    return ImageArrays(x_tr, y_tr, x_te, y_te, classes, f"Freiburg Groceries images and split 0 in {base}")
