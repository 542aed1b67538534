"""The shared supernet on small synthetic inputs: groups, pruning, pools, sharing, transit cells."""
import pytest
import torch

from nasflow.search.supernet import SpaceConfig, Supernet, rebuild_optimizer, top_k_per_node

ASAP_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def _net(**kw):
    torch.manual_seed(0)
    return Supernet(SpaceConfig(ops=kw.pop("ops", ASAP_OPS), channels=4, layers=3, **kw))


def test_supernet_shapes_groups_and_outputs():
    for output, layout, groups in [("concat", "shared", {"normal", "reduce"}), ("conv1x1", "shared", {"normal", "reduce"}),
                                   ("mean", "per-position", {"cell0", "cell1", "cell2"})]:
        net = _net(cell_output=output, layout=layout)
        assert set(net.groups) == groups
        weights = {k: torch.softmax(g.alpha, -1) for k, g in net.groups.items()}
        assert net(torch.randn(2, 3, 32, 32), weights).shape == (2, 10)
        assert net.alive_candidates() == (len(groups) * 14 * 7, len(groups) * 14 * 7)


def test_pruning_removes_modules_parameters_and_optimizer_state():
    net = _net()
    weights = {k: torch.softmax(g.alpha, -1) for k, g in net.groups.items()}
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    loss = net(torch.randn(2, 3, 32, 32), weights).sum()
    loss.backward()
    opt.step()
    n_params = sum(p.numel() for p in net.weight_parameters())
    ops_before = net.ops_run()
    slot = ASAP_OPS.index("sep_conv_5x5")
    removed = net.prune("normal", 0, slot)
    assert removed and all(p not in set(net.weight_parameters()) for p in removed)
    assert sum(p.numel() for p in net.weight_parameters()) < n_params
    # one module per normal cell left the graph (a 3-layer net: cell 0 normal, cells 1 and 2 reduce)
    assert net.ops_run() == ops_before - sum(cell.group == "normal" for cell in net.cells) == ops_before - 1
    assert all(f"s{slot}" not in cell.edges[0].ops for cell in net.cells if cell.group == "normal")
    survivor = net.weight_parameters()[0]
    new = rebuild_optimizer(opt, net.weight_parameters())
    assert len(new.param_groups[0]["params"]) == len(net.weight_parameters())
    assert torch.equal(new.state[survivor]["momentum_buffer"], opt.state[survivor]["momentum_buffer"])
    assert not any(p in new.state for p in removed)
    # the pruned op's alpha is frozen at its value when pruned
    g = net.groups["normal"]
    before = float(g.frozen[0, slot])
    with torch.no_grad():
        g.alpha[0, slot] = 99.0
    g.restore_pruned()
    assert float(g.alpha.detach()[0, slot]) == before


def test_top_k_per_node_rule():
    # node 0 has edges 0,1; node 1 has edges 2,3,4. Slot 0 plays `none`, which is not allowed.
    w = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.1, 0.3], [0.0, 0.6], [0.0, 0.7]])
    allowed = torch.tensor([[False, True]] * 5)
    choice = top_k_per_node(w, allowed, nodes=2, k=2)
    assert choice == [[(0, 1), (1, 1)], [(3, 1), (4, 1)]]
    # ties go to the lower input index
    tie = top_k_per_node(torch.full((5, 2), 0.5), torch.ones(5, 2, dtype=torch.bool), nodes=2, k=2)
    assert tie[1] == [(2, 0), (3, 0)]


def _weights(net):
    return {k: torch.softmax(g.alpha.detach(), -1) for k, g in net.groups.items()}


def _count_calls(net):
    calls = []
    for cell_index, cell in enumerate(net.cells):
        sets = cell.sources if cell.sharing else cell.edges
        for cs in sets:
            for module in cs.ops.values():
                module.register_forward_hook(lambda m, i, o, c=cell_index: calls.append(c))
    return calls


def test_feature_sharing_computes_each_op_once_per_source():
    plain, shared = _net(), _net(feature_sharing=True)
    x = torch.randn(2, 3, 32, 32)
    calls_plain, calls_shared = _count_calls(plain), _count_calls(shared)
    plain(x, _weights(plain))
    shared(x, _weights(shared))
    # 14 edges x 7 ops per cell without sharing; 5 sources (c_{k-2}, c_{k-1}, nodes 0-2) x 7 with it
    assert calls_plain.count(0) == 14 * 7 and calls_shared.count(0) == 5 * 7
    assert shared.ops_run() == 3 * 5 * 7
    # parameters exist per (source, op), not per edge
    assert sum(p.numel() for p in shared.weight_parameters()) < sum(p.numel() for p in plain.weight_parameters())
    # a shared module stays while any edge from its source uses it
    slot = ASAP_OPS.index("sep_conv_3x3")
    # edges 0, 2, 5, 9 read input 0 (nodes 0-3): its module goes with the last of them
    assert [bool(shared.prune("normal", e, slot)) for e in (2, 0, 5, 9)] == [False, False, False, True]


def test_bottleneck_runs_candidates_at_a_quarter_of_the_channels():
    net = _net(bottleneck=4)
    cs = net.cells[0].edges[0]
    assert cs.inner == 1 and cs.reduce is not None  # 4 channels / 4
    assert net(torch.randn(2, 3, 32, 32), _weights(net)).shape == (2, 10)
    with pytest.raises(Exception, match="divisible by the bottleneck"):
        SpaceConfig(ops=ASAP_OPS, channels=6, bottleneck=4)


def test_transit_cells_run_exactly_the_derived_subgraph():
    from nasflow.search.supernet import slots_from_choice

    net = _net()
    weights = _weights(net)
    choice = top_k_per_node(weights["normal"], net.groups["normal"].alive, nodes=4, k=2)
    calls = _count_calls(net)
    net(torch.randn(2, 3, 32, 32), weights, cell_slots={0: slots_from_choice(choice, 14)})
    assert calls.count(0) == 8  # 4 nodes x 2 kept edges x 1 op: the transit cell
    assert calls.count(1) == 14 * 7  # the engine cell (first reduction) holds the whole DAG


def test_per_edge_pools_change_and_inherit_modules():
    from nasflow.catalog.ops import OpSpec

    net = _net()
    before = {name: g.alpha.detach().clone() for name, g in net.groups.items()}
    normal = net.cells_of("normal")
    parent = normal[0].edges[3].ops["s3"]  # sep_conv_3x3 on edge 3
    child = torch.nn.Sequential(*list(parent))  # a module that shares the parent's weights
    pool = [OpSpec("skip_connect"), OpSpec("conv", k=7, dil=1, c_mul=(2,)), OpSpec("sep_conv_3x3")]
    net.set_pool("normal", 3, pool, modules={2: [child]})
    g = net.groups["normal"]
    assert g.pools[3] == pool and g.pools[0][0].name == "max_pool_3x3"
    assert normal[0].edges[3].ops["s2"] is child
    assert g.alive[3].tolist() == [True, True, True, False, False, False, False]
    assert float(g.alpha.detach()[3].abs().sum()) == 0.0  # the new pool starts at zero...
    others = [e for e in range(len(g.pools)) if e != 3]  # ...and only it: resetting the rest is PR-DARTS's rule
    assert torch.equal(g.alpha.detach()[others], before["normal"][others])
    assert torch.equal(net.groups["reduce"].alpha.detach(), before["reduce"])
    net(torch.randn(2, 3, 32, 32), _weights(net))
    choice = [[(0, 0), (1, 0)], [(3, 1), (4, 0)], [(5, 0), (6, 0)], [(9, 0), (10, 0)]]
    geno = net.genotype_from_choice({"normal": choice, "reduce": choice})
    assert geno.cells[0].nodes[1][0].op == OpSpec("conv", k=7, dil=1, c_mul=(2,))
    state = net.state_dict()
    again = _net()
    again.set_pool("normal", 3, pool)
    again.load_state_dict(state)
    assert again.groups["normal"].pools[3] == pool


def test_a_node_with_every_input_cut_gives_zeros_at_its_size():
    net = _net()
    edge_slots = [[3] for _ in range(14)]
    for e in (2, 3, 4):  # node 1's three inputs
        edge_slots[e] = []
    out = net(torch.randn(2, 3, 32, 32), _weights(net), cell_slots={1: edge_slots, 0: edge_slots})  # cell 1 reduces
    assert out.shape == (2, 10)
