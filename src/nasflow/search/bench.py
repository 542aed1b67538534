"""`nasflow bench search`: EnTranNAS Table 3's ladder, measured in one run at one batch size.

Rungs, each adding to the one before: the DARTS super-net (every cell holds the whole DAG, first order);
+ Engine/Transit cells (only the first normal and reduction cell hold the DAG, the rest run the cell
derived at that step); + feature sharing (eq. 6); + the 1x1 bottleneck (ratio 4). Every rung times the
same first-order bi-level step as the search engine: an architecture step on one batch, then a weight
step (forward, backward, clipping, SGD) on another, on random CIFAR-sized images.

Memory. Each rung runs in a fresh child process, so no rung inherits another's allocator caches. On
CUDA the figure is torch.cuda.max_memory_allocated over build and steps (parameters, optimizer states,
activations). On CPU torch allocates through malloc, which no Python-level tracer sees, so the figure
is the process's peak resident set (getrusage ru_maxrss) minus its resident set just before the
super-net is built: the same things plus allocator slack, which is why CPU ratios are only indicative.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

RUNGS = {  # name -> (method, feature_sharing, bottleneck)
    "DARTS (1st order)": ("darts", False, 1),
    "+ Engine & Transit cells": ("entranas", False, 1),
    "+ feature sharing": ("entranas", True, 1),
    "+ bottleneck": ("entranas", True, 4),
}
SEARCH_SETTINGS = {"order": "first", "a_lr": 6e-4, "a_betas": [0.5, 0.999], "a_weight_decay": 1e-3,
                   "temperature0": 5.0, "temperature_decay": 0.923, "engine_cells": "first", "cell_output": "concat"}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_rung(rung: str, channels: int, layers: int, batch: int, steps: int, warmup: int, device: str) -> dict:
    """One rung's seconds per search step and peak memory (MB), in this process."""
    from nasflow.search.policies.darts import Darts
    from nasflow.search.steps import StepContext, bilevel_step
    from nasflow.search.policies.entranas import EnTranNAS
    from nasflow.search.supernet import SpaceConfig, Supernet
    from nasflow.catalog.ops import DARTS_OPS

    method, sharing, bottleneck = RUNGS[rung]
    dev = torch.device(device)
    baseline_mb = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)
    net = Supernet(SpaceConfig(ops=list(DARTS_OPS), channels=channels, layers=layers, feature_sharing=sharing,
                               bottleneck=bottleneck)).to(dev)
    policy = (Darts if method == "darts" else EnTranNAS)(SEARCH_SETTINGS, net)
    policy.begin_epoch(1)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.2, momentum=0.9, weight_decay=3e-4)
    a_opt = policy.make_arch_optimizer(policy.arch_parameters(net))
    x, y = torch.randn(batch, 3, 32, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)
    xv, yv = torch.randn(batch, 3, 32, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)

    ctx = StepContext(net, w_opt, a_opt, grad_clip=5.0, arch_batch=lambda: (xv, yv))

    def step():  # the step a bi-level search runs
        bilevel_step(policy, ctx, x, y)

    net.train()
    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = (time.perf_counter() - started) / steps
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    else:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_mb
    return {"rung": rung, "step_seconds": seconds, "peak_MB": peak, "ops_run": _ops_run(net, policy)}


def _ops_run(net, policy) -> int:
    """Candidate-op modules one forward runs, counted by hooks (the Transit-cells' saving, made visible)."""
    count = [0]
    handles = [m.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
               for cell in net.cells for cs in (cell.sources if cell.sharing else cell.edges) for m in cs.ops.values()]
    with torch.no_grad():
        policy.forward(net, torch.zeros(2, 3, 32, 32, device=next(net.parameters()).device), policy.weights(net))
    for h in handles:
        h.remove()
    return count[0]


def bench_search(channels=16, layers=8, batch=64, steps=3, warmup=1, device=None, threads=0) -> list[dict]:
    """Every rung in its own child process, then ratios to the DARTS rung."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for rung in RUNGS:
        cfg = {"rung": rung, "channels": channels, "layers": layers, "batch": batch, "steps": steps,
               "warmup": warmup, "device": device, "threads": threads}
        done = subprocess.run([sys.executable, "-m", "nasflow.search.bench", json.dumps(cfg)],
                              capture_output=True, text=True)
        if done.returncode:
            from nasflow.errors import NasflowError
            raise NasflowError(f"bench rung {rung!r} failed: {done.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for row in rows:
        row["time_ratio"] = row["step_seconds"] / base["step_seconds"]
        row["memory_ratio"] = row["peak_MB"] / base["peak_MB"]
    return rows


if __name__ == "__main__":  # one rung, in the child process bench_search starts
    config = json.loads(sys.argv[1])
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    config.pop("threads", None)
    print(json.dumps(measure_rung(**config)))
