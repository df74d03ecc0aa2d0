"""An independent re-statement of the official DeblurGAN-v2 FPNMobileNet inference.

Written for the tests from the facts in
``tests/data/official_state_dicts/README.md`` (no official code is copied):
the official module tree, with the backbone registered twice (``fpn.features``
and ``fpn.enc0..4``) so that its ``state_dict()`` has exactly the official keys,
run the way ``predict.py`` runs it: train mode (batch statistics), inputs
normalised to [-1, 1], zero padding to ``(h // 32 + 1) * 32``, output
``(y + 1) / 2 * 255`` truncated to uint8.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int, stride: int, t: int) -> nn.Module:
    hidden = c_in * t
    layers: list[nn.Module] = []
    if t != 1:
        layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
    layers += [
        nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU6(),
        nn.Conv2d(hidden, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    module = nn.Module()
    module.conv = nn.Sequential(*layers)
    module.residual = stride == 1 and c_in == c_out
    return module


def _run_block(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Sequential):
        return module(x)
    return x + module.conv(x) if module.residual else module.conv(x)


class OfficialFPNMobileNet(nn.Module):
    """The official module tree (all 19 MobileNetV2 feature layers, enc duplicates)."""

    def __init__(self) -> None:
        super().__init__()
        feats: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        ]
        c = 32
        for t, c_out, n, s in [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ]:
            for i in range(n):
                feats.append(_block(c, c_out, s if i == 0 else 1, t))
                c = c_out
        feats.append(
            nn.Sequential(nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6())
        )
        fpn = nn.Module()
        fpn.features = nn.Sequential(*feats)
        for i, (a, b) in enumerate([(0, 2), (2, 4), (4, 7), (7, 11), (11, 16)]):
            setattr(fpn, f"enc{i}", nn.Sequential(*feats[a:b]))
        norm = lambda ch: nn.InstanceNorm2d(ch, affine=False, track_running_stats=True)  # noqa: E731
        for i in (1, 2, 3):
            setattr(
                fpn,
                f"td{i}",
                nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), norm(128), nn.ReLU()),
            )
        for i, ch in zip((4, 3, 2, 1), (160, 64, 32, 24), strict=True):
            setattr(fpn, f"lateral{i}", nn.Conv2d(ch, 128, 1, bias=False))
        fpn.lateral0 = nn.Conv2d(16, 64, 1, bias=False)
        self.fpn = fpn
        for i in (1, 2, 3, 4):
            head = nn.Module()
            head.block0 = nn.Conv2d(128, 64, 3, padding=1, bias=False)
            head.block1 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
            setattr(self, f"head{i}", head)
        self.smooth = nn.Sequential(nn.Conv2d(256, 64, 3, padding=1), norm(64), nn.ReLU())
        self.smooth2 = nn.Sequential(nn.Conv2d(64, 32, 3, padding=1), norm(32), nn.ReLU())
        self.final = nn.Conv2d(32, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fpn
        encs = []
        h = x
        for i in range(5):
            for block in getattr(f, f"enc{i}"):
                h = _run_block(block, h)
            encs.append(h)
        lat = [getattr(f, f"lateral{i}")(encs[i]) for i in range(5)]
        up = lambda t, s: F.interpolate(t, scale_factor=s, mode="nearest")  # noqa: E731
        map4 = lat[4]
        map3 = f.td1(lat[3] + up(map4, 2))
        map2 = f.td2(lat[2] + up(map3, 2))
        map1 = f.td3(lat[1] + up(map2, 2))

        def head(i: int, m: torch.Tensor) -> torch.Tensor:
            hd = getattr(self, f"head{i}")
            return F.relu(hd.block1(F.relu(hd.block0(m))))

        cat = torch.cat(
            [up(head(4, map4), 8), up(head(3, map3), 4), up(head(2, map2), 2), head(1, map1)], dim=1
        )
        smoothed = self.smooth2(up(self.smooth(cat), 2) + lat[0])
        final = self.final(up(smoothed, 2))
        return torch.clamp(torch.tanh(final) + x, -1, 1)


def official_predict(model: OfficialFPNMobileNet, rgb: np.ndarray) -> np.ndarray:
    """predict.py's pipeline on an (H, W, 3) uint8 RGB image; returns uint8 RGB."""
    x = (rgb.astype(np.float32) / 255.0 - 0.5) / 0.5
    h, w, _ = x.shape
    x = np.pad(x, ((0, (h // 32 + 1) * 32 - h), (0, (w // 32 + 1) * 32 - w), (0, 0)))
    batch = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    model.train(True)
    with torch.no_grad():
        y = model(batch)[0].numpy()
    y = (y.transpose(1, 2, 0) + 1) / 2.0 * 255.0
    return y.astype("uint8")[:h, :w]
