"""Multi-GPU training through `torchrun` (DistributedDataParallel): one process per device, every rank
computes on its share of each global batch, rank 0 alone writes files, logs and the MLflow run.
Started without torchrun, everything here is a no-op."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Context:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    def start(self, device: torch.device) -> torch.device:
        """Join the process group; on GPUs each rank takes the device of its local rank."""
        if not self.enabled:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled:
            return model
        # The auxiliary head is not used in eval mode; unused parameters must be allowed.
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Totals over ranks (losses, counts of wrong predictions, images seen)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def stop(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
