import math
from dataclasses import replace

import pytest
import torch
import torchvision.transforms.v2.functional as TF

import realnet.data.augment as augment_module
from realnet.data.augment import (AugmentConfig, GPUAugment, adjust_brightness, adjust_contrast,
                                  adjust_hue, adjust_saturation, default_augment, gaussian_blur,
                                  rgb_to_grayscale, sample_crop_boxes)
from realnet.data.datasets import DATASETS

CIFAR = DATASETS["cifar10"]
STL = DATASETS["stl10"]
IDENTITY = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                         jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
# float32 rounding of a few multiply-adds on values in [0, 1]; HSV round trips reach ~1e-6.
OP_TOL = 1e-5


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_u8(*shape, seed=0):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(seed))


def within_binomial(count, n, p, sigmas=4.0):
    """|count/n - p| <= 4 sd of a Binomial(n, p) proportion (two-sided ~6e-5 false-alarm rate)."""
    return abs(count / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ ops agree with torchvision

def test_colour_ops_match_torchvision_per_image():
    x = torch.rand(12, 3, 9, 11, generator=gen(1))
    f = 2.0 * torch.rand(12, generator=gen(2))
    shift = torch.rand(12, generator=gen(3)) - 0.5
    for mine, ref in ((adjust_brightness, TF.adjust_brightness), (adjust_contrast, TF.adjust_contrast),
                      (adjust_saturation, TF.adjust_saturation)):
        expect = torch.stack([ref(x[i], f[i].item()) for i in range(12)])
        torch.testing.assert_close(mine(x.clone(), f), expect, atol=OP_TOL, rtol=0)
    expect = torch.stack([TF.adjust_hue(x[i], shift[i].item()) for i in range(12)])
    torch.testing.assert_close(adjust_hue(x, shift), expect, atol=OP_TOL, rtol=0)
    torch.testing.assert_close(rgb_to_grayscale(x), TF.rgb_to_grayscale(x), atol=OP_TOL, rtol=0)
    # one channel: contrast uses the image's own mean
    g1 = x[:, :1]
    expect = torch.stack([TF.adjust_contrast(g1[i], f[i].item()) for i in range(12)])
    torch.testing.assert_close(adjust_contrast(g1.clone(), f), expect, atol=OP_TOL, rtol=0)


def test_blur_matches_torchvision_per_image_and_sigma_zero_is_identity():
    x = torch.rand(6, 3, 16, 16, generator=gen(4))
    sigma = torch.tensor([0.3, 0.7, 1.0, 1.5, 2.0, 0.0])
    out = gaussian_blur(x, sigma, 7)
    expect = torch.stack([TF.gaussian_blur(x[i], [7, 7], [sigma[i].item()] * 2) for i in range(5)])
    torch.testing.assert_close(out[:5], expect, atol=OP_TOL, rtol=0)
    assert torch.equal(out[5], x[5])  # delta kernel: exact


def test_resized_crop_matches_torchvision_inside_the_box():
    x = rand_u8(3, 3, 32, 32, seed=5)
    aug = GPUAugment(IDENTITY, CIFAR, out_size=48)
    p = aug.sample(3, 32, 32, gen())
    # whole image resized: identical sampling positions, border clamping agrees too
    torch.testing.assert_close(aug.apply(x, p), TF.resize(x.float() / 255, [48, 48], antialias=False),
                               atol=OP_TOL, rtol=0)
    p.boxes = torch.tensor([[3, 5, 12, 20], [0, 0, 32, 7], [20, 10, 12, 12]])
    out = aug.apply(x, p)
    for i, (t, l, h, w) in enumerate(p.boxes.tolist()):
        ref = TF.resized_crop(x[i].float() / 255, t, l, h, w, [48, 48], antialias=False)
        # At the box edge torchvision clamps to the box, we interpolate with the image pixels
        # next to it: the outer ceil(upscale / 2) rows/columns differ, the interior must agree.
        by, bx = math.ceil(48 / h / 2), math.ceil(48 / w / 2)
        torch.testing.assert_close(out[i][:, by:48 - by, bx:48 - bx], ref[:, by:48 - by, bx:48 - bx],
                                   atol=OP_TOL, rtol=0)


# ---------------------------------------------------------------------------------- crop boxes

def test_crop_boxes_lie_inside_and_follow_the_scale_and_ratio_ranges():
    n, H, W = 20000, 32, 32
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    b = sample_crop_boxes(n, H, W, scale, ratio, gen(6))
    top, left, h, w = b.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    assert (h >= 1).all() and (w >= 1).all()
    # Rounding h, w to integers moves the area by at most (sqrt(A r) + sqrt(A / r) + 1/4 per px),
    # i.e. a relative slack of about (h + w) / (2 h w) + 1/(4hw); ratio likewise by 1/(2h) + 1/(2w).
    area = (h * w).double() / (H * W)
    slack = (h + w).double() / (2 * h * w) + 0.25 / (h * w)
    assert (area <= scale[1] + 1e-12).all() and (area >= scale[0] * (1 - slack) - 1e-12).all()
    r = w.double() / h
    rs = 0.5 / h + 0.5 / w
    assert (r >= ratio[0] * (1 - rs) * (1 - rs)).all() and (r <= ratio[1] * (1 + rs) * (1 + rs)).all()
    # torchvision's sampling: the median area fraction of accepted boxes lies well inside the range.
    # With scale U(0.08, 1) and ~no rejections for 32 px the median is ~0.54; allow a broad band.
    assert 0.45 < area.median().item() < 0.63
    # Every position that fits is possible: offsets of full-width boxes are 0 only.
    assert (left[w == W] == 0).all()
    # Offsets are uniform over the free range: the mean of left / (W - w) over boxes with room
    # is 1/2 up to 4 standard errors (uniform on {0, 1/m, ..., 1} has sd sqrt((m+2)/(12m)) <= 1/2).
    room = w < W
    u = left[room].double() / (W - w[room]).double()
    assert abs(u.mean().item() - 0.5) < 4 * 0.5 / math.sqrt(room.sum().item())


def test_crop_fallback_is_the_central_crop():
    # A ratio range that no square image can meet with scale 1 in 10 tries forces the fallback.
    b = sample_crop_boxes(5, 20, 20, (1.0, 1.0), (2.0, 3.0), gen(7))
    assert b.tolist() == [[5, 0, 10, 20]] * 5  # w = 20, h = round(20 / 2), centred


# ------------------------------------------------------------------------ the batched pipeline

def test_identity_settings_reproduce_the_input():
    x = rand_u8(8, 3, 32, 32)
    aug = GPUAugment(IDENTITY, CIFAR)
    out = aug.augment_unit(x, gen())
    # bilinear sampling exactly at pixel centres: float32 rounding of the grid only
    torch.testing.assert_close(out, x.float() / 255, atol=1e-6, rtol=0)
    torch.testing.assert_close(aug(x, gen()), aug.normalise(x), atol=1e-5, rtol=0)
    mean = torch.tensor(CIFAR.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR.std).view(1, 3, 1, 1)
    torch.testing.assert_close(aug.normalise(x), (x.float() / 255 - mean) / std, atol=1e-6, rtol=0)


def test_output_shape_dtype_range_and_normalisation():
    x = rand_u8(10, 3, 96, 96)
    aug = GPUAugment(default_augment("stl10"), STL, out_size=64)
    out = aug(x, gen())
    assert out.shape == (10, 3, 64, 64) and out.dtype == torch.float32
    unit = aug.augment_unit(x, gen())
    assert unit.min() >= 0 and unit.max() <= 1
    mean = torch.tensor(STL.mean).view(1, 3, 1, 1)
    std = torch.tensor(STL.std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (unit - mean) / std, atol=1e-5, rtol=0)
    ev = aug.normalise(x)
    assert ev.shape == (10, 3, 64, 64) and ev.dtype == torch.float32


def test_each_sample_is_computed_alone_and_cpu_blocking_does_not_matter(monkeypatch):
    # The batched result must equal the result for each image on its own (no cross-sample
    # coupling) and must not depend on the CPU block size, to float32 rounding.
    x = rand_u8(10, 3, 32, 32)
    aug = GPUAugment(replace(default_augment("stl10"), blur_kernel=3), STL, out_size=32)
    p = aug.sample(10, 32, 32, gen(8))
    whole = aug.apply(x, p)
    single = torch.cat([aug.apply(x[i:i + 1], p.slice(i, i + 1)) for i in range(10)])
    monkeypatch.setattr(augment_module, "_CPU_BLOCK_VALUES", 3 * 3 * 32 * 32)  # blocks of 3 images
    blocked = aug.apply(x, p)
    torch.testing.assert_close(whole, single, atol=1e-6, rtol=0)
    torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=0)


def test_deterministic_given_the_seed():
    x = rand_u8(16, 3, 32, 32)
    aug = GPUAugment(default_augment("cifar10"), CIFAR)
    a, b, c = aug(x, gen(11)), aug(x, gen(11)), aug(x, gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identical_images_get_independent_parameters():
    x = rand_u8(1, 3, 32, 32).expand(64, -1, -1, -1).contiguous()
    aug = GPUAugment(default_augment("cifar10"), CIFAR)
    out = aug(x, gen(3))
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    # Two samples coincide only if neither is jittered (p 0.04) AND box, flip and grayscale all
    # agree (< 1e-3 for thousands of boxes): expected coincidences among 2016 pairs << 1.
    assert distinct >= 62


def test_flip_rate_is_binomial():
    n, p = 4000, 0.5
    x = rand_u8(1, 1, 4, 4).expand(n, -1, -1, -1).contiguous()
    cfg = replace(IDENTITY, flip_p=p)
    aug = GPUAugment(cfg, DATASETS["digits"], out_size=4)
    out = aug.augment_unit(x, gen(21))
    ref = x.float() / 255
    flipped = (out - ref.flip(-1)).abs().amax((1, 2, 3)) < 1e-6
    kept = (out - ref).abs().amax((1, 2, 3)) < 1e-6
    assert torch.all(flipped ^ kept)  # every output is exactly one of the two
    assert within_binomial(flipped.sum().item(), n, p)


def test_jitter_and_grayscale_rates_are_binomial():
    n = 4000
    # Constant mid-grey: brightness f != 1 (probability 1) changes it, nothing else can.
    x = torch.full((n, 3, 4, 4), 128, dtype=torch.uint8)
    cfg = replace(IDENTITY, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=0.8)
    out = GPUAugment(cfg, CIFAR, out_size=4).augment_unit(x, gen(22))
    jittered = (out - 128 / 255).abs().amax((1, 2, 3)) > 1e-6
    assert within_binomial(jittered.sum().item(), n, 0.8)
    # Saturated colour: grayscale makes channels equal, nothing else in this config does.
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    x[:, 0] = 200
    out = GPUAugment(replace(IDENTITY, grayscale_p=0.2), CIFAR, out_size=4).augment_unit(x, gen(23))
    gray = (out.amax(1) - out.amin(1)).amax((1, 2)) < 1e-6
    assert within_binomial(gray.sum().item(), n, 0.2)


def test_blur_parameters_rate_and_sigma_range():
    n = 20000
    # the paper's STL-10 recipe blurs every image (its code's GaussianBlur has no probability)
    assert default_augment("stl10").blur_p == 1.0
    aug = GPUAugment(replace(default_augment("stl10"), blur_p=0.5), STL)
    p = aug.sample(n, 96, 96, gen(24))
    on = p.blur_sigma > 0
    assert within_binomial(on.sum().item(), n, 0.5)
    every = GPUAugment(default_augment("stl10"), STL).sample(2000, 96, 96, gen(26)).blur_sigma
    assert bool((every >= 0.1).all())
    assert p.blur_sigma[on].min() >= 0.1 and p.blur_sigma[on].max() <= 2.0
    # uniform sigma: mean 1.05 within 4 standard errors (sd of U(0.1, 2) = 1.9 / sqrt(12))
    assert abs(p.blur_sigma[on].mean().item() - 1.05) < 4 * 1.9 / math.sqrt(12 * on.sum().item())
    assert within_binomial(p.flip.sum().item(), n, 0.5)
    assert within_binomial(p.jitter_on.sum().item(), n, 0.8)
    assert within_binomial(p.gray_on.sum().item(), n, 0.2)
    # jitter factors drawn in torchvision's ranges, identity where off
    f = p.factors[p.jitter_on]
    assert (f[:, :3] >= 0.2 - 1e-6).all() and (f[:, :3] <= 1.8 + 1e-6).all() and (f[:, 3].abs() <= 0.2).all()
    assert torch.equal(p.factors[~p.jitter_on], torch.tensor([1.0, 1.0, 1.0, 0.0]).expand((~p.jitter_on).sum(), 4))
    assert aug.blur_kernel == 9  # 10 % of 96, odd, as the paper's public code


def test_grayscale_output_equal_across_channels():
    x = rand_u8(32, 3, 32, 32)
    cfg = replace(default_augment("cifar10"), grayscale_p=1.0)
    out = GPUAugment(cfg, CIFAR).augment_unit(x, gen(25))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_grayscale_datasets_run_and_refuse_colour_ops():
    for name in ("digits", "fashion_mnist"):
        spec = DATASETS[name]
        x = rand_u8(8, 1, spec.image_size, spec.image_size)
        out = GPUAugment(default_augment(name), spec)(x, gen())
        assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="augment.jitter"):
        GPUAugment(default_augment("cifar10"), DATASETS["digits"])


@pytest.mark.parametrize("change, key", [({"crop_scale": (0.0, 1.0)}, "augment.crop_scale"),
                                         ({"crop_scale": (0.9, 0.5)}, "augment.crop_scale"),
                                         ({"crop_ratio": (2.0, 1.0)}, "augment.crop_ratio"),
                                         ({"flip_p": 1.5}, "augment.flip_p"),
                                         ({"jitter": (0.4, 0.4, 0.4, 0.7)}, "augment.jitter"),
                                         ({"jitter": (-0.1, 0.4, 0.4, 0.1)}, "augment.jitter"),
                                         ({"blur_sigma": (0.0, 1.0)}, "augment.blur_sigma"),
                                         ({"blur_kernel": 4}, "augment.blur_kernel")])
def test_bad_config_values(change, key):
    with pytest.raises(ValueError, match=key):
        GPUAugment(replace(AugmentConfig(), **change), CIFAR)


def test_bad_input():
    aug = GPUAugment(default_augment("cifar10"), CIFAR)
    with pytest.raises(ValueError, match="x: need uint8"):
        aug(torch.rand(2, 3, 32, 32), gen())
    with pytest.raises(ValueError, match="data.dataset"):
        default_augment("svhn")


@pytest.mark.gpu
def test_cuda_matches_cpu_for_the_same_parameters():
    x = rand_u8(16, 3, 96, 96)
    aug = GPUAugment(default_augment("stl10"), STL)
    p = aug.sample(16, 96, 96, gen(30))
    cpu = aug.apply(x, p)
    for k, v in vars(p).items():
        setattr(p, k, v.cuda())
    gpu = aug.apply(x.cuda(), p).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)  # different kernels, same maths
    g = torch.Generator(device="cuda").manual_seed(0)
    out = aug(x.cuda(), g)
    assert out.device.type == "cuda" and out.shape == (16, 3, 96, 96)
