"""GOLD-NAS's pieces: Algorithm 1's bookkeeping, eq. (5), and the discretised MACs against the counter."""
import csv
import json
import math

import pytest
import torch

from nasflow.search.flops import discrete_macs, expected_flops, fixed_macs, op_macs_table
from nasflow.search.policies.gold_nas import GoldNas, algorithm1_update
from nasflow.search.supernet import SpaceConfig, Supernet, edge_inputs
from nasflow.space.counting import count_network

PAPER = {"n0": 4, "c0": 2, "lambda0": 1e-5, "patience": 3}


def test_algorithm1_step_by_step_on_scripted_prune_counts():
    state = {"lambda": 0.0, "dlambda": 1e-5, "t": 0}
    expected = [  # n_pruned -> (lambda, dlambda, t, recorded)
        (0, 2e-5, 2e-5, 1, False),
        (0, 6e-5, 4e-5, 2, False),
        (2, 1.4e-4, 8e-5, 0, False),    # some pruned, fewer than n0: lambda keeps rising
        (5, 7e-5, 1e-5, 0, False),      # n0 or more: dlambda resets, lambda halves
        (0, 9e-5, 2e-5, 1, False),
        (0, 1.3e-4, 4e-5, 2, False),
        (0, 2.1e-4, 8e-5, 3, False),
        (0, 3.7e-4, 1.6e-4, 0, True),   # t > patience (t0): recorded, t back to 0
    ]
    for n_pruned, lam, dlam, t, recorded in expected:
        assert algorithm1_update(state, n_pruned, PAPER) is recorded
        assert state["lambda"] == pytest.approx(lam) and state["dlambda"] == pytest.approx(dlam) and state["t"] == t


def test_eq5_value_and_gradient_by_hand():
    alpha = torch.tensor([[0.0, 1.0], [2.0, -1.0]], requires_grad=True)
    alive = torch.tensor([[True, True], [True, False]])
    macs = torch.tensor([[3.0, 5.0], [7.0, 11.0]])
    value = expected_flops(alpha, alive, macs)
    s0, s1 = 1 / (1 + math.exp(0)), 1 / (1 + math.exp(-1))
    mean = (s0 + s1) / 2
    by_hand = math.log(1 + s0 / mean) * 3 + math.log(1 + s1 / mean) * 5 + math.log(1 + 1.0) * 7  # a lone op: ratio 1
    assert float(value.detach()) == pytest.approx(by_hand, rel=1e-6)
    value.backward()
    # the edge's mean m = (s0 + s1)/2 is a normaliser without gradient: d/d alpha_0 is 3 (s0' / m) / (1 + s0/m)
    d0 = s0 * (1 - s0)
    assert float(alpha.grad[0, 0]) == pytest.approx(3 * (d0 / mean) / (1 + s0 / mean), rel=1e-5)
    s2 = 1 / (1 + math.exp(-2.0))
    lone = 7 * (s2 * (1 - s2) / s2) / 2  # alone on its edge: m = s2, ratio 1, and still a positive gradient
    assert float(alpha.grad[1, 0]) == pytest.approx(lone, rel=1e-5) and lone > 0
    assert float(alpha.grad[1, 1]) == 0.0  # pruned


def test_a_large_lambda_empties_edges_but_never_a_node():
    """Appendix A.3 (i): the FLOPs term pushes every op's sigma down, a lone op's too, so with a large
    lambda edges lose their last op; pruning still leaves every node an input."""
    torch.manual_seed(0)
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=4, layers=3, layout="per-position"))
    s = {"dataset": "cifar10", "lambda0": 1e-5, "a_lr": 1.0, "a_momentum": 0.9, "mu": 1.0, "n0": 4,
         "xi_max": 0.05, "xi_min": 0.01}
    policy = GoldNas(s, net)
    policy.state["lambda"] = 10.0
    a_opt = policy.make_arch_optimizer(net.arch_parameters())
    for _ in range(5):
        for _ in range(20):
            a_opt.zero_grad()
            policy.regulariser(net).backward()
            a_opt.step()
        for group, edge, slot in policy.prune_after_epoch(net):
            net.prune(group, edge, slot)
    empty_edges = sum(int((g.alive.sum(1) == 0).sum()) for g in net.groups.values())
    assert empty_edges > 0
    for name, g in net.groups.items():
        for k in range(4):
            assert sum(int(g.alive[e].sum()) for e, (node, _) in enumerate(edge_inputs(4)) if node == k) >= 1


@pytest.mark.parametrize("layers,channels,dataset", [(3, 4, "cifar10"), (5, 6, "cifar10"), (3, 4, "imagenette64"),
                                                    (4, 6, "imagenet")])
def test_discretised_macs_equal_the_counted_evaluation_network(layers, channels, dataset):
    from nasflow.catalog.datasets import dataset_info

    info = dataset_info(dataset)
    torch.manual_seed(0)
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=channels, layers=layers,
                               layout="per-position", stem=info.style, num_classes=info.num_classes))
    policy = GoldNas({"dataset": dataset, "lambda0": 1e-5, "a_lr": 1.0, "a_momentum": 0.9, "mu": 1.0}, net)
    generator = torch.Generator().manual_seed(1)
    for name, g in net.groups.items():  # prune at random, keeping one op into every node
        for e in range(14):
            if torch.rand(1, generator=generator) < 0.5 and e not in (0, 2, 5, 9):
                net.prune(name, e, int(torch.randint(0, 2, (1,), generator=generator)))
    tables = op_macs_table(net, info.image_size)
    genotype = policy.derive(net)
    measured = count_network(genotype, channels, layers, dataset)["macs_M"]
    assert discrete_macs(net, tables, fixed_macs(net, info.image_size)) / 1e6 == pytest.approx(measured, abs=0.05)
    assert any(len(node) > 2 for cell in genotype.cells for node in cell.nodes)  # any number of inputs


def test_pruning_keeps_one_op_into_every_node():
    torch.manual_seed(0)
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=4, layers=3, layout="per-position"))
    s = {"dataset": "cifar10", "lambda0": 1e-5, "a_lr": 1.0, "a_momentum": 0.9, "mu": 1.0, "n0": 4,
         "xi_max": 0.05, "xi_min": 0.01}
    policy = GoldNas(s, net)
    with torch.no_grad():
        for g in net.groups.values():
            g.alpha.fill_(-10.0)  # every weight far below xi_min
    pruned = policy.prune_after_epoch(net)
    for group, edge, slot in pruned:
        net.prune(group, edge, slot)
    per_node = {}
    for name, g in net.groups.items():
        for e, (k, _) in enumerate(edge_inputs(4)):
            per_node[(name, k)] = per_node.get((name, k), 0) + int(g.alive[e].sum())
    assert all(v == 1 for v in per_node.values())


# ---- the tiny search, run as a user runs it ----------------------------------------------------------

@pytest.fixture(scope="module")
def gold_run(smoke_params, tmp_path_factory):
    from conftest import SHARED_DATASETS, run_cli

    if not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file():
        pytest.skip("needs ../shared/datasets")
    out = tmp_path_factory.mktemp("gold") / "seed0"
    res = run_cli("search", "--method", "gold-nas", "--params", smoke_params, "--out", out, "--no-track",
                  "--set", "runtime.progress=lines")
    assert res.returncode == 0, res.stderr
    return out


def _settings(smoke_params):
    from nasflow.study import method_settings
    from nasflow.settings import load_params

    return method_settings(load_params(smoke_params), "gold-nas")


@pytest.mark.slow
def test_smoke_search_yields_a_front_with_falling_macs(gold_run, smoke_params):
    from nasflow.catalog.genotype import load_genotype

    s = _settings(smoke_params)
    entries = json.loads((gold_run / "architectures.json").read_text())
    # How many points the smoke front holds follows the trajectory (2 to 4 here, with the same seed, as
    # a processor's or a convolution kernel's rounding differs); a front has at least two.
    assert len(entries) >= 2
    # The front's order on exact MACs: rounded to 0.1 M, two points can coincide (and a pruned pooling or
    # skip op costs no MACs), so the contract is "never up", with every point a different architecture.
    macs = [e["macs"] for e in entries]
    assert all(a >= b for a, b in zip(macs, macs[1:])) and macs[0] > macs[-1], macs
    cells = [{k: v for k, v in json.loads((gold_run / e["genotype"]).read_text()).items() if k != "name"} for e in entries]
    assert all(a != b for a, b in zip(cells, cells[1:]))
    for e in entries:  # per-position genotypes are counted at the searched depth
        counted = count_network(load_genotype(gold_run / e["genotype"]), s["eval_channels"], s["layers"], s["dataset"])
        assert counted == {"params_M": e["params_M"], "macs_M": e["macs_M"]} and round(e["macs"] / 1e6, 1) == e["macs_M"]
    assert json.loads((gold_run / "genotype.json").read_text()) == json.loads((gold_run / entries[-1]["genotype"]).read_text())


@pytest.mark.slow
def test_smoke_history_replays_algorithm1(gold_run, smoke_params):
    s = _settings(smoke_params)
    with open(gold_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    state = {"lambda": 0.0, "dlambda": s["lambda0"], "t": 0}
    recorded, previous = set(), None
    for row in rows:
        n_pruned = int(row["n_pruned"])
        if algorithm1_update(state, n_pruned, s):
            recorded.add(int(row["epoch"]))
        assert float(row["lambda"]) == pytest.approx(state["lambda"], rel=1e-9)
        flops = float(row["flops_M"])
        if previous is not None:  # the MACs move only when something was pruned, and never up
            assert flops <= previous + 1e-9 and (n_pruned > 0 or flops == previous)
        previous = flops
    assert any(int(r["n_pruned"]) > 0 for r in rows) and previous <= s["flops_min"]
    by_epoch = {int(r["epoch"]): float(r["flops_M"]) for r in rows}
    entries = json.loads((gold_run / "architectures.json").read_text())
    # The front is what Algorithm 1 recorded, at each epoch's MACs; the state the search stopped in is
    # not on it (end-state.json, labelled so), unless Algorithm 1 recorded that epoch itself.
    epochs = [e["epoch"] for e in entries]
    assert set(epochs) <= recorded
    pruned_in = {int(r["epoch"]): int(r["n_pruned"]) for r in rows}
    for r in recorded - set(epochs):  # recorded again with nothing pruned since: the same architecture, once
        last = max(e for e in epochs if e < r)
        assert sum(pruned_in[k] for k in range(last + 1, r + 1)) == 0
    for e in entries:
        assert e["macs_M"] == pytest.approx(by_epoch[e["epoch"]], abs=0.051)
    end = json.loads((gold_run / "end-state.json").read_text())
    assert end["epoch"] == len(rows) and end["pareto_point"] is False and end["macs"] / 1e6 <= s["flops_min"]
    assert entries[-1]["epoch"] < len(rows)  # the smoke search ends one epoch after pruning, off the front


@pytest.mark.slow
def test_smoke_search_learns_while_it_prunes(gold_run):
    """Issue 26 item 7: the smoke super-net's training error falls well below chance (90 % on CIFAR-10)
    while edges are removed, so the smoke run tells a GOLD-NAS that trains from one that does not.
    Measured (seed 0, one thread): pruning in 17 of epochs 4-21 (the end), training error 83 % at epoch 4,
    58.75-79 % from epoch 9 on, below 70 % in 7 epochs that prune (8 in all), 58.75 % at best (epoch 17).
    With the settings before (w_lr 0.01, a_lr 1, n0 1, flops_min 0.95) it was 75 % or more once pruning
    began and 90 % from epoch 11 to the end: this test fails there. Thresholds, with margin: below 70 % in
    at least three epochs that prune, and below 65 % at least once after pruning began."""
    with open(gold_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    first = next(i for i, r in enumerate(rows) if int(r["n_pruned"]) > 0)
    pruning = rows[first:]  # from the first pruning to the end (flops_min), every epoch of it
    assert sum(int(r["n_pruned"]) > 0 for r in pruning) >= len(pruning) // 2  # edges go all along
    errors = [float(r["train_error"]) for r in pruning]
    below = [float(r["train_error"]) for r in pruning if int(r["n_pruned"]) > 0 and float(r["train_error"]) < 70.0]
    assert len(below) >= 3, errors
    assert min(errors) < 65.0, errors
    assert float(rows[-1]["alive_candidates"]) < float(rows[0]["alive_candidates"]) / 2  # most of the space pruned


@pytest.mark.slow
def test_a_search_with_an_empty_front_stops_and_resumes_with_more_epochs(smoke_params, tmp_path):
    """Recording needs two epochs without pruning (patience 1): one epoch records nothing, so the search
    says so, keeps its checkpoint, and --resume with a larger bound goes on as if never stopped."""
    from conftest import QUIET, SHARED_DATASETS, run_cli

    if not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file():
        pytest.skip("needs ../shared/datasets")
    base = ["search", "--method", "gold-nas", "--params", smoke_params, *QUIET, "--set", "search.gold-nas.patience=1"]
    from concurrent.futures import ThreadPoolExecutor

    def stopped_then_resumed():
        short = run_cli(*base, "--out", tmp_path / "a", "--set", "search.gold-nas.epochs=1")
        assert short.returncode != 0 and "Traceback" not in short.stderr
        assert "without recording an architecture; its checkpoint is kept" in short.stderr
        assert (tmp_path / "a" / "checkpoint.pt").is_file() and not (tmp_path / "a" / "architectures.json").exists()
        return run_cli(*base, "--out", tmp_path / "a", "--resume")

    # the uninterrupted search runs beside the stopped and resumed one (one thread each, two cores)
    with ThreadPoolExecutor(1) as pool:
        whole = pool.submit(run_cli, *base, "--out", tmp_path / "b")
        resumed = stopped_then_resumed()
        whole = whole.result()
    assert resumed.returncode == 0, resumed.stderr
    assert whole.returncode == 0, whole.stderr
    for name in ("architectures.json", "genotype.json", "end-state.json"):
        assert json.loads((tmp_path / "a" / name).read_text()) == json.loads((tmp_path / "b" / name).read_text())


# ---- searching directly on ImageNet-style data (appendix C) -------------------------------------------------

def test_imagenet_block_is_laid_over_only_for_imagenet_style_datasets(params_file):
    from nasflow.study import method_settings
    from nasflow.settings import load_params

    cifar = method_settings(load_params(params_file, "base"), "gold-nas")
    assert cifar["flops_min"] == 240 and cifar["autoaugment"] and "imagenet" not in cifar
    inet = method_settings(load_params(params_file, "base", ["search.gold-nas.dataset=imagenet"]), "gold-nas")
    assert (inet["flops_min"], inet["autoaugment"], inet["mu"], inet["classes"]) == (500, False, 0.0, 100)
    assert method_settings(load_params(params_file, "base", ["search.gold-nas.dataset=imagenette64"]),
                           "gold-nas-random")["flops_min"] == 500  # the baseline searches the same space
    from nasflow.errors import NasflowError
    with pytest.raises(NasflowError, match="imagenet_style.classes"):
        load_params(params_file, "base", ["search.gold-nas.imagenet_style.classes=1"])


@pytest.mark.slow
def test_imagenet_style_search_on_imagenette64(smoke_params, tmp_path):
    from conftest import SHARED_DATASETS, run_cli
    from nasflow.catalog.genotype import load_genotype

    if not (SHARED_DATASETS / "imagenette64-subset-jpeg.npz").is_file():
        pytest.skip("needs ../shared/datasets")
    out = tmp_path / "inet"
    res = run_cli("search", "--method", "gold-nas", "--params", smoke_params, "--out", out, "--no-track",
                  "--set", "search.gold-nas.dataset=imagenette64")
    assert res.returncode == 0, res.stderr
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[0]["flops_M"]) == pytest.approx(0.956, abs=1e-3)  # every op alive behind the 3-conv stem
    assert float(rows[-1]["flops_M"]) <= 0.45
    for e in json.loads((out / "architectures.json").read_text()):
        genotype = load_genotype(out / e["genotype"])
        counted = count_network(genotype, 8, 3, "imagenette64")  # the ImageNet evaluation network, 8x8 cells
        assert counted["macs_M"] == e["macs_M"] == pytest.approx(float(rows[e["epoch"] - 1]["flops_M"]), abs=0.051)


def _fake_imagenet(root, classes=3, train=4, val=2):
    """Class folders in ImageNet's layout (written here, never passed off as ImageNet's images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / "imagenet" / split / f"n0000000{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"img{i}.JPEG")


def test_search_streams_imagenet_class_folders_on_a_class_subset(params_file, tmp_path):
    from nasflow.search.engine import SearchRun
    from nasflow.settings import load_params

    _fake_imagenet(tmp_path / "archives")
    G = "search.gold-nas"
    params = load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'archives'}']", f"{G}.dataset=imagenet",
                                                 f"{G}.imagenet_style.classes=2", f"{G}.batch_size=4", f"{G}.epochs=1",
                                                 f"{G}.imagenet_style.channels=4", f"{G}.imagenet_style.flops_min=1.0",
                                                 "runtime.progress=none"])
    run = SearchRun(params, "gold-nas", 0, tmp_path / "out", track_runs=False)
    result = run.run()
    assert run.n_classes == 2 and len(run.train_batches.dataset) == 8 and run.val_batches is None
    assert run.net.space.stem == "imagenet" and run.net.classifier.out_features == 2
    assert result["epochs"] == 1 and (tmp_path / "out" / "genotype.json").is_file()


def test_imagenet_search_measures_on_held_out_training_images_never_the_val_split(params_file, tmp_path):
    """ImageNet's val split is its test set (GOLD-NAS 3.1: unseen by the search): val_fraction holds out a
    part of every class of train/ instead, disjoint from the images that train."""
    from nasflow.search.engine import SearchRun
    from nasflow.settings import load_params

    _fake_imagenet(tmp_path / "archives", train=4)
    G = "search.gold-nas"
    params = load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'archives'}']", f"{G}.dataset=imagenet",
                                                 f"{G}.imagenet_style.classes=2", f"{G}.batch_size=2",
                                                 f"{G}.imagenet_style.val_fraction=0.25"])
    run = SearchRun(params, "gold-nas", 0, tmp_path / "out", track_runs=False)
    run._data()
    trained, held = run.train_batches.dataset.paths, run.val_batches.dataset.paths
    assert len(trained) == 6 and len(held) == 2 and not set(trained) & set(held)
    assert all(p.parent.parent.name == "train" for p in trained + held)
    assert sorted(run.val_batches.y.tolist()) == [0, 1]  # one image of each class
    assert not run.val_batches.train  # measured without augmentation

    # with a per-class fraction of the training images, both parts come from that same subset
    _fake_imagenet(tmp_path / "more", train=8)
    params = load_params(params_file, "smoke", [f"data.archive_dirs=['{tmp_path / 'more'}']", f"{G}.dataset=imagenet",
                                                 f"{G}.imagenet_style.classes=2", f"{G}.batch_size=2", "data.imagenet_fraction=0.5",
                                                 f"{G}.imagenet_style.val_fraction=0.25"])
    run = SearchRun(params, "gold-nas", 0, tmp_path / "out2", track_runs=False)
    run._data()
    trained, held = run.train_batches.dataset.paths, run.val_batches.dataset.paths
    assert len(trained) == 6 and len(held) == 2 and not set(trained) & set(held)


def _tiny_one_level(smoke_params, tmp_path, *overrides):
    from nasflow.search.engine import SearchRun
    from nasflow.settings import load_params

    params = load_params(smoke_params, None, ["search.gold-nas.epochs=1", "runtime.progress=none", *overrides])
    return SearchRun(params, "gold-nas", 0, tmp_path / "out", track_runs=False)


def test_a_one_level_search_never_reads_the_test_set(smoke_params, tmp_path, monkeypatch):
    """Section 3.1: the search trains on the training images; with val_fraction 0 nothing measures it
    (history's val_error is empty), with a fraction a held-out part of each class of the training set does."""
    import numpy as np
    import pandas as pd

    from nasflow.data import datasets

    real_load = datasets.load

    def poisoned_test_set(params, name):  # any image read from the test split would be this marker
        arrays = real_load(params, name)
        arrays.x_test[:] = 255
        arrays.y_test[:] = 0
        return arrays

    monkeypatch.setattr("nasflow.search.splits.load", poisoned_test_set)
    run = _tiny_one_level(smoke_params, tmp_path)
    run.run()
    assert run.val_batches is None
    history = pd.read_csv(tmp_path / "out" / "history.csv")
    assert history["val_error"].isna().all() and history["train_error"].notna().all()
    assert (history["epoch_seconds"] > 0).all() and (history["val_seconds"] >= 0).all()

    run = _tiny_one_level(smoke_params, tmp_path, "search.gold-nas.val_fraction=0.25")
    run._data()
    train_x, val_x = run.train_batches.x, run.val_batches.x
    assert len(train_x) == 60 and len(val_x) == 20  # smoke: 8 images of each of 10 classes, 2 held out of each
    assert sorted(np.bincount(run.val_batches.y.numpy())) == [2] * 10
    assert not (val_x == 255).flatten(1).all(1).any() and not (train_x == 255).flatten(1).all(1).any()
    flat_train = {bytes(x.numpy().tobytes()) for x in train_x}
    assert not any(bytes(x.numpy().tobytes()) in flat_train for x in val_x)  # disjoint parts of the training set


def test_one_level_consistency_row_says_why_it_is_empty(smoke_params, tmp_path, capsys):
    from nasflow.cli import main

    _tiny_one_level(smoke_params, tmp_path).run()
    out = tmp_path / "c.json"
    assert main(["consistency", "supernet", "--no-track", "--method", "gold-nas", "--params", str(smoke_params), "--set",
                 "search.gold-nas.epochs=1", "--search-dir", str(tmp_path / "out"), "--out", str(out)]) == 0
    found = json.loads(out.read_text())
    assert found["supernet_error"] is None and "val_fraction is 0" in found["note"]
    assert "val_fraction is 0" in capsys.readouterr().out


def test_full_size_space_macs():
    """14 cells, 36 channels on CIFAR-10: the search starts at 777.0 M MACs (sep_conv_3x3 alone 755.8 M,
    skip_connect alone 184.8 M); the counted evaluation networks agree (tools/gold_nas_space_macs.py)."""
    net = Supernet(SpaceConfig(ops=["skip_connect", "sep_conv_3x3"], channels=36, layers=14, layout="per-position"))
    tables, fixed = op_macs_table(net, 32), fixed_macs(net, 32)
    only = lambda slot: (fixed + sum(float(t[:, slot].sum()) for t in tables.values())) / 1e6
    assert discrete_macs(net, tables, fixed) / 1e6 == pytest.approx(777.0, abs=0.05)
    assert only(1) == pytest.approx(755.8, abs=0.05) and only(0) == pytest.approx(184.8, abs=0.05)
