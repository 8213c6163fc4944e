"""Own data: an ImageFolder tree (data.dataset=imagefolder) is read, resized, labelled and trained on."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realnet.data.datasets import MissingDatasetError, imagefolder_classes, load_images

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, n: int = 12) -> Path:
    """Two classes told apart by colour (red-ish / blue-ish), non-square images of mixed sizes and
    formats, a stray text file, a test split in val/."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", n // 2)):
        for c, name in enumerate(("cat", "dog")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(count):
                h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
                img = rng.integers(0, 60, size=(h, w, 3)).astype(np.uint8)
                img[..., 0 if c == 0 else 2] += 180
                Image.fromarray(img).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
            (d / "notes.txt").write_text("not an image")
    return root


def test_loader_reads_classes_sizes_and_labels(tmp_path):
    root = make_tree(tmp_path / "data")
    assert imagefolder_classes(root) == ["cat", "dog"]
    x, y = load_images("imagefolder", root, "train", size=16)
    assert tuple(x.shape) == (24, 3, 16, 16) and x.dtype.__str__() == "torch.uint8"
    assert y.tolist() == [0] * 12 + [1] * 12
    red, blue = x[:12, 0].float().mean(), x[12:, 2].float().mean()
    assert red > 150 and blue > 150 and x[:12, 2].float().mean() < 60  # colours kept, labels right
    xt, yt = load_images("imagefolder", root, "test", size=16)
    assert tuple(xt.shape) == (12, 3, 16, 16) and yt.tolist() == [0] * 6 + [1] * 6


def test_centre_crop_of_the_shorter_side(tmp_path):
    """A 40x20 image whose middle 20x20 square is white and whose sides are black: resized to 10
    px on the shorter side and centre-cropped, it is white (the outermost columns blend a little
    with the black by the antialiased resize; a crop off centre would show black columns)."""
    d = tmp_path / "data" / "train" / "a"
    d.mkdir(parents=True)
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 10:30] = 255
    Image.fromarray(img).save(d / "x.png")
    x, _ = load_images("imagefolder", tmp_path / "data", "train", size=10)
    assert int(x[..., 1:-1].min()) == 255 and int(x.min()) >= 200


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_a_folder_without_images_names_both_layouts(tmp_path, where):
    root = tmp_path if where == "empty" else tmp_path / "nowhere"
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(MissingDatasetError, match="ImageFolder layout.*unlabelled folder"):
        load_images("imagefolder", root, "ssl")


def test_training_on_an_imagefolder_tree(tmp_path):
    root = make_tree(tmp_path / "data")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out", str(out),
                        "--quiet", "data.dataset=imagefolder", f"data.root={root}", "data.image_size=16",
                        "train.steps=3", "train.batch_size=8", "log.probe_size=16"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["linear_top1"] >= 75  # the colour tells the classes apart: even a random trunk sees it


def test_sixteen_bit_images_keep_their_intensities_and_bad_files_are_named(tmp_path, monkeypatch):
    """A 16-bit greyscale PNG (mode I;16) is scaled from 0..65535 to 0..255, not clipped to
    white; a macOS ``._name`` sidecar is skipped; a truncated JPEG, an empty PNG and an image over
    PIL's decompression-bomb limit are refused in one line naming the file."""
    from analysis.errors import ConfigError

    root = make_tree(tmp_path / "data", n=2)
    ramp = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    im = Image.fromarray(ramp)
    assert im.mode == "I;16"
    im.save(root / "train" / "cat" / "deep.png")
    (root / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    x, _ = load_images("imagefolder", root, "train", size=32)
    assert x.shape[0] == 5  # 2 + 2 + the 16-bit one; the sidecar is not an image
    deep = x[2, 0].numpy().astype(np.float64)  # cat: 0.jpg, 1.png, deep.png (sorted)
    expect = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert np.abs(deep - expect).max() <= 1.0 and deep.max() >= 254 and (deep == 255).mean() < 0.01
    bad = root / "train" / "dog" / "broken.jpg"
    good = (root / "train" / "dog" / "0.jpg").read_bytes()
    for content, name in ((good[: len(good) // 3], "broken.jpg"), (b"", "empty.png")):
        bad = root / "train" / "dog" / name
        bad.write_bytes(content)
        with pytest.raises(ConfigError, match=f"{name}: cannot be read as an image"):
            load_images("imagefolder", root, "train", size=32)
        bad.unlink()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # every 20-40 px image is then a "bomb"
    with pytest.raises(ConfigError, match="cannot be read as an image \\(DecompressionBombError"):
        load_images("imagefolder", root, "train", size=32)


def test_a_run_resumes_only_on_the_images_it_started_with(tmp_path):
    """run.json records the image folder's identity (file count and a hash of relative paths and
    sizes). The tree may move (data.root is not part of it); a resume on a tree with other or
    added images is refused in one line instead of training one run on two datasets."""
    import json
    import shutil

    root = make_tree(tmp_path / "data")
    out = tmp_path / "run"

    def train(data_root, *extra):
        return subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out",
                               str(out), "--quiet", "data.dataset=imagefolder", f"data.root={data_root}",
                               "data.image_size=16", "train.steps=4", "train.batch_size=8",
                               "log.probe_size=16", "log.checkpoint_every=1", "log.spectra_every=0",
                               *extra], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    assert train(root, "--stop-after", "1").returncode == 0
    ident = json.loads((out / "run.json").read_text())["data_identity"]
    assert ident["dataset"] == "imagefolder" and ident["n_files"] == 36
    moved = tmp_path / "moved"
    shutil.move(str(root), moved)
    assert train(moved, "--stop-after", "1").returncode == 0  # the same images elsewhere
    shutil.copy(moved / "train" / "cat" / "1.png", moved / "train" / "cat" / "extra.png")
    r = train(moved)
    assert r.returncode == 2 and "started on other data" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _flat_photos(folder: Path, n: int = 20) -> None:
    """Unlabelled images at two depths (as photos sorted by year), with a hidden folder and a
    ``._`` sidecar that are not images of the pool."""
    rng = np.random.default_rng(1)
    for i in range(n):
        d = folder / ("2023" if i % 2 else "") / ""
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(24, 30, 3)).astype(np.uint8)).save(d / f"p{i}.png")
    (folder / ".thumbnails").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / ".thumbnails" / "t.png")
    (folder / "._p0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")


def test_an_unlabelled_folder_is_one_pool_at_any_depth(tmp_path):
    _flat_photos(tmp_path / "photos")
    x, y = load_images("imagefolder", tmp_path / "photos", "ssl", size=16)
    assert tuple(x.shape) == (20, 3, 16, 16) and set(y.tolist()) == {-1}
    assert imagefolder_classes(tmp_path / "photos") == []
    for split in ("train", "test"):
        assert len(load_images("imagefolder", tmp_path / "photos", split, size=16)[0]) == 0


@pytest.mark.parametrize("layout", ["flat", "train_only"])
def test_training_on_unlabelled_images_evaluates_without_labels(tmp_path, layout):
    """A flat folder of photos, or train/ with images but no class folders: SSL trains on every
    image; the end of the run gives the collapse verdict and ranks on the pool (no probe, no kNN,
    ``labelled`` false) instead of refusing the folder."""
    import json

    root = tmp_path / "photos"
    _flat_photos(root / "train" if layout == "train_only" else root)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out", str(out),
                        "--quiet", "data.dataset=imagefolder", f"data.root={root}", "data.image_size=16",
                        "train.steps=3", "train.batch_size=8", "log.probe_size=16", "eval.knn_every=1"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["labelled"] is False
    assert not {"knn_top1", "linear_top1", "linear_top1_random_init"} & set(summary)
    assert 1.0 <= summary["effective_rank"] <= 32 and isinstance(summary["collapsed"], bool)
    assert json.loads((out / "run.json").read_text())["n_ssl"] == 20
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any("knn_top1" in line for line in lines)  # no kNN monitor without labels


def test_a_labelled_tree_without_a_test_split_has_an_empty_test_split(tmp_path):
    """No test/ or val/: the train split keeps its labels and the test split is empty, which
    load_run_data turns into label-free evaluation on the pool."""
    root = make_tree(tmp_path / "data")
    import shutil

    shutil.rmtree(root / "val")
    x, y = load_images("imagefolder", root, "test", size=16)
    assert len(x) == 0 and len(y) == 0
    assert len(load_images("imagefolder", root, "train", size=16)[0]) == 24
