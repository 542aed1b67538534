"""Morphisms of PR-DARTS's parametric separable convolution (Laube and Zell 2019, section 3.2).

A candidate `conv` (OpSpec with kernel k, dilation dil, expansion multiples c_mul) is a stack of
len(c_mul) + 1 depthwise-separable layers (`ops.ParamConv`). A morphism turns a parent module into a
child module of a neighbouring configuration that inherits the parent's weights:

- `grow_kernel`     k -> k + 2, the old kernel in the centre of a zero kernel: a true morphism;
- `widen`           the smallest expansion (the leading one on ties) + 1; the weights that read the new
                    channels start at zero: a true morphism;
- `insert_layer`    a new last layer of expansion 1 (c_mul + [1]), initialised as an identity (depthwise
                    kernel a centred 1, pointwise conv the identity, BN reset), as the authors'
                    operations.py does (`ConvOp.init_from`, `SepConv.make_identity`). It still begins
                    with a ReLU, so the child computes ReLU of the parent's output (in eval mode, divided
                    by the new BN's sqrt(1 + eps)): not function preserving (3.2, item 3);
- `shrink_kernel`   k -> k - 2, the centre of the old kernel (item 4);
- `raise_dilation`, `lower_dilation`  dil +- 1 on the same weights (items 5, 6).

The last four are "strictly speaking not network morphisms": the search follows them with grace
epochs. `Limits` holds a space's constraints (Table 2); `available` lists the morphisms a spec may
take within them. Every function is pure: the parent module is left as it was.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from nasflow.errors import NasflowError
from nasflow.catalog.ops import Limits, OpSpec
from nasflow.space.ops import ParamConv, build_op

TRUE_MORPHISMS = ("grow_kernel", "widen")
MORPHISMS = ("grow_kernel", "shrink_kernel", "widen", "insert_layer", "raise_dilation", "lower_dilation")


@dataclass
class Morph:
    kind: str
    spec: OpSpec
    module: nn.Module
    exact: bool  # True: the child computes what the parent did (to rounding)


def _widened(c_mul: tuple[int, ...]) -> tuple[int, ...]:
    i = min(range(len(c_mul)), key=lambda j: (c_mul[j], j))  # the leading one among the narrowest
    return c_mul[:i] + (c_mul[i] + 1,) + c_mul[i + 1:]


def child_spec(kind: str, spec: OpSpec) -> OpSpec | None:
    """The configuration `kind` leads to, None where it does not apply (no expansion to widen)."""
    if kind == "grow_kernel":
        return replace(spec, k=spec.k + 2)
    if kind == "shrink_kernel":
        return replace(spec, k=spec.k - 2) if spec.k > 1 else None
    if kind == "widen":
        return replace(spec, c_mul=_widened(spec.c_mul)) if spec.c_mul else None
    if kind == "insert_layer":
        return replace(spec, c_mul=spec.c_mul + (1,))
    if kind == "raise_dilation":  # a dilated 1x1 is the same 1x1
        return replace(spec, dil=spec.dil + 1) if spec.k > 1 else None
    if kind == "lower_dilation":
        return replace(spec, dil=spec.dil - 1) if spec.dil > 1 else None
    raise NasflowError(f"unknown morphism {kind!r}; known: {', '.join(MORPHISMS)}")


def available(spec: OpSpec, limits: Limits) -> list[str]:
    """The morphisms `spec` may take without leaving the space (pools and identities take none)."""
    if not spec.parametric:
        return []
    out = []
    for kind in MORPHISMS:
        child = child_spec(kind, spec)
        if child is not None and limits.allows(child):
            out.append(kind)
    return out


def _geometry(module: ParamConv) -> tuple[int, int, bool]:
    """(channels, stride, affine) the parent was built with, read from its first layer."""
    first = module[0]
    depthwise, bn = first[1], first[3]
    return depthwise.in_channels, depthwise.stride[0], bn.affine


@torch.no_grad()
def _copy_kernel(old: torch.Tensor, new: torch.Tensor) -> None:
    """The overlapping channels, kernels aligned on their centres (zero rim when growing, centre when
    shrinking); channels the parent lacks keep the child's fresh initialisation."""
    c = min(old.shape[0], new.shape[0])
    ko, kn = old.shape[-1], new.shape[-1]
    if kn >= ko:
        lo = (kn - ko) // 2
        new[:c].zero_()
        new[:c, :, lo:lo + ko, lo:lo + ko] = old[:c]
    else:
        lo = (ko - kn) // 2
        new[:c] = old[:c, :, lo:lo + kn, lo:lo + kn]


@torch.no_grad()
def _copy_pointwise(old: torch.Tensor, new: torch.Tensor) -> None:
    """Old rows and columns kept; columns that read new input channels zeroed so the new channels add
    nothing. Their rows (the new channels' own weights) stay random: were both sides zero, neither
    would ever receive a gradient."""
    rows, cols = min(old.shape[0], new.shape[0]), min(old.shape[1], new.shape[1])
    new[:, old.shape[1]:] = 0.0
    new[:rows, :cols] = old[:rows, :cols]


@torch.no_grad()
def _copy_bn(old: nn.BatchNorm2d, new: nn.BatchNorm2d) -> None:
    c = min(old.num_features, new.num_features)
    new.running_mean[:c] = old.running_mean[:c]
    new.running_var[:c] = old.running_var[:c]
    new.num_batches_tracked.copy_(old.num_batches_tracked)
    if old.affine and new.affine:
        new.weight[:c] = old.weight[:c]
        new.bias[:c] = old.bias[:c]


@torch.no_grad()
def _make_identity(layer: nn.Sequential) -> None:
    """A separable layer (ReLU, depthwise, pointwise, BN) that passes ReLU of its input on. Random weights
    would make the child compute something unrelated to its parent (the authors' `make_identity`)."""
    _, depthwise, pointwise, bn = layer
    k_h, k_w = depthwise.kernel_size
    depthwise.weight.zero_()[:, :, k_h // 2, k_w // 2] = 1.0  # centre tap: any dilation reads the same pixel
    nn.init.dirac_(pointwise.weight)  # c -> c: an inserted layer has expansion 1
    bn.reset_parameters()  # running statistics 0 / 1, affine weight 1 / bias 0


def inherit(parent: ParamConv, child: ParamConv) -> None:
    """Layer i of the child takes what it can of layer i of the parent; a layer the parent lacks (only
    `insert_layer` adds one, at the back) starts as an identity."""
    for old, new in zip(parent, child):
        _copy_kernel(old[1].weight, new[1].weight)
        _copy_pointwise(old[2].weight, new[2].weight)
        _copy_bn(old[3], new[3])
    for new in list(child)[len(parent):]:
        _make_identity(new)


def morph(kind: str, spec: OpSpec, module: nn.Module) -> Morph:
    """The child of `module` (built from `spec`) under `kind`, its weights inherited from the parent."""
    if not spec.parametric or not isinstance(module, ParamConv):
        raise NasflowError(f"only parametric convolutions have morphisms, not {spec.label()}")
    new_spec = child_spec(kind, spec)
    if new_spec is None:
        raise NasflowError(f"morphism {kind!r} does not apply to {spec.label()}")
    c, stride, affine = _geometry(module)
    child = build_op(new_spec, c, stride, affine).to(next(module.parameters()).device)
    inherit(module, child)
    child.train(module.training)
    return Morph(kind, new_spec, child, kind in TRUE_MORPHISMS)


def reachable(start: OpSpec, limits: Limits, steps: int) -> set[OpSpec]:
    """Every configuration within `steps` morphisms of `start` (Table 2's totals count these)."""
    seen, frontier = {start}, {start}
    for _ in range(steps):
        frontier = {child_spec(kind, s) for s in frontier for kind in available(s, limits)} - seen
        seen |= frontier
    return seen
