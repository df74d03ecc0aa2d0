"""DeblurGAN-v2 (Kupyn et al., ICCV 2019): FPN generators over three backbones.

``FPNGenerator`` is the paper's generator: a backbone gives five feature maps
(1/2 … 1/32 scale); 1×1 laterals bring them to the FPN width; a top-down path
merges them; four heads are upsampled to 1/4 scale, concatenated, smoothed,
merged with the 1/2-scale lateral, and decoded to a residual added to the input.

Module names follow the official checkpoints except that the backbone lives
under ``fpn.backbone`` (the official files say ``fpn.features`` for MobileNetV2
and ``fpn.inception`` for Inception-ResNet-v2, and repeat every backbone tensor
under ``fpn.enc0`` … ``fpn.enc4``); :func:`checkpoint_filter` maps them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.models.deblurgan_v1 import drop_running_statistics
from deblurcli.models.layers import PaddedGenerator, Padding, output_layer

Norm = Literal["instance", "batch"]
NormFactory = Callable[[int], nn.Module]


def norm_factory(norm: Norm) -> NormFactory:
    """Norm layer for the FPN and heads.

    ``instance`` is the official layer (InstanceNorm without affine, with
    running buffers). ``batch`` suits weights trained for eval-mode inference,
    where tiles must agree with the whole image.
    """
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=True)
    if norm == "batch":
        return nn.BatchNorm2d
    raise ValueError(f"unknown norm {norm!r}: use 'instance' or 'batch'")


def conv3x3(c_in: int, c_out: int, bias: bool, separable: bool) -> nn.Module:
    """3×3 convolution, or its depthwise-separable form (MobileNet-DSC).

    The separable form is a depthwise 3×3 (groups = ``c_in``, no bias)
    followed by a pointwise 1×1 carrying the bias.
    """
    if not separable:
        return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=bias),
    )


# --- MobileNetV2 backbone -------------------------------------------------------------------

# (expansion t, channels c, repeats n, first stride s), as in the MobileNetV2 paper, up to the
# layers the FPN runs: the paper's third 160-channel block and the 320- and 1280-channel layers
# (official features.16-18) are never used.
_MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 2, 2),
)
# features[a:b] of each encoder stage.
_MOBILENET_STAGES = ((0, 2), (2, 4), (4, 7), (7, 11), (11, 16))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1×1 expand, BN, ReLU6], 3×3 depthwise, BN, ReLU6, 1×1 project, BN.

    Adds the input when the stride is 1 and the channel count is kept.
    Shapes: (N, c_in, H, W) -> (N, c_out, H/stride, W/stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.use_residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [
                nn.Conv2d(c_in, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(True),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(True),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """The first 16 MobileNetV2 feature layers, split into five stages.

    Shapes: (N, 3, H, W) -> 16 ch at H/2, 24 at H/4, 32 at H/8, 64 at H/16, 160 at H/32.
    """

    channels = (16, 24, 32, 64, 160)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(True))
        ]
        c_in = 32
        for expansion, c_out, repeats, stride in _MOBILENET_V2_SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expansion))
                c_in = c_out
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for start, stop in _MOBILENET_STAGES:
            for layer in self.features[start:stop]:
                x = layer(x)
            maps.append(x)
        return maps


# --- Inception-ResNet-v2 backbone -----------------------------------------------------------

_INCEPTION_STAGES = (
    ("conv2d_1a",),
    ("conv2d_2a", "conv2d_2b", "maxpool_3a"),
    ("conv2d_3b", "conv2d_4a", "maxpool_5a"),
    ("mixed_5b", "repeat", "mixed_6a"),
    ("repeat_1", "mixed_7a"),
)


class InceptionResNetV2Encoder(nn.Module):
    """timm's Inception-ResNet-v2 up to ``mixed_7a``, split into five stages.

    Its convolutions are unpadded, so the maps are a few pixels smaller than
    the nominal scale (the FPN pads them back). For H = W = 32k:
    32 ch at 16k-1, 64 at 8k-2, 192 at 4k-3, 1088 at 2k-2, 2080 at k-2.
    """

    channels = (32, 64, 192, 1088, 2080)

    def __init__(self) -> None:
        super().__init__()
        import timm  # heavy import, only for this backbone

        net = timm.create_model("inception_resnet_v2", pretrained=False)
        for stage in _INCEPTION_STAGES:
            for name in stage:
                self.add_module(name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in _INCEPTION_STAGES:
            for name in stage:
                x = getattr(self, name)(x)
            maps.append(x)
        return maps


# --- FPN and generator ----------------------------------------------------------------------


def _up(x: torch.Tensor, scale: int) -> torch.Tensor:
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")


class FPN(nn.Module):
    """Feature pyramid: laterals and top-down merges over a five-stage backbone.

    Returns (map0, map1, map2, map3, map4): map0 has ``width // 2`` channels at
    1/2 scale, the others ``width`` channels at 1/4 … 1/32 scale.

    Args:
        backbone: module returning five maps with ``backbone.channels`` channels.
        width: FPN channels.
        norm: norm layer factory for the top-down convolutions.
        separable: depthwise-separable top-down convolutions (MobileNet-DSC).
        pad_laterals: reflect-pad the laterals back to the nominal scale
            (for backbones with unpadded convolutions, i.e. Inception).
    """

    def __init__(
        self,
        backbone: nn.Module,
        width: int,
        norm: NormFactory,
        separable: bool = False,
        pad_laterals: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pad_laterals = pad_laterals
        c0, c1, c2, c3, c4 = backbone.channels
        for i in (1, 2, 3):
            block = nn.Sequential(
                conv3x3(width, width, True, separable), norm(width), nn.ReLU(True)
            )
            self.add_module(f"td{i}", block)
        self.lateral4 = nn.Conv2d(c4, width, 1, bias=False)
        self.lateral3 = nn.Conv2d(c3, width, 1, bias=False)
        self.lateral2 = nn.Conv2d(c2, width, 1, bias=False)
        self.lateral1 = nn.Conv2d(c1, width, 1, bias=False)
        self.lateral0 = nn.Conv2d(c0, width // 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        enc0, enc1, enc2, enc3, enc4 = self.backbone(x)
        lat4, lat3, lat2 = self.lateral4(enc4), self.lateral3(enc3), self.lateral2(enc2)
        lat1, lat0 = self.lateral1(enc1), self.lateral0(enc0)
        if self.pad_laterals:
            lat4 = F.pad(lat4, (1, 1, 1, 1), mode="reflect")
            lat3 = F.pad(lat3, (1, 1, 1, 1), mode="reflect")
            lat2 = F.pad(lat2, (1, 2, 1, 2), mode="reflect")
            lat1 = F.pad(lat1, (1, 1, 1, 1), mode="reflect")
            lat0 = F.pad(lat0, (0, 1, 0, 1), mode="reflect")
        map4 = lat4
        map3 = self.td1(lat3 + _up(map4, 2))
        map2 = self.td2(lat2 + _up(map3, 2))
        map1 = self.td3(lat1 + _up(map2, 2))
        return lat0, map1, map2, map3, map4


class FPNHead(nn.Module):
    """Two bias-free 3×3 convolutions with ReLU. Shapes: (N, c_in, h, w) -> (N, c_out, h, w)."""

    def __init__(self, c_in: int, c_out: int, separable: bool = False) -> None:
        super().__init__()
        self.block0 = conv3x3(c_in, c_out, False, separable)
        self.block1 = conv3x3(c_out, c_out, False, separable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block1(F.relu(self.block0(x))))


class FPNGenerator(PaddedGenerator):
    """DeblurGAN-v2 generator: ``clamp(x + tanh(decoder(FPN(x))), -1, 1)``.

    Input (N, 3, H, W) in [-1, 1], any H×W: padded inside to a multiple of 32
    (and to at least ``padding.minimum``), cropped back.

    Args:
        backbone: a five-stage encoder (``MobileNetV2Encoder`` or ``InceptionResNetV2Encoder``).
        fpn_width: FPN channels (128 for MobileNet, 256 for Inception).
        head_width: head channels (64 for MobileNet, 128 for Inception).
        norm: ``instance`` (official) or ``batch``.
        separable: depthwise-separable FPN and head convolutions (MobileNet-DSC).
        pad_laterals: see :class:`FPN`.
        min_size: smallest side the backbone accepts.

    Example:
        >>> g = FPNGenerator(MobileNetV2Encoder(), 32, 16).eval()
        >>> g(torch.zeros(1, 3, 50, 70)).shape
        torch.Size([1, 3, 50, 70])
    """

    def __init__(
        self,
        backbone: nn.Module,
        fpn_width: int,
        head_width: int,
        norm: Norm = "instance",
        separable: bool = False,
        pad_laterals: bool = False,
        min_size: int = 0,
    ) -> None:
        super().__init__()
        self.padding = Padding(32, minimum=min_size)
        make_norm = norm_factory(norm)
        self.fpn = FPN(backbone, fpn_width, make_norm, separable, pad_laterals)
        for i in (1, 2, 3, 4):
            self.add_module(f"head{i}", FPNHead(fpn_width, head_width, separable))
        self.smooth = nn.Sequential(
            conv3x3(4 * head_width, head_width, True, separable), make_norm(head_width), nn.ReLU()
        )
        self.smooth2 = nn.Sequential(
            conv3x3(head_width, head_width // 2, True, separable),
            make_norm(head_width // 2),
            nn.ReLU(),
        )
        self.final = nn.Conv2d(head_width // 2, 3, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        map0, map1, map2, map3, map4 = self.fpn(x)
        heads = torch.cat(
            [
                _up(self.head4(map4), 8),
                _up(self.head3(map3), 4),
                _up(self.head2(map2), 2),
                self.head1(map1),
            ],
            dim=1,
        )
        smoothed = _up(self.smooth(heads), 2) + map0
        smoothed = _up(self.smooth2(smoothed), 2)
        return torch.clamp(torch.tanh(output_layer(self.final, smoothed)) + x, -1.0, 1.0)


# --- official checkpoints -------------------------------------------------------------------

_DUPLICATE_ENCODER = re.compile(r"^fpn\.enc[0-4]\.")
_UNUSED_BACKBONE = re.compile(
    r"^fpn\.(features\.(16|17|18)\.|inception\.(repeat_2|block8|conv2d_7b|last_linear)\.)"
)


def checkpoint_filter(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official DeblurGAN-v2 state dict (``module.`` already stripped) onto ours.

    Knowingly dropped: the ``fpn.encN.*`` copies of backbone tensors, backbone
    layers the FPN never runs (MobileNet ``features.16-18``; Inception
    ``repeat_2``, ``block8``, ``conv2d_7b``, ``last_linear``), and norm running
    buffers, which official inference (train mode) never reads.
    Renamed: ``fpn.features.*`` -> ``fpn.backbone.features.*`` and
    ``fpn.inception.*`` -> ``fpn.backbone.*``.
    """
    mapped = {}
    for key, value in drop_running_statistics(state_dict).items():
        if _DUPLICATE_ENCODER.match(key) or _UNUSED_BACKBONE.match(key):
            continue
        if key.startswith("fpn.features."):
            key = "fpn.backbone." + key[len("fpn.") :]
        elif key.startswith("fpn.inception."):
            key = "fpn.backbone." + key[len("fpn.inception.") :]
        mapped[key] = value
    return mapped
