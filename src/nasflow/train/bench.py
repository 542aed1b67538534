"""`nasflow bench train`: training throughput of an evaluation network, for the eager path and each
faster path, measured one after the other in the same process and printed as ratios to eager."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from nasflow.catalog.genotype import load_genotype
from nasflow.space.network import NetworkCIFAR

VARIANTS = {
    "eager fp32": {"channels_last": False, "bf16": False},
    "channels_last": {"channels_last": True, "bf16": False},
    "bf16 autocast": {"channels_last": False, "bf16": True},
    "bf16 + channels_last": {"channels_last": True, "bf16": True},
}


def train_throughput(genotype, channels, layers, batch, steps, warmup, device, channels_last, bf16) -> float:
    torch.manual_seed(0)
    net = NetworkCIFAR(genotype, c=channels, layers=layers, auxiliary=True).to(device)
    net.drop_path_prob = 0.2
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, aux = net(x)
            loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def bench_train(genotype="DARTS_V2", channels=36, layers=20, batch=96, steps=5, warmup=2, device=None,
                variants=None) -> list[dict]:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    g = load_genotype(genotype)
    rows = []
    for name in variants or VARIANTS:
        rate = train_throughput(g, channels, layers, batch, steps, warmup, device, **VARIANTS[name])
        rows.append({"path": name, "images_per_second": rate})
    base = rows[0]["images_per_second"]
    for row in rows:
        row["ratio_to_eager"] = row["images_per_second"] / base
    return rows
