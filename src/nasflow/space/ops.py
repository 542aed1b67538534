"""Candidate operations, all in ReLU-Conv-BN order as in the reference DARTS code.

An op is described by an `OpSpec`: either a primitive name (`sep_conv_3x3`) or PR-DARTS's
parametric separable convolution (`{"op": "conv", "k": 7, "dil": 1, "c_mul": [1]}`). `build_op`
turns a spec into a module; `analytic_cost` gives its parameters and multiply-accumulates from a
formula, which GOLD-NAS needs as a differentiable function of the architecture and which the tests
hold equal to the measured counter op by op.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nasflow.catalog.ops import DIL_CONVS, FACTORISED_CONVS, PLAIN_CONVS, POOLS, SEP_CONVS, OpSpec
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


def conv_form(spec: OpSpec) -> OpSpec | None:
    """The parametric form of a separable primitive (sep_conv_5x5 is conv k=5 c_mul=[1]), else None."""
    if spec.parametric:
        return spec
    if spec.name in SEP_CONVS:
        return OpSpec("conv", k=SEP_CONVS[spec.name], dil=1, c_mul=(1,))
    if spec.name in DIL_CONVS:
        return OpSpec("conv", k=DIL_CONVS[spec.name], dil=2, c_mul=())
    return None


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


# ---- analytic counting -------------------------------------------------------------------------

def conv_out(size: int, k: int, stride: int, pad: int, dil: int = 1) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _bn(c, affine):
    return 2 * c if affine else 0


def _sep_layer_cost(c_in, c_out, k, stride, dil, h, w, affine):
    pad = dil * (k - 1) // 2
    ho, wo = conv_out(h, k, stride, pad, dil), conv_out(w, k, stride, pad, dil)
    params = c_in * k * k + c_in * c_out + _bn(c_out, affine)
    macs = c_in * k * k * ho * wo + c_in * c_out * ho * wo
    return params, macs, ho, wo


def factorized_reduce_cost(c_in, c_out, h, w, affine=True):
    """Params and MACs of FactorizedReduce; the second conv sees the map shifted by one pixel."""
    half = c_out // 2
    h1, w1 = conv_out(h, 1, 2, 0), conv_out(w, 1, 2, 0)
    h2, w2 = conv_out(h - 1, 1, 2, 0), conv_out(w - 1, 1, 2, 0)
    return 2 * c_in * half + _bn(c_out, affine), c_in * half * (h1 * w1 + h2 * w2)


def relu_conv_bn_cost(c_in, c_out, k, stride, pad, h, w, affine=True):
    ho, wo = conv_out(h, k, stride, pad), conv_out(w, k, stride, pad)
    return c_in * c_out * k * k + _bn(c_out, affine), c_in * c_out * k * k * ho * wo


def analytic_cost(spec: OpSpec, c: int, stride: int, h: int, w: int, affine: bool = True) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of `build_op(spec, c, stride)` on a c x h x w input."""
    name = spec.name
    separable = conv_form(spec)
    if separable is not None:
        widths = [1, *separable.c_mul, 1]
        params = macs = 0
        for i in range(len(widths) - 1):
            p, m, h, w = _sep_layer_cost(c * widths[i], c * widths[i + 1], separable.k,
                                         stride if i == 0 else 1, separable.dil, h, w, affine)
            params, macs = params + p, macs + m
        return params, macs
    if name in ("none",) or name in POOLS or (name == "skip_connect" and stride == 1):
        return 0, 0
    if name == "skip_connect":
        return factorized_reduce_cost(c, c, h, w, affine)
    if name in PLAIN_CONVS:
        k = PLAIN_CONVS[name]
        return relu_conv_bn_cost(c, c, k, stride, k // 2, h, w, affine)
    if name in FACTORISED_CONVS:
        k = FACTORISED_CONVS[name]
        wo = conv_out(w, k, stride, k // 2)
        ho = conv_out(h, k, stride, k // 2)
        return 2 * c * c * k + _bn(c, affine), c * c * k * (h * wo + ho * wo)
    raise NasflowError(f"unknown op {name!r}")
