"""Evaluation networks built from a genotype: CIFAR-style and ImageNet-style.

They follow the reference DARTS evaluation network layer for layer (so parameter and MAC counts match
the published figures): every node is computed even when it is not concatenated, reductions sit at
1/3 and 2/3 of the depth and double the width, the auxiliary head reads the cell at 2/3.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nasflow.errors import NasflowError
from nasflow.catalog.genotype import CellSpec, Genotype
from nasflow.space.ops import FactorizedReduce, ReLUConvBN, build_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation at a cell's end (ASAP's ImageNet network)."""

    def __init__(self, c, ratio):
        super().__init__()
        hidden = max(1, c // ratio)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=False),
                                nn.Conv2d(hidden, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x)


class Cell(nn.Module):
    def __init__(self, spec: CellSpec, c_prev_prev, c_prev, c, reduction_prev, cell_output="concat", se_ratio=0):
        super().__init__()
        self.spec = spec
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, c)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.ops = nn.ModuleList(
            build_op(e.op, c, 2 if spec.reduction and e.input < 2 else 1)
            for _, e in spec.edges())
        self.inputs = [e.input for _, e in spec.edges()]
        self.node_of_edge = [k for k, _ in spec.edges()]
        self.identity = [e.op.is_identity and not (spec.reduction and e.input < 2) for _, e in spec.edges()]
        self.cell_output = cell_output
        n_concat = len(spec.concat)
        self.fuse = ReLUConvBN(n_concat * c, c, 1, 1, 0) if cell_output == "conv1x1" else None
        self.c_out = n_concat * c if cell_output == "concat" else c
        self.se = SqueezeExcite(self.c_out, se_ratio) if se_ratio else None

    def forward(self, s0, s1, drop_prob=0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        sums = [None] * len(self.spec.nodes)
        edge = 0
        for k, node in enumerate(self.spec.nodes):
            for _ in node:
                h = self.ops[edge](states[self.inputs[edge]])
                if self.training and drop_prob > 0.0 and not self.identity[edge]:
                    h = drop_path(h, drop_prob)
                sums[k] = h if sums[k] is None else sums[k] + h
                edge += 1
            states.append(sums[k])
        chosen = [states[i] for i in self.spec.concat]
        if self.cell_output == "mean":
            out = torch.stack(chosen).mean(0)
        else:
            out = torch.cat(chosen, dim=1)
            if self.fuse is not None:
                out = self.fuse(out)
        return self.se(out) if self.se is not None else out


class AuxiliaryHead(nn.Module):
    """The reference auxiliary head. Its fixed pooling (5, stride 3 for CIFAR's 8x8 map; 5, stride 2 for
    ImageNet's 7x7) only yields the 2x2 map its last conv expects at those sizes; elsewhere (28x28 Fashion-
    MNIST, 64x64 Freiburg) an adaptive pooling to 2x2 takes its place."""

    def __init__(self, c, num_classes, map_size, stride, bn_last=True):
        super().__init__()
        fits = (map_size - 5) // stride + 1 == 2 if map_size >= 5 else False
        pool = (nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False) if fits
                else nn.AdaptiveAvgPool2d(2))
        layers = [nn.ReLU(inplace=True), pool, nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128),
                  nn.ReLU(inplace=True), nn.Conv2d(128, 768, 2, bias=False)]
        if bn_last:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def reduction_layers(layers: int) -> tuple[int, int]:
    return layers // 3, 2 * layers // 3


class _Network(nn.Module):
    """Shared body: the cell stack, the auxiliary tap at 2/3, pooling and classifier."""

    def _build_cells(self, genotype: Genotype, c, layers, c_pp, c_p, reduction_prev, se_ratio, size):
        if genotype.layout == "per-position" and len(genotype.cells) != layers:
            raise NasflowError(f"the per-position genotype has {len(genotype.cells)} cells but the network "
                               f"has {layers} layers")
        self.cells = nn.ModuleList()
        self.aux_layer = reduction_layers(layers)[1]
        c_curr = c
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
                size = (size + 1) // 2
            spec = genotype.cell_at(i, reduction)
            if spec.reduction != reduction:
                raise NasflowError(f"genotype cell {i} has reduction={spec.reduction} but layer {i} of a "
                                   f"{layers}-layer network is {'a reduction' if reduction else 'normal'}")
            cell = Cell(spec, c_pp, c_p, c_curr, reduction_prev, genotype.cell_output, se_ratio)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.c_out
            if i == self.aux_layer:
                aux_channels, aux_size = c_p, size
        self.classifier_channels = c_p
        return aux_channels, aux_size

    def _run_cells(self, s0, s1):
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_layer and self.auxiliary is not None and self.training:
                logits_aux = self.auxiliary(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, logits_aux


class NetworkCIFAR(_Network):
    def __init__(self, genotype: Genotype, c=36, num_classes=10, layers=20, auxiliary=False,
                 in_channels=3, image_size=32, se_ratio=0):
        super().__init__()
        self.drop_path_prob = 0.0
        c_stem = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        aux_c, aux_size = self._build_cells(genotype, c, layers, c_stem, c_stem, False, se_ratio, image_size)
        self.auxiliary = AuxiliaryHead(aux_c, num_classes, aux_size, stride=3) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.classifier_channels, num_classes)

    def forward(self, x):
        s = self.stem(x)
        return self._run_cells(s, s)


class NetworkImageNet(_Network):
    """Stem down to 28x28 (DARTS: three stride-2 convs) or 56x56 (ASAP: two), then the cells."""

    def __init__(self, genotype: Genotype, c=48, num_classes=1000, layers=14, auxiliary=False,
                 in_channels=3, image_size=224, stem_reductions=3, se_ratio=0):
        super().__init__()
        if c % 2:
            raise NasflowError(f"ImageNet-style networks need an even channel count (stem uses C/2), got {c}")
        if stem_reductions not in (2, 3):
            raise NasflowError(f"stem_reductions must be 2 (56x56 for 224 input) or 3 (28x28), got {stem_reductions}")
        self.drop_path_prob = 0.0
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
        stride1 = 2 if stem_reductions == 3 else 1
        self.stem1 = nn.Sequential(nn.ReLU(inplace=True),
                                   nn.Conv2d(c, c, 3, stride=stride1, padding=1, bias=False), nn.BatchNorm2d(c))
        size = image_size
        for _ in range(stem_reductions):
            size = (size + 1) // 2
        aux_c, aux_size = self._build_cells(genotype, c, layers, c, c, stem_reductions == 3, se_ratio, size)
        # The reference ImageNet head omits its last BatchNorm (a typo kept for the published numbers).
        self.auxiliary = (AuxiliaryHead(aux_c, num_classes, aux_size, stride=2, bn_last=False)
                          if auxiliary else None)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.classifier_channels, num_classes)

    def forward(self, x):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        return self._run_cells(s0, s1)


def build_network(genotype: Genotype, style: str, **kwargs) -> nn.Module:
    if style == "cifar":
        kwargs.pop("stem_reductions", None)
        return NetworkCIFAR(genotype, **kwargs)
    if style == "imagenet":
        return NetworkImageNet(genotype, **kwargs)
    raise NasflowError(f"unknown network style {style!r} (cifar or imagenet)")


class Logits(nn.Module):
    """An evaluation network as a logged model: normalised images in, class logits out (the auxiliary
    head is a training device and is left out)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]
