"""Parameters and multiply-accumulates, counted the way `published_cells.json` was counted.

MACs are torch.utils.flop_counter's total halved: convolutions and linear layers only (BN and pooling
are free, unlike thop). Parameters exclude the auxiliary head. One image, eval mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from nasflow.catalog.datasets import dataset_info
from nasflow.catalog.genotype import Genotype
from nasflow.space.network import build_network


def measured_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    was_training = module.training
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    module.train(was_training)
    return counter.get_total_flops() // 2


def count_params(module: nn.Module, exclude_prefix: str = "auxiliary") -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not n.startswith(exclude_prefix))


def evaluation_network(genotype: Genotype, channels: int, layers: int, dataset: str = "cifar10",
                       auxiliary: bool = False, style: str | None = None, **extra) -> nn.Module:
    info = dataset_info(dataset)
    return build_network(genotype, style or info.style, c=channels, layers=layers, num_classes=info.num_classes,
                         in_channels=info.channels, image_size=info.image_size, auxiliary=auxiliary, **extra)


def count_exact(genotype: Genotype, channels: int, layers: int, dataset: str = "cifar10", **extra) -> dict:
    """{"params", "macs"} of the evaluation network on one image of `dataset`, as integers."""
    info = dataset_info(dataset)
    net = evaluation_network(genotype, channels, layers, dataset, **extra)
    x = torch.zeros(1, info.channels, info.image_size, info.image_size)
    return {"params": count_params(net), "macs": measured_macs(net, x)}


def rounded(exact: dict) -> dict:
    """The published precision: {"params_M" to 3 decimals, "macs_M" to 1}."""
    return {"params_M": round(exact["params"] / 1e6, 3), "macs_M": round(exact["macs"] / 1e6, 1)}


def count_network(genotype: Genotype, channels: int, layers: int, dataset: str = "cifar10", **extra) -> dict:
    """{"params_M", "macs_M"} of the evaluation network on one image of `dataset`."""
    return rounded(count_exact(genotype, channels, layers, dataset, **extra))


def architecture_entry(genotype: Genotype, channels: int, layers: int, dataset: str) -> dict:
    """An architectures.json entry's sizes: the published precision for tables, and the exact MACs so
    that Pareto points whose rounded MACs coincide can still be ordered."""
    exact = count_exact(genotype, channels, layers, dataset)
    return {**rounded(exact), "macs": exact["macs"]}
