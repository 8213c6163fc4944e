import pytest
import torch
import torchvision
from torch import nn

from realnet.nets.resnet import MLP, STEMS, build_backbone, build_projector, count_parameters

# torchvision's resnet18 has 11,689,512 parameters of which fc holds 512*1000 + 1000.
TV_RESNET18_TRUNK = 11_689_512 - 513_000


def test_imagenet_stem_matches_torchvision_resnet18_exactly():
    trunk, feat_dim = build_backbone(arch="resnet18", stem="imagenet", width=1.0, in_channels=3)
    tv = torchvision.models.resnet18()
    tv_trunk = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert feat_dim == 512
    # Exact: same architecture, so the count must agree to the parameter.
    assert count_parameters(trunk) == TV_RESNET18_TRUNK == sum(
        p.numel() for n, p in tv.named_parameters() if not n.startswith("fc."))
    # Same names and shapes (buffers included): torchvision weights load strictly, and then the
    # trunk computes torchvision's pooled features (eval mode, float32 rounding only).
    trunk.load_state_dict(tv_trunk, strict=True)
    tv.fc = nn.Identity()
    trunk.eval(), tv.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), tv(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stem, size, final", [("cifar", 32, 4), ("small", 16, 4), ("small", 8, 2),
                                               ("imagenet", 96, 3), ("cifar", 28, 4)])
def test_stem_downsampling_and_output_shape(stem, size, final):
    trunk, feat_dim = build_backbone(stem=stem, width=0.125, in_channels=3)
    seen = {}

    def hook(module, inputs, output):
        seen["shape"] = output.shape

    trunk.layer4.register_forward_hook(hook)
    out = trunk(torch.randn(2, 3, size, size))
    assert out.shape == (2, feat_dim) and feat_dim == 64
    # ceil(size / downsampling): the conv arithmetic with padding = kernel // 2.
    assert seen["shape"][-1] == final == -(-size // STEMS[stem].downsampling)


@pytest.mark.parametrize("width, base", [(0.125, 8), (0.25, 16), (0.5, 32), (1.0, 64), (0.3, 19)])
def test_width_multiplier_sets_stage_channels(width, base):
    trunk, feat_dim = build_backbone(stem="cifar", width=width, in_channels=1)
    assert trunk.conv1.in_channels == 1
    assert [getattr(trunk, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [base * 2**i for i in range(4)]
    assert feat_dim == 8 * base


def test_cifar_and_small_stems_have_the_same_parameters_and_differ_from_imagenet_by_the_first_conv():
    c = count_parameters(build_backbone(stem="cifar")[0])
    s = count_parameters(build_backbone(stem="small")[0])
    i = count_parameters(build_backbone(stem="imagenet")[0])
    assert c == s
    assert i - c == 64 * 3 * (7 * 7 - 3 * 3)  # only the first conv's kernel differs


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    trunk, _ = build_backbone(stem="cifar", width=0.125, in_channels=3)
    trunk.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ref = trunk(x)
        trunk = trunk.to(memory_format=torch.channels_last)
        out = trunk(x.to(memory_format=torch.channels_last))
    # Same arithmetic in a different memory order: only float32 summation-order differences.
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_mlp_structure_and_projector_defaults():
    proj = build_projector(512)
    assert isinstance(proj, MLP)
    lin1, bn, relu, lin2 = proj.net
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (512, 512, 128)
    assert isinstance(bn, nn.BatchNorm1d) and not bn.affine and isinstance(relu, nn.ReLU)
    # Two Linear layers with bias; the BatchNorm has no parameters.
    assert count_parameters(proj) == 512 * 512 + 512 + 512 * 128 + 128
    m = MLP(16, 32, 8)
    z = m(torch.randn(10, 16))
    assert z.shape == (10, 8)
    # The hidden BN normalises each unit over the batch in train mode: mean 0, variance 1 (biased).
    h = m.net[1](m.net[0](torch.randn(64, 16)))
    torch.testing.assert_close(h.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(0, unbiased=False), torch.ones(32), atol=1e-3, rtol=0)


@pytest.mark.parametrize("kwargs, key", [({"arch": "vgg"}, "model.arch"), ({"stem": "huge"}, "model.stem"),
                                         ({"width": 0}, "model.width"), ({"width": float("nan")}, "model.width"),
                                         ({"in_channels": 0}, "model.in_channels")])
def test_bad_backbone_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key):
        build_backbone(**kwargs)


def test_bad_mlp_sizes():
    with pytest.raises(ValueError, match="hidden_dim"):
        MLP(4, 0, 4)
