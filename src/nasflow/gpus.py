"""One GPU per job on a multi-GPU workstation.

The Snakefile finds the GPUs (`visible_gpus`), caps Snakemake's `gpu` resource at their number (unless
the command line gives `--resources gpu=N`) so no more GPU jobs run than there are GPUs, and tells the
jobs which GPUs there are. Each search or training then takes a free one (`assign`): a lock per GPU
that the operating system drops when the job's process ends, so a killed job frees its GPU, and
CUDA_VISIBLE_DEVICES narrowed to it before CUDA starts. Torch-free: the Snakefile imports it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nasflow.errors import NasflowError
from nasflow.locks import try_hold

GPUS_VAR, SLOTS_VAR = "NASFLOW_GPUS", "NASFLOW_GPU_SLOTS"


def visible_gpus(environ=os.environ) -> list[str]:
    """The GPUs jobs may use: CUDA_VISIBLE_DEVICES when it is set (a user's or a scheduler's choice),
    else every GPU nvidia-smi lists; none on a machine without NVIDIA's driver."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []


def pipeline_environment(gpus: list[str], slot_dir: Path) -> dict[str, str]:
    """What the Snakefile exports to its jobs (nothing with fewer than two GPUs: nothing to share)."""
    return {GPUS_VAR: ",".join(gpus), SLOTS_VAR: str(slot_dir.resolve())} if len(gpus) > 1 else {}


def assign(environ=os.environ, log=sys.stderr) -> str | None:
    """In a job of a pipeline with several GPUs: take a free GPU for this process and narrow
    CUDA_VISIBLE_DEVICES to it. None outside such a pipeline (the job sees what it was given)."""
    gpus = [g for g in environ.get(GPUS_VAR, "").split(",") if g]
    if len(gpus) < 2 or not environ.get(SLOTS_VAR):
        return None
    for gpu in gpus:
        if try_hold(Path(environ[SLOTS_VAR]) / f"gpu-{gpu}.lock", "nasflow job"):
            environ["CUDA_VISIBLE_DEVICES"] = gpu
            print(f"nasflow: GPU {gpu} of {','.join(gpus)} (CUDA_VISIBLE_DEVICES={gpu})", file=log, flush=True)
            return gpu
    raise NasflowError(f"every GPU of this pipeline ({','.join(gpus)}) is held by another job: run Snakemake with "
                       f"--resources gpu=N for N at most {len(gpus)}")
