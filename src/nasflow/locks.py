"""Locks that the operating system drops when their process dies.

Snakemake's own lock is a set of files under `.snakemake/locks/`: a pipeline killed with SIGKILL (an
out-of-memory kill, a cluster's time limit) leaves them behind, and the next run refuses to start until
someone runs `snakemake --unlock`, which is also what a user must never do while another pipeline is
really running. A `flock` on a file answers the question Snakemake cannot: is the holder alive? The
pipeline holds one for the life of the Snakemake process, so a stale Snakemake lock is recognised and
removed without a manual step, and a second pipeline in the same directory is refused by name.

Each search or training holds one on its run directory as well, so that two processes never write the
same results (a job orphaned by a killed Snakemake and its rerun, two users on one directory).
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from nasflow.errors import NasflowError

# Held for the life of the process: a lock is released when its file descriptor closes.
_HELD: dict[str, int] = {}

# Snakemake invocations that execute no job and so may run beside a pipeline (they only read).
_READ_ONLY_FLAGS = {
    "-n", "--dry-run", "--dryrun", "--list", "-l", "--list-target-rules", "--lt", "--dag", "--rulegraph",
    "--filegraph", "--d3dag", "--summary", "-S", "--detailed-summary", "-D", "--list-changes",
    "--list-input-changes", "--li", "--list-params-changes", "--lp", "--list-code-changes", "--lc",
    "--report", "--list-untracked", "--lu", "--print-compilation", "--containerize", "--unlock",
}


def executes_jobs(argv: list[str]) -> bool:
    """Whether a Snakemake command line runs jobs (a dry run, a listing or a report does not)."""
    for arg in argv:
        if arg.split("=", 1)[0] in _READ_ONLY_FLAGS:
            return False
        # combined short flags such as -np or -pn
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg[1:] \
                and set(arg[1:]) <= set("npqrkFfSDlt"):
            return False
    return True


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "unknown process"


def try_hold(path: Path, label: str) -> bool:
    """Take the lock at `path` for this process; False when a live process holds it."""
    key = str(path.resolve())
    if key in _HELD:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec: children never inherit it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{label} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    _HELD[key] = fd
    return True


def release(path: Path) -> None:
    fd = _HELD.pop(str(path.resolve()), None)
    if fd is not None:
        os.close(fd)


def hold_pipeline(workdir: Path, argv: list[str]) -> None:
    """Called while the Snakefile is read. With no live pipeline in `workdir`, Snakemake locks left by
    a killed one are removed; a run that executes jobs then keeps the lock until it exits. With a live
    one, a run that executes jobs is refused; read-only invocations go ahead."""
    path = workdir / ".snakemake" / "nasflow-pipeline.lock"
    executes = executes_jobs(argv)
    if try_hold(path, "nasflow pipeline"):
        for stale in (workdir / ".snakemake" / "locks").glob("*.lock"):
            stale.unlink()
        if not executes:
            release(path)
        return
    if executes:
        raise NasflowError(f"another pipeline is running in {workdir} ({_holder(path)}); wait for it to finish "
                           "or stop it: its lock goes away with its process")


def hold_run_dir(out: Path, what: str) -> None:
    """One process at a time writes a search's or training's directory."""
    path = out / ".lock"
    if not try_hold(path, f"nasflow {what}"):
        raise NasflowError(f"{out} is being written by another {what} ({_holder(path)}); not starting a second "
                           "one on the same results")
