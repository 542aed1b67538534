"""A dataset is one declaration: registered here, with no other file edited, it is accepted by the
settings, prepared (or streamed from its class folders), trained on, and counted by `nasflow plan`."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import write_params
from nasflow import cli, jobs
from nasflow.study import study_of
from nasflow.catalog import datasets
from nasflow.catalog.datasets import Dataset
from nasflow.data import formats
from nasflow.errors import NasflowError

CLASSES = ["circle", "square", "stripe"]
SIZE, TRAIN_PER_CLASS, TEST_PER_CLASS = 16, 8, 2
EPOCHS = 1
PLAN_EPOCHS = 10_000_000  # so that the estimate's hours, rounded to 0.01, show the declared image count


def _image_tree(root, splits):
    """PNG files in `root/<split>/<class>/`, per split the number of images per class given."""
    rng = np.random.default_rng(0)
    for split, per_class in splits.items():
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.png")


def read_tiles(directory, params):
    return formats.read_class_folders(directory / "tiles", ("train",), "test", SIZE)


def tiles_folders_root(directory, params):
    root = directory / "tiles-folders"
    return root if (root / "train").is_dir() else None


@pytest.fixture
def tiles():
    """A small array dataset read from class folders, and the same images streamed as a folder dataset."""
    declared = [Dataset("tiles", len(CLASSES), 3, SIZE, "cifar", len(CLASSES) * TRAIN_PER_CLASS, "array", read_tiles,
                        how_to_get="written by the test"),
                Dataset("tiles-folders", len(CLASSES), 3, SIZE, "cifar", len(CLASSES) * TRAIN_PER_CLASS, "folders",
                        tiles_folders_root, mean=(0.5,) * 3, std=(0.25,) * 3, how_to_get="written by the test")]
    for d in declared:
        datasets.register(d)
    yield declared
    for d in declared:
        datasets.unregister(d.name)


def _nasflow(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _flags(tmp_path, *overrides):
    """The repository's params.yaml (smoke profile) with the test's archive dir and a one-epoch `tiny`
    recipe on every image (the subsets of `tiny` ask for more images than a class has here)."""
    sets = [f"data.archive_dirs=[{tmp_path / 'archives'}]", f"train.recipes.tiny.epochs={EPOCHS}",
            "train.recipes.tiny.train_subset_per_class=null", "train.recipes.tiny.test_subset_per_class=null",
            *overrides]
    return ["--params", write_params(tmp_path), "--profile", "smoke", *(x for s in sets for x in ("--set", s))]


def test_a_registered_dataset_prepares_trains_and_is_planned(tiles, tmp_path, capsys):
    archives = tmp_path / "archives"
    _image_tree(archives / "tiles", {"train": TRAIN_PER_CLASS, "test": TEST_PER_CLASS})
    _image_tree(archives / "tiles-folders", {"train": TRAIN_PER_CLASS, "val": TEST_PER_CLASS})
    flags = _flags(tmp_path)

    _nasflow(capsys, "data", "prepare", "tiles", "--no-track", *flags)
    with np.load(tmp_path / "data" / "tiles.npz") as prepared:
        assert prepared["x_train"].shape == (len(CLASSES) * TRAIN_PER_CLASS, SIZE, SIZE, 3)
        assert np.bincount(prepared["y_test"]).tolist() == [TEST_PER_CLASS] * len(CLASSES)
    assert cli.main(["data", "prepare", "tiles-folders", "--no-track", *map(str, flags)]) == 2
    assert "read from its class folders, not prepared" in capsys.readouterr().err

    for name in ("tiles", "tiles-folders"):
        out = tmp_path / "train" / name
        _nasflow(capsys, "train", "--genotype", "DARTS_V2", "--dataset", name, "--recipe", "tiny", "--no-track",
                 "--out", out, *flags)
        m = json.loads((out / "metrics.json").read_text())
        assert m["dataset"] == name and m["epochs"] == EPOCHS and 0 <= m["top1_error"] <= 100
        assert (m["train_images"], m["test_images"]) == (len(CLASSES) * TRAIN_PER_CLASS, len(CLASSES) * TEST_PER_CLASS)

    found = json.loads(_nasflow(capsys, "plan", "--json", *_flags(tmp_path, "train.transfer.datasets=[tiles, tiles-folders]",
                                                                  f"train.recipes.tiny.epochs={PLAN_EPOCHS}")))
    rows = {r["dataset"]: r for r in found["trainings"] if r["stage"] == "transfer"}
    assert set(rows) == {"tiles", "tiles-folders"}
    for d in tiles:  # the declared image count, not a fallback
        assert rows[d.name]["recipe"] == "tiny" and rows[d.name]["jobs"] > 0
        # per MAC-image-epoch, the MACs counted at its 16 px (macs_M is rounded to 0.1 M)
        per_mac = rows[d.name]["jobs"] * PLAN_EPOCHS * d.train_images * 1e6 * found["train_rates"]["cifar"]["hours_per_mac_image_epoch"]
        assert rows[d.name]["gpu_hours"] == pytest.approx(rows[d.name]["macs_M"] * per_mac, abs=0.05 * per_mac)
        assert 0 < rows[d.name]["macs_M"] < 10, rows[d.name]  # the tiny recipe's network


def test_storage_decides_what_a_job_reads(tiles, tmp_path):
    from nasflow.settings import load_params

    params = load_params(write_params(tmp_path), "smoke")
    assert study_of(params).train_inputs({}, "tiles", "tiny", 0)["data"] == {"split_seed": params["data"]["split_seed"]}
    streamed = study_of(params).train_inputs({}, "tiles-folders", "tiny", 0)["data"]
    assert set(streamed) == set(jobs.FOLDER_KEYS)


def test_the_settings_accept_exactly_the_declared_datasets(tmp_path):
    from nasflow.settings import load_params, schema

    path = write_params(tmp_path)
    with pytest.raises(NasflowError, match="train.dataset: 'tiles' is not one of"):
        load_params(path, overrides=["train.dataset=tiles"])
    datasets.register(Dataset("tiles", 3, 3, SIZE, "cifar", 24, "array", read_tiles))
    try:
        assert load_params(path, overrides=["train.dataset=tiles"])["train"]["dataset"] == "tiles"
        enums = list(_dataset_enums(schema()))
        # search.<method>.dataset for every method, protocol retrain_dataset and transfer, train.dataset, transfer
        assert len(enums) > 5 and all(e == datasets.names() for e in enums) and "tiles" in enums[0]
    finally:
        datasets.unregister("tiles")


def _dataset_enums(node):
    if isinstance(node, dict):
        if "cifar10" in node.get("enum", ()):
            yield node["enum"]
        for value in node.values():
            yield from _dataset_enums(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dataset_enums(value)


@pytest.mark.parametrize("field, value, message", [
    ("storage", "cloud", "storage is 'cloud'"),
    ("style", "mnist", "style is 'mnist'"),
    ("train_images", 0, "train_images is 0"),
    ("mean", None, "storage 'folders' needs a reader and mean/std"),
])
def test_a_bad_declaration_is_refused_by_its_field(field, value, message):
    keys = dict(name="bad", num_classes=3, channels=3, image_size=SIZE, style="cifar", train_images=24,
                storage="folders", reader=tiles_folders_root, mean=(0.5,) * 3, std=(0.25,) * 3)
    keys[field] = value
    if field == "mean":
        keys["std"] = None
    with pytest.raises(NasflowError, match=f"dataset 'bad': {message}"):
        datasets.register(Dataset(**keys))
    assert "bad" not in datasets.names()


def test_builtin_readers_are_named_and_found():
    for name in datasets.names():
        d = datasets.dataset_info(name)
        for ref in (d.reader, d.download):
            assert ref is None or callable(datasets.function(ref)), (name, ref)
    assert [n for n in datasets.names() if datasets.dataset_info(n).streamed] == ["imagenet"]
    with pytest.raises(NasflowError, match="unknown dataset 'mnist'; known: cifar10, "):
        datasets.dataset_info("mnist")
