import io

import numpy as np
import pytest

from nasflow.data.archives import read_archive
from nasflow.data.datasets import load, prepare
from nasflow.data.formats import read_idx
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError
from nasflow.settings import load_params
from conftest import FASHION_MNIST_DIR, ROOT, SHARED_DATASETS

needs_shared = pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(),
                                  reason="../shared/datasets is not beside this checkout")


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar")
    params = load_params(ROOT / "params.yaml", overrides=[f"data.root={tmp}", f"data.archive_dirs=[{SHARED_DATASETS}]"])
    return params, load(params, "cifar10")


@needs_shared
def test_cifar10_imports_from_the_shared_archive(cifar10):
    params, data = cifar10
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert data.x_train.dtype == np.uint8
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    assert data.classes[0] == "airplane"
    # the prepared file is written once and read back as is
    assert (params.path(params["data"]["root"]) / "cifar10.npz").is_file()


@needs_shared
def test_split_is_stratified_disjoint_and_seeded(cifar10):
    _, data = cifar10
    labels = data.y_train  # sorted by class: a split by position would lose classes
    a, b = stratified_split(labels, 0.5, seed=0)
    assert len(a) == len(b) == 25000 and not set(a) & set(b)
    for part in (a, b):
        assert np.bincount(labels[part], minlength=10).tolist() == [2500] * 10
    a2, _ = stratified_split(labels, 0.5, seed=0)
    a3, _ = stratified_split(labels, 0.5, seed=1)
    assert np.array_equal(a, a2) and not np.array_equal(a, a3)


@needs_shared
def test_subsets_hold_every_class(cifar10):
    _, data = cifar10
    sub = stratified_subset(data.y_train, per_class=7, seed=3)
    assert np.bincount(data.y_train[sub], minlength=10).tolist() == [7] * 10
    frac = stratified_subset(data.y_test, fraction=0.01, seed=3)
    assert set(data.y_test[frac]) == set(range(10))
    with pytest.raises(NasflowError, match="exactly one"):
        stratified_subset(data.y_train)


def _encoded_archive(path, n_per_class=3, classes=4, size=8):
    from PIL import Image

    blobs, offsets, labels = [], [0], []
    rng = np.random.default_rng(0)
    for c in range(classes):
        for _ in range(n_per_class):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
            blobs.append(buf.getvalue())
            offsets.append(offsets[-1] + len(blobs[-1]))
            labels.append(c)
    data = np.frombuffer(b"".join(blobs), np.uint8)
    np.savez(path, train_bytes=data, train_offsets=np.array(offsets), test_bytes=data,
             test_offsets=np.array(offsets), y_train=np.array(labels), y_test=np.array(labels),
             classes=np.array([f"c{i}" for i in range(classes)]), encoding=np.array("jpeg"), source=np.array("test"))


def test_encoded_archive_is_decoded(tmp_path):
    path = tmp_path / "tiny.npz"
    _encoded_archive(path)
    a = read_archive(path)
    assert a.x_train.shape == (12, 8, 8, 3) and a.classes == ["c0", "c1", "c2", "c3"]


def test_truncated_archive_is_refused(tmp_path):
    path = tmp_path / "cifar10-jpeg.npz"
    _encoded_archive(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(NasflowError, match="truncated or corrupt"):
        read_archive(path)


def test_absent_dataset_says_where_it_looked(params_file, tmp_path):
    params = load_params(params_file, overrides=[f"data.archive_dirs=[{tmp_path / 'empty'}]", "data.download=false"])
    with pytest.raises(NasflowError, match=r"dataset cifar10 not found: looked for .*cifar10-jpeg.npz.*cs.toronto.edu"):
        prepare(params, "cifar10")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_idx_files(params_file):
    params = load_params(params_file)
    data = load(params, "fashion-mnist")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def test_idx_reader_refuses_truncated_files(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00\x02" + b"\x01" * 7)
    with pytest.raises(NasflowError, match="truncated or corrupt idx"):
        read_idx(path)


def _tiny_cifar10_archive(folder):
    """CIFAR-10's official python archive (cifar-10-python.tar.gz) at 10 images per batch: the layout,
    pickles and keys torchvision reads, written here."""
    import hashlib
    import pickle
    import tarfile

    rng = np.random.default_rng(0)
    inner = folder / "cifar-10-batches-py"
    inner.mkdir(parents=True)
    md5 = {}
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in batches:
        entry = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10)),
                 "batch_label": name}
        (inner / name).write_bytes(pickle.dumps(entry))
        md5[name] = hashlib.md5((inner / name).read_bytes()).hexdigest()
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (inner / "batches.meta").write_bytes(pickle.dumps(meta))
    md5["batches.meta"] = hashlib.md5((inner / "batches.meta").read_bytes()).hexdigest()
    archive = folder / "serve" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(inner, arcname="cifar-10-batches-py")
    return archive, md5, hashlib.md5(archive.read_bytes()).hexdigest()


def test_a_missing_dataset_is_downloaded_from_its_official_url_checked_and_prepared(params_file, tmp_path,
                                                                                     monkeypatch, capsys):
    """The default settings download what no archive dir holds: torchvision's CIFAR-10 download (its URL
    pointed at a server of this test's own on 127.0.0.1, its checksums those of the archive served)."""
    import functools
    import http.server
    import threading

    import torchvision.datasets as tvd

    from nasflow.settings import load_params

    archive, md5, archive_md5 = _tiny_cifar10_archive(tmp_path / "official")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert tvd.CIFAR10.url.startswith("https://www.cs.toronto.edu/")  # the real path, replaced only here
        monkeypatch.setattr(tvd.CIFAR10, "url", f"http://127.0.0.1:{server.server_port}/{archive.name}")
        monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", archive_md5)
        monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
        monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
        monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5["batches.meta"]})
        params = load_params(params_file, None, [f"data.archive_dirs=['{tmp_path / 'empty'}']"])
        assert params["data"]["download"] is True  # the default
        path = prepare(params, "cifar10")
    finally:
        server.shutdown()
    arrays = read_archive(path)
    assert arrays.x_train.shape == (50, 32, 32, 3) and arrays.x_test.shape == (10, 32, 32, 3)
    assert sorted(arrays.y_train.tolist()) == sorted(list(range(10)) * 5)
    err = capsys.readouterr().err
    assert "downloading it from its official source into" in err and str(params.path("data") / "raw" / "cifar10") in err

    # a corrupt download is refused by its checksum, in one line
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(tvd.CIFAR10, "url", f"http://127.0.0.1:{server.server_port}/{archive.name}")
        other = load_params(params_file, None, [f"data.archive_dirs=['{tmp_path / 'empty'}']", "data.root=other"])
        with pytest.raises(NasflowError, match="cifar10: download failed"):
            prepare(other, "cifar10")
    finally:
        server.shutdown()
