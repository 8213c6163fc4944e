"""Loaders on small files written in the official on-disk formats, checked against torchvision's
own readers (with only its checksum test switched off) and against the bytes written."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
import torchvision.datasets.cifar as tv_cifar

from realnet.data import datasets as data
from realnet.data.datasets import (DATASETS, MissingDatasetError, dataset_spec, digits_split_mask,
                                   load_images, read_idx)

RNG = np.random.default_rng(0)


def _write_pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def make_cifar10(root, n_per_batch=3, n_test=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = RNG.integers(0, 10, n).tolist()
        _write_pickle(folder / name, {"data": x, "labels": y, "batch_label": name})
        written[name] = (x, y)
    _write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return written


def make_cifar100(root, n_train=6, n_test=5):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        _write_pickle(folder / name, {"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
                                      "fine_labels": RNG.integers(0, 100, n).tolist(),
                                      "coarse_labels": RNG.integers(0, 20, n).tolist()})
    _write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})


def make_stl10(root, n_train=3, n_unlab=2, n_test=2):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    imgs = {}
    for stem, n in (("train", n_train), ("unlabeled", n_unlab), ("test", n_test)):
        # (N, C, H, W) images written column-major per channel, as the official binary files.
        x = RNG.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{stem}_X.bin")
        imgs[stem] = x
        if stem != "unlabeled":
            RNG.integers(1, 11, n).astype(np.uint8).tofile(folder / f"{stem}_y.bin")
    return imgs


def _idx_bytes(arr):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def make_fmnist(folder, n_train=7, n_test=3, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, n).astype(np.uint8)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as fh:
                    fh.write(_idx_bytes(arr))
            else:
                (folder / stem).write_bytes(_idx_bytes(arr))
        out[prefix] = (x, y)
    return out


@pytest.fixture
def no_system_fmnist(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST", tmp_path / "no-system-copy")


def _check_tensor_contract(x, y, spec, n):
    assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.is_contiguous() and x.device.type == "cpu"
    assert tuple(x.shape) == (n, spec.channels, spec.image_size, spec.image_size) and y.shape == (n,)


def test_cifar10_matches_written_bytes_and_torchvision(tmp_path, monkeypatch):
    written = make_cifar10(tmp_path)
    x, y = load_images("cifar10", tmp_path, "train")
    _check_tensor_contract(x, y, DATASETS["cifar10"], 15)
    ref = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert np.array_equal(x.numpy(), ref)
    assert y.tolist() == sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    xs, ys = load_images("cifar10", tmp_path, "ssl")
    assert torch.equal(xs, x) and torch.equal(ys, y)
    # torchvision reads the same folder to the same arrays once its MD5 checks are bypassed.
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    tv = tvd.CIFAR10(str(tmp_path), train=False)
    xt, yt = load_images("cifar10", tmp_path, "test")
    assert np.array_equal(xt.permute(0, 2, 3, 1).numpy(), tv.data) and yt.tolist() == tv.targets


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    make_cifar100(tmp_path)
    monkeypatch.setattr(tvd.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    for split, train, n in (("train", True, 6), ("test", False, 5)):
        x, y = load_images("cifar100", tmp_path, split)
        _check_tensor_contract(x, y, DATASETS["cifar100"], n)
        tv = tvd.CIFAR100(str(tmp_path), train=train)
        assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), tv.data) and y.tolist() == tv.targets


def test_stl10_column_major_layout_and_ssl_pool(tmp_path, monkeypatch):
    imgs = make_stl10(tmp_path)
    x, y = load_images("stl10", tmp_path, "train")
    _check_tensor_contract(x, y, DATASETS["stl10"], 3)
    assert np.array_equal(x.numpy(), imgs["train"])  # un-transposed back to row-major
    assert 0 <= y.min() and y.max() <= 9
    xs, ys = load_images("stl10", tmp_path, "ssl")
    _check_tensor_contract(xs, ys, DATASETS["stl10"], 5)
    assert np.array_equal(xs[3:].numpy(), imgs["unlabeled"]) and ys[3:].tolist() == [-1, -1]
    monkeypatch.setattr(tvd.STL10, "_check_integrity", lambda self: True)
    for split, tv_split in (("ssl", "train+unlabeled"), ("test", "test")):
        x, y = load_images("stl10", tmp_path, split)
        tv = tvd.STL10(str(tmp_path), split=tv_split)
        assert np.array_equal(x.numpy(), tv.data) and np.array_equal(y.numpy(), tv.labels)


def test_fashion_mnist_gz_in_root_and_torchvision_raw_layout(tmp_path, no_system_fmnist):
    w = make_fmnist(tmp_path / "a", gz=True)
    x, y = load_images("fashion_mnist", tmp_path / "a", "train")
    _check_tensor_contract(x, y, DATASETS["fashion_mnist"], 7)
    assert np.array_equal(x[:, 0].numpy(), w["train"][0]) and np.array_equal(y.numpy(), w["train"][1])
    # torchvision's layout: uncompressed files under <root>/FashionMNIST/raw.
    make_fmnist(tmp_path / "b" / "FashionMNIST" / "raw", gz=False)
    tv = tvd.FashionMNIST(str(tmp_path / "b"), train=False)
    x, y = load_images("fashion_mnist", tmp_path / "b", "test")
    _check_tensor_contract(x, y, DATASETS["fashion_mnist"], 3)
    assert torch.equal(x[:, 0], tv.data) and torch.equal(y, tv.targets)


@pytest.mark.skipif(not (data.SYSTEM_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="system Fashion-MNIST package not installed")
def test_system_fashion_mnist_and_its_statistics(tmp_path):
    x, y = load_images("fashion_mnist", tmp_path, "train")
    assert x.shape == (60000, 1, 28, 28) and torch.equal(torch.bincount(y), torch.full((10,), 6000))
    # statistics from the 256-bin histogram of pixel values (cheap and exact)
    hist = torch.bincount(x.view(-1), minlength=256).double()
    v = torch.arange(256, dtype=torch.float64) / 255
    mean = (hist * v).sum() / hist.sum()
    std = ((hist * (v - mean) ** 2).sum() / hist.sum()).sqrt()
    spec = dataset_spec("fashion_mnist")
    # The spec stores the statistics rounded to 4 decimals: agreement within 5e-5 + float error.
    assert abs(mean.item() - spec.mean[0]) < 1e-4 and abs(std.item() - spec.std[0]) < 1e-4


def test_digits_split_is_deterministic_stratified_and_disjoint():
    xtr, ytr = load_images("digits", None, "train")
    xte, yte = load_images("digits", None, "test")
    _check_tensor_contract(xtr, ytr, DATASETS["digits"], 1442)
    _check_tensor_contract(xte, yte, DATASETS["digits"], 355)
    from sklearn.datasets import load_digits
    d = load_digits()
    # Every 5th image of each class is test: exactly n_c // 5 test images of class c.
    per_class = np.bincount(d.target, minlength=10)
    assert torch.equal(torch.bincount(yte, minlength=10), torch.from_numpy(per_class // 5))
    assert torch.equal(torch.bincount(ytr, minlength=10), torch.from_numpy(per_class - per_class // 5))
    # Disjoint and complete: the split reassembles the sklearn images in order.
    test = digits_split_mask(d.target)
    full = np.empty((len(d.target), 1, 8, 8), dtype=np.uint8)
    full[test], full[~test] = xte.numpy(), xtr.numpy()
    assert np.array_equal(full[:, 0], np.round(d.images * 255 / 16).astype(np.uint8))
    xs, ys = load_images("digits", None, "ssl")
    assert torch.equal(xs, xtr) and torch.equal(ys, ytr)
    assert xtr.max() == 255 and xtr.min() == 0  # 0..16 scaled to 0..255
    spec = dataset_spec("digits")
    xf = xtr.double() / 255
    assert abs(xf.mean().item() - spec.mean[0]) < 1e-4 and abs(xf.std().item() - spec.std[0]) < 1e-4


def test_missing_datasets_list_every_path_and_the_remedy(tmp_path, no_system_fmnist):
    with pytest.raises(MissingDatasetError) as e:
        load_images("cifar10", tmp_path, "train")
    msg = str(e.value)
    assert all(str(tmp_path / "cifar-10-batches-py" / f"data_batch_{i}") in msg for i in range(1, 6))
    assert "download=true" in msg and isinstance(e.value, FileNotFoundError)
    with pytest.raises(MissingDatasetError, match="unlabeled_X.bin") as e:
        load_images("stl10", tmp_path, "ssl")
    with pytest.raises(MissingDatasetError) as e:
        load_images("fashion_mnist", tmp_path, "test")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "download=true" in msg
    for d in (tmp_path / "FashionMNIST" / "raw", tmp_path, data.SYSTEM_FASHION_MNIST):
        assert str(d / "t10k-images-idx3-ubyte.gz") in msg and str(d / "t10k-images-idx3-ubyte") in msg


def test_bad_names_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match="data.dataset"):
        dataset_spec("mnist")
    with pytest.raises(ValueError, match="data.dataset"):
        load_images("imagenet", tmp_path, "train")
    with pytest.raises(ValueError, match="data.split"):
        load_images("digits", tmp_path, "val")
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short-idx"
    short.write_bytes(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(ValueError, match="header says"):
        read_idx(short)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for stem in ("test_X.bin", "test_y.bin"):
        (folder / stem).write_bytes(b"\x01" * 100)
    with pytest.raises(ValueError, match="multiple of"):
        load_images("stl10", tmp_path, "test")
