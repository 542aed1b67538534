"""Nothing nasflow reads can run code: checkpoints load weights-only, CIFAR batches through an unpickler
that admits only array data, and file names read from result files stay inside their folder."""
import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch

from nasflow import io as nio
from nasflow.errors import NasflowError


class Payload:
    """What a tampered pickle carries: unpickling it calls open(marker, "w") (pickled as io.open), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _one_line(res, *parts):
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("nasflow")]
    assert len(lines) == 1 and all(p in lines[0] for p in parts), res.stderr


# ---- checkpoints ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("verb,flags", [
    (["search", "--method", "darts"], ["--resume"]),
    (["search", "--method", "darts"], ["--resume", "--replace-stale"]),  # the pipeline's flags: set-aside reads it too
    (["train", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--recipe", "tiny"], ["--resume"]),
])
def test_a_checkpoint_carrying_code_is_refused_and_nothing_runs(cli, params_file, tmp_path, verb, flags):
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    torch.save({"version": 1, "fingerprint": "x", "model": {}, "payload": Payload(marker)}, out / "checkpoint.pt")
    before = (out / "checkpoint.pt").read_bytes()
    res = cli(*verb, "--params", params_file, "--out", out, "--no-track", *flags)
    _one_line(res, str(out / "checkpoint.pt"), "refused: loading it would run code", "open")
    assert not marker.exists()
    assert (out / "checkpoint.pt").read_bytes() == before  # left as it was, not set aside or replaced


def test_checkpoints_nasflow_writes_load_weights_only(tmp_path):
    from nasflow.runtime import load_checkpoint

    nio.save_torch(tmp_path / "c.pt", {"version": 3, "fingerprint": "f", "alphas": {"a": torch.ones(2)},
                                       "history": [{"epoch": 1, "phase": "search", "lr": 0.1}],
                                       "pareto": [(1, {"normal": [["sep_conv_3x3", 0]]}, 12)]})
    ckpt = load_checkpoint(tmp_path / "c.pt", "cpu", 3, "f")
    assert ckpt["pareto"][0][2] == 12 and torch.equal(ckpt["alphas"]["a"], torch.ones(2))


# ---- CIFAR pickles ----------------------------------------------------------------------------------------

def _cifar100(folder, train_batch, protocol=pickle.DEFAULT_PROTOCOL):
    folder.mkdir(parents=True)
    (folder / "train").write_bytes(pickle.dumps(train_batch, protocol=protocol))
    test = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"fine_labels": [0, 1]}
    (folder / "test").write_bytes(pickle.dumps(test, protocol=protocol))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]},
                                               protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])  # the official files are protocol 2
def test_cifar_batches_of_array_data_still_load(tmp_path, protocol):
    from nasflow.data.formats import read_cifar

    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    _cifar100(tmp_path / "cifar-100-python", {b"data": data, b"fine_labels": [3, np.int64(4)]}, protocol)
    arrays = read_cifar(tmp_path, "cifar100")
    assert arrays.y_train.tolist() == [3, 4] and arrays.x_train[1, 0, 0, 0] == data[1, 0]


def test_a_cifar_tarball_whose_batch_carries_code_is_refused_by_name(tmp_path, monkeypatch):
    from nasflow.data import formats

    marker = tmp_path / "marker"
    folder = _cifar100(tmp_path / "src" / "cifar-100-python",
                       {b"data": np.zeros((2, 3072), dtype=np.uint8), b"fine_labels": [0, 1], b"x": Payload(marker)})
    archives = tmp_path / "archives"
    archives.mkdir()
    tarball = archives / "cifar-100-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    # past the checksum (a crafted archive might come with its own): the unpickler is what must hold
    name, inner, _ = formats.CIFAR_ARCHIVES["cifar100"]
    monkeypatch.setitem(formats.CIFAR_ARCHIVES, "cifar100", (name, inner, hashlib.md5(tarball.read_bytes()).hexdigest()))
    with pytest.raises(NasflowError, match=r"cifar-100-python/train: refused: the batch references io\.open"):
        formats.read_cifar(archives, "cifar100")
    assert not marker.exists()


def test_nasflow_data_prepare_refuses_a_crafted_extracted_folder(cli, params_file, tmp_path):
    marker = tmp_path / "marker"
    _cifar100(tmp_path / "archives" / "cifar-100-python",
              {b"data": np.zeros((2, 3072), dtype=np.uint8), b"fine_labels": [0, 1], b"x": Payload(marker)})
    res = cli("data", "prepare", "cifar100", "--params", params_file, "--no-download", "--no-track",
              "--set", f"data.archive_dirs=[{tmp_path / 'archives'}]")
    _one_line(res, "cifar-100-python/train: refused", "io.open")
    assert not marker.exists()


# ---- file names read from result files --------------------------------------------------------------------

@pytest.mark.parametrize("entry,message", [
    ({"id": "darts-s0-0", "genotype": "../../../elsewhere.json"}, "refused the file name '../../../elsewhere.json'"),
    ({"id": "darts-s0-0", "genotype": "/etc/passwd"}, "refused the file name '/etc/passwd'"),
    ({"id": "darts-s0-0", "genotype": "sub/../../x.json"}, "refused the file name"),
    ({"id": "../../escape", "genotype": "genotype.json"}, "refused the architecture id '../../escape'"),
    ({"id": "/abs", "genotype": "genotype.json"}, "refused the architecture id '/abs'"),
])
def test_a_crafted_architectures_json_is_refused_by_name(tmp_path, monkeypatch, entry, message):
    from conftest import ROOT
    from nasflow import layout
    from nasflow.report.tables import searched
    from nasflow.settings import load_params

    folder = tmp_path / layout.search_dir("darts", 0)
    folder.mkdir(parents=True)
    nio.write_json(folder / "architectures.json", [entry])
    with pytest.raises(NasflowError, match=message.replace(".", r"\.").replace("(", r"\(")):
        layout.read_architectures(folder / "architectures.json")
    monkeypatch.chdir(tmp_path)  # the pipeline's own readers go through the same check
    if entry["id"] == "darts-s0-0":
        with pytest.raises(NasflowError, match="refused the file name"):
            layout.genotype_ref("darts-s0-0")
    with pytest.raises(NasflowError, match="refused"):
        searched(load_params(ROOT / "params.yaml", None, ["search.names=[darts]", "search.seeds=[0]",
                                                          "search.protocol={}"]), tmp_path)


def test_kendall_refuses_a_search_dir_with_a_crafted_architectures_json(cli, tmp_path):
    d = tmp_path / "s0"
    d.mkdir()
    nio.write_json(d / "architectures.json", [{"id": "../../../tmp", "genotype": "genotype.json"}])
    (d / "history.csv").write_text("epoch,val_error\n1,50\n")
    res = cli("consistency", "kendall", "--search-dir", d, "--search-dir", d, "--train-root", tmp_path,
              "--out", tmp_path / "k.json")
    _one_line(res, "refused the architecture id")


def test_names_inside_their_folder_are_accepted(tmp_path):
    assert nio.inside(tmp_path, "genotype-3.json", "x") == tmp_path / "genotype-3.json"
    assert nio.inside(tmp_path, "cells/a.json", "x") == tmp_path / "cells" / "a.json"
