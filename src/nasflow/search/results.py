"""The files of `results/search/<method>/seed<k>/`: history.csv, alphas.npz and a policy's own files,
rewritten after every epoch, and at the end the genotypes, architectures.json and search.json."""
from __future__ import annotations

import numpy as np

from nasflow import io as nio
from nasflow.errors import NasflowError
from nasflow.runtime import device_name
from nasflow.search.policies.base import normalised_entropy
from nasflow.space.counting import architecture_entry

# The engine's own history.csv columns; a method adds its declared ones (nasflow.catalog.methods).
HISTORY_COLUMNS = ["epoch", "phase", "steps", "alive_candidates", "mixed_edges", "sparsity", "entropy", "entropy_normal", "entropy_reduce",
                   "ops_run", "train_loss", "train_error", "val_error", "val_loss", "epoch_seconds",
                   "val_seconds", "lr"]


def architecture_record(net, policy) -> dict:
    """history.csv's columns on the supernet's state after an epoch: what is alive, how mixed the edges
    are, and how sure alpha is (normalised entropy, per cell kind)."""
    alive, total = net.alive_candidates()
    weights = policy.weights(net)
    entropy = {}
    for kind in ("normal", "reduce"):
        values = [normalised_entropy(weights[k].detach(), policy.n_candidates)
                  for k, g in net.groups.items() if g.reduction == (kind == "reduce")]
        entropy[f"entropy_{kind}"] = float(np.mean(values)) if values else float("nan")
    return {"alive_candidates": alive, "mixed_edges": sum(int((g.alive.sum(1) > 1).sum()) for g in net.groups.values()),
            "sparsity": alive / total, "entropy": float(np.nanmean(list(entropy.values()))), **entropy,
            "ops_run": net.ops_run()}


def write_progress_files(out, history: list[dict], columns, net, alphas: dict, policy) -> None:
    """history.csv (the engine's columns, then the method's `columns`), every epoch's alphas and alive
    masks, and the policy's own files."""
    nio.write_csv(out / "history.csv", history, HISTORY_COLUMNS + list(columns))
    with nio.atomic_path(out / "alphas.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ops=np.array([c.label() for c in net.space.candidates]),
                     groups=np.array(list(net.groups)),
                     **{k: v.numpy() for k, v in alphas.items()})
    for name, content in policy.files().items():
        nio.write_json(out / name, content)


def write_results(run, found: list[tuple], stopped: str, epochs: int, seconds: float, files=(),
                  entry_extra: dict | None = None, summary_extra: dict | None = None, at_bound: bool = True) -> dict:
    """A finished search's files: one genotype per architecture found ((epoch, genotype) pairs, the last
    is the search's final cell, also genotype.json), architectures.json with their sizes, search.json;
    logged to the run's MLflow run with `files`. `run` holds method, seed, s, out, device, tracker."""
    s, out = run.s, run.out
    if not found and at_bound:
        raise NasflowError(f"{out}: the {run.method} search stopped at epoch {epochs} ({stopped}) without "
                           f"recording an architecture; its checkpoint is kept: raise search.{run.method}.epochs "
                           "and rerun with --resume")
    if not found:  # it met its own stopping rule: more epochs would not help
        raise NasflowError(f"{out}: the {run.method} search stopped at epoch {epochs} ({stopped}) without "
                           f"recording an architecture; change the settings that decide when it records "
                           f"(search.{run.method}.patience, n0, flops_min) and start it over")
    entries = []
    for i, (epoch, genotype) in enumerate(found):
        genotype.name = f"{run.method}-s{run.seed}-{i}"
        name = "genotype.json" if len(found) == 1 else f"genotype-{i}.json"
        nio.write_json(out / name, genotype.to_json())
        # A per-position genotype fixes the depth: it is evaluated at the depth it was searched at.
        layers = s["layers"] if genotype.layout == "per-position" else s["eval_layers"]
        sizes = architecture_entry(genotype, s["eval_channels"], layers, s["dataset"])
        entries.append({"id": genotype.name, "genotype": name, **sizes, "epoch": epoch, **(entry_extra or {})})
    counts = {k: entries[-1][k] for k in ("params_M", "macs_M")}
    if len(found) > 1:  # genotype.json is always the final cell
        nio.write_json(out / "genotype.json", genotype.to_json())
    nio.write_json(out / "architectures.json", entries)
    summary = {"seconds": round(seconds, 3), "device": device_name(run.device), "epochs": epochs,
               "method": run.method, "seed": run.seed, "stopped": stopped,
               "gpu_days": round(seconds / 86400, 6) if run.device.type == "cuda" else None, **(summary_extra or {})}
    nio.write_json(out / "search.json", summary)
    run.tracker.log_metrics({"search_seconds": seconds, **{f"final_{k}": v for k, v in counts.items()}})
    for name in ("genotype.json", "architectures.json", "search.json", "settings.json", *files):
        run.tracker.log_artifact(out / name)
    run.tracker.set_tags({"arch_id": genotype.name})
    return {"genotype": genotype, **summary, **counts}
