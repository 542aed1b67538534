"""The table builders on a results tree the test writes: every figure in a table is checked against the
files it came from."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from nasflow.report.tables import build_tables, write_tables
from nasflow.settings import load_params
from nasflow.catalog.genotype import load_genotype

# method -> seed -> [(arch macs_M, retrained top1 errors per training seed)]
SEARCHES = {
    "darts": {0: [(500.0, [3.0, 3.2])], 1: [(480.0, [2.9, 3.1])], 2: [(470.0, [3.4, 3.6])]},
    "gold-nas": {seed: [(546.0, [2.5, 2.7]), (400.0, [2.8, 2.8]), (245.0 + seed, [3.3, 3.5 + seed])] for seed in (0, 1, 2)},
}
SUPERNET_ACCURACY = {("darts", 0): 60.0, ("darts", 1): 70.0, ("darts", 2): 50.0,
                     ("gold-nas", 0): 65.0, ("gold-nas", 1): 66.0, ("gold-nas", 2): 65.0}
TRANSFER = ["fashion-mnist", "freiburg"]
DARTS_V2 = load_genotype("DARTS_V2").to_json()


def _write(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def results(params_file, tmp_path):
    params = load_params(params_file, overrides=[
        "search.names=[darts, gold-nas]", "search.seeds=[0, 1, 2]", "search.protocol={}", "train.seeds=[0, 1]",
        f"train.transfer.datasets=[{', '.join(TRANSFER)}]", "train.transfer.cells=[DARTS_V2]"])
    root = tmp_path / "tree"
    for method, seeds in SEARCHES.items():
        for seed, archs in seeds.items():
            folder = root / f"results/search/{method}/seed{seed}"
            entries = []
            for i, (macs, errors) in enumerate(archs):
                arch_id = f"{method}-s{seed}-{i}"
                _write(folder / f"genotype-{i}.json", DARTS_V2)  # a cell repeated at any depth
                entries.append({"id": arch_id, "genotype": f"genotype-{i}.json", "macs_M": macs, "macs": int(macs * 1e6),
                                "params_M": macs / 150, "epoch": 10 * (i + 1)})
                for t, error in enumerate(errors):
                    for dataset, shift in [("cifar10", 0.0), *[(d, 10.0 * (k + 1)) for k, d in enumerate(TRANSFER)]]:
                        _write(root / f"results/train/{arch_id}/{dataset}/seed{t}/metrics.json",
                               {"top1_error": error + shift, "params_M": macs / 150, "macs_M": macs})
            _write(folder / "architectures.json", entries)
            _write(folder / "search.json", {"seconds": 86400.0 * (seed + 1), "device": "NVIDIA H100"})
            _write(root / f"results/consistency/{method}/seed{seed}.json",
                   {"supernet_error": 100.0 - SUPERNET_ACCURACY[(method, seed)], "child_error": 60.0,
                    "error_gap": SUPERNET_ACCURACY[(method, seed)] - 40.0})
    for t in (0, 1):
        for k, dataset in enumerate(TRANSFER):
            _write(root / f"results/train/DARTS_V2/{dataset}/seed{t}/metrics.json",
                   {"top1_error": 5.0 + k + t, "params_M": 3.3, "macs_M": 528.0})
    return params, root


def test_every_table_is_built_from_the_files(results, tmp_path):
    params, root = results
    tables = build_tables(params, root)
    t1 = tables["table1"].drop_duplicates("architecture").set_index("architecture")  # one row per pairing
    assert list(t1.index)[:6] == ["darts-s0-0", "darts-s1-0", "darts-s2-0", "gold-nas-s0-0", "gold-nas-s0-1", "gold-nas-s0-2"]
    assert len(t1) == 3 + 3 * 3  # every Pareto point of every search
    assert t1.loc["darts-s0-0", "test_error_mean"] == pytest.approx(3.1)
    assert t1.loc["darts-s0-0", "test_error_std"] == pytest.approx(0.141, abs=1e-3)  # sample std of 3.0, 3.2
    assert t1.loc["darts-s1-0", "search_gpu_days"] == 2.0 and t1.loc["darts-s0-0", "seeds"] == "0,1"
    pareto = tables["pareto"]
    gold = pareto[pareto["method"] == "gold-nas"]
    assert list(gold["macs_M"])[:3] == [546.0, 400.0, 245.0] and list(gold["test_error"])[:3] == [2.6, 2.8, 3.4]
    # the network each search's architectures.json counted (params.yaml's smoke profile): GOLD-NAS's 14 cells of 4
    # channels, DARTS's 20 of 36
    networks = pareto.drop_duplicates("method").set_index("method")[["eval_dataset", "eval_channels", "eval_layers"]]
    assert networks.to_dict("index") == {"darts": {"eval_dataset": "cifar10", "eval_channels": 36, "eval_layers": 20},
                                         "gold-nas": {"eval_dataset": "cifar10", "eval_channels": 4, "eval_layers": 14}}
    t3 = tables["table3"].drop_duplicates("method").set_index("method")
    assert t3.loc["darts", "test_error_mean"] == pytest.approx(3.2)  # over every darts cell and training seed
    # GOLD-NAS: each search's final cell (the front's last point, 3.3 and 3.5 + seed), not all its points
    finals = [3.3, 3.5, 3.3, 4.5, 3.3, 5.5]
    assert t3.loc["gold-nas", "test_error_mean"] == pytest.approx(sum(finals) / 6, abs=1e-3)
    assert t3.loc["gold-nas", "test_error_std"] == pytest.approx(float(pd.Series(finals).std()), abs=1e-3)
    t2 = tables["table2"].set_index("architecture")
    # published cells, then each search's final cell (GOLD-NAS: the most pruned Pareto point)
    assert list(t2.index) == ["DARTS_V2", "darts-s0-0", "gold-nas-s0-2"]
    assert t2.loc["gold-nas-s0-2", "freiburg_error"] == pytest.approx(3.4 + 20.0)
    assert t2.loc["DARTS_V2", "fashion-mnist_error"] == pytest.approx(5.5)
    written = write_tables(tables, tmp_path / "out")
    assert {p.name for p in written} >= {"table1.csv", "table1.md", "consistency.csv", "pareto.md", "metrics.json"}
    headline = json.loads((tmp_path / "out" / "metrics.json").read_text())  # what `dvc metrics show` reads
    assert headline["architectures"]["darts-s0-0"]["test_error_mean"] == pytest.approx(3.1)
    assert headline["methods"]["darts"]["test_error_mean"] == pytest.approx(3.2)


def test_one_training_seed_leaves_the_deviation_blank_and_no_table_prints_nan(results, params_file, tmp_path):
    _, root = results
    params = load_params(params_file, overrides=[
        "search.names=[darts, gold-nas]", "search.seeds=[0, 1, 2]", "search.protocol={}", "train.seeds=[0]",
        f"train.transfer.datasets=[{', '.join(TRANSFER)}]", "train.transfer.cells=[DARTS_V2]"])
    tables = build_tables(params, root)
    t1 = tables["table1"].drop_duplicates("architecture").set_index("architecture")
    assert t1.loc["darts-s0-0", "test_error_mean"] == pytest.approx(3.0) and pd.isna(t1.loc["darts-s0-0", "test_error_std"])
    t3 = tables["table3"].drop_duplicates("method").set_index("method")
    assert t3["test_error_std"].notna().all()  # three searches' final cells: a deviation over them
    write_tables(tables, tmp_path / "out")
    header, _, first = (tmp_path / "out" / "table1.csv").read_text().splitlines()[:3]
    columns = header.split(",")
    assert first.split(",")[columns.index("test_error_std")] == ""
    for md in (tmp_path / "out").glob("*.md"):
        text = md.read_text()
        assert not re.search(r"\|\s*nan\s*(?=\|)", text, flags=re.I), md.name
        assert text.startswith("| ")
    lines = (tmp_path / "out" / "table1.md").read_text().splitlines()
    std = [c.strip() for c in lines[0].strip("|").split("|")].index("test_error_std")
    assert [c.strip() for c in lines[2].strip("|").split("|")][std] == ""


def test_consistency_table_ranks_super_nets_against_retraining(results):
    params, root = results
    table = build_tables(params, root)["consistency"]
    darts = table[table["method"] == "darts"]
    # super-net errors 40, 30, 50 against retrained 3.1, 3.0, 3.5: the same order, tau = 1
    assert list(darts["kendall_tau"]) == [1.0, 1.0, 1.0]
    assert list(darts["retrained_error"]) == pytest.approx([3.1, 3.0, 3.5])
    gold = table[table["method"] == "gold-nas"]
    assert gold["architecture"].tolist() == ["gold-nas-s0-2", "gold-nas-s1-2", "gold-nas-s2-2"]
    # super-net errors 35, 34, 35 against retrained 3.4, 3.9, 4.4: one concordant and one discordant pair,
    # one tie on the super-net side: tau-b = 0 / sqrt(2 * 3)
    assert gold["kendall_tau"].tolist() == [0.0, 0.0, 0.0]


def test_a_missing_result_file_is_named(results):
    params, root = results
    (root / "results/train/darts-s1-0/cifar10/seed1/metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="darts-s1-0/cifar10/seed1"):
        build_tables(params, root)


def _lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_search_curves_give_each_method_its_own_panel_and_each_run_one_colour(params_file, tmp_path):
    """What the figure plots, with which label: the quantities every search writes in shared panels, a
    method's own (temperature, lambda, MACs) in a panel per method, every run one colour in all panels."""
    from PIL import Image

    from nasflow.report.figures import search_curves_figure, search_curves_plot
    from nasflow.search.results import HISTORY_COLUMNS
    from nasflow.catalog.methods import method

    params = load_params(params_file, overrides=["search.names=[asap, gold-nas, entranas, entranas-dst]",
                                                 "search.seeds=[0, 1]", "search.protocol={}"])
    root = tmp_path / "tree"
    for name in params["search"]["names"]:
        columns = HISTORY_COLUMNS + list(method(name).columns)
        for seed in (0, 1):
            folder = root / f"results/search/{name}/seed{seed}"
            folder.mkdir(parents=True)
            rows = "\n".join(",".join(str(e) if c == "epoch" else "1.0" for c in columns) for e in (1, 2))
            (folder / "history.csv").write_text(",".join(columns) + "\n" + rows + "\n")
    fig = search_curves_plot(params, root)
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(axes) == ["alive candidate ops", "epoch time (s)", "normalised op entropy", "temperature (asap)",
                          "temperature (entranas)", "temperature (entranas-dst)", "lambda (gold-nas)",
                          "lambda (entranas-dst)", "network MACs (M) (gold-nas)"]
    runs = [f"{m} s{s}" for m in params["search"]["names"] for s in (0, 1)]
    assert sorted(_lines(axes["epoch time (s)"])) == sorted(runs)
    assert sorted(_lines(axes["temperature (asap)"])) == ["asap s0", "asap s1"]
    assert sorted(_lines(axes["temperature (entranas)"])) == ["entranas s0", "entranas s1"]
    assert sorted(_lines(axes["lambda (entranas-dst)"])) == ["entranas-dst s0", "entranas-dst s1"]
    colours = {}
    for ax in axes.values():
        for label, line in _lines(ax).items():
            colours.setdefault(label, set()).add(line.get_color() if isinstance(line.get_color(), str)
                                                 else tuple(line.get_color()))
    assert all(len(c) == 1 for c in colours.values())  # one colour per run in every panel
    assert len({next(iter(c)) for c in colours.values()}) == len(runs)  # and no two runs share one
    legends = [fig.legends[0].get_texts()] if fig.legends else []
    assert len(legends) == 1 and sorted(t.get_text() for t in legends[0]) == sorted(runs)
    width, height = Image.open(search_curves_figure(params, root, tmp_path / "curves.png")).size
    assert 900 <= width <= 1800 and width / height < 2.2, (width, height)  # a grid, not a strip


def test_published_figures_sit_beside_the_reproduced_ones(results, tmp_path):
    """The join of published.csv: a final cell beside every published row of its search (delta =
    reproduced - published), a front's points by nearest MACs, a published cell by its name."""
    params, root = results
    tables = build_tables(params, root)
    t1 = tables["table1"]
    darts = t1[t1["architecture"] == "darts-s0-0"].set_index("paper")
    # DARTS (first order) as ASAP Table 1, GOLD-NAS Table 1 and PR-DARTS Table 3 print it
    assert darts["paper_test_error"].to_dict() == {"asap": 2.94, "gold-nas": 3.00, "pr-darts": 2.94}
    assert darts.loc["gold-nas", "delta"] == pytest.approx(3.1 - 3.00)
    gold = t1[t1["paper_row"].astype(str).str.startswith("GOLD-NAS-")].set_index("paper_row")
    assert gold.loc["GOLD-NAS-A", "architecture"] == "gold-nas-s0-2"  # 245 M MACs: the nearest point
    assert gold.loc["GOLD-NAS-F", "architecture"] == "gold-nas-s0-1"  # 355 M: 400 is nearer than 245
    assert "GOLD-NAS-G" not in gold.index  # the mu = 0 front is another search (gold-nas-mu0)
    assert gold.loc["GOLD-NAS-A", "delta"] == pytest.approx(3.4 - 2.99)
    unpaired = t1[t1["architecture"] == "gold-nas-s0-0"]  # 546 M on the mu = 1 front: no published row nearer
    assert len(unpaired) == 1 and unpaired["paper"].isna().all()
    t2 = tables["table2"].set_index("architecture")
    # ASAP Table 2's DARTS-Rev2 row is the DARTS_V2 cell; Fashion-MNIST 3.68, Freiburg 10.8
    assert t2.loc["DARTS_V2", "paper_fashion-mnist_error"] == 3.68
    assert t2.loc["DARTS_V2", "delta_freiburg"] == pytest.approx(6.5 - 10.8)  # seeds 0, 1: 6.0 and 7.0
    t3 = tables["table3"].set_index("method")
    assert t3.loc["darts", "paper_row"] == "DARTS(1nd)" and t3.loc["darts", "delta"] == pytest.approx(3.2 - 2.94)
    from nasflow.report.figures import published_figure

    assert published_figure(tables, tmp_path / "published.png").read_bytes()[:4] == b"\x89PNG"


def test_pareto_figure_puts_each_evaluation_network_on_its_own_axis(results, tmp_path):
    """GOLD-NAS's points are counted at its own network (4 channels, 14 cells here), DARTS's at 36 and 20:
    two panels, each holding only the searches counted that way, each point named."""
    from nasflow.report.figures import pareto_figure, pareto_plot

    params, root = results
    pareto = build_tables(params, root)["pareto"]
    fig = pareto_plot(pareto)
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(axes) == {"cifar10, 36 channels, 20 cells", "cifar10, 4 channels, 14 cells"}
    darts, gold = axes["cifar10, 36 channels, 20 cells"], axes["cifar10, 4 channels, 14 cells"]
    assert sorted(_lines(darts)) == ["darts s0", "darts s1", "darts s2"]
    assert sorted(_lines(gold)) == ["gold-nas s0", "gold-nas s1", "gold-nas s2"]
    front = _lines(gold)["gold-nas s1"]
    assert list(front.get_xdata()) == [546.0, 400.0, 246.0] and list(front.get_ydata()) == [2.6, 2.8, 3.9]
    assert {t.get_text() for t in gold.texts} == {f"gold-nas-s{s}-{i}" for s in range(3) for i in range(3)}
    assert sorted(t.get_text() for t in gold.get_legend().get_texts()) == ["gold-nas s0", "gold-nas s1", "gold-nas s2"]
    assert {line.get_color() for line in _lines(gold).values()} != {line.get_color() for line in _lines(darts).values()}
    assert pareto_figure(pareto, tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_each_pr_darts_search_sits_beside_its_spaces_row_nearest_in_parameters(params_file, tmp_path):
    """PR-DARTS shows "the most interesting" of three searches per space: nasflow reports all three, each
    beside the published row of its space nearest in parameters, on CIFAR-10 and in its CIFAR-100 transfer."""
    params = load_params(params_file, overrides=[
        "search.names=[pr-darts-dl]", "search.seeds=[0, 1, 2]", "search.protocol={}", "train.seeds=[0]",
        "train.transfer.datasets=[cifar100]", "train.transfer.cells=[]", "train.transfer.searched_per_method=3"])
    root = tmp_path / "tree"
    for seed, params_M in enumerate((3.1, 4.1, 3.7)):
        arch_id = f"pr-darts-dl-s{seed}-0"
        _write(root / f"results/search/pr-darts-dl/seed{seed}/genotype.json", DARTS_V2)
        _write(root / f"results/search/pr-darts-dl/seed{seed}/architectures.json",
               [{"id": arch_id, "genotype": "genotype.json", "macs_M": 500.0, "macs": 500_000_000, "params_M": params_M,
                 "epoch": 100}])
        _write(root / f"results/search/pr-darts-dl/seed{seed}/search.json", {"seconds": 86400.0, "device": "GPU"})
        _write(root / f"results/consistency/pr-darts-dl/seed{seed}.json",
               {"supernet_error": 20.0, "child_error": 30.0, "error_gap": 10.0})
        for dataset, error in (("cifar10", 3.0 + seed), ("cifar100", 17.0 + seed)):
            _write(root / f"results/train/{arch_id}/{dataset}/seed0/metrics.json",
                   {"top1_error": error, "params_M": params_M, "macs_M": 500.0})
    tables = build_tables(params, root)
    t1 = tables["table1"].set_index("architecture")
    assert t1["paper_row"].to_dict() == {"pr-darts-dl-s0-0": "PR-DARTS DL1", "pr-darts-dl-s1-0": "PR-DARTS DL2",
                                         "pr-darts-dl-s2-0": "PR-DARTS DL2"}  # 3.7 M: 4.0 is nearer than 3.2
    assert t1.loc["pr-darts-dl-s0-0", "delta"] == pytest.approx(3.0 - 2.74)
    t2 = tables["table2"].set_index("architecture")
    assert t2.loc["pr-darts-dl-s1-0", "paper_cifar100_error"] == 15.53  # DL2 on CIFAR-100
    assert t2.loc["pr-darts-dl-s0-0", "delta_cifar100"] == pytest.approx(17.0 - 17.37)


def test_a_transfer_is_trained_and_reported_as_the_paper_that_transferred_it(params_file, tmp_path):
    """PR-DARTS Table 3's CIFAR-100 column: the protocol's transfer_by_dataset gives the transfer its own
    recipe, three runs and the mean of each run's last five epochs; the published cells keep ASAP's one run."""
    own = "{cifar100: {recipe: darts_cifar, seeds: [0, 1, 2], reported: last_5_mean}}"
    params = load_params(params_file, overrides=[
        "search.names=[pr-darts-dl]", "search.seeds=[0]", "train.seeds=[0]", "train.transfer.datasets=[cifar100]",
        "train.transfer.cells=[DARTS_V2]",
        f"search.protocol={{pr-darts-dl: {{transfer: [cifar100], transfer_by_dataset: {own}}}}}"])
    from nasflow.study import study_of

    study = study_of(params)
    assert study.transfer_run("pr-darts-dl-s0-0", "cifar100") == ("darts_cifar", (0, 1, 2), "last_5_mean")
    assert study.transfer_run("DARTS_V2", "cifar100") == (params["train"]["transfer"]["recipe"], (0,), "final")
    root = tmp_path / "tree"
    arch_id = "pr-darts-dl-s0-0"
    _write(root / "results/search/pr-darts-dl/seed0/genotype.json", DARTS_V2)
    _write(root / "results/search/pr-darts-dl/seed0/architectures.json",
           [{"id": arch_id, "genotype": "genotype.json", "macs_M": 500.0, "macs": 500_000_000, "params_M": 3.1, "epoch": 100}])
    _write(root / "results/search/pr-darts-dl/seed0/search.json", {"seconds": 86400.0, "device": "GPU"})
    _write(root / "results/consistency/pr-darts-dl/seed0.json", {"supernet_error": 20.0, "child_error": 30.0, "error_gap": 10.0})
    _write(root / f"results/train/{arch_id}/cifar10/seed0/metrics.json", {"top1_error": 3.0, "params_M": 3.1, "macs_M": 500.0})
    for seed in (0, 1, 2):  # final errors 20, 21, 22; last five epochs 16..20 + seed: means 18, 19, 20
        folder = root / f"results/train/{arch_id}/cifar100/seed{seed}"
        _write(folder / "metrics.json", {"top1_error": 20.0 + seed, "params_M": 3.1, "macs_M": 500.0})
        pd.DataFrame({"epoch": range(1, 11), "top1_error": [30.0 + seed] * 5 + [16.0 + seed + i for i in range(5)]}
                     ).to_csv(folder / "history.csv", index=False)
    _write(root / "results/train/DARTS_V2/cifar100/seed0/metrics.json", {"top1_error": 17.5, "params_M": 3.3, "macs_M": 530.0})
    t2 = build_tables(params, root)["table2"].set_index("architecture")
    assert t2.loc[arch_id, "cifar100_error"] == pytest.approx(19.0)  # the mean over three runs of last-five means
    assert t2.loc["DARTS_V2", "cifar100_error"] == pytest.approx(17.5)


def test_gold_nas_imagenet_rows_pair_x_and_z_tr_with_their_top5_and_keep_z_tr_off_the_front(tmp_path):
    """GOLD-NAS Table 2: the 44-channel search's X (the largest under 600 M) and Z-tr (its ~500 M point at 48
    channels) each sit beside their own row with top-1 and top-5; GOLD-NAS-I's ImageNet transfer too."""
    from conftest import ROOT

    params = load_params(ROOT / "params.yaml", "paper", [
        "search.names=[gold-nas-imagenet-44, gold-nas-mu0]", "train.retrain_cells=[]", "train.transfer.cells=[]",
        "train.transfer.datasets=[]"])
    root = tmp_path / "tree"
    fronts = {"gold-nas-imagenet-44": [702.0, 640.0, 585.0, 541.0, 502.0], "gold-nas-mu0": [546.0, 445.0, 376.0]}
    for name, front in fronts.items():
        folder = root / f"results/search/{name}/seed0"
        entries = []
        for i, macs in enumerate(front):
            _write(folder / f"genotype-{i}.json", DARTS_V2)
            entries.append({"id": f"{name}-s0-{i}", "genotype": f"genotype-{i}.json", "macs_M": macs,
                            "macs": int(macs * 1e6), "params_M": 6.0, "epoch": i + 1})
        _write(folder / "architectures.json", entries)
        _write(folder / "search.json", {"seconds": 86400.0, "device": "GPU"})
        _write(root / f"results/consistency/{name}/seed0.json",
               {"supernet_error": None, "child_error": None, "error_gap": None})
    trained = {"gold-nas-imagenet-44-s0-2/imagenet": (24.0, 7.0), "gold-nas-imagenet-44-s0-4+gold_nas_imagenet/imagenet": (23.5, 6.9),
               "gold-nas-mu0-s0-1/imagenet": (25.0, 7.8)}
    trained.update({f"gold-nas-mu0-s0-{i}/cifar10": (2.5, 0.1) for i in range(3)})
    for where, (top1, top5) in trained.items():
        for seed in ((0,) if where.endswith("imagenet") else (0, 1, 2)):
            _write(root / f"results/train/{where}/seed{seed}/metrics.json",
                   {"top1_error": top1, "top5_error": top5, "params_M": 6.4, "macs_M": 590.0})
    tables = build_tables(params, root)
    t1 = tables["table1"]
    imagenet = t1[t1["dataset"] == "imagenet"].set_index("architecture")
    assert imagenet["paper_row"].to_dict() == {"gold-nas-imagenet-44-s0-2": "GOLD-NAS-X‡",
                                               "gold-nas-imagenet-44-s0-4+gold_nas_imagenet": "GOLD-NAS-Z-tr‡"}
    assert imagenet["recipe"].to_dict() == {"gold-nas-imagenet-44-s0-2": "gold_nas_imagenet_44",
                                            "gold-nas-imagenet-44-s0-4+gold_nas_imagenet": "gold_nas_imagenet"}
    assert imagenet.loc["gold-nas-imagenet-44-s0-4+gold_nas_imagenet", ["top5_error_mean", "paper_top5_error"]].tolist() \
        == [6.9, 7.3]
    assert imagenet.loc["gold-nas-imagenet-44-s0-2", "delta"] == pytest.approx(24.0 - 24.3)
    assert set(tables["pareto"]["arch_id"]) == {"gold-nas-imagenet-44-s0-2", *(f"gold-nas-mu0-s0-{i}" for i in range(3))}
    t2 = tables["table2"].set_index("architecture")
    assert t2.loc["gold-nas-mu0-s0-1", ["imagenet_error", "imagenet_top5_error", "paper_imagenet_error",
                                        "paper_imagenet_top5_error"]].tolist() == [25.0, 7.8, 24.7, 7.4]
