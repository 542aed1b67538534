"""Parameters and multiply-accumulates from formulas, without torch: one op (`analytic_cost`, which
GOLD-NAS needs as a differentiable function of the architecture) and a whole evaluation network
(`network_cost`, which `nasflow plan` prices trainings by). They count what nasflow.space.counting
measures (convolutions and linear layers; BN and pooling free; no auxiliary head; one image, eval mode),
and the tests hold them equal to it op by op and network by network.

`network_cost` follows nasflow.space.network layer for layer: the CIFAR stem (one 3x3 conv to 3C) or the
ImageNet stem (two stride-2 3x3 convs, then a third of stride 2 or 1: `stem_reductions` 3 or 2), every
cell's preprocessing, every edge (each node is computed even when it is not concatenated), the 1x1 fusion
of `conv1x1` cells, squeeze-and-excitation, and the classifier.
"""
from __future__ import annotations

from nasflow.catalog.datasets import dataset_info
from nasflow.catalog.ops import FACTORISED_CONVS, PLAIN_CONVS, POOLS, OpSpec, conv_form
from nasflow.errors import NasflowError


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


def _cell_cost(spec, c_pp, c_p, c, reduction_prev, size_pp, size_p, cell_output, se_ratio):
    """(params, MACs, output channels, output size) of one cell: s0 at size_pp, s1 at size_p."""
    if reduction_prev:
        params, macs = factorized_reduce_cost(c_pp, c, size_pp, size_pp)
    else:
        params, macs = relu_conv_bn_cost(c_pp, c, 1, 1, 0, size_pp, size_pp)
    p, m = relu_conv_bn_cost(c_p, c, 1, 1, 0, size_p, size_p)
    params, macs = params + p, macs + m
    out_size = (size_p + 1) // 2 if spec.reduction else size_p
    sizes = [size_p, size_p] + [out_size] * len(spec.nodes)
    for _, edge in spec.edges():
        stride = 2 if spec.reduction and edge.input < 2 else 1
        p, m = analytic_cost(edge.op, c, stride, sizes[edge.input], sizes[edge.input])
        params, macs = params + p, macs + m
    c_out = len(spec.concat) * c
    if cell_output == "conv1x1":
        p, m = relu_conv_bn_cost(c_out, c, 1, 1, 0, out_size, out_size)
        params, macs, c_out = params + p, macs + m, c
    elif cell_output == "mean":
        c_out = c
    if se_ratio:
        hidden = max(1, c_out // se_ratio)
        params += 2 * c_out * hidden + hidden + c_out   # two 1x1 convs with biases, on the pooled 1x1 map
        macs += 2 * c_out * hidden
    return params, macs, c_out, out_size


def recipe_network(recipe: dict, dataset: str, genotype) -> dict:
    """The network a recipe trains `genotype` in on `dataset`, as keyword arguments of
    nasflow.space.counting.count_network: its channels, layers (a per-position genotype, GOLD-NAS's, fixes
    them: one cell a layer), SE and style, and on an ImageNet-style network its stem's reductions. The
    trainer, `nasflow count --recipe` and the estimate all build the same network from it."""
    style = recipe["style"] or dataset_info(dataset).style
    layers = len(genotype.cells) if genotype.layout == "per-position" else recipe["layers"]
    extra = {"stem_reductions": recipe["stem_reductions"]} if style == "imagenet" else {}
    return {"channels": recipe["channels"], "layers": layers, "dataset": dataset, "style": style,
            "se_ratio": recipe["se_ratio"], **extra}


def network_cost(genotype, style: str, c: int, layers: int, num_classes: int, in_channels: int, image_size: int,
                 stem_reductions: int = 3, se_ratio: int = 0) -> dict:
    """{"params", "macs"} of nasflow.space.network's evaluation network for a parsed genotype
    (nasflow.catalog.genotype.Genotype), on one image, without the auxiliary head."""
    reductions = (layers // 3, 2 * layers // 3)
    if style == "cifar":
        c_stem = 3 * c
        params, macs = in_channels * c_stem * 9 + 2 * c_stem, in_channels * c_stem * 9 * image_size ** 2
        c_pp = c_p = c_stem
        size_pp = size_p = image_size
        reduction_prev = False
    elif style == "imagenet":
        if stem_reductions not in (2, 3):
            raise NasflowError(f"stem_reductions must be 2 or 3, got {stem_reductions}")
        params = macs = 0
        size = image_size
        for c_in, c_o, stride in ((in_channels, c // 2, 2), (c // 2, c, 2)):
            p, m = relu_conv_bn_cost(c_in, c_o, 3, stride, 1, size, size)
            params, macs, size = params + p, macs + m, conv_out(size, 3, stride, 1)
        size_pp = size
        stride1 = 2 if stem_reductions == 3 else 1
        p, m = relu_conv_bn_cost(c, c, 3, stride1, 1, size, size)
        params, macs, size_p = params + p, macs + m, conv_out(size, 3, stride1, 1)
        c_pp = c_p = c
        reduction_prev = stem_reductions == 3
    else:
        raise NasflowError(f"unknown network style {style!r} (cifar or imagenet)")
    if genotype.layout == "per-position" and len(genotype.cells) != layers:
        raise NasflowError(f"the per-position genotype has {len(genotype.cells)} cells but the network "
                           f"has {layers} layers")
    c_curr = c
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        spec = genotype.cell_at(i, reduction)
        p, m, c_out, out_size = _cell_cost(spec, c_pp, c_p, c_curr, reduction_prev, size_pp, size_p,
                                           genotype.cell_output, se_ratio)
        params, macs = params + p, macs + m
        c_pp, c_p, size_pp, size_p, reduction_prev = c_p, c_out, size_p, out_size, reduction
    params += c_p * num_classes + num_classes
    macs += c_p * num_classes
    return {"params": params, "macs": macs}
