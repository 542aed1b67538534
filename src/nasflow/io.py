"""Atomic writes: every output is written under a temporary name in its directory, then renamed, so a
killed run never leaves a half-written file that a later stage would trust."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from nasflow.errors import NasflowError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# mkstemp creates files readable by their owner only; outputs are for colleagues on a shared filesystem too.
_FILE_MODE = 0o666 & ~_umask()


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # no space, quota, file-size limit


def _disk_error(exc: BaseException) -> OSError | None:
    """The no-room OSError behind a failed write (torch wraps it in a RuntimeError), if that is what it was."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes. A write that
    fails for lack of space or quota leaves the previous `path` as it was and stops with one line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    try:
        try:
            yield Path(tmp)
        except Exception as exc:
            cause = _disk_error(exc)
            if cause is None:
                raise
            reason = os.strerror(cause.errno)
            raise NasflowError(f"{path}: could not be written ({reason}); the previous version, if any, is "
                               "intact: free space and rerun with --resume") from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def inside(folder: str | Path, name: str, source: str | Path) -> Path:
    """`folder / name` for a file name read from a result file (`source`), refused unless it stays inside
    `folder`: results travel, and a crafted name must not make nasflow read or write elsewhere."""
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or name.startswith("/") or "\\" in name or ".." in parts or ":" in name:
        raise NasflowError(f"{source}: refused the file name {name!r}: it must name a file inside {folder}")
    return Path(folder).joinpath(*parts)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1) + "\n")


def write_csv(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_torch(path: str | Path, obj) -> None:
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: a failed write keeps its OSError
        torch.save(obj, fh)
