"""Where a job runs: device choice, its name for the records, threads, and loading checkpoints."""
from __future__ import annotations

import pickle
import platform
from pathlib import Path

import torch

from nasflow.errors import NasflowError


def resolve_device(params) -> torch.device:
    wanted = params.get("runtime", {}).get("device", "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise NasflowError(f"runtime.device is {wanted} but no CUDA device is visible here")
    return torch.device(wanted)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def set_threads(params) -> None:
    threads = params.get("runtime", {}).get("threads", 0)
    if threads:
        torch.set_num_threads(threads)


def _read_checkpoint(path: Path, device) -> dict:
    """torch.load restricted to tensors and plain data (weights_only): a checkpoint is a pickle, and one
    that travelled (a DVC remote, a shared filesystem, a colleague's results/) must not run code when a
    run resumes. Refused with one line naming what the file would have needed to import."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        try:
            needs = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # not even a readable archive: fall through to "corrupt"
            needs = None
        if needs:
            raise NasflowError(f"{path}: refused: loading it would run code ({needs}); it was left as is: "
                               "delete it to start over if you did not expect this file") from None
        raise NasflowError(f"{path}: corrupt checkpoint (UnpicklingError); it was left as is: delete it "
                           "to start over") from None
    except Exception as exc:  # torch raises several types for a damaged file
        raise NasflowError(f"{path}: corrupt checkpoint ({type(exc).__name__}); it was left as is: delete it "
                           "to start over") from None


def load_checkpoint(path: Path, device, version: int, fingerprint: str) -> dict:
    """A checkpoint that is damaged, could run code, or was made with other settings is refused, never
    replaced."""
    ckpt = _read_checkpoint(path, device)
    if not isinstance(ckpt, dict) or ckpt.get("version") != version:
        raise NasflowError(f"{path}: not a nasflow checkpoint of this kind")
    _same_settings(path, ckpt, fingerprint)
    return ckpt


def _same_settings(path: Path, ckpt, fingerprint: str) -> None:
    if not isinstance(ckpt, dict) or ckpt.get("fingerprint") != fingerprint:
        raise NasflowError(f"{path}: made by a run with other settings; refusing to mix them: use another "
                           "--out or delete the checkpoint")


def clear_stale_temporaries(out: Path) -> None:
    """Temporary files left by a run killed in the middle of a write (see nasflow.io)."""
    for stale in out.glob(".*.tmp"):
        stale.unlink()


def set_aside_stale(path: Path, fingerprint: str) -> Path | None:
    """Move a checkpoint made with other settings out of the way (kept, renamed) so a pipeline whose
    settings changed starts that job over; returns where it went. A damaged file is left for
    `load_checkpoint` to refuse."""
    if not path.exists():
        return None
    try:
        old = _read_checkpoint(path, "cpu").get("fingerprint")
    except (NasflowError, AttributeError):  # damaged or unsafe: not ours to move
        return None
    if old == fingerprint:
        return None
    target = path.with_name(f"{path.stem}.stale-{old}{path.suffix}")
    path.rename(target)
    print(f"nasflow: {path} was made with other settings; kept as {target.name}, starting over")
    return target


def prepare_run_dir(out: Path, checkpoint: Path, inputs: dict, resume: bool, replace_stale: bool,
                    params, what: str) -> None:
    """Before a search or training starts: refuse to overwrite an earlier run's checkpoint unless asked
    to resume it, set aside one made with other settings when the pipeline says so, clean up the
    temporaries of a killed write, take the job's thread count, and write what the job reads
    (`nasflow.jobs`, resolved, with its fingerprint) to settings.json."""
    from nasflow import io as nio
    from nasflow.jobs import fingerprint as fingerprint_of
    from nasflow.locks import hold_run_dir

    fingerprint = fingerprint_of(inputs)
    out.mkdir(parents=True, exist_ok=True)
    hold_run_dir(out, what)
    if resume and replace_stale:
        set_aside_stale(checkpoint, fingerprint)
    if checkpoint.exists() and not resume:
        raise NasflowError(f"{out} holds a checkpoint of an earlier {what}: pass --resume to continue it, or "
                           "choose another --out (nothing is overwritten silently)")
    if checkpoint.exists():  # refused here, before settings.json describes a run that will not happen
        _same_settings(checkpoint, _read_checkpoint(checkpoint, "cpu"), fingerprint)
    set_threads(params)
    clear_stale_temporaries(out)
    nio.write_json(out / "settings.json", {**inputs, "fingerprint": fingerprint})
