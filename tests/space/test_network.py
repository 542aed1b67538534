import pytest
import torch
import torch.nn as nn

from nasflow.errors import NasflowError
from nasflow.space.counting import evaluation_network
from nasflow.catalog.genotype import FORMAT, load_genotype, parse_genotype
from nasflow.space.network import NetworkCIFAR, NetworkImageNet


def _forward(net, shape, train=True):
    net.train(train)
    net.drop_path_prob = 0.2 if train else 0.0
    return net(torch.randn(*shape))


@pytest.mark.parametrize("dataset,shape,classes", [("cifar10", (2, 3, 32, 32), 10),
                                                   ("fashion-mnist", (2, 1, 28, 28), 10),
                                                   ("freiburg", (2, 3, 64, 64), 25)])
def test_cifar_style_network_runs_with_auxiliary_head_on_every_input_size(dataset, shape, classes):
    net = evaluation_network(load_genotype("DARTS_V2"), channels=8, layers=5, dataset=dataset, auxiliary=True)
    logits, aux = _forward(net, shape)
    assert logits.shape == (2, classes) and aux.shape == (2, classes)
    assert torch.isfinite(logits).all()


def test_reference_auxiliary_head_is_kept_at_32x32_and_adapted_elsewhere():
    g = load_genotype("DARTS_V2")
    pool = lambda net: net.auxiliary.features[1]
    cifar = evaluation_network(g, 8, 8, "cifar10", auxiliary=True)
    assert isinstance(pool(cifar), nn.AvgPool2d) and pool(cifar).kernel_size == 5 and pool(cifar).stride == 3
    fmnist = evaluation_network(g, 8, 8, "fashion-mnist", auxiliary=True)
    assert isinstance(pool(fmnist), nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize("stem_reductions,size_after_stem", [(3, 28), (2, 56)])
def test_imagenet_style_network_with_squeeze_excitation(stem_reductions, size_after_stem):
    net = NetworkImageNet(load_genotype("ASAP"), c=8, num_classes=7, layers=5, auxiliary=True,
                          image_size=224, stem_reductions=stem_reductions, se_ratio=4)
    seen = []
    net.cells[0].register_forward_hook(lambda m, i, o: seen.append(i[1].shape[-1]))
    logits, aux = _forward(net, (2, 3, 224, 224))
    assert seen == [size_after_stem]
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    assert net.cells[0].se is not None


def test_odd_channels_are_refused_where_the_stem_halves_them():
    with pytest.raises(NasflowError, match="even channel count"):
        NetworkImageNet(load_genotype("DARTS_V2"), c=9)


@pytest.mark.parametrize("cell_output,width", [("concat", 4 * 8), ("mean", 8), ("conv1x1", 8)])
def test_cell_outputs(cell_output, width):
    g = load_genotype("ASAP").to_json()
    g["cell_output"] = cell_output
    net = NetworkCIFAR(parse_genotype(g), c=8, layers=3)
    assert net.cells[0].c_out == width
    logits, _ = _forward(net, (2, 3, 32, 32), train=False)
    assert logits.shape == (2, 10)


def test_every_node_runs_even_when_not_concatenated():
    g = load_genotype("NASNet")  # reduce_concat is [4, 5, 6]: nodes 0 and 1 are only inputs to others
    g.cells[1].concat = [6]  # node 4 alone: nodes 0..3 are still computed, as the reference does
    net = NetworkCIFAR(g, c=8, layers=3)
    ran = []
    for op in net.cells[1].ops:
        op.register_forward_hook(lambda m, i, o: ran.append(m))
    _forward(net, (1, 3, 32, 32), train=False)
    assert len(ran) == len(net.cells[1].ops) == 10


def test_per_position_genotype_must_match_depth_and_reductions():
    cell = lambda red: {"reduction": red, "nodes": [[{"op": "sep_conv_3x3", "input": 0}, {"op": "skip_connect", "input": 1}]]}
    g = parse_genotype({"format": FORMAT, "layout": "per-position", "cells": [cell(i in (1, 2)) for i in range(4)]})
    net = NetworkCIFAR(g, c=8, layers=4)
    assert [c.spec.reduction for c in net.cells] == [False, True, True, False]
    with pytest.raises(NasflowError, match="has 4 cells but the network has 5 layers"):
        NetworkCIFAR(g, c=8, layers=5)
    bad = parse_genotype({"format": FORMAT, "layout": "per-position", "cells": [cell(i == 0) for i in range(4)]})
    with pytest.raises(NasflowError, match="reduction=True but layer 0"):
        NetworkCIFAR(bad, c=8, layers=4)


def test_drop_path_is_skipped_for_identity_edges_only():
    net = NetworkCIFAR(load_genotype("DARTS_V2"), c=8, layers=3)
    normal, reduce = net.cells[0], net.cells[1]
    assert any(normal.identity) and not any(reduce.identity[i] for i, e in enumerate(reduce.inputs) if e < 2)
