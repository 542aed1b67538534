"""Reading image datasets from `.npz` archives (decoded or JPEG-encoded, see the shared datasets
README) and writing the one prepared format under `data/`: a decoded `.npz` with x/y train/test."""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasflow import io as nio
from nasflow.errors import NasflowError


@dataclass
class ImageArrays:
    """uint8 images (N, H, W, C) and int64 labels, train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def find_file(filename: str, dirs) -> Path | None:
    for d in dirs:
        candidate = Path(d) / filename
        if candidate.is_file():
            return candidate
    return None


def _decode(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    images = [np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
              for i in range(len(offsets) - 1)]
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)


def read_archive(path: Path) -> ImageArrays:
    """Either layout of the shared archives; a truncated or corrupt file is one clear error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if {"x_train", "y_train"} <= keys:
                x_tr, x_te = z["x_train"], z["x_test"] if "x_test" in keys else None
            elif {"train_bytes", "train_offsets"} <= keys:
                x_tr = _decode(z["train_bytes"], z["train_offsets"])
                x_te = _decode(z["test_bytes"], z["test_offsets"]) if "test_bytes" in keys else None
            else:
                raise NasflowError(f"{path}: not a dataset archive (no x_train or train_bytes)")
            y_tr = z["y_train"].astype(np.int64)
            y_te = z["y_test"].astype(np.int64) if "y_test" in keys else np.zeros(0, np.int64)
            classes = [str(c) for c in z["classes"]] if "classes" in keys else []
            source = str(z["source"]) if "source" in keys else str(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise NasflowError(f"{path}: the archive is truncated or corrupt ({type(exc).__name__}: {exc}); "
                           "fetch it again") from None
    if x_te is None:
        x_te = np.zeros((0, *x_tr.shape[1:]), np.uint8)
    if x_tr.ndim == 3:  # grey images stored without a channel axis
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise NasflowError(f"{path}: image and label counts differ; the archive is corrupt")
    if not classes:
        classes = [str(i) for i in range(int(y_tr.max()) + 1)]
    return ImageArrays(x_tr, y_tr, x_te, y_te, classes, source)


def write_prepared(path: Path, arrays: ImageArrays) -> None:
    with nio.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=arrays.x_train, y_train=arrays.y_train, x_test=arrays.x_test,
                     y_test=arrays.y_test, classes=np.array(arrays.classes), source=np.array(arrays.source))
