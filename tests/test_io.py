"""Atomic writes: a failed write leaves the previous file, outputs follow the user's umask."""
import errno
import os
import stat

import pytest

from nasflow import io as nio
from nasflow.errors import NasflowError


def test_a_write_that_fails_for_lack_of_space_keeps_the_previous_file(tmp_path):
    target = tmp_path / "history.csv"
    nio.write_text(target, "epoch\n1\n")
    with pytest.raises(NasflowError, match=r"history\.csv: could not be written \(No space left on device\)"):
        with nio.atomic_path(target) as tmp:
            tmp.write_text("epoch\n1\n2")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == "epoch\n1\n" and not list(tmp_path.glob(".*.tmp"))


def test_other_errors_in_a_write_are_not_disguised(tmp_path):
    with pytest.raises(ValueError):
        with nio.atomic_path(tmp_path / "x.json"):
            raise ValueError("a bug, not a full disk")


def test_outputs_are_readable_by_others_as_the_umask_allows(tmp_path):
    nio.write_json(tmp_path / "a.json", {"a": 1})
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == 0o666 & ~nio._umask()
    assert mode & stat.S_IRGRP or nio._umask() & 0o040  # group-readable unless the umask says otherwise


def test_a_write_refused_for_other_reasons_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(PermissionError):
        with nio.atomic_path(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
