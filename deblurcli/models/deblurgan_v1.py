"""DeblurGAN v1 (Kupyn et al., CVPR 2018): ResNet generator and PatchGAN critic.

Module indices follow the released ``latest_net_G.pth`` so that the official
file loads with a small filter (see :func:`checkpoint_filter`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from deblurcli.models.layers import PaddedGenerator, Padding


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    # track_running_stats mirrors the official layer; at inference the
    # per-image statistics are used (see layers.set_statistics).
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=True)


class ResnetBlock(nn.Module):
    """Residual block: x + [pad, conv3×3, IN, ReLU, dropout, pad, conv3×3, IN](x).

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _instance_norm(channels),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(PaddedGenerator):
    """DeblurGAN v1 generator: two downsamplings, ``n_blocks`` residual blocks, two upsamplings.

    The output is the input plus a learned residual: ``clamp(x + tanh(...), -1, 1)``.
    Input (N, 3, H, W) in [-1, 1], any H×W (padded to a multiple of 4 inside).
    Dropout (0.5, as trained) is active only in ``train()`` mode.

    Example:
        >>> g = ResnetGenerator(ngf=8, n_blocks=1).eval()
        >>> g(torch.zeros(1, 3, 30, 45)).shape
        torch.Size([1, 3, 30, 45])
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        self.padding = Padding(4)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7),
            _instance_norm(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                _instance_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1
                ),
                _instance_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + self.model(x), -1.0, 1.0)


class NLayerDiscriminator(nn.Module):
    """PatchGAN critic (WGAN-GP, no sigmoid): 4×4 convs, stride 2 then 1, instance norm.

    Shapes: (N, 3, 64, 64) -> (N, 1, 11, 11) for ``n_layers`` = 3 (one score per patch).
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, ndf, 4, stride=2, padding=2),
            nn.LeakyReLU(0.2, True),
        ]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(channels, out, 4, stride=stride, padding=2),
                _instance_norm(out),
                nn.LeakyReLU(0.2, True),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=2))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


_RUNNING_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def drop_running_statistics(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove norm running buffers: official inference normalises per image instead."""
    return {k: v for k, v in state_dict.items() if not k.endswith(_RUNNING_STAT_SUFFIXES)}


def checkpoint_filter(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a released ``latest_net_G.pth`` onto :class:`ResnetGenerator`.

    The released file is a bare pre-0.4 state dict with our exact key names.
    Its InstanceNorm running buffers are dropped: the official code never uses
    them at inference (per-image statistics).
    """
    return drop_running_statistics(state_dict)
