"""Image datasets as uint8 tensors ``(N, C, H, W)`` for on-device augmentation.

Every dataset is loaded whole into memory (CIFAR-10/100: 150 MB, STL-10 train+unlabeled: 2.9 GB,
Fashion-MNIST: 47 MB, digits: 0.1 MB) and returned as a contiguous CPU tensor; the trainer moves it
to the device once and augments batches there (:mod:`realnet.data.augment`).

On-disk formats are read directly, in the layouts that ``torchvision.datasets`` documents and
writes (so a folder prepared by torchvision works as is):

- CIFAR-10: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch}``, Python pickles with
  ``data`` (N x 3072 uint8, channel-major 3x32x32) and ``labels``.
- CIFAR-100: ``<root>/cifar-100-python/{train, test}``, pickles with ``data`` and ``fine_labels``.
- STL-10: ``<root>/stl10_binary/{train_X.bin, train_y.bin, unlabeled_X.bin, test_X.bin,
  test_y.bin}``; raw uint8, each image stored as 3 x 96 x 96 in column-major order (so every
  channel is transposed after a row-major reshape); labels 1..10 (stored) -> 0..9.
- Fashion-MNIST: IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, looked up in
  ``<root>/FashionMNIST/raw`` (torchvision's layout), ``<root>`` itself, and the system folder
  :data:`SYSTEM_FASHION_MNIST` (Debian/Ubuntu package ``dataset-fashion-mnist``).
- digits: scikit-learn's bundled 8x8 digits (values 0..16, scaled to 0..255); no files needed.
- imagefolder (own data): torchvision's ImageFolder layout, ``<root>/train/<class>/*.png|jpg|...``
  and ``<root>/test/<class>/...`` (or ``val/``), or an unlabelled folder (images at any depth);
  every image is converted to RGB, its shorter side resized to ``data.image_size`` (default 64)
  and centre-cropped (:func:`_load_imagefolder`).

Checksums: torchvision verifies MD5 sums of the full official files before it reads them, which
rejects user folders holding re-packed or partial copies. Here files are read directly and
checked only for a consistent format (sizes, IDX magic numbers); torchvision is called only when
``download=True`` and the files are missing, and its download does verify the checksums of what
it fetches.

A missing dataset raises :class:`MissingDatasetError` naming every path looked at and how to get
the data.
"""
from __future__ import annotations

import dataclasses
import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from analysis.errors import ConfigError


__all__ = [
    "DatasetSpec",
    "input_facts",
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "imagefolder_classes",
    "SPLITS",
    "SYSTEM_FASHION_MNIST",
    "DEFAULT_ROOT",
    "MissingDatasetError",
    "dataset_spec",
    "load_images",
    "read_idx",
    "digits_split_mask",
    "data_identity",
]

#: ``"ssl"``: the pool SSL trains on; ``"train"``: labelled train split (probe fit);
#: ``"test"``: labelled test split (probe / kNN evaluation).
SPLITS = ("ssl", "train", "test")

#: Where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the IDX files.
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Data folder used when ``root`` is None (relative to the working directory).
DEFAULT_ROOT = Path("data")


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset; ``mean``/``std`` are per channel on the [0, 1] scale."""

    name: str
    image_size: int
    channels: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def input_facts(spec: DatasetSpec) -> dict[str, Any]:
    """What a trunk trained on ``spec`` takes (recorded in ``run.json`` and an export's
    ``trunk.json``): images scaled to [0, 1], normalised per channel as ``(x - mean) / std``, with
    ``channels`` channels at ``image_size`` px (the stored size; evaluation features use it)."""
    return {"image_size": int(spec.image_size), "channels": int(spec.channels),
            "mean": [float(m) for m in spec.mean], "std": [float(s) for s in spec.std],
            "scale": "[0, 1], then (x - mean) / std per channel"}


# mean/std: per-channel statistics of the training images on the [0, 1] scale.
# CIFAR-10/100: the exact training-set statistics (not the often-copied (0.2023, 0.1994, 0.2010),
# which are not the pixel standard deviations). STL-10: its images come from ImageNet; the ImageNet
# statistics are used, as by common STL-10 SSL code. Fashion-MNIST and digits: computed from the
# training split returned by this module (tests re-compute them).
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", 32, 3, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetSpec("cifar100", 32, 3, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": DatasetSpec("stl10", 96, 3, 10, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "fashion_mnist": DatasetSpec("fashion_mnist", 28, 1, 10, (0.2860,), (0.3530,)),
    "digits": DatasetSpec("digits", 8, 1, 10, (0.3052,), (0.3760,)),
    # any torchvision ImageFolder tree (own data): stored at data.image_size (default 64) px, RGB,
    # ImageNet statistics; the number of classes is read from the folders (0 here)
    "imagefolder": DatasetSpec("imagefolder", 64, 3, 0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # a torch Dataset handed to the Python API (realnet.data.torchdata.TorchData): every fact is read
    # from the data when the run starts
    "torch": DatasetSpec("torch", 0, 0, 0, (), ()),
}

#: Image file endings an ImageFolder tree may hold (torchvision's IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class MissingDatasetError(FileNotFoundError):
    """A dataset's files were not found; the message lists every path looked at and how to get them."""

    def __init__(self, name: str, looked_at: list[Path], how: str) -> None:
        self.name = name
        self.looked_at = [Path(p) for p in looked_at]
        lines = "\n".join(f"  - {p}" for p in self.looked_at)
        super().__init__(f"dataset {name!r} not found. Looked at:\n{lines}\nTo get it: {how}")


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ``ValueError`` naming ``data.dataset`` if unknown."""
    if name not in DATASETS:
        raise ConfigError(f"data.dataset: unknown dataset {name!r}; allowed: {sorted(DATASETS)}")
    return DATASETS[name]


def load_images(name: str, root: str | Path | None, split: str, *,
                download: bool = False, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split: ``(images uint8 (N, C, H, W) contiguous CPU, labels int64 (N,))``.

    Labels are -1 for unlabelled images (STL-10's unlabeled part of the ``"ssl"`` split).
    ``root`` None means :data:`DEFAULT_ROOT`. With ``download=True`` missing files are fetched by
    torchvision into ``root`` (CIFAR, STL-10, Fashion-MNIST); otherwise a missing dataset raises
    :class:`MissingDatasetError`. ``size``: the stored side of an ``imagefolder`` dataset
    (default its spec's 64; :func:`_load_imagefolder`); other datasets keep their native size.
    """
    spec = dataset_spec(name)
    if name == "imagefolder":
        spec = dataclasses.replace(spec, image_size=int(size or spec.image_size))
    if split not in SPLITS:
        raise ConfigError(f"data.split: must be one of {list(SPLITS)}, got {split!r}")
    root_path = DEFAULT_ROOT if root is None else Path(root).expanduser()
    if name == "imagefolder":
        images, labels = _load_imagefolder(root_path, split, spec.image_size)
    else:
        images, labels = _LOADERS[name](root_path, split, bool(download))
    images = torch.from_numpy(np.require(images, dtype=np.uint8, requirements=["C", "W"]))
    labels = torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())
    if images.shape[1:] != (spec.channels, spec.image_size, spec.image_size) or len(images) != len(labels):
        raise ConfigError(f"{name}: files under {root_path} have unexpected shape "
                         f"{tuple(images.shape)} / {len(labels)} labels")
    return images.contiguous(), labels


# --------------------------------------------------------------------------------------- CIFAR

@dataclass(frozen=True)
class _CifarLayout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    tv_class: str  # torchvision.datasets class used only for download


_CIFAR = {
    "cifar10": _CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                            ("test_batch",), "labels", "CIFAR10"),
    "cifar100": _CifarLayout("cifar-100-python", ("train",), ("test",), "fine_labels", "CIFAR100"),
}


def _load_cifar(name: str, root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    lay = _CIFAR[name]
    files = [root / lay.folder / f for f in (lay.test_files if split == "test" else lay.train_files)]
    if not all(f.is_file() for f in files):
        if not download:
            raise MissingDatasetError(
                name, files, f"pass download=true (data.download=true) to fetch it into {root} "
                f"with torchvision, or copy the extracted '{lay.folder}' folder there")
        _torchvision_download(lay.tv_class, root)
    xs, ys = [], []
    for f in files:
        with open(f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ConfigError(f"{f}: 'data' must be (N, 3072) uint8, got shape {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[lay.label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


# -------------------------------------------------------------------------------------- STL-10

_STL_FOLDER = "stl10_binary"
_STL_FILES = {  # split -> [(images file, labels file or None)]
    "ssl": [("train_X.bin", "train_y.bin"), ("unlabeled_X.bin", None)],
    "train": [("train_X.bin", "train_y.bin")],
    "test": [("test_X.bin", "test_y.bin")],
}


def _load_stl10(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    folder = root / _STL_FOLDER
    needed = [folder / f for pair in _STL_FILES[split] for f in pair if f is not None]
    if not all(f.is_file() for f in needed):
        if not download:
            raise MissingDatasetError(
                "stl10", needed, f"pass download=true (data.download=true) to fetch it (2.6 GB) into "
                f"{root} with torchvision, or copy the extracted '{_STL_FOLDER}' folder there")
        _torchvision_download("STL10", root, split="train+unlabeled" if split == "ssl" else split)
    xs, ys = [], []
    for xf, yf in _STL_FILES[split]:
        x = _read_stl_images(folder / xf)
        if yf is None:
            y = np.full(len(x), -1, dtype=np.int64)
        else:
            y = np.fromfile(folder / yf, dtype=np.uint8).astype(np.int64) - 1
            if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
                raise ConfigError(f"{folder / yf}: expected {len(x)} labels in 1..10")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _read_stl_images(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    per = 3 * 96 * 96
    if raw.size % per:
        raise ConfigError(f"{path}: size {raw.size} is not a multiple of 3*96*96")
    # Column-major per image: a row-major reshape gives (N, C, W, H); swap the last two axes.
    return raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)


# ------------------------------------------------------------------------------- Fashion-MNIST

_FMNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _fmnist_dirs(root: Path) -> list[Path]:
    return [root / "FashionMNIST" / "raw", root, SYSTEM_FASHION_MNIST]


def _find_file(dirs: list[Path], stem: str, looked: list[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / stem, d / f"{stem}.gz"):
            looked.append(cand)
            if cand.is_file():
                return cand
    return None


def _load_fashion_mnist(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    stems = _FMNIST_FILES["test" if split == "test" else "train"]
    for attempt in range(2):
        looked: list[Path] = []
        found = [_find_file(_fmnist_dirs(root), s, looked) for s in stems]
        if all(f is not None for f in found):
            break
        if not download or attempt == 1:
            raise MissingDatasetError(
                "fashion_mnist", looked, "install the system package (apt-get install "
                f"dataset-fashion-mnist), or pass download=true (data.download=true) to fetch it "
                f"into {root / 'FashionMNIST' / 'raw'} with torchvision")
        _torchvision_download("FashionMNIST", root)
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ConfigError(f"{found[0]}, {found[1]}: expected (N, 28, 28) images and N labels")
    return images[:, None], labels.astype(np.int64)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) holding unsigned bytes (type code 0x08)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        buf = fh.read()
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise ConfigError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = buf[3]
    dims = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(buf) - offset != int(np.prod(dims)):
        raise ConfigError(f"{path}: header says shape {dims}, data holds {len(buf) - offset} bytes")
    return np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(dims)


# -------------------------------------------------------------------------------------- digits

def digits_split_mask(labels: np.ndarray) -> np.ndarray:
    """Deterministic stratified test mask: within each class every 5th image (by order) is test."""
    rank = np.empty_like(labels)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return rank % 5 == 4


def _load_digits(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    test = digits_split_mask(labels)
    keep = test if split == "test" else ~test
    return images[keep], labels[keep]


def _imagefolder_split_dir(root: Path, split: str) -> Path | None:
    """``root/train`` for ``ssl`` and ``train``, ``root/test`` or ``root/val`` for ``test``; None
    when the folder has no such subfolder."""
    names = ("train",) if split in ("ssl", "train") else ("test", "val")
    return next((root / n for n in names if (root / n).is_dir()), None)


def imagefolder_classes(root: str | Path) -> list[str]:
    """The class names of a labelled ImageFolder tree: the sorted (non-hidden) subfolders of
    ``root/train`` that hold images, when ``root/train`` holds no image itself. ``[]`` for an
    unlabelled folder (:func:`_load_imagefolder`)."""
    folder = _imagefolder_split_dir(Path(root).expanduser(), "train")
    if folder is None or _image_files(folder):
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and _image_files(p))


def _all_image_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (any depth), sorted; hidden files and folders and
    ``._name`` sidecars are skipped."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _image_files(folder: Path) -> list[Path]:
    """The image files of a class folder, sorted; hidden files and macOS ``._name`` sidecars
    (AppleDouble metadata, not images) are not images."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


#: Modes whose pixel values are integers above 8 bits: read with their true intensities, scaled
#: from their full range (16 bits) to 0..255 instead of clipped at 255.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _rgb(im, path: Path):
    """``im`` as an 8-bit RGB PIL image: 16-bit greyscale scaled by 255/65535 (a 32-bit integer
    image whose values exceed 16 bits, or a float image, is refused naming the file)."""
    from PIL import Image

    if im.mode in _WIDE_MODES:
        a = np.asarray(im, dtype=np.int64)
        if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
            raise ConfigError(f"{path}: a {im.mode} image with values outside 0..65535; convert it "
                              "to 8 or 16 bits per channel")
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        raise ConfigError(f"{path}: a floating-point (mode F) image; convert it to 8 or 16 bits per channel")
    return im.convert("RGB")


def _read_image(f: Path, size: int) -> np.ndarray:
    """One image file as uint8 ``(3, size, size)``: RGB (16-bit scaled, :func:`_rgb`), the shorter
    side resized to ``size`` (bilinear, antialiased), centre-cropped. A file that cannot be read as
    an image (truncated, empty, not an image, or larger than PIL's decompression-bomb limit) is
    refused in one line naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            im = _rgb(im, f)
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           Image.BILINEAR, reducing_gap=None)
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ConfigError(f"{f}: cannot be read as an image ({type(e).__name__}: {why}); "
                          "remove or replace it") from None


_LAYOUTS = ("a labelled tree (train/<class>/* and test/<class>/* or val/<class>/*, torchvision's "
            "ImageFolder layout) or an unlabelled folder (images at any depth, no class subfolders "
            "under train/)")


def _load_imagefolder(root: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A split of an image folder as uint8 ``(N, 3, size, size)`` (:func:`_read_image`) and labels.

    - Labelled (``root/train/<class>/``, :func:`imagefolder_classes`): ``ssl`` and ``train`` read
      ``root/train``, ``test`` reads ``root/test`` or ``root/val`` (no such folder: an empty
      split); labels by the sorted class names of ``root/train``.
    - Unlabelled (no ``root/train``, or one with images of its own or no subfolder with images):
      ``ssl`` is every image under ``root`` at any depth, label -1; ``train`` and ``test`` are
      empty.

    An empty split means evaluation without labels (:func:`realnet.data.pools.load_run_data`).
    Hidden files and ``._name`` sidecars are skipped."""
    if not root.is_dir():
        raise MissingDatasetError("imagefolder", [root], f"point data.root at {_LAYOUTS}")
    classes = imagefolder_classes(root)
    if classes:
        folder = _imagefolder_split_dir(root, split)
        files = [(f, label) for label, name in enumerate(classes)
                 for f in _image_files(folder / name)] if folder is not None else []
    else:
        files = [(f, -1) for f in _all_image_files(root)] if split == "ssl" else []
    if split == "ssl" and not files:
        raise MissingDatasetError("imagefolder", [root], f"found no images "
                                  f"({', '.join(IMAGE_EXTENSIONS)}); point data.root at {_LAYOUTS}")
    images = [_read_image(f, size) for f, _ in files]
    return (np.stack(images) if images else np.zeros((0, 3, size, size), np.uint8),
            np.asarray([label for _, label in files], dtype=np.int64))


# ------------------------------------------------------------------------------ the SSL pool


# ------------------------------------------------------------------------------------- helpers

def _torchvision_download(cls_name: str, root: Path, **kwargs) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tvd, cls_name)(str(root), download=True, **kwargs)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; torchvision raises RuntimeError on a bad archive
        raise DownloadError(f"data.download: fetching {cls_name} into {str(root)!r} failed "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                            "without a network, copy the dataset files there and set data.download=false") from None


class DownloadError(RuntimeError):
    """torchvision's download of a dataset failed (no network, a server error, a bad archive)."""


_LOADERS: dict[str, Callable[[Path, str, bool], tuple[np.ndarray, np.ndarray]]] = {
    "cifar10": lambda r, s, d: _load_cifar("cifar10", r, s, d),
    "cifar100": lambda r, s, d: _load_cifar("cifar100", r, s, d),
    "stl10": _load_stl10,
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
}


def data_identity(dataset: str, root: str | Path | None) -> dict[str, object]:
    """What identifies a run's images, recorded in ``run.json`` and compared on every resume: the
    dataset's name and, for an image folder, the number of image files and a SHA-256 of their
    paths relative to the root with their sizes (so the tree may move, but not change)."""
    import hashlib

    out: dict[str, object] = {"dataset": dataset}
    if dataset != "imagefolder":
        return out
    base = Path(root or DEFAULT_ROOT).expanduser()
    files = _all_image_files(base) if base.is_dir() else []
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(base).as_posix()}:{f.stat().st_size}\n".encode())
    out.update(n_files=len(files), fingerprint=h.hexdigest()[:16])
    return out

