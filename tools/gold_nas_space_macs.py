"""The GOLD-NAS space's MACs at one size, from the analytic tables (nasflow.search.flops) and from the
counted evaluation network: every op alive (where the search starts), sep_conv_3x3 alone, skip_connect alone.

    PYTHONPATH=src python tools/gold_nas_space_macs.py cifar10 36 14    # 777.0, 755.8, 184.8 M MACs
    PYTHONPATH=src python tools/gold_nas_space_macs.py imagenet 44 14   # 910.3, 886.0, 248.0 M MACs
"""
import sys, torch
torch.set_num_threads(1)
from nasflow.catalog.datasets import dataset_info
from nasflow.search.flops import op_macs_table, fixed_macs, discrete_macs
from nasflow.search.policies.gold_nas import GoldNas
from nasflow.search.supernet import SpaceConfig, Supernet
from nasflow.space.counting import count_network
dataset, channels, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
info = dataset_info(dataset)
for label, prune_slots in (("every op alive", []), ("sep_conv_3x3 only", [0]), ("skip_connect only", [1])):
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=channels, layers=layers,
                               layout="per-position", stem=info.style, num_classes=info.num_classes))
    policy = GoldNas({"dataset": dataset, "lambda0": 1e-5, "a_lr": 1.0, "a_momentum": 0.9, "mu": 1.0}, net)
    for name in net.groups:
        for e in range(14):
            for s in prune_slots:
                net.prune(name, e, s)
    analytic = discrete_macs(net, op_macs_table(net, info.image_size), fixed_macs(net, info.image_size)) / 1e6
    counted = count_network(policy.derive(net), channels, layers, dataset)
    print(f"{dataset} C={channels} L={layers} {label}: analytic {analytic:.1f} M MACs, counted {counted}")
