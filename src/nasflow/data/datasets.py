"""Getting a dataset ready: the prepared file under `data.root`, else an import from the first of
`data.archive_dirs` that holds it in a canonical format, else (when `data.download` allows) the
official download, as the dataset's declaration (nasflow.catalog.datasets) names them. Never stand-in
data under a real dataset's name."""
from __future__ import annotations

import sys
from pathlib import Path

from nasflow.catalog.datasets import dataset_info, function
from nasflow.data.archives import ImageArrays, find_file, read_archive, write_prepared
from nasflow.errors import NasflowError


def _download(name: str, raw_dir: Path, params) -> ImageArrays:
    info = dataset_info(name)
    if info.download is None:
        raise NasflowError(f"{name}: no automatic download; {info.how_to_get}")
    try:
        arrays = function(info.download)(raw_dir, params)
    except NasflowError:
        raise
    except Exception as exc:  # network errors come in many types; the user needs the one line
        raise NasflowError(f"{name}: download failed ({exc}); {info.how_to_get}") from None
    if arrays is None:
        raise NasflowError(f"{name}: the downloaded archive does not hold the expected files")
    return arrays


def prepared_path(params, name: str) -> Path:
    return params.path(params["data"]["root"]) / f"{name}.npz"


def _import(params, name: str, dirs: list[Path]) -> ImageArrays | None:
    info = dataset_info(name)
    for filename in info.archives:
        found = find_file(filename, dirs)
        if found is not None:
            return read_archive(found)
    reader = function(info.reader) if info.reader else None
    for d in dirs if reader else []:
        arrays = reader(d, params)
        if arrays is not None:
            return arrays
    return None


def prepare(params, name: str, download: bool | None = None) -> Path:
    """Make `data/<name>.npz` exist and return its path; one-line error when it cannot."""
    info = dataset_info(name)
    if info.streamed:
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
