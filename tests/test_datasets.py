"""Dataset layer: embedded loaders, torchvision loaders on fake files, MedMNIST .npz, imbalance.

Fast and offline: torchvision datasets are tested on tiny files written in torchvision's on-disk
format; downloads are replaced by fakes.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from tavaal_core.data import (
    Dataset,
    available_datasets,
    dataset_info,
    imbalanced_counts,
    load_dataset,
    make_imbalanced,
    subsample,
)
from tavaal_core.errors import ConfigError, DatasetUnavailable


# ------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------
def test_registry_lists_every_dataset_and_info():
    names = available_datasets()
    for name in ("moons", "digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "medmnist"):
        assert name in names
    assert names[:3] == ["moons", "digits", "mnist5k"]  # embedded first
    info = dataset_info("moons")
    assert info["kind"] == "vector" and info["embedded"] is True
    assert info["options"] == {"n_per_class": (500, 50), "noise": 0.2, "seed": 0, "test_n_per_class": (500, 500)}
    assert dataset_info("cifar10")["options"] == {"root": "data", "download": False}
    assert dataset_info("cifar10")["embedded"] is False
    med = dataset_info("medmnist")
    assert med["required"] == ["path"] and med["options"]["task"] == "auto"
    assert all(dataset_info(n)["description"] for n in names)


def test_unknown_dataset_names_field_and_choices():
    with pytest.raises(ConfigError) as err:
        load_dataset("imagenet")
    assert err.value.field == "dataset"
    assert "imagenet" in str(err.value) and "mnist5k" in str(err.value)
    with pytest.raises(ConfigError) as err:
        dataset_info("imagenet")
    assert err.value.field == "dataset"


def test_unknown_and_missing_options():
    with pytest.raises(ConfigError) as err:
        load_dataset("digits", nosie=0.1)
    assert err.value.field == "nosie"
    assert "test_fraction" in str(err.value) and "seed" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_dataset("medmnist")
    assert err.value.field == "path"


@pytest.mark.parametrize(
    "name, options, field",
    [
        ("digits", {"test_fraction": 1.5}, "test_fraction"),
        ("digits", {"seed": -1}, "seed"),
        ("moons", {"n_per_class": (5,)}, "n_per_class"),
        ("moons", {"test_n_per_class": (5, 0)}, "test_n_per_class"),
        ("moons", {"noise": -0.1}, "noise"),
        ("cifar10", {"download": "yes"}, "download"),
    ],
)
def test_bad_option_values_name_the_field(name, options, field):
    with pytest.raises(ConfigError) as err:
        load_dataset(name, **options)
    assert err.value.field == field


# ------------------------------------------------------------------------------------------
# Embedded datasets
# ------------------------------------------------------------------------------------------
def test_moons_paper_setting():
    ds = load_dataset("moons")
    assert ds.kind == "vector" and ds.input_shape == (2,) and ds.num_classes == 2
    assert ds.x_train.dtype == torch.float32 and ds.x_train.shape == (550, 2)
    assert ds.y_train.dtype == torch.int64
    assert ds.class_counts().tolist() == [500, 50]
    assert ds.class_counts("test").tolist() == [500, 500]  # balanced test set by default
    assert not ds.augment and ds.mean == () and ds.std == ()
    assert torch.equal(ds.normalize(ds.x_train), ds.x_train)  # vectors: unchanged
    # determinism, and train/test are different draws
    again = load_dataset("moons")
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_train, again.y_train)
    assert not torch.equal(ds.x_train, load_dataset("moons", seed=1).x_train)
    other = load_dataset("moons", n_per_class=[20, 30], test_n_per_class=(7, 9), noise=0.0)
    assert other.class_counts().tolist() == [20, 30] and other.class_counts("test").tolist() == [7, 9]


def test_digits_images():
    ds = load_dataset("digits")
    assert ds.kind == "image" and ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == (1, 8, 8)
    assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert len(ds.y_test) == 360  # 20 % stratified
    test_share = ds.class_counts("test") / (ds.class_counts() + ds.class_counts("test"))
    assert np.all(np.abs(test_share - 0.2) < 0.02)
    assert not ds.augment and len(ds.mean) == 1 and len(ds.std) == 1
    assert torch.equal(ds.x_test, load_dataset("digits").x_test)


def test_mnist5k_class_counts_and_normalisation():
    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert (ds.class_counts() + ds.class_counts("test")).tolist() == [500] * 10
    assert ds.class_counts().tolist() == [400] * 10 and ds.class_counts("test").tolist() == [100] * 10
    x = ds.normalize(ds.x_train)
    assert x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    single = ds.normalize(ds.x_train[0])  # one (C, H, W) image broadcasts the same way
    assert torch.allclose(single, x[0])


def test_to_moves_tensors_and_returns_a_new_dataset():
    ds = load_dataset("digits")
    moved = ds.to("cpu")
    assert moved is not ds and moved.name == ds.name
    assert torch.equal(moved.x_train, ds.x_train)


# ------------------------------------------------------------------------------------------
# Imbalance and subsets
# ------------------------------------------------------------------------------------------
def test_imbalance_ratio_counts_exactly():
    ds = load_dataset("digits")
    before = ds.class_counts()
    imb = make_imbalanced(ds, ratio=10, seed=0)
    expected = [max(1, n // 10) for n in before[:5]] + before[5:].tolist()  # floor, at least one
    assert imb.class_counts().tolist() == expected
    assert imbalanced_counts([5000] * 10, 10) == [500] * 5 + [5000] * 5  # TA-VAAL CIFAR-10
    assert imbalanced_counts([5000] * 10, 100) == [50] * 5 + [5000] * 5
    assert imbalanced_counts([3] * 4, 100) == [1, 1, 3, 3]
    # test set untouched; normalisation and name kept; description says what was done
    assert torch.equal(imb.x_test, ds.x_test) and torch.equal(imb.y_test, ds.y_test)
    assert imb.mean == ds.mean and imb.std == ds.std and imb.name == "digits"
    assert "1/10" in imb.description
    # kept samples are real samples of their class
    assert set(map(bytes, imb.x_train.numpy())) <= set(map(bytes, ds.x_train.numpy()))


def test_imbalance_is_deterministic():
    ds = load_dataset("digits")
    a, b = make_imbalanced(ds, ratio=10, seed=3), make_imbalanced(ds, ratio=10, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    c = make_imbalanced(ds, ratio=10, seed=4)
    assert not torch.equal(a.x_train, c.x_train)


def test_imbalance_explicit_counts():
    ds = load_dataset("moons")
    imb = make_imbalanced(ds, class_counts=[100, 20])
    assert imb.class_counts().tolist() == [100, 20]
    digits = load_dataset("digits")
    imb = make_imbalanced(digits, class_counts={0: 5, "3": 7})  # by index or by class name
    expected = digits.class_counts().copy()
    expected[0], expected[3] = 5, 7
    assert imb.class_counts().tolist() == expected.tolist()


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"ratio": 0.5}, "imbalance_ratio", ">= 1"),
        ({"ratio": float("nan")}, "imbalance_ratio", ">= 1"),
        ({}, "imbalance_ratio", "either"),
        ({"ratio": 10, "class_counts": [1, 1]}, "imbalance_ratio", "not both"),
        ({"class_counts": [600, 20]}, "class_counts", "class 0"),
        ({"class_counts": {1: 51}}, "class_counts", "class 1"),
        ({"class_counts": [1]}, "class_counts", "one count per class"),
        ({"class_counts": {7: 1}}, "class_counts", "7"),
        ({"class_counts": [-1, 3]}, "class_counts", "class 0"),
    ],
)
def test_imbalance_errors_name_the_field(kwargs, field, fragment):
    with pytest.raises(ConfigError) as err:
        make_imbalanced(load_dataset("moons"), **kwargs)
    assert err.value.field == field and fragment in str(err.value)


def test_subsample():
    ds = load_dataset("mnist5k")
    sub = subsample(ds, 1000, seed=0)
    assert len(sub.y_train) == 1000 and sub.x_train.shape == (1000, 1, 28, 28)
    assert torch.equal(sub.x_test, ds.x_test)
    assert sub.mean == ds.mean and sub.std == ds.std  # normalisation of the full training set
    assert torch.equal(sub.x_train, subsample(ds, 1000, seed=0).x_train)
    assert not torch.equal(sub.x_train, subsample(ds, 1000, seed=1).x_train)
    assert "1,000" in sub.description
    with pytest.raises(ConfigError) as err:
        subsample(ds, 4001)
    assert err.value.field == "subsample" and "4000" in str(err.value)


# ------------------------------------------------------------------------------------------
# torchvision datasets: absent files, fake files, downloads
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, fragments",
    [
        ("cifar10", ["cifar-10-batches-py", "data_batch_1", "data_batch_5", "test_batch"]),
        ("cifar100", ["cifar-100-python", "train", "test", "meta"]),
        ("mnist", ["MNIST/raw/", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
        ("fashion_mnist", ["FashionMNIST/raw/", "train-images-idx3-ubyte"]),
        ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    ],
)
def test_absent_files_give_one_clear_message(tmp_path, monkeypatch, name, fragments):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name)  # root="data", relative: the message must give the absolute folder
    message = str(err.value)
    assert str(tmp_path.resolve() / "data") in message
    assert "download=True" in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert not (tmp_path / "data").exists()  # nothing created when not downloading


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed idx file (big-endian header: 0, 0, type 0x08 = ubyte, ndim; then dims)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_raw_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _fake_mnist(rng, 12), _fake_mnist(rng, 5)
    raw = tmp_path / folder / "raw"
    _write_idx(raw / "train-images-idx3-ubyte", xtr)
    _write_idx(raw / "train-labels-idx1-ubyte", ytr)
    _write_idx(raw / "t10k-images-idx3-ubyte", xte)
    _write_idx(raw / "t10k-labels-idx1-ubyte", yte)
    ds = load_dataset(name, root=str(tmp_path))
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert np.array_equal(ds.x_train[:, 0].numpy(), xtr) and np.array_equal(ds.y_test.numpy(), yte)
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10 and not ds.augment
    assert ds.mean[0] == pytest.approx(xtr.mean() / 255)
    # a fresh Dataset each time; mutating one does not reach the in-process cache
    ds.x_train[0] = 0
    assert np.array_equal(load_dataset(name, root=str(tmp_path)).x_train[:, 0].numpy(), xtr)


def test_mnist_legacy_processed_files(tmp_path):
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = _fake_mnist(rng, 6), _fake_mnist(rng, 4)
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    torch.save((torch.from_numpy(xtr), torch.from_numpy(ytr).long()), processed / "training.pt")
    torch.save((torch.from_numpy(xte), torch.from_numpy(yte).long()), processed / "test.pt")
    ds = load_dataset("mnist", root=tmp_path)
    assert np.array_equal(ds.x_test[:, 0].numpy(), xte) and np.array_equal(ds.y_train.numpy(), ytr)


def _cifar_files(folder: Path, name: str, rng, n_per_file: int = 4) -> dict[str, np.ndarray]:
    """CIFAR pickles as torchvision reads them: {'data': (n, 3072) uint8, 'labels'|'fine_labels'}."""
    folder.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key, meta = "labels", ("batches.meta", "label_names", 10)
    else:
        files, key, meta = ["train", "test"], "fine_labels", ("meta", "fine_label_names", 100)
    written = {}
    for f in files:
        data = rng.integers(0, 256, size=(n_per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, meta[2], size=n_per_file).tolist()
        with open(folder / f, "wb") as fh:
            pickle.dump({"data": data, key: labels}, fh)
        written[f] = data
    with open(folder / meta[0], "wb") as fh:
        pickle.dump({meta[1]: [f"c{i}" for i in range(meta[2])]}, fh)
    return written


@pytest.fixture
def cifar_without_md5(monkeypatch):
    """Fake files cannot match the real MD5 sums; torchvision skips the check when md5 is None."""
    from torchvision.datasets import CIFAR10, CIFAR100

    for cls in (CIFAR10, CIFAR100):
        monkeypatch.setattr(cls, "train_list", [[f, None] for f, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[f, None] for f, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_cifar_pickle_batches(tmp_path, cifar_without_md5, name, folder):
    written = _cifar_files(tmp_path / folder, name, np.random.default_rng(2))
    ds = load_dataset(name, root=tmp_path)
    n_train = 20 if name == "cifar10" else 4
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (4, 3, 32, 32) and ds.augment and len(ds.mean) == 3
    first = "data_batch_1" if name == "cifar10" else "train"
    assert np.array_equal(ds.x_train[:4].numpy().reshape(4, -1), written[first])  # CHW order kept
    assert ds.class_names[:2] == ["c0", "c1"] and ds.num_classes == (10 if name == "cifar10" else 100)
    x = ds.normalize(ds.x_train)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_cifar_files_that_fail_the_checksum(tmp_path):
    _cifar_files(tmp_path / "cifar-10-batches-py", "cifar10", np.random.default_rng(3))
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10", root=tmp_path)
    assert "corrupted" in str(err.value) and str(tmp_path.resolve()) in str(err.value)
    assert "\n" not in str(err.value)


def test_failed_download_leaves_nothing(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(url, download_root, filename=None, md5=None, **kwargs):
        (Path(download_root) / (filename or "partial")).write_bytes(b"half a tarball")
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    root = tmp_path / "data"
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar10", root=root, download=True)
    message = str(err.value)
    assert "download" in message and "URLError" in message and "cifar-10-batches-py" in message
    assert "\n" not in message
    assert list(root.iterdir()) == []  # the partial file went with the temporary folder


def test_download_moves_files_into_place(tmp_path, monkeypatch, cifar_without_md5):
    import torchvision.datasets.cifar as tv_cifar

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        _cifar_files(Path(download_root) / "cifar-10-batches-py", "cifar10", np.random.default_rng(4))
        (Path(download_root) / filename).write_bytes(b"the tarball, not kept")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    ds = load_dataset("cifar10", root=tmp_path, download=True)
    assert ds.x_train.shape == (20, 3, 32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py"]
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_svhn_mat_files(tmp_path, monkeypatch):
    import scipy.io
    from torchvision.datasets import SVHN

    monkeypatch.setattr(SVHN, "split_list", {k: [u, f, None] for k, (u, f, _) in SVHN.split_list.items()})
    rng = np.random.default_rng(5)
    for split, n in (("train", 6), ("test", 3)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # SVHN's (H, W, C, N)
        y = np.array([[10], [1], [2], [3], [4], [5]][:n], dtype=np.uint8)  # label 10 is digit 0
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    ds = load_dataset("svhn", root=tmp_path)
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.y_train.tolist() == [0, 1, 2, 3, 4, 5]
    assert not ds.augment  # no flips for digits


# ------------------------------------------------------------------------------------------
# MedMNIST
# ------------------------------------------------------------------------------------------
def _medmnist_npz(path: Path, *, colour: bool = False, multilabel: bool = False, drop: str | None = None) -> dict:
    rng = np.random.default_rng(6)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 6)):
        shape = (n, 28, 28, 3) if colour else (n, 28, 28)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if multilabel:
            labels = (rng.random((n, 14)) < 0.1).astype(np.uint8)
            labels[0] = 0  # at least one normal image
            labels[1, 3] = 1  # and one abnormal
        else:
            labels = rng.integers(0, 4, size=(n, 1)).astype(np.uint8)
        arrays[f"{split}_labels"] = labels
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_multiclass(tmp_path):
    arrays = _medmnist_npz(tmp_path / "bloodmnist.npz", colour=True)
    ds = load_dataset("medmnist", path=str(tmp_path / "bloodmnist.npz"))
    assert ds.x_train.shape == (10, 3, 28, 28) and ds.x_test.shape == (6, 3, 28, 28)
    assert np.array_equal(ds.x_train.numpy(), arrays["train_images"].transpose(0, 3, 1, 2))
    assert np.array_equal(ds.y_train.numpy(), arrays["train_labels"][:, 0])
    assert ds.y_train.dtype == torch.int64 and len(ds.mean) == 3 and "bloodmnist" in ds.description
    with_val = load_dataset("medmnist", path=tmp_path / "bloodmnist.npz", include_val=True)
    assert len(with_val.y_train) == 14 and len(with_val.y_test) == 6


def test_medmnist_chest_binary_abnormal(tmp_path):
    arrays = _medmnist_npz(tmp_path / "chestmnist.npz", multilabel=True)
    ds = load_dataset("medmnist", path=tmp_path / "chestmnist.npz")  # auto -> binary_abnormal
    assert ds.class_names == ["normal", "abnormal"] and ds.x_train.shape == (10, 1, 28, 28)
    assert ds.y_train.tolist() == arrays["train_labels"].any(axis=1).astype(int).tolist()
    assert ds.y_train[0] == 0 and ds.y_train[1] == 1
    with pytest.raises(ConfigError) as err:
        load_dataset("medmnist", path=tmp_path / "chestmnist.npz", task="multiclass")
    assert err.value.field == "task" and "14" in str(err.value)


def test_medmnist_errors(tmp_path):
    missing = tmp_path / "nothere.npz"
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("medmnist", path=missing)
    assert str(missing) in str(err.value) and "train_images" in str(err.value) and "test_labels" in str(err.value)

    _medmnist_npz(tmp_path / "broken.npz", drop="test_labels")
    with pytest.raises(ConfigError) as err:
        load_dataset("medmnist", path=tmp_path / "broken.npz")
    assert err.value.field == "path" and "test_labels" in str(err.value)

    with pytest.raises(ConfigError) as err:
        load_dataset("medmnist", path=tmp_path / "broken.npz", task="segmentation")
    assert err.value.field == "task"

    # object arrays would need unpickling: refused, not loaded
    np.savez(tmp_path / "pickled.npz", **{k: np.array([None] * 3, dtype=object) for k in
                                            ("train_images", "train_labels", "test_images", "test_labels")})
    with pytest.raises(ConfigError) as err:
        load_dataset("medmnist", path=tmp_path / "pickled.npz")
    assert err.value.field == "path"


def test_dataset_checks_its_own_shape():
    with pytest.raises(ValueError):
        Dataset("x", torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), torch.zeros(1, 2),
                torch.zeros(1, dtype=torch.int64), ["a"], (2,), "vector")
