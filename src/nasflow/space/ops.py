"""Candidate operations, all in ReLU-Conv-BN order as in the reference DARTS code.

An op is described by an `OpSpec`: either a primitive name (`sep_conv_3x3`) or PR-DARTS's
parametric separable convolution (`{"op": "conv", "k": 7, "dil": 1, "c_mul": [1]}`). `build_op`
turns a spec into a module; nasflow.catalog.sizes gives its parameters and multiply-accumulates from a
formula (torch-free), which the tests hold equal to the measured counter op by op.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nasflow.catalog.ops import FACTORISED_CONVS, PLAIN_CONVS, POOLS, OpSpec, conv_form
from nasflow.errors import NasflowError


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepLayer(nn.Sequential):
    """One depthwise-separable layer: ReLU, depthwise k x k, pointwise 1x1, BN."""

    def __init__(self, c_in, c_out, k, stride, dil, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, k, stride=stride, padding=dil * (k - 1) // 2, dilation=dil,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class ParamConv(nn.Sequential):
    """PR-DARTS's separable convolution: len(c_mul) + 1 separable layers whose widths are
    C * [1, *c_mul, 1]. c_mul=[1] is the DARTS sep conv (stacked twice), c_mul=[] with dil=2 the
    DARTS dil conv; morphisms change k, dil and c_mul while keeping the function."""

    def __init__(self, c, spec: OpSpec, stride, affine=True):
        widths = [1, *spec.c_mul, 1]
        super().__init__(*[
            SepLayer(c * widths[i], c * widths[i + 1], spec.k, stride if i == 0 else 1, spec.dil, affine)
            for i in range(len(widths) - 1)
        ])
        self.spec = spec


class FactorisedConv(nn.Sequential):
    """ReLU, 1 x k then k x 1 convolution, BN (NASNet's conv_7x1_1x7, EnTranNAS's extended ops)."""

    def __init__(self, c, k, stride, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
            nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two offset 1x1 stride-2 convs."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        if c_out % 2:
            raise NasflowError(f"factorized reduce needs an even channel count, got {c_out}; "
                               "choose channels so that every reduction's width is even")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def build_op(spec: OpSpec, c: int, stride: int, affine: bool = True) -> nn.Module:
    name = spec.name
    separable = conv_form(spec)
    if separable is not None:
        return ParamConv(c, separable, stride, affine)
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name in POOLS:
        if POOLS[name] == "max":
            return nn.MaxPool2d(3, stride=stride, padding=1)
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name in PLAIN_CONVS:
        k = PLAIN_CONVS[name]
        return ReLUConvBN(c, c, k, stride, k // 2, affine)
    if name in FACTORISED_CONVS:
        return FactorisedConv(c, FACTORISED_CONVS[name], stride, affine)
    raise NasflowError(f"unknown op {name!r}")
